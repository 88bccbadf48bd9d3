// Hostile inputs to the reader: memory from the file's claims, FIFOs, more files than descriptors.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/unit/analyzer_read_util.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

// Runs body in a child process (with a time limit) and returns its exit status: a hang or a crash
// fails the test instead of taking the suite with it.
template <class F> int in_child(F body, unsigned timeout_s = 60) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(timeout_s);
    _exit(body());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

uint64_t vm_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t pages = 0;
  f >> pages;
  return pages * uint64_t(sysconf(_SC_PAGESIZE));
}

// A sparse file: a header claiming `segments` segments of `seg_size` bytes, each started by its
// own thread with one event; everything else a hole.
void write_sparse(const std::string& path, uint32_t seg_size, uint32_t segments) {
  TraceBuilder b;
  tf::FileHeader h = b.header();
  h.segment_size = seg_size;
  h.segments_claimed = segments;
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t(tf::kHeaderSize) + off_t(seg_size) * segments), 0);
  ASSERT_EQ(pwrite(fd, &h, sizeof h, 0), ssize_t(sizeof h));
  for (uint32_t i = 0; i < segments; ++i) {
    struct {
      tf::SegmentHeader sh;
      tf::SocketEvent e;
    } s{};
    s.sh.magic = tf::kSegmentMagic;
    s.sh.tid = int32_t(100 + i);
    s.sh.thread_uid = i + 1;
    s.sh.committed = sizeof s.e;
    s.e.h = {uint16_t(tf::EventKind::kSocket), uint16_t(sizeof s.e), i + 1, 1000 + i};
    s.e.fd = 3;
    ASSERT_EQ(pwrite(fd, &s, sizeof s, off_t(tf::kHeaderSize) + off_t(seg_size) * i), ssize_t(sizeof s));
  }
  close(fd);
}

// Reads path with the address space limited to what the process has now plus `extra` bytes;
// exit 0 when all `want` events came through.
int read_under_limit(const std::string& path, uint64_t extra, size_t want) {
  return in_child([&] {
    rlimit rl{};
    rl.rlim_cur = rl.rlim_max = vm_bytes() + extra;
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 3;
    try {
      TraceSet ts;
      OpenError err;
      if (!ts.add(path, err)) return 4;
      ts.start();
      Event ev;
      size_t n = 0;
      while (ts.next(ev)) ++n;
      return n == want ? 0 : 5;
    } catch (const std::bad_alloc&) {
      return 6;
    }
  });
}

TEST(ReaderInput, MemoryFollowsTheEventsNotTheDeclaredSegmentSize) {
  // 1,500 threads each claiming a 1 MiB segment for one event: 1.5 GB of address space if every
  // cursor buffers a segment, a few MB of real data.
  TempDir dir;
  const std::string path = dir.file("sparse.trace");
  write_sparse(path, 1u << 20, 1500);
  EXPECT_EQ(read_under_limit(path, 128u << 20, 1500), 0);
}

TEST(ReaderInput, ManyOneEventThreadsCostLittle) {
  TempDir dir;
  const std::string path = dir.file("threads.trace");
  write_sparse(path, tf::kSegmentSize, 4000);
  EXPECT_EQ(read_under_limit(path, 64u << 20, 4000), 0);
}

TEST(ReaderInput, HolesOfASparseFileAreSkippedNotRead) {
  // A header claiming 2^24 segments (1 TiB) of which three were written, far apart: reading every
  // claimed segment header would take many seconds.
  TempDir dir;
  const std::string path = dir.file("holes.trace");
  TraceBuilder b;
  tf::FileHeader h = b.header();
  const uint64_t claimed = uint64_t(1) << 24;
  h.segments_claimed = claimed;
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  if (ftruncate(fd, off_t(tf::kHeaderSize + claimed * tf::kSegmentSize)) != 0) GTEST_SKIP() << "no sparse files here";
  ASSERT_EQ(pwrite(fd, &h, sizeof h, 0), ssize_t(sizeof h));
  for (uint64_t seg : {uint64_t(0), claimed / 2, claimed - 1}) {
    struct {
      tf::SegmentHeader sh;
      tf::SocketEvent e;
    } s{};
    s.sh.magic = tf::kSegmentMagic;
    s.sh.tid = int32_t(seg % 1000);
    s.sh.thread_uid = seg + 1;
    s.sh.committed = sizeof s.e;
    s.e.h = {uint16_t(tf::EventKind::kSocket), uint16_t(sizeof s.e), uint32_t(seg + 1), seg};
    ASSERT_EQ(pwrite(fd, &s, sizeof s, off_t(tf::kHeaderSize + seg * tf::kSegmentSize)), ssize_t(sizeof s));
  }
  close(fd);
  const auto t0 = std::chrono::steady_clock::now();
  TraceSet ts;
  OpenError err;
  ASSERT_TRUE(ts.add(path, err)) << err.message;
  ts.start();
  auto evs = read_all(ts);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[2].head.conn, claimed);
  EXPECT_LT(s, 5.0);
  EXPECT_TRUE(ts.warnings().empty());
}

