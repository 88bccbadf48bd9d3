// The trace writer, byte for byte: header, event layout and padding, commit counts, segment
// hand-off, the size cap, file growth, exclusive creation, and losing our descriptor.
#include "interpose/record/trace_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "interpose_test_trace.h"

namespace httptrace {
namespace {

using testing::as;
using testing::parse_trace;
using testing::read_all;
using testing::TempDir;

constexpr uint64_t kMiB = 1ull << 20;

WriterOptions options(uint64_t max_bytes = 64 * kMiB) {
  WriterOptions o;
  o.max_bytes = max_bytes;
  o.pid = getpid();
  o.ppid = 4242;
  o.exe = "/usr/bin/prog";
  o.exe_len = strlen(o.exe);
  static const char kArgv[] = "prog\0-v\0http://x/";
  o.argv = kArgv;
  o.argv_len = sizeof(kArgv);
  o.argc = 3;
  return o;
}

// An event of exactly `size` bytes (a multiple of 8): an EventHeader plus a patterned tail.
bool emit_sized(TraceWriter& w, size_t size, uint32_t conn = 1) {
  format::EventHeader h = {};
  h.kind = static_cast<uint16_t>(format::EventKind::kSocket);
  h.conn = conn;
  h.ts_ns = 99;
  uint8_t tail[4096];
  memset(tail, 0xab, sizeof(tail));
  return w.emit(&h, sizeof(h), tail, size - sizeof(h));
}

const format::SegmentHeader& segment(const TraceWriter& w, uint64_t index) {
  const auto* base = reinterpret_cast<const uint8_t*>(w.header());
  return *reinterpret_cast<const format::SegmentHeader*>(base + format::kHeaderSize +
                                                         index * format::kSegmentSize);
}

off_t file_size(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

TEST(TraceWriter, HeaderDescribesTheProcess) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options())) << strerror(errno);
  w.close();

  struct stat st;
  ASSERT_EQ(lstat(dir.file("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto v = parse_trace(dir.file("t"));
  const format::FileHeader& h = v.header;
  EXPECT_EQ(memcmp(h.magic, format::kMagic, 8), 0);
  EXPECT_EQ(h.version, format::kVersion);
  EXPECT_EQ(h.min_reader_version, format::kMinReaderVersion);
  EXPECT_EQ(h.byte_order, format::kByteOrderMark);
  EXPECT_EQ(h.header_size, format::kHeaderSize);
  EXPECT_EQ(h.segment_size, format::kSegmentSize);
  EXPECT_EQ(h.pid, getpid());
  EXPECT_EQ(h.ppid, 4242);
  EXPECT_EQ(h.max_segments, (64 * kMiB - format::kHeaderSize) / format::kSegmentSize);
  EXPECT_EQ(h.segments_claimed, 0u);
  EXPECT_EQ(h.dropped_events, 0u);
  EXPECT_EQ(std::string(h.exe, h.exe_len), "/usr/bin/prog");
  EXPECT_EQ(std::string(h.argv, h.argv_len), std::string("prog\0-v\0http://x/\0", 18));
  EXPECT_EQ(h.argc, 3u);
  EXPECT_GT(h.mono_anchor_ns, 0u);
  EXPECT_GT(h.real_anchor_ns, 1600000000ull * 1000000000ull);  // after 2020
  // The first segment is allocated with the header: one fallocate for a process's first event.
  EXPECT_EQ(v.file_size, format::kHeaderSize + format::kSegmentSize);
}

TEST(TraceWriter, EventsAreLaidOutByteForByte) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));

  format::SocketEvent s = {};
  s.h.kind = static_cast<uint16_t>(format::EventKind::kSocket);
  s.h.conn = 7;
  s.h.ts_ns = 0x1122334455667788ull;
  s.fd = 5;
  s.domain = 2;
  s.type = 1;
  s.protocol = 6;
  ASSERT_TRUE(w.emit(&s, sizeof(s)));

  format::DataEvent d = {};
  d.h.kind = static_cast<uint16_t>(format::EventKind::kData);
  d.h.conn = 7;
  d.h.ts_ns = 10;
  d.result = 5;
  d.fd = 5;
  d.cap_len = 5;
  ASSERT_TRUE(w.emit(&d, sizeof(d), "HELLO", 5));
  w.close();

  const std::vector<uint8_t> file = read_all(dir.file("t"));
  ASSERT_GE(file.size(), format::kHeaderSize + format::kSegmentSize);
  const uint8_t* seg = file.data() + format::kHeaderSize;

