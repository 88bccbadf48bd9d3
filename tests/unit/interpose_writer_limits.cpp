// The writer at the edges of what the system allows: losses counted by cause and reported in
// the stream, signal handlers emitting in the middle of an emit, RLIMIT_FSIZE, a full disk that
// frees up again, an mmap that fails, a file truncated under us, no descriptor to keep.
// Tests that change process-wide state (rlimits, mounts, SIGBUS disposition) run in a fork child
// and report through its exit status.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "interpose/record/recorder.h"
#include "interpose/record/sys.h"
#include "interpose/record/sigbus_guard.h"
#include "interpose/record/trace_writer.h"
#include "interpose_test_trace.h"
#include "tests/support/single_step.h"

// Defined only when the test objects are linked against AddressSanitizer (build-asan/).
extern "C" void __asan_init() __attribute__((weak));

namespace httptrace {
namespace {

using format::DropCause;
using testing::as;
using testing::parse_trace;
using testing::TempDir;

constexpr uint64_t kMiB = 1ull << 20;

WriterOptions options(uint64_t max_bytes = 64 * kMiB) {
  WriterOptions o;
  o.max_bytes = max_bytes;
  o.pid = sys::getpid();
  return o;
}

bool emit_sized(TraceWriter& w, size_t size, uint64_t ts = 99, uint32_t conn = 1) {
  format::EventHeader h = {};
  h.kind = static_cast<uint16_t>(format::EventKind::kSocket);
  h.conn = conn;
  h.ts_ns = ts;
  static uint8_t tail[format::kSegmentPayload];
  return w.emit(&h, sizeof(h), tail, size - sizeof(h));
}

std::vector<format::EventHeader> headers(const testing::TraceView& v) {
  std::vector<format::EventHeader> out;
  for (const auto& s : v.segments) {
    for (const auto& e : s.events) out.push_back(as<format::EventHeader>(e));
  }
  return out;
}

std::vector<format::LostEvent> lost_events(const testing::TraceView& v) {
  std::vector<format::LostEvent> out;
  for (const auto& s : v.segments) {
    for (const auto& e : s.events) {
      if (as<format::EventHeader>(e).kind == static_cast<uint16_t>(format::EventKind::kLost)) {
        out.push_back(as<format::LostEvent>(e));
      }
    }
  }
  return out;
}

// Runs fn in a fork child; its return value is the exit status. A signal kills the child and
// shows as 128 + signal.
template <typename F>
int in_child(F fn) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

size_t files_in(const std::string& dir) {
  size_t n = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

TEST(WriterLimits, LossesAreCountedByCauseAndReportedBeforeTheNextEvent) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options()));
  ASSERT_TRUE(emit_sized(w, 64, 10));
  EXPECT_FALSE(emit_sized(w, format::kSegmentPayload + 8, 20));  // too large, at ts 20
  EXPECT_FALSE(emit_sized(w, format::kSegmentPayload + 8, 30));
  ASSERT_TRUE(emit_sized(w, 64, 40));
  EXPECT_EQ(w.dropped(), 2u);
  EXPECT_EQ(w.dropped(DropCause::kTooLarge), 2u);
  w.close();
  const auto v = parse_trace(dir.file("t"));
  EXPECT_EQ(v.header.dropped_events, 2u);
  EXPECT_EQ(v.header.dropped_by_cause[static_cast<int>(DropCause::kTooLarge)], 2u);
  const auto hs = headers(v);
  ASSERT_EQ(hs.size(), 3u);
  EXPECT_EQ(hs[0].ts_ns, 10u);
  EXPECT_EQ(hs[1].kind, static_cast<uint16_t>(format::EventKind::kLost));
  EXPECT_EQ(hs[2].ts_ns, 40u);
  const auto lost = lost_events(v);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].count, 2u);
  EXPECT_EQ(lost[0].cause, static_cast<uint8_t>(DropCause::kTooLarge));
  EXPECT_EQ(lost[0].h.ts_ns, 20u) << "when the first was lost";
}

