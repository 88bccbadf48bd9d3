// Trace reader: validation, damage handling, truncation, multi-thread merge order.
#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

#include "tests/unit/analyzer_read_util.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t kMs = 1'000'000;

TraceBuilder two_thread_trace() {
  TraceBuilder b(4242, 7);
  // Thread 11 and 12 interleave in time; each thread's own events are in order.
  for (int i = 0; i < 20; ++i) {
    b.socket(11, 2 * kMs + uint64_t(i) * 10 * kMs, uint32_t(2 * i + 1), 3);
    b.socket(12, 7 * kMs + uint64_t(i) * 10 * kMs, uint32_t(2 * i + 2), 4);
  }
  return b;
}

struct Opened {
  TempDir dir;
  TraceSet ts;
  std::string path;
  bool ok = false;
  OpenError err;
  explicit Opened(const std::string& bytes) {
    path = dir.file("x.trace");
    TraceBuilder::write_file(path, bytes);
    ok = ts.add(path, err);
    if (ok) ts.start();
  }
};

TEST(Reader, ReadsHeaderAndAllEventsInTimeOrder) {
  Opened o(two_thread_trace().bytes());
  ASSERT_TRUE(o.ok) << o.err.message;
  ASSERT_EQ(o.ts.files().size(), 1u);
  const TraceFile& f = o.ts.files()[0];
  EXPECT_EQ(f.pid, 4242);
  EXPECT_EQ(f.ppid, 7);
  EXPECT_EQ(f.exe, "/usr/bin/client");
  EXPECT_EQ(f.argv, (std::vector<std::string>{"client", "--flag"}));
  auto evs = read_all(o.ts);
  ASSERT_EQ(evs.size(), 40u);
  for (size_t i = 0; i < evs.size(); ++i) {
    EXPECT_EQ(evs[i].head.conn, i + 1) << i;
    EXPECT_EQ(evs[i].tid, i % 2 ? 12 : 11);
    EXPECT_EQ(evs[i].pid, 4242);
  }
  EXPECT_TRUE(o.ts.warnings().empty());
}

TEST(Reader, FollowsThreadSeqAcrossManySegmentsAndThreads) {
  // Enough events to fill several segments per thread; the builder interleaves the segments of
  // the threads in the file, so per-thread order must come from thread_seq.
  TraceBuilder b;
  const int per_thread = 3 * int(tf::kSegmentPayload / sizeof(tf::SocketEvent)) + 5;
  for (int i = 0; i < per_thread; ++i)
    for (int t = 0; t < 3; ++t) b.socket(100 + t, uint64_t(i) * 3 + uint64_t(t), uint32_t(i * 3 + t + 1), 3);
  Opened o(b.bytes());
  ASSERT_TRUE(o.ok);
  uint64_t last = 0, n = 0;
  bool ordered = true;
  Event ev;
  while (o.ts.next(ev)) {
    ordered &= ev.h->ts_ns >= last && ev.h->conn == n + 1;
    last = ev.h->ts_ns;
    ++n;
  }
  EXPECT_TRUE(ordered);
  EXPECT_EQ(n, uint64_t(per_thread) * 3);
}

TEST(Reader, MergesFilesOfAProcessTreeOnOneTimeline) {
  TraceBuilder parent(10), child(11, 10);
  parent.socket(1, 100, 1, 3);
  parent.socket(1, 300, 2, 4);
  child.socket(1, 200, 1, 3);
  child.socket(2, 400, 2, 5);
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&parent, &child}));
  std::vector<std::pair<int, uint64_t>> got;
  Event ev;
  while (ts.next(ev)) got.emplace_back(ev.pid, ev.h->ts_ns);
  EXPECT_EQ(got, (std::vector<std::pair<int, uint64_t>>{{10, 100}, {11, 200}, {10, 300}, {11, 400}}));
}

TEST(Reader, DirectoryArgumentFindsTraceFilesOnly) {
  TempDir dir;
  TraceBuilder a(1), b(2);
  a.socket(1, 5, 1, 3);
  b.socket(1, 6, 1, 3);
  TraceBuilder::write_file(dir.file("httptrace.1.trace"), a.bytes());
  TraceBuilder::write_file(dir.file("httptrace.2.trace"), b.bytes());
  TraceBuilder::write_file(dir.file("notes.trace.txt"), "just text, not a trace");
  TraceBuilder::write_file(dir.file("other.bin"), a.bytes());
  TraceSet ts;
  OpenError err;
  ASSERT_TRUE(ts.add(dir.path(), err)) << err.message;
  EXPECT_EQ(ts.files().size(), 2u);
}

