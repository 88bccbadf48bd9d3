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

bool is_thread_event(const uint8_t* p, size_t avail) {
  format::EventHeader h;
  if (avail < sizeof(format::ThreadEvent)) return false;
  memcpy(&h, p, sizeof(h));
  return h.kind == static_cast<uint16_t>(format::EventKind::kThread) &&
         h.size == sizeof(format::ThreadEvent);
}

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

// Events by thread: uid -> thread_seq -> the thread's events in that run. A segment's events
// belong to the thread in its header until a ThreadEvent names another.
using Runs = std::map<uint64_t, std::map<uint64_t, std::vector<std::vector<uint8_t>>>>;
Runs thread_runs(const testing::TraceView& v) {
  Runs runs;
  for (const auto& seg : v.segments) {
    auto* run = &runs[seg.header.thread_uid][seg.header.thread_seq];
    for (const auto& ev : seg.events) {
      if (is_thread_event(ev.data(), ev.size())) {
        const auto te = testing::as<format::ThreadEvent>(ev);
        EXPECT_EQ(runs[te.thread_uid].count(te.thread_seq), 0u) << "a run written twice";
        run = &runs[te.thread_uid][te.thread_seq];
        continue;
      }
      run->push_back(ev);
    }
  }
  // A segment handed on with nothing of its first owner's left is no run of it.
  for (auto& [uid, chain] : runs) {
    for (auto it = chain.begin(); it != chain.end();) it = it->second.empty() ? chain.erase(it) : ++it;
  }
  for (auto it = runs.begin(); it != runs.end();) it = it->second.empty() ? runs.erase(it) : ++it;
  return runs;
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
          if (!is_thread_event(seg + 64 + pos, committed - pos) &&
              !check_event(seg + 64 + pos, committed - pos, &t, &q)) {
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

  // Afterwards: per thread (thread_uid), runs in thread_seq order hold seq 0..N-1 exactly once.
  const auto runs = thread_runs(parse_trace(dir.file("t")));
  ASSERT_EQ(runs.size(), static_cast<size_t>(kThreads));
  for (const auto& [uid, chain] : runs) {
    uint32_t next = 0, thread = ~0u;
    uint64_t expect_seq = 0;
    for (const auto& [seq, events] : chain) {
      EXPECT_EQ(seq, expect_seq++);
      for (const auto& ev : events) {
        uint32_t t, q;
        ASSERT_TRUE(check_event(ev.data(), ev.size(), &t, &q));
        if (thread == ~0u) thread = t;
        EXPECT_EQ(t, thread) << "two threads in one chain";
        ASSERT_EQ(q, next) << "uid " << uid;
        ++next;
      }
    }
    EXPECT_EQ(next, kEventsPerThread);
  }
}

// A thread per task (curl's resolver) must not cost a segment per thread: an exiting thread's
// segment is handed to the next one, which says so with a ThreadEvent. Every thread keeps a
// unique thread_uid although the kernel reuses tids.
TEST(TraceWriterStress, ShortLivedThreadsShareSegmentsAndKeepUniqueIds) {
  TempDir dir;
  TraceWriter w;
  WriterOptions o;
  o.max_bytes = 64ull << 20;
  o.pid = sys::getpid();
  ASSERT_TRUE(w.open(dir.file("t").c_str(), o));
  constexpr int kShortThreads = 20000;
  constexpr int kBatch = 20;
  for (int batch = 0; batch < kShortThreads / kBatch; ++batch) {
    std::vector<std::thread> ts;
    for (int i = 0; i < kBatch; ++i) {
      const uint32_t n = static_cast<uint32_t>(batch * kBatch + i);
      ts.emplace_back([&w, n] {
        Probe p = {};
        p.h.kind = static_cast<uint16_t>(format::EventKind::kData);
        p.h.conn = n + 1;
        p.thread = n;
        p.seq = 0;
        p.h.ts_ns = 0;
        EXPECT_TRUE(w.emit(&p, sizeof(p)));
      });
    }
    for (auto& t : ts) t.join();
  }
  // 20,000 threads of 64 bytes each (event + ThreadEvent) fit in ~20 segments; a segment per
  // thread would be 20,000. Concurrent batches may each open a few more.
  EXPECT_LE(w.header()->segments_claimed, 200u);
  EXPECT_EQ(w.dropped(), 0u);
  w.close();
  const auto runs = thread_runs(parse_trace(dir.file("t")));
  EXPECT_EQ(runs.size(), static_cast<size_t>(kShortThreads)) << "one chain per thread_uid";
  std::vector<int> seen(kShortThreads, 0);
  for (const auto& [uid, chain] : runs) {
    EXPECT_NE(uid, 0u);
    ASSERT_EQ(chain.size(), 1u);
    ASSERT_EQ(chain.begin()->second.size(), 1u);
    uint32_t t, q;
    ASSERT_TRUE(check_event(chain.begin()->second[0].data(), chain.begin()->second[0].size(), &t, &q));
    ASSERT_LT(t, static_cast<uint32_t>(kShortThreads));
    ++seen[t];
  }
  for (int i = 0; i < kShortThreads; ++i) ASSERT_EQ(seen[i], 1) << i;
}

}  // namespace
}  // namespace httptrace