// A signal handler that emits while the thread is inside emit(): its event takes its own space
// after the interrupted one and both survive whole; none is lost to a yes/no guard.
std::atomic<TraceWriter*> g_sig_writer{nullptr};
std::atomic<uint64_t> g_handler_runs{0};
struct Probe {
  format::EventHeader h;
  uint64_t seq;
};

// conn 1: the interrupted thread's own events; conn 2: the handler's.
Probe probe(uint32_t conn, uint64_t seq) {
  Probe p = {};
  p.h.kind = static_cast<uint16_t>(format::EventKind::kData);
  p.h.conn = conn;
  p.seq = seq;
  return p;
}

// The probes in a trace: the thread's own ones in order from seq 0 up to the first gap, whether
// there was one, and the handler's.
struct ProbeCount {
  uint64_t in_order = 0;
  bool gap = false;
  uint64_t handler = 0;
};
ProbeCount count_probes(const testing::TraceView& v) {
  ProbeCount n;
  for (const auto& s : v.segments) {
    for (const auto& e : s.events) {
      const auto p = as<Probe>(e);
      if (p.h.conn == 1 && !n.gap) {
        n.gap = p.seq != n.in_order;
        n.in_order += !n.gap;
      } else if (p.h.conn == 2) {
        ++n.handler;
      }
    }
  }
  return n;
}

void emitting_handler(int) {
  Probe p = probe(2, g_handler_runs.fetch_add(1));
  uint8_t tail[40];
  memset(tail, 0x5a, sizeof(tail));
  g_sig_writer.load()->emit(&p, sizeof(p), tail, sizeof(tail));
}

TEST(WriterLimits, SignalHandlerEventsNestInsideAnEmit) {
  TempDir dir;
  TraceWriter w;
  ASSERT_TRUE(w.open(dir.file("t").c_str(), options(256 * kMiB)));
  g_sig_writer = &w;
  g_handler_runs = 0;
  struct sigaction sa = {}, old;
  sa.sa_handler = emitting_handler;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  std::atomic<bool> done{false};
  std::atomic<uint64_t> main_events{0};
  // Set before the writer's first event, read after it (main_events orders the two): the signals
  // go to the writer thread only.
  pthread_t victim = pthread_self();
  std::thread writer([&] {
    victim = pthread_self();
    uint8_t tail[200];
    memset(tail, 0x11, sizeof(tail));
    for (uint64_t i = 0; i < 400000 && !done.load(std::memory_order_relaxed); ++i) {
      const Probe p = probe(1, i);
      ASSERT_TRUE(w.emit(&p, sizeof(p), tail, i % 200));
      main_events.store(i + 1, std::memory_order_release);
    }
  });
  for (int spin = 0; spin < 1000000 && main_events.load(std::memory_order_acquire) == 0; ++spin) {
    sched_yield();
  }
  EXPECT_GT(main_events.load(std::memory_order_acquire), 0u) << "the writer thread never started";
  for (int i = 0; i < 3000 && main_events.load() < 400000; ++i) {
    pthread_kill(victim, SIGUSR1);
    sched_yield();
  }
  done = true;
  writer.join();
  sigaction(SIGUSR1, &old, nullptr);
  const uint64_t runs = g_handler_runs.load();
  EXPECT_GT(runs, 0u);
  w.close();

  // Every event whole (parse_trace fails the test otherwise); the main thread's in order, none
  // missing; the handler's all there or counted as nested drops.
  const auto v = parse_trace(dir.file("t"));
  const ProbeCount n = count_probes(v);
  const uint64_t handler = n.handler;
  EXPECT_FALSE(n.gap);
  EXPECT_EQ(n.in_order, main_events.load());
  EXPECT_EQ(handler + v.header.dropped_by_cause[static_cast<int>(DropCause::kNested)], runs);
  EXPECT_EQ(v.header.dropped_events,
            v.header.dropped_by_cause[static_cast<int>(DropCause::kNested)]);
  // Nested drops happen only when a handler lands on a segment change with the segment's nested
  // reserve used up: signals are delivered at syscall returns, and those are all in segment
  // changes here, so the share kept depends on the machine's load.
  EXPECT_GT(handler, 0u);
}

