// Trace reader, format version 2 and evolution: feature mask, unknown kinds, drop causes,
// LostEvent, thread_uid, ThreadEvent hand-offs; and the order of events (when they happened).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "analyzer/read/read_ahead.h"
#include "tests/unit/analyzer_read_util.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

struct Read {
  TempDir dir;
  TraceSet ts;
  bool ok = false;
  OpenError err;
  std::vector<Copied> evs;
  explicit Read(const TraceBuilder& b) : Read(b.bytes()) {}
  explicit Read(const std::string& bytes) {
    const std::string path = dir.file("x.trace");
    TraceBuilder::write_file(path, bytes);
    ok = ts.add(path, err);
    if (!ok) return;
    ts.start();
    evs = read_all(ts);
  }
  std::vector<uint32_t> conns() const {
    std::vector<uint32_t> out;
    for (const auto& e : evs) out.push_back(e.head.conn);
    return out;
  }
};

TEST(ReaderV2, ReadsTheVersion1GoldenTrace) {
  TraceSet ts;
  OpenError err;
  ASSERT_TRUE(ts.add("tests/golden/session.trace", err)) << err.message;
  EXPECT_EQ(ts.files()[0].version, 1u);
  ts.start();
  auto evs = read_all(ts);
  EXPECT_GT(evs.size(), 10u);
  EXPECT_TRUE(ts.warnings().empty());
  for (const auto& e : evs) EXPECT_EQ(e.thread_uid, uint64_t(uint32_t(e.tid)));  // v1: the tid
}

TEST(ReaderV2, RefusesUnknownFeatureBitsSayingWhy) {
  TraceBuilder b;
  b.header().features = 1u << 5;
  b.socket(1, 1, 1, 3);
  Read r(b);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.err.message.find("features 0x20"), std::string::npos) << r.err.message;
  EXPECT_NE(r.err.message.find("newer httptrace"), std::string::npos) << r.err.message;
}

TEST(ReaderV2, Version1FilesIgnoreTheReservedFeatureWord) {
  TraceBuilder b;
  b.header().version = 1;
  b.header().min_reader_version = 1;
  b.header().features = 0xffff;  // was reserved0: never interpreted in v1
  b.socket(1, 1, 1, 3);
  Read r(b);
  ASSERT_TRUE(r.ok) << r.err.message;
  EXPECT_EQ(r.evs.size(), 1u);
}

std::string unknown(uint16_t kind, uint16_t size, uint32_t conn) {
  std::string s(size, '\0');
  tf::EventHeader h{kind, size, conn, 15};
  std::memcpy(s.data(), &h, sizeof h);
  return s;
}

TEST(ReaderV2, UnknownKindsAreSkippedWithOneWarningPerKind) {
  TraceBuilder b;
  b.socket(1, 10, 1, 3);
  b.add_raw(1, unknown(99, 32, 100));
  b.socket(1, 11, 2, 3);
  b.add_raw(1, unknown(99, 48, 101));
  b.add_raw(1, unknown(200, 16, 102));
  b.socket(1, 12, 3, 3);
  Read r(b);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.conns(), (std::vector<uint32_t>{1, 2, 3}));
  ASSERT_EQ(r.ts.warnings().size(), 2u);
  EXPECT_NE(r.ts.warnings()[0].find("event kind 99 is unknown"), std::string::npos) << r.ts.warnings()[0];
  EXPECT_NE(r.ts.warnings()[1].find("event kind 200 is unknown"), std::string::npos) << r.ts.warnings()[1];
}

TEST(ReaderV2, DropCausesAndLostEventsReachTheReader) {
  TraceBuilder b;
  b.header().dropped_events = 7;
  b.header().dropped_by_cause[uint8_t(tf::DropCause::kDiskFull)] = 5;
  b.header().dropped_by_cause[uint8_t(tf::DropCause::kNested)] = 2;
  b.socket(1, 10, 1, 3);
  b.lost(1, 20, 5, tf::DropCause::kDiskFull);
  b.socket(1, 30, 2, 3);
  Read r(b);
  ASSERT_TRUE(r.ok);
  const TraceFile& f = r.ts.files()[0];
  EXPECT_EQ(f.version, 2u);
  EXPECT_EQ(f.dropped_by_cause[1], 5u);
  EXPECT_EQ(f.dropped_by_cause[4], 2u);
  ASSERT_EQ(r.evs.size(), 3u);
  ASSERT_EQ(r.evs[1].kind(), tf::EventKind::kLost);
  EXPECT_EQ(r.evs[1].as<tf::LostEvent>().count, 5u);
  EXPECT_EQ(r.evs[1].as<tf::LostEvent>().cause, uint8_t(tf::DropCause::kDiskFull));
}

