// signals_client: a program with its own SIGBUS handling, to check that the recorder's SIGBUS
// guard is invisible (tests/integration/recorder_signals_test.cpp runs it traced and untraced and
// compares the output).
//
//   signals_client own PORT       a GET (the recorder's file now exists); queries SIGBUS (sigaction
//                                 and signal()); installs its own handler; makes a SIGBUS fault of
//                                 its own (a mapped file truncated); truncates the trace file
//                                 (HTTPTRACE_OUTPUT, if it exists) and makes another GET; puts
//                                 the old action back and queries again; then a fork child makes
//                                 the same fault under the default action.
//   signals_client exec-ign PORT  a GET, signal(SIGBUS, SIG_IGN), then posix_spawn, system() and
//                                 execv of "show"
//   signals_client oneshot PORT   a GET; an SA_RESETHAND handler and its one fault; then SIG_IGN
//                                 and a kill(SIGBUS) of itself
//   signals_client show           prints the SIGBUS disposition it was started with
//   signals_client stepped ROUNDS two loopback connections of its own, A and B (and their
//                                 accepted ends). Each round a GET goes out on A and its response
//                                 is read, both calls single-stepped (tests/support/single_step.h),
//                                 and a third connection is opened, connected, accepted, dup()ed
//                                 and closed, stepped:
//                                 at every instruction of our hooks a SIGTRAP handler sends one
//                                 byte on B, as a self-pipe signal handler would. Prints A's port,
//                                 what the program saw (compared traced/untraced), and the bytes
//                                 the handler sent (which differ: more instructions when traced).
//   signals_client stepped ROUNDS sockets
//                                 the same, but the handler opens a TCP socket and closes it
//   signals_client stepped-fork ROUNDS
//                                 each round a GET on A, then fork() single-stepped, the handler
//                                 sending on B in the parent and in the child (which exits at
//                                 once); prints what the handlers sent, parent and children apart
//
// Its handler counts the faults it expects and leaves them with siglongjmp; a SIGBUS it does not
// expect ends the program with exit 3. Exit 0 on success, 1 on a failure, 2 on a usage error.
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <signal.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/clients/loopback_get.h"
#include "tests/support/single_step.h"