  format::SegmentHeader sh;
  memcpy(&sh, seg, sizeof(sh));
  EXPECT_EQ(sh.magic, format::kSegmentMagic);
  EXPECT_EQ(sh.tid, gettid());
  EXPECT_EQ(sh.thread_seq, 0u);
  EXPECT_EQ(sh.committed, 32u + 56u);

  std::vector<uint8_t> want(32 + 56, 0);
  s.h.size = 32;
  memcpy(want.data(), &s, 32);
  d.h.size = 56;  // 48 + 5 bytes of capture, padded to 8
  memcpy(want.data() + 32, &d, 48);
  memcpy(want.data() + 80, "HELLO", 5);
  EXPECT_EQ(std::vector<uint8_t>(seg + 64, seg + 64 + want.size()), want);
  // Nothing beyond the committed bytes was touched.
  for (size_t i = 64 + want.size(); i < format::kSegmentSize; ++i) ASSERT_EQ(seg[i], 0) << i;
}

TEST(TraceWriter, CommittedAdvancesByEachWholeEvent) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));
  uint64_t expect = 0;
  for (size_t size : {16, 24, 200, 1024, 8}) {
    if (size < sizeof(format::EventHeader)) continue;
    ASSERT_TRUE(emit_sized(w, size));
    expect += size;
    EXPECT_EQ(std::atomic_ref<const uint64_t>(segment(w, 0).committed).load(), expect);
  }
  w.close();
}

TEST(TraceWriter, FullSegmentIsHandedOnToTheNext) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));
  // 62 events of 1 KiB fit in a segment (the last 1 KiB of its 65472 bytes is kept for events
  // nested in an emit); the 63rd starts segment 1.
  for (int i = 0; i < 63; ++i) ASSERT_TRUE(emit_sized(w, 1024));
  EXPECT_EQ(w.header()->segments_claimed, 2u);
  EXPECT_EQ(segment(w, 0).committed, 62u * 1024);
  EXPECT_EQ(segment(w, 1).committed, 1024u);
  EXPECT_EQ(segment(w, 1).thread_seq, 1u);
  EXPECT_EQ(segment(w, 1).tid, gettid());
  w.close();

  const auto v = parse_trace(dir.file("t"));
  ASSERT_EQ(v.segments.size(), 2u);
  EXPECT_EQ(v.segments[0].events.size(), 62u);
  EXPECT_EQ(v.segments[1].events.size(), 1u);
}

TEST(TraceWriter, SizeCapDropsAndCounts) {
  TempDir dir;
  TraceWriter w;
  const uint64_t cap = format::kHeaderSize + 2 * format::kSegmentSize;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options(cap)));
  int recorded = 0;
  for (int i = 0; i < 200; ++i) recorded += emit_sized(w, 1024) ? 1 : 0;
  EXPECT_EQ(recorded, 124);
  EXPECT_EQ(w.dropped(), 76u);
  EXPECT_EQ(w.header()->segments_claimed, 2u);
  w.close();
  EXPECT_LE(file_size(dir.file("t")), static_cast<off_t>(cap));
  EXPECT_EQ(parse_trace(dir.file("t")).header.dropped_events, 76u);
}

TEST(TraceWriter, TooLargeAnEventIsDropped) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));
  format::EventHeader h = {};
  static uint8_t big[format::kSegmentPayload];
  EXPECT_FALSE(w.emit(&h, sizeof(h), big, sizeof(big)));
  EXPECT_FALSE(w.emit(&h, 8));  // shorter than an EventHeader
  EXPECT_EQ(w.dropped(), 2u);
  EXPECT_TRUE(emit_sized(w, 64));
  w.close();
}

TEST(TraceWriter, FileGrowsInMebibyteSteps) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));
  const off_t first = format::kHeaderSize + format::kSegmentSize;  // allocated with the header
  EXPECT_EQ(file_size(dir.file("t")), first);
  ASSERT_TRUE(emit_sized(w, 64));
  EXPECT_EQ(file_size(dir.file("t")), first);
  // Segment 1 takes the first step (1 MiB: segments 0..14); segment 15 needs the second.
  for (int i = 0; i < 10000 && w.header()->segments_claimed < 2; ++i) emit_sized(w, 1024);
  EXPECT_EQ(file_size(dir.file("t")), static_cast<off_t>(kMiB));
  for (int i = 0; i < 10000 && w.header()->segments_claimed < 15; ++i) emit_sized(w, 1024);
  EXPECT_EQ(w.header()->segments_claimed, 15u);
  EXPECT_EQ(file_size(dir.file("t")), static_cast<off_t>(kMiB));
  for (int i = 0; i < 10000 && w.header()->segments_claimed < 16; ++i) emit_sized(w, 1024);
  EXPECT_EQ(w.header()->segments_claimed, 16u);
  EXPECT_EQ(file_size(dir.file("t")), static_cast<off_t>(2 * kMiB));
  w.close();
}