TEST(ReaderV2, AReusedTidDoesNotMergeTwoThreadsChains) {
  // Two threads with tid 7, one after the other, each over two segments (thread_seq 0, 1). Sorted
  // by (tid, seq) alone their segments would interleave: 0, 0, 1, 1.
  TraceBuilder b;
  b.set_thread(1, 7, 1);
  b.set_thread(2, 7, 2);
  const int per_seg = int(b.payload() / sizeof(tf::SocketEvent));
  uint32_t conn = 0;
  for (int i = 0; i < 2 * per_seg; ++i) b.socket(1, 1000 + uint64_t(i), ++conn, 3);
  for (int i = 0; i < 2 * per_seg; ++i) b.socket(2, 100000 + uint64_t(i), ++conn, 3);
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), size_t(4 * per_seg));
  for (size_t i = 0; i < r.evs.size(); ++i) {
    ASSERT_EQ(r.evs[i].head.conn, i + 1) << i;
    EXPECT_EQ(r.evs[i].tid, 7);
    EXPECT_EQ(r.evs[i].thread_uid, i < size_t(2 * per_seg) ? 1u : 2u);
  }
}

TEST(ReaderV2, AHandedOnSegmentsRestBelongsToTheNewThread) {
  // Thread 5 (uid 1) exits; thread 9 (uid 2) starts in the rest of 5's segment, then fills its
  // own segments (thread_seq 1, 2 ...).
  TraceBuilder b;
  b.set_thread(1, 5, 1);
  b.socket(1, 10, 1, 3);
  b.socket(1, 20, 2, 3);
  b.handoff(1, 30, 9, 2, 0);
  b.socket(1, 40, 3, 4);
  b.set_thread(2, 9, 2, 1);
  b.socket(2, 50, 4, 4);
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), 5u);
  EXPECT_EQ(r.evs[0].tid, 5);
  EXPECT_EQ(r.evs[1].tid, 5);
  EXPECT_EQ(r.evs[2].kind(), tf::EventKind::kThread);
  for (int i = 2; i < 5; ++i) {
    EXPECT_EQ(r.evs[i].tid, 9) << i;
    EXPECT_EQ(r.evs[i].thread_uid, 2u) << i;
  }
  EXPECT_EQ(r.conns(), (std::vector<uint32_t>{1, 2, 0, 3, 4}));
  EXPECT_TRUE(r.ts.warnings().empty());
}

TEST(ReaderV2, NewRecordsAreValidatedByTheirSize) {
  TraceBuilder b;
  b.accept(1, 10, 1, 5, 4, ipv4("127.0.0.1", 5555), 3);
  b.addr_path(1, 11, 1, 5, 0, std::string("\0abstract", 9));
  tf::AddrPathEvent bad{};
  bad.h = {uint16_t(tf::EventKind::kAddrPath), uint16_t(sizeof bad), 1, 12};
  bad.path_len = 100;  // past the event
  std::string bytes(sizeof bad, '\0');
  std::memcpy(bytes.data(), &bad, sizeof bad);
  b.add_raw(1, bytes);
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), 2u);
  EXPECT_EQ(r.evs[0].kind(), tf::EventKind::kAccept);
  EXPECT_EQ(r.evs[1].kind(), tf::EventKind::kAddrPath);
  ASSERT_EQ(r.ts.warnings().size(), 1u);
  EXPECT_NE(r.ts.warnings()[0].find("runs past the event"), std::string::npos);
}

// --- order ---------------------------------------------------------------------------------------