TEST(ReaderInput, AFifoIsRefusedAndNeverOpenedForReading) {
  TempDir dir;
  const std::string fifo = dir.file("a.trace");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  TraceBuilder b;
  b.socket(1, 10, 1, 3);
  TraceBuilder::write_file(dir.file("b.trace"), b.bytes());
  EXPECT_EQ(in_child([&] {
              TraceSet ts;
              OpenError err;
              if (ts.add(fifo, err)) return 1;
              if (err.message != fifo + ": a FIFO, not a trace file") return 2;
              // In a directory it is skipped with a warning; the real trace is read.
              if (!ts.add(dir.path(), err) || ts.files().size() != 1) return 3;
              if (ts.warnings().size() != 1 || ts.warnings()[0].find("a FIFO") == std::string::npos) return 4;
              return 0;
            },
                     10),
            0);
}

TEST(ReaderInput, MoreTraceFilesThanDescriptorsAreAllRead) {
  TempDir dir;
  constexpr int kFiles = 300;
  for (int i = 0; i < kFiles; ++i) {
    TraceBuilder b(1000 + i);
    for (int k = 0; k < 3; ++k) {
      b.socket(1, uint64_t(k) * 1000 + uint64_t(i), uint32_t(k + 1), 3);
      b.socket(2, uint64_t(k) * 1000 + 500 + uint64_t(i), uint32_t(k + 10), 4);
    }
    TraceBuilder::write_file(dir.file("p" + std::to_string(1000 + i) + ".trace"), b.bytes());
  }
  EXPECT_EQ(in_child([&] {
              rlimit rl{};
              getrlimit(RLIMIT_NOFILE, &rl);
              rl.rlim_cur = 64;
              if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
              TraceSet ts;
              OpenError err;
              if (!ts.add(dir.path(), err)) return 4;
              if (ts.files().size() != kFiles) return 5;
              ts.start();
              Event ev;
              size_t n = 0;
              uint64_t last = 0;
              while (ts.next(ev)) {
                if (ev.order_ns < last) return 6;
                last = ev.order_ns;
                ++n;
              }
              if (n != size_t(kFiles) * 6) return 7;
              return ts.warnings().empty() ? 0 : 8;
            }),
            0);
}

TEST(ReaderInput, AFileReplacedBeforeItIsReopenedIsNotMisread) {
  TempDir dir;
  TraceBuilder a(1), b(2), other(3);
  a.socket(1, 10, 1, 3);
  b.socket(1, 20, 1, 3);
  other.socket(1, 30, 1, 3);
  TraceBuilder::write_file(dir.file("a.trace"), a.bytes());
  TraceBuilder::write_file(dir.file("b.trace"), b.bytes());
  TraceSet ts;
  ts.set_max_open_files(1);  // b.trace is closed after its header is read
  OpenError err;
  ASSERT_TRUE(ts.add(dir.file("a.trace"), err));
  ASSERT_TRUE(ts.add(dir.file("b.trace"), err));
  TraceBuilder::write_file(dir.file("new"), other.bytes());
  ASSERT_EQ(rename(dir.file("new").c_str(), dir.file("b.trace").c_str()), 0);
  ts.start();
  auto evs = read_all(ts);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].pid, 1);
  ASSERT_EQ(ts.warnings().size(), 1u);
  EXPECT_NE(ts.warnings()[0].find("b.trace: cannot reopen (replaced by another file)"), std::string::npos)
      << ts.warnings()[0];
}

TEST(ReaderInput, AnUnreadableTraceInADirectoryFailsTheWholeCommand) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  TraceBuilder b;
  b.socket(1, 10, 1, 3);
  TraceBuilder::write_file(dir.file("a.trace"), b.bytes());
  TraceBuilder::write_file(dir.file("b.trace"), b.bytes());
  chmod(dir.file("b.trace").c_str(), 0);
  TraceSet ts;
  OpenError err;
  EXPECT_FALSE(ts.add(dir.path(), err));
  EXPECT_NE(err.message.find("b.trace: Permission denied"), std::string::npos) << err.message;
}

TEST(ReaderInput, ANewerTraceInADirectoryFailsTheWholeCommand) {
  TempDir dir;
  TraceBuilder a, b;
  a.socket(1, 10, 1, 3);
  b.header().min_reader_version = 99;
  TraceBuilder::write_file(dir.file("a.trace"), a.bytes());
  TraceBuilder::write_file(dir.file("b.trace"), b.bytes());
  TraceSet ts;
  OpenError err;
  EXPECT_FALSE(ts.add(dir.path(), err));
  EXPECT_NE(err.message.find("b.trace: written by a newer httptrace"), std::string::npos) << err.message;
}

}  // namespace
}  // namespace httptrace::testing
