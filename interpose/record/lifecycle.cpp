#include "interpose/record/lifecycle.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/single_threaded.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "interpose/record/argv_redact.h"
#include "interpose/record/config.h"
#include "interpose/record/modules.h"
#include "interpose/record/recorder.h"
#include "interpose/record/sigbus_guard.h"
#include "interpose/record/stacks.h"
#include "interpose/record/sys.h"

namespace httptrace {

namespace {

std::atomic<int> g_state{static_cast<int>(RecorderState::kUnstarted)};
constinit TraceWriter g_writer;
constinit TraceSink g_sink(g_writer);
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

// Diagnostics go where they cannot harm the program: HTTPTRACE_LOG=FILE when set, else fd 2
// only while it is still the file it was at load (a program may have made fd 2 a data file or
// a socket since).
char g_log_path[4096];
bool g_stderr_known = false;
dev_t g_stderr_dev = 0;
ino_t g_stderr_ino = 0;

void note_stderr() {
  struct stat st;
  g_stderr_known = fstat(2, &st) == 0;
  g_stderr_dev = st.st_dev;
  g_stderr_ino = st.st_ino;
}

void warn(const char* a, const char* b = "", const char* c = "") {
  static std::atomic<int> warned{0};
  if (warned.fetch_add(1) > 2) return;  // a broken setting must not flood the program's stderr
  int fd = -1;
  if (g_log_path[0] != '\0') {
    fd = sys::openat(AT_FDCWD, g_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
  } else {
    struct stat st;
    if (!g_stderr_known || fstat(2, &st) != 0 || st.st_dev != g_stderr_dev ||
        st.st_ino != g_stderr_ino) {
      return;
    }
    fd = 2;
  }
  char line[512];
  size_t n = 0;
  for (const char* part : {"httptrace: ", a, b, c, "\n"}) {
    for (const char* p = part; *p != '\0' && n < sizeof(line); ++p) line[n++] = *p;
  }
  sys::write(fd, line, n);  // one write: lines from several processes do not interleave
  if (fd != 2) sys::close(fd);
}

// The arguments glibc hands our constructor (ELF init functions get argc, argv, envp): no
// /proc/self/cmdline to open and read (4 system calls, ~15 us) in the common case.
int g_ctor_argc = -1;
char** g_ctor_argv = nullptr;

bool copy_ctor_args() {
  if (g_ctor_argc < 0 || g_ctor_argv == nullptr) return false;
  for (int i = 0; i < g_ctor_argc && g_ctor_argv[i] != nullptr; ++i) {
    for (const char* p = g_ctor_argv[i];; ++p) {
      if (g_argv_len < sizeof(g_argv)) g_argv[g_argv_len++] = *p;
      if (*p == '\0') break;
    }
  }
  g_argc = static_cast<uint32_t>(g_ctor_argc);
  redact_argv(g_argv, g_argv_len);
  return true;
}

void read_cmdline() {
  if (copy_ctor_args()) return;
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

// The path the program was executed by (AT_EXECFN, from the kernel: no system call) when it is
// absolute, which execvp() and shells make it; /proc/self/exe otherwise, and always for stacks,
// whose main object must be the very file mapped (a script's AT_EXECFN names the script, not
// its interpreter). The first /proc/self access of a process costs ~20 us (its dentries are
// made then); a one-request process pays it for nothing else.
void read_exe() {
  const char* fn = reinterpret_cast<const char*>(getauxval(AT_EXECFN));
  if (!g_stacks && fn != nullptr && fn[0] == '/') {
    const size_t n = strnlen(fn, sizeof(g_exe));
    if (n < sizeof(g_exe)) {
      memcpy(g_exe, fn, n);
      g_exe_len = n;
      return;
    }
  }
  const long n = ::syscall(SYS_readlink, "/proc/self/exe", g_exe, sizeof(g_exe));
  g_exe_len = n > 0 ? static_cast<size_t>(n) : 0;
}

// Where our descriptor goes: out of the way of programs that dup2() onto low numbers or count
// their own descriptors, and never at a number the kernel's descriptor table does not cover
// yet. Growing the table in a process with threads waits for an RCU grace period (10-25 ms
// measured, inside whatever call of the program made us create the file), so it is grown here,
// while the process is single-threaded (load, fork child), where it costs microseconds: a
// throw-away F_DUPFD at the number, closed at once (tables never shrink). Under a small
// RLIMIT_NOFILE (<= 80) the number is the limit's last one, inside the 64 entries every table
// starts with, so the program's own first descriptors are what they would be untraced.
int g_fd_slot = 0;

void reserve_fd_slot() {
  rlimit rl;
  uint64_t soft = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) soft = rl.rlim_cur;
  if (soft > 1024) soft = 1024;  // a huge limit must not blow the table up for our sake
  constexpr uint64_t kTableStart = 64;  // NR_OPEN_DEFAULT: no growth below it
  const uint64_t small = soft < kTableStart ? soft : kTableStart;
  g_fd_slot = small > 3 ? static_cast<int>(small - 1) : 0;
  if (soft <= kTableStart + 16 || !__libc_single_threaded) return;
  const int want = static_cast<int>(soft - 16);
  int probe = -1;
  for (int fd = 0; fd <= 2 && probe < 0; ++fd) probe = sys::fcntl(fd, F_DUPFD_CLOEXEC, want);
  if (probe < 0) {
    const int any = sys::openat(AT_FDCWD, "/", O_PATH | O_CLOEXEC, 0);
    if (any >= 0) {
      probe = sys::fcntl(any, F_DUPFD_CLOEXEC, want);
      sys::close(any);
    }
  }
  if (probe < 0) return;
  sys::close(probe);
  g_fd_slot = want;
}

void note_child_untraced(int err);

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
  o.fd_floor = g_fd_slot;
  if (!g_writer.open(path, o)) {
    const int err = errno;
    warn("cannot create trace file ", path, ": not tracing this process");
    if (child) note_child_untraced(err);
    return false;
  }
  install_sigbus_guard(&g_writer);
  return true;
}

// A fork child's view of its parent's (or nearest traced ancestor's) file header, kept past the unmapping of the parent's file
// (on_fork_child) so that a child that cannot create its own file (a server's worker after
// setuid() to a user who cannot write the directory) says so in the parent's trace, where the
// user looks, rather than on a stderr that is by then the server's error log, or nowhere. The
// header page only: the child never touches the parent's segments. Shared with the parent
// (MAP_SHARED, a second view of the same page), so the counter is an atomic add.
format::FileHeader* g_parent_header = nullptr;

// A parent without a file of its own passes on the view it inherited: the nearest ancestor
// with a trace is told (nginx's master is a fork of the process that opened the listening
// sockets, and may itself never make a network call).
void keep_parent_header() {
  format::FileHeader* h = g_writer.header();
  if (h == nullptr) return;
  guard_extra_mapping(nullptr, 0);
  if (g_parent_header != nullptr) munmap(g_parent_header, format::kHeaderSize);  // an ancestor's
  g_parent_header = nullptr;
  void* view = mremap(h, 0, format::kHeaderSize, MREMAP_MAYMOVE);
  if (view == MAP_FAILED) return;
  g_parent_header = static_cast<format::FileHeader*>(view);
  // The parent's file may be truncated under us (copytruncate): the SIGBUS guard, inherited
  // with the parent's dispositions, covers this page too.
  guard_extra_mapping(view, format::kHeaderSize);
}

void note_child_untraced(int err) {
  format::FileHeader* h = g_parent_header;
  if (h == nullptr) return;
  std::atomic_ref<int32_t>(h->child_untraced_pid).store(g_pid, std::memory_order_relaxed);
  std::atomic_ref<int32_t>(h->child_untraced_errno).store(err, std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(h->children_untraced).fetch_add(1, std::memory_order_release);
}

void set_up_fork_child();

// The file is created at the first event that is about the network (a lookup, a TCP socket, a
// use of an inherited one), not at load: a shell script or a build run under `httptrace run`
// starts dozens of processes that never touch the network, and each would otherwise leave a
// file behind. Fork, exec, close and dup events alone never create it (TraceSink::open_for).
enum FileState : int { kFileNone = 0, kFileOpening = 1, kFileOpen = 2, kFileFailed = 3 };
std::atomic<int> g_file{kFileNone};
int g_ppid = 0;
bool g_is_child = false;  // a fork child: a template without %p gets ".<pid>" appended

// A fork child's inherited connections, announced (InheritEvent, or DupEvent for a second
// descriptor of one connection) when its file is created, if they are still open then.
struct PendingInherit {
  int fd;
  uint32_t conn;
  uint32_t parent_conn;
  format::EventKind kind;  // kInherit (fork) or kExecInherit (kept across exec)
  uint64_t ts;
};
constexpr int kMaxPendingInherit = 1024;
PendingInherit g_pending[kMaxPendingInherit];
int g_npending = 0;
uint64_t g_fork_ts = 0;
// Events of a signal handler that ran in a fork child before on_fork_child was done, dropped
// (enter_past_limit) and counted in the child's own file.
uint64_t g_fork_child_drops = 0;

void announce_inherited() {
  // The first descriptor of a connection still open gets the InheritEvent, later ones a DupEvent
  // naming it (the parent's first one may have been closed in the child since).
  for (int i = 0; i < g_npending; ++i) {
    const PendingInherit& p = g_pending[i];
    if (FdTable::conn_of(g_fd_table.load(p.fd)) != p.conn) continue;  // closed since
    // The connection's first descriptor still open, if an earlier entry had it.
    int first = -1;
    for (int k = 0; k < i && first < 0; ++k) {
      const PendingInherit& q = g_pending[k];
      if (q.conn == p.conn && FdTable::conn_of(g_fd_table.load(q.fd)) == q.conn) first = q.fd;
    }
    if (first < 0) {
      auto ev = new_event<format::InheritEvent>(p.kind, p.conn, p.ts);
      ev.fd = p.fd;
      ev.parent_conn = p.parent_conn;
      g_writer.emit(&ev, sizeof(ev));
    } else {
      auto ev = new_event<format::DupEvent>(format::EventKind::kDup, p.conn, p.ts);
      ev.oldfd = first;
      ev.newfd = p.fd;
      g_writer.emit(&ev, sizeof(ev));
    }
  }
  g_npending = 0;
}

}  // namespace

bool open_trace_file() {
  int s = g_file.load(std::memory_order_acquire);
  if (s == kFileNone && g_file.compare_exchange_strong(s, kFileOpening, std::memory_order_acq_rel)) {
    ErrnoSaver keep;
    const bool ok = open_trace(g_pid, g_ppid, g_is_child);
    if (ok) announce_inherited();
    if (ok) g_writer.drop(format::DropCause::kNested, g_fork_ts, g_fork_child_drops);
    g_fork_child_drops = 0;
    if (ok) record_new_modules(now_ns());  // HTTPTRACE_STACKS=1: the objects loaded so far
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

bool TraceSink::open_for(const void* head) {
  format::EventHeader h;
  memcpy(&h, head, sizeof(h));
  switch (static_cast<format::EventKind>(h.kind)) {
    case format::EventKind::kClose:
    case format::EventKind::kDup:
    case format::EventKind::kTlsClose:
    case format::EventKind::kFork:
    case format::EventKind::kExec:
      return false;  // about what exists already: not a reason to make a file
    default:
      return open_trace_file();
  }
}

bool TraceSink::deferred(const void* head, size_t head_len) {
  format::InheritEvent ev;
  if (head_len < sizeof(ev)) return false;
  memcpy(&ev, head, sizeof(ev));
  const auto kind = static_cast<format::EventKind>(ev.h.kind);
  if (kind != format::EventKind::kInherit && kind != format::EventKind::kExecInherit) return false;
  defer_inherit(kind, ev.fd, ev.h.conn, ev.parent_conn, ev.h.ts_ns);
  return true;
}

void defer_inherit(format::EventKind kind, int fd, uint32_t conn, uint32_t parent_conn,
                   uint64_t ts) {
  if (g_writer.active()) {
    auto ev = new_event<format::InheritEvent>(kind, conn, ts);
    ev.fd = fd;
    ev.parent_conn = parent_conn;
    g_writer.emit(&ev, sizeof(ev));
    return;
  }
  // Only the thread that will create the file reads the list, and only after this store: a
  // process adopting sockets does so at load or in a fork child, single-threaded.
  if (g_npending < kMaxPendingInherit) g_pending[g_npending++] = {fd, conn, parent_conn, kind, ts};
}

bool enter_past_limit() {
  if (t_recorder_depth >= kForking && recorder_depth() < kMaxRecorderDepth) {
    if (sys::getpid() == g_pid) return true;  // the parent: its writer is its own
    ++g_fork_child_drops;  // the child, before on_fork_child is done
    return false;
  }
  if (g_writer.active()) g_writer.drop(format::DropCause::kNested, now_ns());
  return false;
}

namespace {

bool configure() {
  if (env_flag(getenv("HTTPTRACE_DISABLE")) || getauxval(AT_SECURE) != 0) return false;
  note_stderr();
  // Absolute, so a program that chdir()s still logs where the user asked.
  const char* log = getenv("HTTPTRACE_LOG");
  if (log != nullptr && log[0] != '\0') {
    size_t at = 0;
    if (log[0] != '/' && ::syscall(SYS_getcwd, g_log_path, sizeof(g_log_path) - 1) > 0) {
      at = strlen(g_log_path);
      if (at + 1 < sizeof(g_log_path)) g_log_path[at++] = '/';
    }
    if (at + strlen(log) < sizeof(g_log_path)) {
      memcpy(g_log_path + at, log, strlen(log) + 1);
    } else {
      g_log_path[0] = '\0';
    }
  }
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
  reserve_fd_slot();
  pthread_atfork(on_fork_prepare, on_fork_parent_done, on_fork_child);
  return true;
}

// g_pid changes last: until then a signal handler's event is the child's before it has a
// writer of its own (enter_past_limit).
void set_up_fork_child() {
  if (recorder_state() != RecorderState::kRecording) return;
  ErrnoSaver keep;
  const int parent = g_pid;
  const int self = sys::getpid();
  keep_parent_header();
  g_writer.close();  // the parent's mapping and descriptor: the child must never write there
  g_next_conn.store(1, std::memory_order_relaxed);
  g_next_lookup.store(1, std::memory_order_relaxed);
  g_ppid = parent;
  g_is_child = true;
  g_npending = 0;
  reset_modules();
  g_file.store(kFileNone, std::memory_order_release);
  reserve_fd_slot();  // a child's table is only as big as the descriptors it inherited
  // Inherited sockets are the child's too; new ids keep per-process numbering dense, and
  // descriptors that were dups of one connection in the parent stay one connection here.
  struct Renamed {
    uint32_t parent_conn, conn;
    int fd;
  };
  Renamed renamed[256];
  int nrenamed = 0;
  g_fork_ts = now_ns();
  const int hw = g_fd_table.high_water();
  for (int fd = 0; fd < hw; ++fd) {
    const uint32_t parent_conn = FdTable::conn_of(g_fd_table.load(fd));
    if (parent_conn == 0) continue;
    // A listening socket is no connection of the child's (a pre-forking server's workers).
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (sys::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
      g_fd_table.untrack(fd);
      continue;
    }
    uint32_t conn = 0;
    for (int i = 0; i < nrenamed && conn == 0; ++i) {
      if (renamed[i].parent_conn == parent_conn) conn = renamed[i].conn;
    }
    if (conn == 0) {
      conn = next_conn_id();
      if (nrenamed < 256) renamed[nrenamed++] = {parent_conn, conn, fd};
    }
    g_fd_table.renumber(fd, conn);
    if (g_npending < kMaxPendingInherit) {
      g_pending[g_npending++] = {fd, conn, parent_conn, format::EventKind::kInherit, g_fork_ts};
    }
  }
  g_pid = self;
  // The lost events were about the network: they would have made the file.
  if (g_fork_child_drops > 0) open_trace_file();
}

}  // namespace

// Our prepare handler runs last before the fork (handlers registered earlier run after it), our
// parent and child handlers first after it: the mark spans only glibc's own fork code.
void on_fork_prepare() { t_recorder_depth += kForking; }
void on_fork_parent_done() { t_recorder_depth -= kForking; }

void on_fork_child() {
  set_up_fork_child();
  t_recorder_depth -= kForking;
}

void note_program_args(int argc, char** argv) {
  g_ctor_argc = argc;
  g_ctor_argv = argv;
}

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

TraceSink& trace_writer() { return g_sink; }
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