TEST(ReaderOrder, AReadBlockedBeforeAnotherThreadsWriteComesAfterIt) {
  // Pipelining: thread 2 sits in recv() from t=100; thread 1 sends the request at t=500; the
  // response arrives at t=1100. By start times the read would come first.
  TraceBuilder b;
  b.send(1, 500, 1, 20, 10, "GET / HTTP/1.1");
  b.recv(2, 100, 1, 40, 1000, "HTTP/1.1 200 OK");
  b.send(1, 1200, 1, 20, 10, "GET /2 HTTP/1.1");
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), 3u);
  EXPECT_EQ(r.evs[0].tid, 1);
  EXPECT_EQ(r.evs[0].order_ns, 500u);
  EXPECT_EQ(r.evs[1].tid, 2);
  EXPECT_EQ(r.evs[1].order_ns, 1100u);
  EXPECT_EQ(r.evs[1].head.ts_ns, 100u);  // ts_ns keeps its meaning: the call's start
  EXPECT_EQ(r.evs[2].order_ns, 1200u);
}

TEST(ReaderOrder, DurationsPlaceLookupsConnectsAndHandshakesAtCompletion) {
  TraceBuilder b;
  b.dns(1, 100, "a.example", 900, {ipv4("10.0.0.1")});  // done at 1000
  b.socket(2, 500, 1, 3);
  b.connect(3, 200, 2, 3, ipv4("10.0.0.1", 80), 600);  // done at 800
  b.tls_handshake(4, 300, 3, 4, 1000);                  // done at 1300
  b.socket(2, 1200, 4, 5);
  Read r(b);
  ASSERT_TRUE(r.ok);
  std::vector<uint64_t> order;
  for (const auto& e : r.evs) order.push_back(e.order_ns);
  EXPECT_EQ(order, (std::vector<uint64_t>{500, 800, 1000, 1200, 1300}));
}

TEST(ReaderOrder, NestedCallsWrittenAfterTheirInnerCallsAreRepaired) {
  // SSL_write (start 100) contains the socket write (start 150); the socket write is written
  // first. The stack that follows SSL_write stays with it.
  TraceBuilder b;
  b.data(1, 150, 1, 3, tf::Direction::kSend, 60, 5);                                      // wire
  b.data(1, 100, 1, 3, tf::Direction::kSend, 30, 80, tf::CaptureKind::kNone, {}, tf::kDataTlsPlaintext);
  b.stack(1, 100, {0x1234, 0x5678});
  b.data(1, 300, 1, 3, tf::Direction::kRecv, 60, 50);
  b.socket(2, 120, 2, 4);
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), 5u);
  EXPECT_EQ(r.evs[0].head.ts_ns, 100u);
  EXPECT_EQ(r.evs[1].kind(), tf::EventKind::kStack);
  EXPECT_EQ(r.evs[1].order_ns, 100u);
  EXPECT_EQ(r.evs[2].head.conn, 2u);  // the other thread's socket at 120
  EXPECT_EQ(r.evs[3].head.ts_ns, 150u);
  EXPECT_EQ(r.evs[4].order_ns, 350u);
}

TEST(ReaderOrder, StreamIsSortedAcrossManyThreadsAndSegments) {
  TraceBuilder b;
  uint64_t t = 0;
  for (int i = 0; i < 20000; ++i) {
    const int tid = 1 + i % 7;
    t += 13;
    if (i % 3 == 0) b.recv(tid, t, 1, 10, 40 + i % 50);
    else b.send(tid, t + 60, 1, 10, 5);
  }
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), 20000u);
  for (size_t i = 1; i < r.evs.size(); ++i) ASSERT_LE(r.evs[i - 1].order_ns, r.evs[i].order_ns) << i;
}

TEST(ReaderOrder, AWildDurationDoesNotHoldTheRestOfItsThreadInMemory) {
  // A read "completing" 2^60 ns later would wait in the window for the whole thread, pinning every
  // byte read after it; past a bound it is let go (out of order: the trace is wrong anyway).
  TraceBuilder b;
  b.recv(1, 100, 1, 10, uint64_t(1) << 60);
  for (int i = 0; i < 20000; ++i) b.send(1, 200 + uint64_t(i), 1, 10, 1);
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), 20001u);
  size_t at = 0;
  for (size_t i = 0; i < r.evs.size(); ++i)
    if (r.evs[i].head.ts_ns == 100) at = i;
  EXPECT_GT(at, 1000u);
  EXPECT_LT(at, 10000u);
  for (size_t i = 1; i < r.evs.size(); ++i)
    if (i != at && i != at + 1) {
      ASSERT_LE(r.evs[i - 1].order_ns, r.evs[i].order_ns) << i;
    }
}

