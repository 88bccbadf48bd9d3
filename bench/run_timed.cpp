// Runs one workload and reports how long it took, measured the same way under every tool, so the
// side-by-side table compares like with like.
//
//   build/bench/run_timed [--env NAME=VALUE]... [--announce FIFO --gate FIFO] -- CMD [ARGS...]
//
// The clock starts in the child right before execvp and stops when waitpid returns, so the
// program's own start-up (dynamic loading, a preloaded library's constructor) is included, and
// the time scripts/bench.sh spends starting a tracer is not.
//
// --env: set only in the child, so e.g. LD_PRELOAD applies to the workload and not to us.
//
// --announce A --gate G: the child writes "<pid>\n" to FIFO A, then waits for one byte on FIFO G
// before it execs. This is how a tracer that attaches to a pid (bpftrace -p) is attached before
// the workload's first instruction: the pid already exists, and stays the same across exec.
//
// On exit prints "elapsed_ns=<n> status=<exit status> maxrss_kb=<n> cpu_ns=<n>" on stderr and
// exits with the workload's status (128+signal if it was killed).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>
#include <vector>

namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: run_timed [--env NAME=VALUE]... [--announce FIFO --gate FIFO] -- CMD "
               "[ARGS...]\n");
  _exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* gate = nullptr;
  const char* announce = nullptr;
  std::vector<char*> env;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--gate" && i + 1 < argc) gate = argv[++i];
    else if (a == "--announce" && i + 1 < argc) announce = argv[++i];
    else if (a == "--env" && i + 1 < argc) env.push_back(argv[++i]);
    else if (a == "--") { ++i; break; }
    else usage();
  }
  if (i >= argc || !gate != !announce) usage();

  // The child stamps the start time here right before exec; a shared page survives the fork.
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) { std::perror("run_timed: mmap"); return 1; }
  auto* start = static_cast<std::atomic<uint64_t>*>(page);
  start->store(0);

  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) { std::perror("run_timed: fork"); return 1; }
  if (pid == 0) {
    for (char* kv : env) putenv(kv);
    if (gate) {
      const int out = open(announce, O_WRONLY | O_CLOEXEC);
      if (out < 0 || dprintf(out, "%d\n", int(getpid())) <= 0) {
        std::fprintf(stderr, "run_timed: announce %s: %s\n", announce, std::strerror(errno));
        _exit(127);
      }
      close(out);
      const int fd = open(gate, O_RDONLY | O_CLOEXEC);
      char go;
      if (fd < 0 || read(fd, &go, 1) != 1) {
        std::fprintf(stderr, "run_timed: gate %s: %s\n", gate, fd < 0 ? std::strerror(errno) : "closed");
        _exit(127);
      }
      close(fd);
    }
    start->store(now_ns(), std::memory_order_release);
    execvp(argv[i], argv + i);
    std::fprintf(stderr, "run_timed: %s: %s\n", argv[i], std::strerror(errno));
    _exit(127);
  }

  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) { std::perror("run_timed: wait4"); return 1; }
  }
  const uint64_t end = now_ns();
  const uint64_t begin = start->load(std::memory_order_acquire);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // The workload's own CPU time (user + system): steadier than wall time on a busy machine,
  // and it leaves out the peer's work.
  const unsigned long long cpu_ns =
      (unsigned long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
      (unsigned long long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
  std::fprintf(stderr, "elapsed_ns=%llu status=%d maxrss_kb=%ld cpu_ns=%llu\n",
               (unsigned long long)(begin ? end - begin : 0), code, ru.ru_maxrss, cpu_ns);
  return code;
}