// The same, deterministically: the trap flag raises SIGTRAP after every instruction of one emit,
// and the handler emits at trap k only, for every k. The segment is filled first so that the
// emit under test takes the last room before the nested reserve (a handler at depth 1 must then
// change segment) or finds no room (the emit itself changes segment).
std::atomic<uint64_t> g_traps{0};
uint64_t g_emit_at = UINT64_MAX;

void stepping_handler(int, siginfo_t*, void* context) {
  if (g_traps.fetch_add(1, std::memory_order_relaxed) != g_emit_at) return;
  emitting_handler(0);
#if defined(__x86_64__)
  // Done with this round: the rest of the emit runs unstepped (the trap flag comes back from
  // the saved flags at sigreturn).
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_EFL] &= ~testing::kTrapFlag;
#endif
}

__attribute__((noinline)) bool stepped_emit(TraceWriter& w, const Probe& p, const uint8_t* tail,
                                            size_t tail_len) {
  testing::step_on();
  const bool ok = w.emit(&p, sizeof(p), tail, tail_len);
  testing::step_off();
  return ok;
}

// One round: a fresh file, the first segment filled to `fill` bytes by the thread's own events
// (conn 1), then one stepped emit of `size` bytes; returns the trap count and checks the file.
uint64_t stepped_round(const std::string& path, uint32_t fill, uint32_t size, uint64_t emit_at) {
  TraceWriter w;
  WriterOptions o = options();
  o.grow_min = 2 * format::kSegmentSize;  // a small file: each round reads it back
  EXPECT_TRUE(w.open(path.c_str(), o));
  g_sig_writer = &w;
  g_handler_runs = 0;
  static uint8_t tail[format::kSegmentPayload];
  uint64_t seq = 0;
  for (uint32_t used = 0; used < fill;) {
    const uint32_t n = fill - used > 512 ? 256 : fill - used;
    const Probe p = probe(1, seq++);
    EXPECT_TRUE(w.emit(&p, sizeof(p), tail, n - sizeof(p)));
    used += n;
  }
  const Probe p = probe(1, seq++);
  g_traps = 0;
  g_emit_at = emit_at;
  EXPECT_TRUE(stepped_emit(w, p, tail, size - sizeof(p)));
  g_emit_at = UINT64_MAX;
  const uint64_t traps = g_traps.load();
  w.close();

  const auto v = parse_trace(path);
  const ProbeCount n = count_probes(v);
  EXPECT_FALSE(n.gap) << "trap " << emit_at;
  EXPECT_EQ(n.in_order, seq) << "trap " << emit_at << " of " << traps << ", fill " << fill;
  EXPECT_EQ(n.handler + v.header.dropped_by_cause[static_cast<int>(DropCause::kNested)],
            g_handler_runs.load())
      << "trap " << emit_at;
  unlink(path.c_str());
  return traps;
}

TEST(WriterLimits, ASignalHandlerEmittingAtAnyInstructionOfAnEmitLosesNothing) {
  if (!testing::kSingleStep) GTEST_SKIP() << "single-stepping through the trap flag is x86-64 only";
  // Rounds times traps: AddressSanitizer's checks make an emit several times as many
  // instructions. The writer's logic is the same in both builds; the normal one steps it.
  if (&__asan_init != nullptr) GTEST_SKIP() << "quadratic in the instructions of an emit";
  TempDir dir;
  struct sigaction sa = {}, old;
  sa.sa_sigaction = stepping_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGTRAP, &sa, &old), 0);
  const uint32_t limit = format::kSegmentPayload - 1024;  // the writer's nested reserve
  const uint32_t size = 256;
  for (const uint32_t fill : {limit - size, limit - size + 8}) {
    const uint64_t traps = stepped_round(dir.file("count"), fill, size, UINT64_MAX);
    ASSERT_GT(traps, 20u);
    for (uint64_t k = 0; k < traps + 4 && !HasFailure(); ++k) {
      stepped_round(dir.file("t"), fill, size, k);
    }
  }
  sigaction(SIGTRAP, &old, nullptr);
}

TEST(WriterLimits, ReentryGuardNestsFourDeep) {
  ReentryGuard a;
  ReentryGuard b;
  ReentryGuard c;
  ReentryGuard d;
  ReentryGuard e;
  EXPECT_TRUE(a && b && c && d);
  EXPECT_FALSE(e);
}