TEST(Reader, EmptyAndForeignFilesAreBadMagic) {
  for (std::string bytes : {std::string(), std::string("GIF89a......"), std::string(5000, 'x')}) {
    Opened o(bytes);
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.err.message, o.path + ": not an httptrace trace (bad magic)");
  }
}

TEST(Reader, MissingFileNamesFileAndReason) {
  TraceSet ts;
  OpenError err;
  EXPECT_FALSE(ts.add("/nonexistent/x.trace", err));
  EXPECT_NE(err.message.find("/nonexistent/x.trace: No such file"), std::string::npos) << err.message;
}

TEST(Reader, RefusesNewerFormatWithAMessageSayingSo) {
  TraceBuilder b;
  b.header().version = 7;
  b.header().min_reader_version = 5;
  Opened o(b.bytes());
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.err.message.find("newer httptrace"), std::string::npos) << o.err.message;
  EXPECT_NE(o.err.message.find("version 5"), std::string::npos) << o.err.message;
}

TEST(Reader, NewerVersionStillReadableByUsIsAccepted) {
  TraceBuilder b;
  b.header().version = 3;  // newer writer, but says version-1 readers can read it
  b.socket(1, 1, 1, 3);
  Opened o(b.bytes());
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(read_all(o.ts).size(), 1u);
}

TEST(Reader, RefusesOtherByteOrderAndBadSizes) {
  {
    TraceBuilder b;
    b.header().byte_order = 0x04030201;
    Opened o(b.bytes());
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.err.message.find("byte order"), std::string::npos);
  }
  {
    TraceBuilder b;
    b.header().segment_size = 12;
    Opened o(b.bytes());
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.err.message.find("corrupt header"), std::string::npos);
  }
}

// Builds a trace whose thread 1 has 3 good events, then `bad`, then one more good event; thread 2
// has a good event after all of them (it must still be read).
std::string trace_with_bad_event(const std::string& bad) {
  TraceBuilder b;
  for (int i = 0; i < 3; ++i) b.socket(1, 10 + i, uint32_t(i + 1), 3);
  b.add_raw(1, bad);
  b.socket(1, 20, 9, 3);
  b.socket(2, 30, 10, 3);
  return b.bytes();
}

std::string raw_event(uint16_t kind, uint16_t size, size_t actual) {
  std::string s(actual, '\0');
  tf::EventHeader h{kind, size, 1, 15};
  std::memcpy(s.data(), &h, sizeof h);
  return s;
}

void expect_prefix_and_warning(const std::string& bytes, const std::string& why) {
  Opened o(bytes);
  ASSERT_TRUE(o.ok);
  auto evs = read_all(o.ts);
  std::vector<uint32_t> conns;
  for (auto& e : evs) conns.push_back(e.head.conn);
  EXPECT_EQ(conns, (std::vector<uint32_t>{1, 2, 3, 10}));
  ASSERT_EQ(o.ts.warnings().size(), 1u);
  const std::string& w = o.ts.warnings()[0];
  EXPECT_NE(w.find(o.path + ": offset " + std::to_string(tf::kHeaderSize + 64 + 3 * 32)), std::string::npos) << w;
  EXPECT_NE(w.find(why), std::string::npos) << w;
}

TEST(Reader, CorruptEventsEndTheirSegmentWithAWarning) {
  expect_prefix_and_warning(trace_with_bad_event(raw_event(2, 20, 24)), "multiple of 8");
  expect_prefix_and_warning(trace_with_bad_event(raw_event(3, 16, 16)), "smaller than its kind");
  expect_prefix_and_warning(trace_with_bad_event(raw_event(2, 0, 16)), "smaller than its kind");
  expect_prefix_and_warning(trace_with_bad_event(raw_event(2, 65528, 32)), "past the committed");
}

TEST(Reader, StringLengthsPastTheEventAreCorrupt) {
  tf::DnsEvent d{};
  d.h = {uint16_t(tf::EventKind::kDns), uint16_t(sizeof d + 8), 0, 15};
  d.host_len = 200;  // the event only has 8 tail bytes
  std::string bytes(sizeof d + 8, 'h');
  std::memcpy(bytes.data(), &d, sizeof d);
  expect_prefix_and_warning(trace_with_bad_event(bytes), "runs past the event");

  tf::DataEvent e{};
  e.h = {uint16_t(tf::EventKind::kData), uint16_t(sizeof e), 1, 15};
  e.cap_len = 1;
  bytes.assign(sizeof e, '\0');
  std::memcpy(bytes.data(), &e, sizeof e);
  expect_prefix_and_warning(trace_with_bad_event(bytes), "runs past the event");
}