namespace {

[[noreturn]] void die(const char* what) { loopback_get::die("signals_client", what); }

void get(int port) {
  std::printf("get: %s\n", loopback_get::status_line("signals_client", port, "/s").c_str());
}

sigjmp_buf g_jump;
volatile sig_atomic_t g_expecting = 0;
volatile sig_atomic_t g_calls = 0;
void* volatile g_fault_addr = nullptr;

void on_bus(int, siginfo_t* info, void*) {
  if (!g_expecting) {
    const char msg[] = "signals_client: unexpected SIGBUS\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
  }
  g_calls = g_calls + 1;
  g_fault_addr = info->si_addr;
  siglongjmp(g_jump, 1);
}

const char* describe(const struct sigaction& a) {
  if (a.sa_handler == SIG_DFL) return "default";
  if (a.sa_handler == SIG_IGN) return "ignore";
  if ((a.sa_flags & SA_SIGINFO) != 0 && a.sa_sigaction == on_bus) return "own";
  return "SOMEONE ELSE'S";
}

void query(const char* when) {
  struct sigaction now;
  if (sigaction(SIGBUS, nullptr, &now) != 0) die("sigaction");
  // The flags as the kernel keeps them (glibc adds its SA_RESTORER): compared traced/untraced.
  std::printf("%s: %s\n", when, describe(now));
  std::printf("  flags %#x\n", static_cast<unsigned>(now.sa_flags));
}

// A write past the end of a mapped file that was truncated: SIGBUS (BUS_ADRERR).
char* truncated_mapping() {
  char path[] = "/tmp/signals_client.XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) die("mkstemp");
  unlink(path);
  if (ftruncate(fd, 4096) != 0) die("ftruncate");
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  if (ftruncate(fd, 0) != 0) die("ftruncate 0");
  close(fd);
  return static_cast<char*>(p);
}

int own(int port) {
  get(port);
  query("before");
  const sighandler_t prev = signal(SIGBUS, SIG_DFL);
  std::printf("signal() returned: %s\n",
              prev == SIG_DFL ? "default" : prev == SIG_IGN ? "ignore" : "SOMEONE ELSE'S");
  // System V's sigset(): glibc's goes to its own internal sigaction, past any interposer.
  auto name = [](sighandler_t h) {
    return h == SIG_DFL ? "default" : h == SIG_IGN ? "ignore" : h == SIG_HOLD ? "hold" : "SOMEONE ELSE'S";
  };
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // programs still call it
  const sighandler_t s1 = sigset(SIGBUS, SIG_IGN);
  query("after sigset(SIG_IGN)");
  const sighandler_t s2 = sigset(SIGBUS, SIG_HOLD);
  sigset_t held, after;
  sigprocmask(SIG_BLOCK, nullptr, &held);
  const sighandler_t s3 = sigset(SIGBUS, SIG_DFL);
  sigprocmask(SIG_BLOCK, nullptr, &after);
#pragma GCC diagnostic pop
  std::printf("sigset() returned: %s, %s, %s; blocked while held %d, after %d\n", name(s1), name(s2),
              name(s3), sigismember(&held, SIGBUS), sigismember(&after, SIGBUS));

  struct sigaction mine = {};
  mine.sa_sigaction = on_bus;
  mine.sa_flags = SA_SIGINFO;
  sigemptyset(&mine.sa_mask);
  struct sigaction old;
  if (sigaction(SIGBUS, &mine, &old) != 0) die("sigaction install");
  std::printf("old: %s\n", describe(old));
  query("installed");

  char* p = truncated_mapping();
  g_expecting = 1;
  if (sigsetjmp(g_jump, 1) == 0) p[10] = 1;
  g_expecting = 0;
  std::printf("own fault: calls %d, at its address %s\n", static_cast<int>(g_calls),
              g_fault_addr == p + 10 ? "yes" : "no");

  // The recorder's file truncated under it (logrotate copytruncate): its next write faults, and
  // that fault is not the program's.
  const char* out = getenv("HTTPTRACE_OUTPUT");
  if (out != nullptr) {
    std::string path = out;
    const size_t at = path.find("%p");
    if (at != std::string::npos) path.replace(at, 2, std::to_string(getpid()));
    (void)truncate(path.c_str(), 0);
  }
  get(port);
  std::printf("after the trace was truncated: calls %d\n", static_cast<int>(g_calls));

  if (sigaction(SIGBUS, &old, nullptr) != 0) die("sigaction restore");
  query("restored");

  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    p[20] = 1;  // the default action: killed by SIGBUS
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) die("waitpid");
  std::printf("child: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  return 0;
}

// SA_RESETHAND (one-shot) and sysv_signal(), then a kill(SIGBUS) while SIG_IGN: what the
// program reads back and which handler runs must be what they would be untraced.
int oneshot(int port) {
  get(port);
  struct sigaction once = {};
  once.sa_sigaction = on_bus;
  once.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&once.sa_mask);
  sigaddset(&once.sa_mask, SIGUSR1);
  if (sigaction(SIGBUS, &once, nullptr) != 0) die("sigaction");
  struct sigaction now;
  sigaction(SIGBUS, nullptr, &now);
  std::printf("one-shot installed: %s, SIGUSR1 in mask %d, SIGBUS in mask %d\n", describe(now),
              sigismember(&now.sa_mask, SIGUSR1), sigismember(&now.sa_mask, SIGBUS));
  char* p = truncated_mapping();
  g_expecting = 1;
  if (sigsetjmp(g_jump, 1) == 0) p[1] = 1;
  g_expecting = 0;
  query("after one shot");
  const sighandler_t prev = signal(SIGBUS, SIG_IGN);
  std::printf("signal() returned %s\n", prev == SIG_DFL ? "default" : "other");
  kill(getpid(), SIGBUS);  // ignored: nothing happens
  std::printf("still here, calls %d\n", static_cast<int>(g_calls));
  query("ignored");
  return 0;
}

int exec_ign(int port) {
  get(port);
  if (signal(SIGBUS, SIG_IGN) == SIG_ERR) die("signal");
  query("ignored");
  std::fflush(stdout);
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) die("readlink");
  self[n] = '\0';
  char* argv[] = {const_cast<char*>("signals_client"), const_cast<char*>("show"), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, self, nullptr, nullptr, argv, environ) != 0) die("posix_spawn");
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) die("waitpid");
  std::fflush(stdout);
  const std::string line = std::string(self) + " show";
  if (system(line.c_str()) != 0) die("system");
  std::fflush(stdout);
  execv(self, argv);
  die("execv");
}