// Each growth step is the file's size so far, between grow_min and grow_max: 1, 2, 4 MiB, then
// +4 MiB (the cap here) at a time, so a long trace costs few fallocate calls.
TEST(TraceWriter, FileGrowsGeometricallyUpToTheCap) {
  TempDir dir;
  TraceWriter w;
  WriterOptions o = options();
  o.grow_max = 4 * kMiB;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), o));
  static uint8_t fill[format::kSegmentPayload - sizeof(format::EventHeader)];
  format::EventHeader h = {};
  h.kind = static_cast<uint16_t>(format::EventKind::kSocket);
  std::vector<off_t> sizes;
  for (int s = 0; s < 200; ++s) {  // one whole-segment event per segment: 12.5 MiB in all
    ASSERT_TRUE(w.emit(&h, sizeof(h), fill, sizeof(fill)));
    const off_t now = file_size(dir.file("t"));
    if (sizes.empty() || sizes.back() != now) sizes.push_back(now);
  }
  const std::vector<off_t> want = {off_t(format::kHeaderSize + format::kSegmentSize),
                                   off_t(kMiB), off_t(2 * kMiB), off_t(4 * kMiB),
                                   off_t(8 * kMiB), off_t(12 * kMiB), off_t(16 * kMiB)};
  EXPECT_EQ(sizes, want);
  w.close();
}

TEST(TraceWriter, ExistingNameOrSymlinkIsNeverWrittenThrough) {
  TempDir dir;
  const std::string path = dir.file("t");
  { std::ofstream(path) << "precious"; }
  const std::string target = dir.file("target");
  ASSERT_EQ(symlink(target.c_str(), (path + ".1").c_str()), 0);

  TraceWriter w;
  ASSERT_TRUE(w.open(path.c_str(), options()));
  EXPECT_EQ(std::string(w.path()), path + ".2");
  w.close();
  const auto kept = read_all(path);
  EXPECT_EQ(std::string(kept.begin(), kept.end()), "precious");
  EXPECT_EQ(access(target.c_str(), F_OK), -1);  // the symlink was not followed
  EXPECT_EQ(parse_trace(path + ".2").header.pid, getpid());
}

TEST(TraceWriter, DescriptorMovesAboveTheFloor) {
  TempDir dir;
  TraceWriter w;
  WriterOptions o = options();
  o.fd_floor = 700;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), o));
  EXPECT_GE(w.fd(), 700);
  EXPECT_EQ(fcntl(w.fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  w.close();
}

TEST(TraceWriter, LosingTheDescriptorKeepsTheMappingAndDropsPastIt) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));
  ASSERT_TRUE(emit_sized(w, 64));  // the file is now the header and segment 0
  const int fd = w.fd();
  ASSERT_EQ(::close(fd), 0);
  // The program reuses the number for a file of its own; we must never extend that file.
  const std::string other = dir.file("other");
  const int reused = ::open(other.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_EQ(reused, fd);

  int recorded = 0;
  for (int i = 0; i < 16 * 62; ++i) recorded += emit_sized(w, 1024) ? 1 : 0;
  EXPECT_EQ(recorded, 62);  // what still fits in segment 0
  EXPECT_EQ(w.dropped(), static_cast<uint64_t>(16 * 62 - recorded));
  EXPECT_EQ(file_size(other), 0);
  EXPECT_EQ(file_size(dir.file("t")), static_cast<off_t>(format::kHeaderSize + format::kSegmentSize));
  ::close(reused);
  w.close();
}

TEST(TraceWriter, ReopenStartsFreshThreadSegments) {
  TempDir dir;
  for (const char* name : {"a", "b"}) {
    TraceWriter w;
    ASSERT_TRUE(w.open(dir.file(name).c_str(), options()));
    ASSERT_TRUE(emit_sized(w, 64));
    EXPECT_EQ(segment(w, 0).thread_seq, 0u);
    EXPECT_EQ(segment(w, 0).committed, 64u);
    w.close();
  }
}

}  // namespace
}  // namespace httptrace