TEST(ReaderOrder, EarliestIsTheFirstStartNotTheFirstCompletion) {
  TraceBuilder b;
  b.recv(1, 100, 1, 10, 1000);
  b.socket(2, 500, 2, 3);
  Read r(b);
  ASSERT_TRUE(r.ok);
  uint64_t t0 = 0;
  uint32_t file = 0;
  r.ts.start();
  ASSERT_TRUE(r.ts.earliest(t0, file));
  EXPECT_EQ(t0, 100u);
}

// --- damage (8.8) ---------------------------------------------------------------------------------

TEST(ReaderDamage, SkippingADamagedSegmentNeverOverwritesTheEventHandedOut) {
  // Thread 1: a full segment, a segment that is damaged from its first event, another full one.
  // The last event of the first segment must still be intact when the reader had to skip ahead.
  TraceBuilder b;
  const int per_seg = int(b.payload() / sizeof(tf::SocketEvent));
  for (int i = 0; i < per_seg; ++i) b.socket(1, 10 + uint64_t(i), uint32_t(i + 1), 3);
  b.new_segment(1);
  b.add_raw(1, std::string(64, '\x7f'));
  b.new_segment(1);
  for (int i = 0; i < per_seg; ++i) b.socket(1, 100000 + uint64_t(i), uint32_t(50000 + i), 3);
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  Event ev;
  std::vector<uint32_t> got;
  while (ts.next(ev)) {
    ASSERT_EQ(ev.kind(), tf::EventKind::kSocket);
    got.push_back(ev.h->conn);
  }
  ASSERT_EQ(got.size(), size_t(2 * per_seg));
  for (int i = 0; i < per_seg; ++i) {
    ASSERT_EQ(got[size_t(i)], uint32_t(i + 1)) << i;
    ASSERT_EQ(got[size_t(per_seg + i)], uint32_t(50000 + i)) << i;
  }
  EXPECT_EQ(ts.warnings().size(), 1u);
}

}  // namespace
}  // namespace httptrace::testing

namespace httptrace::testing {
namespace {

TEST(ReaderOrder, PipelinedClientGetsOneExchangePerRoundTrip) {
  // A driver whose reader thread (2) waits in recv() before the writer thread (1) sends: two
  // round trips. Merged by start time each response would precede its request.
  TraceBuilder b;
  b.socket(1, 100, 1, 3);
  b.connect(1, 110, 1, 3, ipv4("127.0.0.1", 6379), 10);
  b.recv(2, 130, 1, 10, 270);  // arrives at 400
  b.send(1, 300, 1, 20, 5);
  b.recv(2, 410, 1, 10, 190);  // arrives at 600
  b.send(1, 500, 1, 20, 5);
  b.close(1, 700, 1, 3);
  Collected got = model_of({&b});
  ASSERT_EQ(got.conns.size(), 1u);
  const Connection& c = got.conns[0];
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].start_ns, 300u);
  EXPECT_EQ(c.requests[1].start_ns, 500u);
}

}  // namespace
}  // namespace httptrace::testing