// ulimit -f: growing the file past the limit would kill the program with SIGXFSZ.
TEST(WriterLimits, FileSizeLimitCapsTheFileInsteadOfRaisingSigxfsz) {
  TempDir dir;
  const std::string path = dir.file("t");
  const int status = in_child([&] {
    rlimit rl = {512 * 1024, 512 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 10;
    TraceWriter w;
    if (!w.open(path.c_str(), options())) return 11;
    int recorded = 0;
    for (int i = 0; i < 2000; ++i) recorded += emit_sized(w, 1024) ? 1 : 0;
    if (recorded != 7 * 62) return 12;  // header + 7 segments fit in 512 KiB
    if (w.dropped(DropCause::kFileSizeLimit) != static_cast<uint64_t>(2000 - recorded)) return 13;
    w.close();
    return 0;
  });
  EXPECT_EQ(status, 0) << "128 + " << SIGXFSZ << " is SIGXFSZ";
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_LE(st.st_size, 512 * 1024);
  EXPECT_EQ(parse_trace(path).header.dropped_by_cause[static_cast<int>(DropCause::kFileSizeLimit)],
            2000u - 7 * 62);
}

TEST(WriterLimits, FileSizeLimitBelowOneSegmentMakesNoFile) {
  TempDir dir;
  const std::string path = dir.file("t");
  const int status = in_child([&] {
    rlimit rl = {16 * 1024, 16 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 10;
    TraceWriter w;
    return w.open(path.c_str(), options()) ? 11 : errno == EFBIG ? 0 : 12;
  });
  EXPECT_EQ(status, 0);
  EXPECT_EQ(files_in(dir.path()), 0u);
}

// A private tmpfs of 2 MiB in a private mount namespace: a disk that fills up and frees again.
// Needs root (CAP_SYS_ADMIN); skipped otherwise.
template <typename F>
int on_small_disk(const std::string& mnt, F fn) {
  return in_child([&] {
    if (unshare(CLONE_NEWNS) != 0) return 77;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) return 77;
    return fn();
  });
}

// Fills the file system at dir with `name` until it is full.
void fill(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  static char block[4096];
  while (fd >= 0 && ::write(fd, block, sizeof(block)) == sizeof(block)) {
  }
  ::close(fd);
}

TEST(WriterLimits, FullDiskDropsAndCountsThenRecordingResumes) {
  TempDir dir;
  const std::string mnt = dir.path();
  const int status = on_small_disk(mnt, [&] {
    TraceWriter w;
    WriterOptions o = options();
    o.grow_min = 256 * 1024;
    if (!w.open((mnt + "/t").c_str(), o)) return 10;
    fill(mnt + "/filler");
    // The first segment came with the header: one whole-segment event fills it.
    if (!emit_sized(w, format::kSegmentPayload, 1)) return 18;
    const uint64_t t0 = 1'000'000'000;
    if (emit_sized(w, 64, t0)) return 11;  // no room for a second segment
    if (w.dropped(DropCause::kDiskFull) != 1) return 12;
    unlink((mnt + "/filler").c_str());
    // Within the retry interval nobody asks the disk again (one fallocate per interval).
    if (emit_sized(w, 64, t0 + 1'000'000)) return 13;
    if (w.dropped(DropCause::kDiskFull) != 2) return 14;
    if (!emit_sized(w, 64, t0 + 100'000'000)) return 15;  // space is back: recording resumes
    w.close();
    const auto v = parse_trace(mnt + "/t");
    const auto lost = lost_events(v);
    if (lost.size() != 1 || lost[0].count != 2 ||
        lost[0].cause != static_cast<uint8_t>(DropCause::kDiskFull) || lost[0].h.ts_ns != t0) {
      return 16;
    }
    return v.header.dropped_by_cause[static_cast<int>(DropCause::kDiskFull)] == 2 ? 0 : 17;
  });
  if (status == 77) GTEST_SKIP() << "needs root for a private tmpfs";
  EXPECT_EQ(status, 0);
}

TEST(WriterLimits, FullDiskLeavesNoEmptyFile) {
  TempDir dir;
  const std::string mnt = dir.path();
  const int status = on_small_disk(mnt, [&] {
    fill(mnt + "/filler");
    TraceWriter w;
    if (w.open((mnt + "/t").c_str(), options())) return 10;
    return files_in(mnt) == 1 ? 0 : 11;  // the filler only
  });
  if (status == 77) GTEST_SKIP() << "needs root for a private tmpfs";
  EXPECT_EQ(status, 0);
}

TEST(WriterLimits, FailedMmapLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("t");
  const int status = in_child([&] {
    rlimit rl = {256 * kMiB, 256 * kMiB};  // far below the 1 GiB mapping
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 10;
    TraceWriter w;
    return w.open(path.c_str(), options(1024 * kMiB)) ? 11 : 0;
  });
  EXPECT_EQ(status, 0);
  EXPECT_EQ(files_in(dir.path()), 0u);
}

// logrotate's copytruncate: the program must not die of SIGBUS, recording stops, counted.
TEST(WriterLimits, TruncatedFileStopsRecordingWithoutSigbus) {
  TempDir dir;
  const std::string path = dir.file("t");
  const int status = in_child([&] {
    // A SIGBUS handler of the program's own (AddressSanitizer's, in the sanitizer build) is
    // left alone by design, and then a truncation reaches it: nothing to test there.
    if (&__asan_init != nullptr) return 77;
    TraceWriter w;
    WriterOptions o = options();
    if (!w.open(path.c_str(), o)) return 10;
    install_sigbus_guard(&w);  // the recorder's guard (sigbus_guard.h), as lifecycle.cpp does
    if (!emit_sized(w, 64)) return 11;
    if (truncate(path.c_str(), 0) != 0) return 12;
    // The next events go to the segment in hand, whose pages are now past the end of the file.
    for (int i = 0; i < 200; ++i) emit_sized(w, 1024);
    if (w.active() && w.header() == nullptr) return 13;
    w.close();
    return 0;
  });
  if (status == 77) GTEST_SKIP() << "AddressSanitizer owns SIGBUS in this build";
  EXPECT_EQ(status, 0) << "128 + " << SIGBUS << " is SIGBUS";
}

TEST(WriterLimits, TruncationIsNoticedAtTheNextSegmentClaim) {
  TempDir dir;
  const std::string path = dir.file("t");
  TraceWriter w;
  WriterOptions o = options();
  ASSERT_TRUE(w.open(path.c_str(), o));
  // A whole segment in one event, so the next event needs a claim (no write past the end first).
  ASSERT_TRUE(emit_sized(w, format::kSegmentPayload));
  ASSERT_EQ(truncate(path.c_str(), format::kHeaderSize), 0);
  EXPECT_FALSE(emit_sized(w, 64));
  EXPECT_FALSE(emit_sized(w, 64));
  EXPECT_EQ(w.dropped(DropCause::kTruncated), 2u);
  w.close();
}

int open_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

// No number free where the caller wants our descriptor: the file lives on through the mapping
// alone, at its first allocation, and no descriptor of ours is left among the program's.
TEST(WriterLimits, WithoutRoomForTheDescriptorTheMappingAloneRecords) {
  TempDir dir;
  TraceWriter w;
  WriterOptions o = options();
  o.fd_floor = 1 << 30;  // beyond any RLIMIT_NOFILE: F_DUPFD fails
  o.grow_min = 4 * format::kSegmentSize;
  const int before = open_fds();
  ASSERT_TRUE(w.open(dir.file("t").c_str(), o));
  EXPECT_EQ(w.fd(), -1);
  EXPECT_EQ(open_fds(), before);
  int recorded = 0;
  for (int i = 0; i < 6 * 62; ++i) recorded += emit_sized(w, 1024) ? 1 : 0;
  EXPECT_EQ(recorded, 4 * 62);
  EXPECT_EQ(w.dropped(DropCause::kSizeCap), static_cast<uint64_t>(2 * 62));
  w.close();
  EXPECT_EQ(parse_trace(dir.file("t")).segments.size(), 4u);
}

}  // namespace
}  // namespace httptrace
