#include "interpose/record/lifecycle.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "interpose/record/argv_redact.h"
#include "interpose/record/config.h"
#include "interpose/record/recorder.h"
#include "interpose/record/stacks.h"
#include "interpose/record/sys.h"

namespace httptrace {

namespace {

std::atomic<int> g_state{static_cast<int>(RecorderState::kUnstarted)};
TraceWriter g_writer;
int g_pid = 0;
bool g_stacks = false;
uint64_t g_max_bytes = kDefaultMaxMb << 20;
std::atomic<uint32_t> g_next_conn{1};
std::atomic<uint32_t> g_next_lookup{1};

// What the header says about the program, read once (a fork child reuses it).
char g_template[4096];
char g_exe[format::kExeMax];
size_t g_exe_len = 0;
char g_argv[format::kArgvMax];
size_t g_argv_len = 0;
uint32_t g_argc = 0;

void warn(const char* a, const char* b = "", const char* c = "") {
  static std::atomic<int> warned{0};
  if (warned.fetch_add(1) > 2) return;  // a broken setting must not flood the program's stderr
  sys::write(2, "httptrace: ", 11);
  sys::write(2, a, strlen(a));
  sys::write(2, b, strlen(b));
  sys::write(2, c, strlen(c));
  sys::write(2, "\n", 1);
}

void read_cmdline() {
  const int fd = sys::openat(AT_FDCWD, "/proc/self/cmdline", O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return;
  char chunk[4096];
  // /proc/self/cmdline is bounded by ARG_MAX, so this ends; the cap is belt and braces.
  for (int i = 0; i < 4096; ++i) {
    const long n = sys::read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    for (long k = 0; k < n; ++k) {
      if (g_argv_len < sizeof(g_argv)) g_argv[g_argv_len++] = chunk[k];
      if (chunk[k] == '\0') ++g_argc;
    }
  }
  sys::close(fd);
  redact_argv(g_argv, g_argv_len);
}

void read_exe() {
  const long n = ::syscall(SYS_readlink, "/proc/self/exe", g_exe, sizeof(g_exe));
  g_exe_len = n > 0 ? static_cast<size_t>(n) : 0;
}

// Where our descriptor goes: high enough that programs dup2()ing onto low numbers or opening
// many files rarely meet it, low enough (< 1024) that the kernel's descriptor table of a process
// with a huge RLIMIT_NOFILE is not blown up to millions of entries for our sake.
int fd_floor() {
  rlimit rl;
  uint64_t soft = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) soft = rl.rlim_cur;
  if (soft > 1024) soft = 1024;
  return soft > 64 ? static_cast<int>(soft - 16) : 0;
}

bool open_trace(int pid, int ppid, bool child) {
  char path[4096];
  if (!expand_output_path(g_template, pid, child, path, sizeof(path))) {
    warn("HTTPTRACE_OUTPUT is too long; not tracing");
    return false;
  }
  WriterOptions o;
  o.max_bytes = g_max_bytes;
  o.flags = g_stacks ? format::kFileFlagStacks : 0;
  o.pid = pid;
  o.ppid = ppid;
  o.exe = g_exe;
  o.exe_len = g_exe_len;
  o.argv = g_argv;
  o.argv_len = g_argv_len;
  o.argc = g_argc;
  o.fd_floor = fd_floor();
  if (!g_writer.open(path, o)) {
    warn("cannot create trace file ", path, ": not tracing this process");
    return false;
  }
  return true;
}

void on_fork_child();

// The file is created at the first event that is about the network (a lookup, a TCP socket, an
// inherited one), not at load: a shell script or a build run under `httptrace run` starts dozens
// of processes that never touch the network, and each would otherwise leave a file behind.
// Fork and exec events alone never create it (events.cpp checks active() for those).
enum FileState : int { kFileNone = 0, kFileOpening = 1, kFileOpen = 2, kFileFailed = 3 };
std::atomic<int> g_file{kFileNone};
int g_ppid = 0;
bool g_is_child = false;  // a fork child: a template without %p gets ".<pid>" appended

}  // namespace

bool open_trace_file() {
  int s = g_file.load(std::memory_order_acquire);
  if (s == kFileNone && g_file.compare_exchange_strong(s, kFileOpening, std::memory_order_acq_rel)) {
    ErrnoSaver keep;
    const bool ok = open_trace(g_pid, g_ppid, g_is_child);
    g_file.store(ok ? kFileOpen : kFileFailed, std::memory_order_release);
    return ok;
  }
  // Another thread is creating the file right now (an open, an mmap and a header write): wait
  // for it, boundedly; past the bound this one event is dropped rather than block the program.
  for (int i = 0; i < 100000 && s == kFileOpening; ++i) {
    sched_yield();
    s = g_file.load(std::memory_order_acquire);
  }
  return s == kFileOpen;
}

namespace {

bool configure() {
  if (env_flag(getenv("HTTPTRACE_DISABLE")) || getauxval(AT_SECURE) != 0) return false;
  g_stacks = env_flag(getenv("HTTPTRACE_STACKS"));
  if (g_stacks && !load_unwinder()) {
    warn("HTTPTRACE_STACKS=1 but libunwind.so.8 cannot be loaded; recording without stacks");
    g_stacks = false;
  }
  bool invalid = false;
  const uint64_t mb = parse_max_mb(getenv("HTTPTRACE_MAX_MB"), &invalid);
  if (invalid) warn("HTTPTRACE_MAX_MB is not a number of MiB in 1..1048576; using 1024");
  g_max_bytes = mb << 20;

  const char* out = getenv("HTTPTRACE_OUTPUT");
  if (out == nullptr || out[0] == '\0') out = kDefaultOutput;
  // Absolute, so forked children that chdir() still write next to their parent.
  size_t n = 0;
  if (out[0] != '/') {
    if (::syscall(SYS_getcwd, g_template, sizeof(g_template) - 1) <= 0) return false;
    n = strlen(g_template);
    if (n + 1 < sizeof(g_template) && (n == 0 || g_template[n - 1] != '/')) g_template[n++] = '/';
  }
  const size_t len = strlen(out);
  if (n + len + 1 > sizeof(g_template)) {
    warn("HTTPTRACE_OUTPUT is too long; not tracing");
    return false;
  }
  memcpy(g_template + n, out, len + 1);

  read_exe();
  read_cmdline();
  g_pid = sys::getpid();
  g_ppid = sys::getppid();
  g_writer.set_opener(open_trace_file);
  pthread_atfork(nullptr, nullptr, on_fork_child);
  return true;
}

void on_fork_child() {
  if (recorder_state() != RecorderState::kRecording) return;
  ErrnoSaver keep;
  const int parent = g_pid;
  g_pid = sys::getpid();
  g_writer.close();  // the parent's mapping and descriptor: the child must never write there
  g_next_conn.store(1, std::memory_order_relaxed);
  g_next_lookup.store(1, std::memory_order_relaxed);
  // The child's own file is created lazily too: right below if it inherited tracked sockets.
  g_ppid = parent;
  g_is_child = true;
  g_file.store(kFileNone, std::memory_order_release);
  // Inherited sockets are the child's too; new ids keep per-process numbering dense, and
  // descriptors that were dups of one connection in the parent stay one connection here.
  struct Renamed {
    uint32_t parent_conn, conn;
    int fd;
  };
  Renamed renamed[256];
  int nrenamed = 0;
  const uint64_t ts = now_ns();
  const int hw = g_fd_table.high_water();
  for (int fd = 0; fd < hw; ++fd) {
    const uint32_t parent_conn = FdTable::conn_of(g_fd_table.load(fd));
    if (parent_conn == 0) continue;
    uint32_t conn = 0;
    int first_fd = -1;
    for (int i = 0; i < nrenamed && conn == 0; ++i) {
      if (renamed[i].parent_conn == parent_conn) {
        conn = renamed[i].conn;
        first_fd = renamed[i].fd;
      }
    }
    const bool first = conn == 0;
    if (first) {
      conn = next_conn_id();
      if (nrenamed < 256) renamed[nrenamed++] = {parent_conn, conn, fd};
    }
    g_fd_table.renumber(fd, conn);
    if (first) {
      auto ev = new_event<format::InheritEvent>(format::EventKind::kInherit, conn, ts);
            ev.fd = fd;
      ev.parent_conn = parent_conn;
      g_writer.emit(&ev, sizeof(ev));
    } else {
      auto ev = new_event<format::DupEvent>(format::EventKind::kDup, conn, ts);
            ev.oldfd = first_fd;
      ev.newfd = fd;
      g_writer.emit(&ev, sizeof(ev));
    }
  }
}

}  // namespace

RecorderState start_recorder() {
  int s = g_state.load(std::memory_order_acquire);
  if (s != static_cast<int>(RecorderState::kUnstarted)) return static_cast<RecorderState>(s);
  if (!g_state.compare_exchange_strong(s, static_cast<int>(RecorderState::kStarting),
                                       std::memory_order_acq_rel)) {
    return static_cast<RecorderState>(s);
  }
  ErrnoSaver keep;
  ReentryGuard guard;  // our own start-up I/O is not the program's
  const bool on = configure();
  g_state.store(static_cast<int>(on ? RecorderState::kRecording : RecorderState::kOff),
                std::memory_order_release);
  return on ? RecorderState::kRecording : RecorderState::kOff;
}

RecorderState recorder_state() {
  return static_cast<RecorderState>(g_state.load(std::memory_order_acquire));
}

bool recording() {
  const int s = g_state.load(std::memory_order_acquire);
  if (s == static_cast<int>(RecorderState::kRecording)) return true;
  if (s == static_cast<int>(RecorderState::kUnstarted)) {
    return start_recorder() == RecorderState::kRecording;
  }
  return false;
}

TraceWriter& trace_writer() { return g_writer; }
int recorder_pid() { return g_pid; }
bool stacks_enabled() { return g_stacks; }
namespace {
// Set before the first vfork and never cleared: the child that may follow shares this memory.
std::atomic<bool> g_vfork_seen{false};
}  // namespace

void note_vfork() { g_vfork_seen.store(true, std::memory_order_relaxed); }

bool foreign_process() {
  return g_vfork_seen.load(std::memory_order_relaxed) && sys::getpid() != g_pid;
}
uint32_t next_conn_id() { return g_next_conn.fetch_add(1, std::memory_order_relaxed); }
uint32_t next_lookup_id() { return g_next_lookup.fetch_add(1, std::memory_order_relaxed); }

}  // namespace httptrace
