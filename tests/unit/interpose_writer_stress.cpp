// Several threads writing at once while a reader follows the committed counters: every event a
// reader can see is whole, and each thread's events come back complete and in order.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "interpose/record/sys.h"
#include "interpose/record/trace_writer.h"
#include "interpose_test_trace.h"

namespace httptrace {
namespace {

using testing::parse_trace;
using testing::TempDir;

constexpr int kThreads = 4;
constexpr uint32_t kEventsPerThread = 20000;

// Event i of a thread: conn = thread number, ts_ns = i, a tail of (i % 41) bytes all equal to
// the low byte of i, so a torn or misplaced event is recognisable.
struct Probe {
  format::EventHeader h;
  uint32_t thread;
  uint32_t seq;
};

bool check_event(const uint8_t* p, size_t avail, uint32_t* thread, uint32_t* seq) {
  if (avail < sizeof(Probe)) return false;
  Probe pr;
  memcpy(&pr, p, sizeof(pr));
  const size_t tail = pr.seq % 41;
  if (pr.h.size != format::padded(sizeof(Probe) + tail) || pr.h.size > avail) return false;
  if (pr.h.conn != pr.thread + 1 || pr.h.ts_ns != pr.seq) return false;
  for (size_t i = 0; i < tail; ++i) {
    if (p[sizeof(Probe) + i] != static_cast<uint8_t>(pr.seq)) return false;
  }
  *thread = pr.thread;
  *seq = pr.seq;
  return true;
}

TEST(TraceWriterStress, ConcurrentWritersStayWholeAndOrdered) {
  TempDir dir;
  TraceWriter w;
  WriterOptions o;
  o.max_bytes = 256ull << 20;
  o.pid = sys::getpid();
  ASSERT_TRUE(w.open(dir.file("t").c_str(), o));

  std::atomic<bool> done{false};
  std::atomic<uint64_t> torn{0}, observed{0};
  // The reader trusts only [0, committed) of each started segment, as the analyzer will.
  std::thread reader([&] {
    const auto* base = reinterpret_cast<const uint8_t*>(w.header());
    // Bounded, but far more rounds than the writers need: it stops when they are done.
    for (int round = 0; round < 50000000 && !done.load(); ++round) {
      const uint64_t n =
          std::atomic_ref<uint64_t>(w.header()->segments_claimed).load(std::memory_order_acquire);
      for (uint64_t s = 0; s < n; ++s) {
        const uint8_t* seg = base + format::kHeaderSize + s * format::kSegmentSize;
        auto* sh = reinterpret_cast<format::SegmentHeader*>(const_cast<uint8_t*>(seg));
        if (std::atomic_ref<uint32_t>(sh->magic).load(std::memory_order_acquire) !=
            format::kSegmentMagic) {
          continue;
        }
        const uint64_t committed =
            std::atomic_ref<uint64_t>(sh->committed).load(std::memory_order_acquire);
        uint64_t pos = 0;
        while (pos < committed) {
          uint32_t t, q;
          if (!check_event(seg + 64 + pos, committed - pos, &t, &q)) {
            torn.fetch_add(1);
            break;
          }
          observed.fetch_add(1, std::memory_order_relaxed);
          pos += reinterpret_cast<const format::EventHeader*>(seg + 64 + pos)->size;
        }
      }
    }
  });

  std::vector<std::thread> writers;
  for (uint32_t t = 0; t < kThreads; ++t) {
    writers.emplace_back([&w, &observed, t] {
      uint8_t tail[64];
      for (uint32_t i = 0; i < kEventsPerThread; ++i) {
        Probe p = {};
        p.h.kind = static_cast<uint16_t>(format::EventKind::kData);
        p.h.conn = t + 1;
        p.h.ts_ns = i;
        p.thread = t;
        p.seq = i;
        memset(tail, static_cast<uint8_t>(i), sizeof(tail));
        ASSERT_TRUE(w.emit(&p, sizeof(p), tail, i % 41));
        // Let the reader catch up once in a while so it really reads while we write.
        if (i == kEventsPerThread / 2) {
          for (int spin = 0; spin < 1000000 && observed.load() == 0; ++spin) sched_yield();
        }
      }
    });
  }
  for (auto& th : writers) th.join();
  done.store(true);
  reader.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(observed.load(), 0u);
  EXPECT_EQ(w.dropped(), 0u);
  w.close();

  // Afterwards: per thread (tid), segments in thread_seq order hold seq 0..N-1 exactly once.
  const auto v = parse_trace(dir.file("t"));
  std::map<int32_t, std::map<uint64_t, const testing::SegmentView*>> by_tid;
  for (const auto& seg : v.segments) {
    EXPECT_TRUE(by_tid[seg.header.tid].emplace(seg.header.thread_seq, &seg).second);
  }
  ASSERT_EQ(by_tid.size(), static_cast<size_t>(kThreads));
  for (const auto& [tid, segs] : by_tid) {
    uint32_t next = 0, thread = ~0u;
    uint64_t expect_seq = 0;
    for (const auto& [seq, seg] : segs) {
      EXPECT_EQ(seq, expect_seq++);
      for (const auto& ev : seg->events) {
        uint32_t t, q;
        ASSERT_TRUE(check_event(ev.data(), ev.size(), &t, &q));
        if (thread == ~0u) thread = t;
        EXPECT_EQ(t, thread) << "two threads in one segment chain";
        ASSERT_EQ(q, next) << "tid " << tid;
        ++next;
      }
    }
    EXPECT_EQ(next, kEventsPerThread);
  }
}

TEST(TraceWriterStress, ManyShortLivedThreadsEachClaimTheirOwnSegment) {
  TempDir dir;
  TraceWriter w;
  WriterOptions o;
  o.max_bytes = 64ull << 20;
  o.pid = sys::getpid();
  ASSERT_TRUE(w.open(dir.file("t").c_str(), o));
  constexpr int kShortThreads = 200;
  for (int batch = 0; batch < kShortThreads / 20; ++batch) {
    std::vector<std::thread> ts;
    for (int i = 0; i < 20; ++i) {
      ts.emplace_back([&w] {
        Probe p = {};
        p.h.conn = 1;
        p.seq = 0;
        w.emit(&p, sizeof(p));
      });
    }
    for (auto& t : ts) t.join();
  }
  EXPECT_EQ(w.header()->segments_claimed, static_cast<uint64_t>(kShortThreads));
  w.close();
  const auto v = parse_trace(dir.file("t"));
  EXPECT_EQ(v.segments.size(), static_cast<size_t>(kShortThreads));
  for (const auto& s : v.segments) EXPECT_EQ(s.events.size(), 1u);
}

}  // namespace
}  // namespace httptrace