namespace httptrace::testing {
namespace {

TEST(ReaderV2, AReusedTidInAVersion1FileIsSplitByTime) {
  // v1 has no thread_uid: two threads with tid 7, one after the other, over two segments each.
  TraceBuilder b;
  b.header().version = 1;
  b.header().min_reader_version = 1;
  b.set_thread(1, 7, 0);
  b.set_thread(2, 7, 0);
  const int per_seg = int(b.payload() / sizeof(tf::SocketEvent));
  uint32_t conn = 0;
  for (int i = 0; i < 2 * per_seg; ++i) b.socket(1, 1000 + uint64_t(i), ++conn, 3);
  for (int i = 0; i < 2 * per_seg; ++i) b.socket(2, 100000 + uint64_t(i), ++conn, 3);
  Read r(b);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.evs.size(), size_t(4 * per_seg));
  for (size_t i = 0; i < r.evs.size(); ++i) ASSERT_EQ(r.evs[i].head.conn, i + 1) << i;
  EXPECT_NE(r.evs.front().thread_uid, r.evs.back().thread_uid);
  EXPECT_EQ(r.evs.front().thread_uid, 7u);
}

TEST(ReaderScan, VisitsEveryEventTheMergeHandsOutAndNoOther) {
  // Four threads interleaved in time over several segments, one segment damaged: the scan (no
  // merge, for passes that need no order) must see exactly the events next() gives, each once.
  TraceBuilder b;
  for (int i = 0; i < 6000; ++i) b.socket(1 + i % 4, 10 + uint64_t(i), uint32_t(i + 1), 3);
  b.new_segment(2);
  b.add_raw(2, std::string(64, '\x7f'));
  b.new_segment(2);
  for (int i = 0; i < 500; ++i) b.send(2, 100000 + uint64_t(i), 1, 10, 1);
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  Event ev;
  std::vector<std::pair<uint64_t, uint64_t>> merged, scanned;  // (offset, thread)
  while (ts.next(ev)) merged.emplace_back(ev.offset, ev.thread_uid);
  ts.scan([&](const Event& e) { scanned.emplace_back(e.offset, e.thread_uid); });
  EXPECT_EQ(merged.size(), 6500u);
  std::sort(merged.begin(), merged.end());
  std::sort(scanned.begin(), scanned.end());
  EXPECT_EQ(merged, scanned);
  // And the stream can be started again after it.
  ts.start();
  size_t again = 0;
  while (ts.next(ev)) ++again;
  EXPECT_EQ(again, 6500u);
}

// The read-ahead thread copies each event out of the reader's buffers into batches: the caller
// must get exactly what next() gives, byte for byte and in the same order, across batches cut
// by count (4,096 events) and by size (1 MiB; 16 KiB stacks), from several files and threads.
TEST(ReadAhead, HandsOutExactlyWhatNextDoesInOrder) {
  TraceBuilder a, b;
  const std::vector<uint64_t> frames(2000, 0x401000);
  for (int i = 0; i < 9000; ++i) {
    a.send(1 + i % 3, 10 + 2 * uint64_t(i), uint32_t(1 + i % 5), 100, 1, i % 7 ? "" : "GET / HTTP/1.1\r\n");
    if (i % 50 == 0) b.stack(4, 11 + 2 * uint64_t(i), frames);
    else b.socket(4, 11 + 2 * uint64_t(i), uint32_t(i + 1), 3);
  }
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&a, &b}));
  auto bytes = [](const Event& e) { return std::string(reinterpret_cast<const char*>(e.h), e.h->size); };
  struct Seen {
    uint32_t file;
    uint64_t offset, thread, order;
    std::string bytes;
    bool operator==(const Seen&) const = default;
  };
  std::vector<Seen> direct, ahead;
  Event ev;
  while (ts.next(ev)) direct.push_back({ev.file, ev.offset, ev.thread_uid, ev.order_ns, bytes(ev)});
  ts.start();
  size_t batches = 0;
  {
    ReadAhead r(ts);
    for (auto batch = r.next_batch(); !batch.empty(); batch = r.next_batch(), ++batches) {
      for (const Event& e : batch) {
        ASSERT_EQ(reinterpret_cast<uintptr_t>(e.h) % 8, 0u);
        ahead.push_back({e.file, e.offset, e.thread_uid, e.order_ns, bytes(e)});
      }
    }
    EXPECT_TRUE(r.next_batch().empty());  // the end stays the end
    EXPECT_EQ(r.consumed_bytes(), ts.consumed_bytes());
  }
  ASSERT_EQ(direct.size(), 18000u);
  EXPECT_GT(batches, 18000 / ReadAhead::kBatchEvents);  // some were cut by size
  EXPECT_TRUE(direct == ahead);
}

TEST(ReadAhead, LetsItsCallerStopMidStreamAndEndsAtOnceOnNothing) {
  TraceBuilder a;
  for (int i = 0; i < 50000; ++i) a.socket(1, 10 + uint64_t(i), uint32_t(i + 1), 3);
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&a}));
  {
    ReadAhead r(ts);  // the reader is ahead by a few batches, then waits: must stop when told
    ASSERT_EQ(r.next_batch().size(), ReadAhead::kBatchEvents);
  }
  TraceSet none;
  none.start();
  ReadAhead r(none);
  EXPECT_TRUE(r.next_batch().empty());
}

}  // namespace
}  // namespace httptrace::testing