// A connected loopback pair: *client from connect() to `listener`'s address, *server from
// accept() on lfd.
void loopback_pair(int lfd, const sockaddr_in& listener, int* client, int* server) {
  *client = socket(AF_INET, SOCK_STREAM, 0);
  if (*client < 0 || connect(*client, reinterpret_cast<const sockaddr*>(&listener), sizeof listener) != 0) {
    die("connect");
  }
  *server = accept(lfd, nullptr, nullptr);
  if (*server < 0) die("accept");
}

int g_step_fd = -1;
volatile sig_atomic_t g_step_sent = 0;

void on_trap(int) {
  const int saved = errno;
  if (send(g_step_fd, "x", 1, MSG_DONTWAIT) == 1) g_step_sent = g_step_sent + 1;
  errno = saved;
}

void on_trap_socket(int) {
  const int saved = errno;
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s >= 0 && close(s) == 0) g_step_sent = g_step_sent + 1;
  errno = saved;
}

// f() with the trap flag set: SIGTRAP after every instruction it runs.
template <typename F>
[[gnu::noinline]] auto stepped_call(F f) {
  httptrace::testing::step_on();
  const auto r = f();
  httptrace::testing::step_off();
  return r;
}

// Reads exactly n bytes from fd (blocking), false on EOF or an error.
bool read_exactly(int fd, char* p, size_t n) {
  for (size_t got = 0; got < n;) {
    const ssize_t r = recv(fd, p + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

int stepped(int rounds, bool sockets) {
  if (!httptrace::testing::kSingleStep) {
    std::puts("single-stepping is x86-64 only");
    return 0;
  }
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 4) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    die("listen");
  }
  const int port = ntohs(a.sin_port);
  int ca, sa, cb, sb;
  loopback_pair(lfd, a, &ca, &sa);
  loopback_pair(lfd, a, &cb, &sb);
  g_step_fd = cb;
  struct sigaction trap = {};
  trap.sa_handler = sockets ? on_trap_socket : on_trap;
  sigemptyset(&trap.sa_mask);
  if (sigaction(SIGTRAP, &trap, nullptr) != 0) die("sigaction");

  static constexpr char kResponse[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  constexpr size_t kResponseLen = sizeof kResponse - 1;
  int whole_sends = 0, whole_responses = 0, errno_kept = 0, whole_cycles = 0;
  long drained = 0;
  char buf[4096];
  for (int i = 0; i < rounds; ++i) {
    char req[128];
    const int n = std::snprintf(req, sizeof req, "GET /r%d HTTP/1.1\r\nHost: stepped\r\n\r\n", i);
    errno = EDOM;
    whole_sends += stepped_call([&] { return send(ca, req, static_cast<size_t>(n), 0); }) == n;
    errno_kept += errno == EDOM;
    if (!read_exactly(sa, buf, static_cast<size_t>(n))) die("server recv");
    if (send(sa, kResponse, kResponseLen, 0) != static_cast<ssize_t>(kResponseLen)) die("server send");
    size_t got = 0;
    while (got < kResponseLen) {
      errno = EDOM;
      const ssize_t r = stepped_call([&] { return recv(ca, buf + got, kResponseLen - got, 0); });
      if (r <= 0) die("client recv");
      errno_kept += errno == EDOM;
      got += static_cast<size_t>(r);
    }
    whole_responses += std::memcmp(buf, kResponse, kResponseLen) == 0;
    // A connection of its own each round, opened, connected and closed single-stepped.
    const int cc = stepped_call([] { return socket(AF_INET, SOCK_STREAM, 0); });
    const int connected = stepped_call(
        [&] { return connect(cc, reinterpret_cast<const sockaddr*>(&a), sizeof a); });
    const int sc = stepped_call([&] { return accept(lfd, nullptr, nullptr); });
    const int copy = stepped_call([&] { return dup(cc); });
    const int closed = stepped_call([&] { return close(copy) | close(cc); });
    whole_cycles += cc >= 0 && connected == 0 && sc >= 0 && copy >= 0 && closed == 0;
    if (sc >= 0) stepped_call([&] { return close(sc); });
    for (ssize_t r; (r = recv(sb, buf, sizeof buf, MSG_DONTWAIT)) > 0;) drained += r;
  }
  // What the handler sent and the other end has not read yet.
  for (int spins = 0; drained < g_step_sent && spins < 1000; ++spins) {
    pollfd p = {sb, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1) break;
    const ssize_t r = recv(sb, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) drained += r;
  }
  std::printf("port %d\n", port);
  std::printf("rounds %d: sends whole %d, responses whole %d, errno kept %d of %d calls, "
              "socket-connect-close %d\n",
              rounds, whole_sends, whole_responses, errno_kept, 2 * rounds, whole_cycles);
  if (sockets) {
    std::printf("handler sockets %ld\n", static_cast<long>(g_step_sent));
  } else {
    std::printf("handler sent %ld, received %ld\n", static_cast<long>(g_step_sent), drained);
  }
  return 0;
}

pid_t g_parent_pid = 0;
volatile sig_atomic_t g_child_sent = 0;

// As on_trap, but a fork child counts its own sends apart (the parent's count is copied into it).
void on_trap_forking(int) {
  const int saved = errno;
  if (send(g_step_fd, "x", 1, MSG_DONTWAIT) == 1) {
    if (getpid() == g_parent_pid) g_step_sent = g_step_sent + 1;
    else g_child_sent = g_child_sent + 1;
  }
  errno = saved;
}

// Each round a GET on A, then a single-stepped fork(): the handler sends on B at every
// instruction of fork in the parent and in the child, whose first instructions run before any
// atfork handler has told the recorder it is a new process. The child reports what it sent on a
// pipe and exits.
int stepped_fork(int rounds) {
  if (!httptrace::testing::kSingleStep) {
    std::puts("single-stepping is x86-64 only");
    return 0;
  }
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 4) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    die("listen");
  }
  int ca, sa, cb, sb;
  loopback_pair(lfd, a, &ca, &sa);
  loopback_pair(lfd, a, &cb, &sb);
  g_step_fd = cb;
  g_parent_pid = getpid();
  int counts[2];
  if (pipe(counts) != 0) die("pipe");
  struct sigaction trap = {};
  trap.sa_handler = on_trap_forking;
  sigemptyset(&trap.sa_mask);
  if (sigaction(SIGTRAP, &trap, nullptr) != 0) die("sigaction");

  static constexpr char kResponse[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  constexpr size_t kResponseLen = sizeof kResponse - 1;
  int whole = 0, children = 0;
  long child_sent = 0, drained = 0;
  char buf[4096];
  for (int i = 0; i < rounds; ++i) {
    char req[128];
    const int n = std::snprintf(req, sizeof req, "GET /f%d HTTP/1.1\r\nHost: forked\r\n\r\n", i);
    if (send(ca, req, static_cast<size_t>(n), 0) != n || !read_exactly(sa, buf, static_cast<size_t>(n)) ||
        send(sa, kResponse, kResponseLen, 0) != static_cast<ssize_t>(kResponseLen) ||
        !read_exactly(ca, buf, kResponseLen)) {
      die("exchange");
    }
    whole += std::memcmp(buf, kResponse, kResponseLen) == 0;
    const pid_t pid = stepped_call([] { return fork(); });
    if (pid < 0) die("fork");
    if (pid == 0) {
      const long mine = g_child_sent;
      _exit(write(counts[1], &mine, sizeof mine) == sizeof mine ? 0 : 1);
    }
    int status = 0;
    long mine = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        read(counts[0], &mine, sizeof mine) != sizeof mine) {
      die("child");
    }
    ++children;
    child_sent += mine;
    for (ssize_t r; (r = recv(sb, buf, sizeof buf, MSG_DONTWAIT)) > 0;) drained += r;
  }
  const long sent = g_step_sent + child_sent;
  for (int spins = 0; drained < sent && spins < 1000; ++spins) {
    pollfd p = {sb, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1) break;
    const ssize_t r = recv(sb, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) drained += r;
  }
  std::printf("port %d\n", ntohs(a.sin_port));
  std::printf("rounds %d: responses whole %d, children exited 0: %d\n", rounds, whole, children);
  std::printf("handler sent %ld (parent %ld, children %ld), received %ld\n", sent,
              static_cast<long>(g_step_sent), child_sent, drained);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "show") == 0) {
    query("show");
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "own") == 0) return own(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "exec-ign") == 0) return exec_ign(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "oneshot") == 0) return oneshot(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "stepped") == 0) return stepped(std::atoi(argv[2]), false);
  if (argc == 3 && std::strcmp(argv[1], "stepped-fork") == 0) return stepped_fork(std::atoi(argv[2]));
  if (argc == 4 && std::strcmp(argv[1], "stepped") == 0 && std::strcmp(argv[3], "sockets") == 0) {
    return stepped(std::atoi(argv[2]), true);
  }
  std::fputs("usage: signals_client own PORT | exec-ign PORT | oneshot PORT | show |"
             " stepped ROUNDS [sockets] | stepped-fork ROUNDS\n",
             stderr);
  return 2;
}