TEST(Reader, CommittedPastTheSegmentIsClampedWithAWarning) {
  TraceBuilder b;
  b.socket(1, 10, 1, 3);
  std::string bytes = b.bytes();
  uint64_t huge = 1u << 30;
  std::memcpy(bytes.data() + tf::kHeaderSize + offsetof(tf::SegmentHeader, committed), &huge, 8);
  Opened o(bytes);
  ASSERT_TRUE(o.ok);
  auto evs = read_all(o.ts);
  EXPECT_EQ(evs.size(), 1u);  // the zeros after the event are not events
  ASSERT_GE(o.ts.warnings().size(), 1u);
  EXPECT_NE(o.ts.warnings()[0].find("exceeds the segment size"), std::string::npos);
}

TEST(Reader, UnstartedSegmentsAreSkippedSilently) {
  TraceBuilder b;
  b.socket(1, 10, 1, 3);
  b.add_unstarted_segment();
  Opened o(b.bytes());
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(read_all(o.ts).size(), 1u);
  EXPECT_TRUE(o.ts.warnings().empty());
}

TEST(Reader, TruncatedAtAnyByteNeverCrashesAndYieldsAPrefix) {
  TraceBuilder b;
  for (int i = 0; i < 40; ++i) {
    b.socket(1, uint64_t(i) * 2, uint32_t(i + 1), 3);
    b.dns(2, uint64_t(i) * 2 + 1, "example.com", 5, {ipv4("10.0.0.1")});
  }
  const std::string full = b.compact_bytes();
  Opened whole(full);
  ASSERT_TRUE(whole.ok);
  std::vector<uint64_t> all;
  for (auto& e : read_all(whole.ts)) all.push_back(e.head.ts_ns);
  ASSERT_EQ(all.size(), 80u);

  TempDir dir;
  const std::string path = dir.file("cut.trace");
  size_t cuts = 0;
  // Every 7th byte where events are (both segments' headers and committed bytes), coarser steps
  // through the header and the zero padding between them.
  auto in_events = [&](size_t len) {
    return (len >= tf::kHeaderSize && len < tf::kHeaderSize + 64 + 40 * sizeof(tf::SocketEvent) + 8) ||
           len >= tf::kHeaderSize + tf::kSegmentSize;
  };
  for (size_t len = 0; len <= full.size(); len += in_events(len) ? 7 : 509) {
    TraceBuilder::write_file(path, full.substr(0, len));
    TraceSet ts;
    OpenError err;
    if (!ts.add(path, err)) {
      EXPECT_LT(len, sizeof(tf::FileHeader));  // only a cut inside the header refuses the file
      continue;
    }
    ts.start();
    std::vector<uint64_t> got;
    Event ev;
    while (ts.next(ev)) got.push_back(ev.h->ts_ns);
    // Whatever was read is a subset of the full trace in the same order; whole events only.
    EXPECT_TRUE(std::includes(all.begin(), all.end(), got.begin(), got.end())) << len;
    if (len < full.size()) {
      EXPECT_FALSE(ts.warnings().empty()) << len;
    }
    ++cuts;
  }
  EXPECT_GT(cuts, 100u);
}

TEST(Reader, GarbageInsideSegmentsNeverCrashes) {
  // Flip bytes all over a valid trace: the reader may warn, but must stay in bounds (run under
  // ASan/valgrind for full effect).
  TraceBuilder b;
  for (int i = 0; i < 10; ++i) {
    b.dns(1, uint64_t(i) * 10, "host.example", 5, {ipv4("10.0.0.1")});
    b.data(1, uint64_t(i) * 10 + 1, 1, 3, tf::Direction::kSend, 10, 1, tf::CaptureKind::kHttpReq, "GET / HTTP/1.1");
  }
  const std::string full = b.compact_bytes();
  uint32_t seed = 12345;
  for (int round = 0; round < 300; ++round) {
    std::string bytes = full;
    for (int k = 0; k < 8; ++k) {
      seed = seed * 1103515245 + 12345;
      size_t pos = tf::kHeaderSize + (seed >> 8) % (bytes.size() - tf::kHeaderSize);
      bytes[pos] = char(seed >> 24);
    }
    Opened o(bytes);
    if (!o.ok) continue;
    Collected sink;
    Model m(o.ts, sink);
    Event ev;
    size_t n = 0;
    while (o.ts.next(ev) && n < 100000) {
      m.on_event(ev);
      ++n;
    }
    m.finish();
    EXPECT_LT(n, 100000u);
  }
}

}  // namespace
}  // namespace httptrace::testing
