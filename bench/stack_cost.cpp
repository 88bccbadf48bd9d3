// What HTTPTRACE_STACKS=1 costs, side by side in one run (rounds rotate the variants):
//
//   build/bench/stack_cost [--rounds N] [--connects N] [--dir DIR] [--baseline OLD.so] build/libhttptrace.so
//
// --baseline adds OLD.so (a build from before the module map, say) with stacks on, so what the
// module map adds to a connect and to a process is measured in the same run.
//
//   per connect  a child opens N loopback connections (socket, connect, accept, close both) and
//                prints the median time inside connect(), with the call made from a stack of 4
//                and of 32 frames (the unwinder walks every one): untraced, traced, traced with
//                HTTPTRACE_STACKS=1. The stacks-on minus stacks-off difference is the cost of the
//                unwind, the module-map check (one dl_iterate_phdr) and the StackEvent.
//   per process  a whole process (spawn, exec, load, one connect, exit), wall time from spawn to
//                reap, traced with stacks off and on: loading libunwind at start-up and writing
//                the module map (every loaded object, its build-id) when the file is created.
//
// Prints per-variant medians and the median of the per-round differences.
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

int listener(sockaddr_in* sa) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  *sa = {};
  sa->sin_family = AF_INET;
  sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*sa);
  if (bind(ls, reinterpret_cast<sockaddr*>(sa), sizeof(*sa)) != 0 || listen(ls, 64) != 0 ||
      getsockname(ls, reinterpret_cast<sockaddr*>(sa), &len) != 0) {
    std::perror("listen");
    std::exit(1);
  }
  return ls;
}

// One connect, timed, made `depth` frames down (noinline recursion: each level a real frame).
__attribute__((noinline)) uint64_t connect_at(int depth, int ls, const sockaddr_in& sa) {
  if (depth > 1) {
    const uint64_t t = connect_at(depth - 1, ls, sa);
    asm volatile("" ::: "memory");  // not a tail call: the frame stays
    return t;
  }
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const uint64_t t0 = now_ns();
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  const uint64_t t1 = now_ns();
  if (rc != 0) {
    std::perror("connect");
    std::exit(1);
  }
  const int c = accept(ls, nullptr, nullptr);
  close(c);
  close(fd);
  return t1 - t0;
}

int child_connects(long n, int depth) {
  sockaddr_in sa;
  const int ls = listener(&sa);
  std::vector<uint64_t> t;
  for (long i = 0; i < n; ++i) t.push_back(connect_at(depth, ls, sa));
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  std::printf("%llu\n", static_cast<unsigned long long>(t[t.size() / 2]));
  return 0;
}

int child_one() {
  sockaddr_in sa;
  const int ls = listener(&sa);
  connect_at(4, ls, sa);
  return 0;
}

struct Outcome {
  uint64_t wall_ns = 0;
  std::string out;
};

Outcome spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0 && std::strncmp(*e, "HTTPTRACE_", 10) != 0) env.push_back(*e);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
  e.push_back(nullptr);
  int p[2];
  if (pipe(p) != 0) std::exit(1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  Outcome o;
  const uint64_t t0 = now_ns();
  pid_t pid;
  if (posix_spawn(&pid, a[0], &fa, nullptr, a.data(), e.data()) != 0) std::exit(1);
  close(p[1]);
  char buf[256];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) o.out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  o.wall_ns = now_ns() - t0;
  posix_spawn_file_actions_destroy(&fa);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "stack_cost: child failed\n");
    std::exit(1);
  }
  return o;
}

uint64_t median(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
int64_t median_diff(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  std::vector<int64_t> d;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d.push_back(int64_t(a[i]) - int64_t(b[i]));
  std::sort(d.begin(), d.end());
  return d.empty() ? 0 : d[d.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[1], "--child") == 0) return child_connects(std::atol(argv[2]), std::atoi(argv[3]));
  if (argc >= 2 && std::strcmp(argv[1], "--one") == 0) return child_one();
  int rounds = 7;
  long connects = 2000;
  std::string dir = "/tmp", lib, baseline;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--connects" && i + 1 < argc) connects = std::atol(argv[++i]);
    else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (a == "--baseline" && i + 1 < argc) baseline = std::filesystem::absolute(argv[++i]).string();
    else lib = a;
  }
  if (lib.empty() || rounds < 1 || connects < 1) {
    std::fprintf(stderr, "usage: stack_cost [--rounds N] [--connects N] [--dir DIR] build/libhttptrace.so\n");
    return 2;
  }
  lib = std::filesystem::absolute(lib).string();
  std::string tmpl = dir + "/httptrace-stackcost.XXXXXX";
  if (!mkdtemp(tmpl.data())) return 1;
  const std::string out = "HTTPTRACE_OUTPUT=" + tmpl + "/t.%p.trace";
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  std::vector<std::vector<std::string>> variants = {
      {}, {"LD_PRELOAD=" + lib, out}, {"LD_PRELOAD=" + lib, out, "HTTPTRACE_STACKS=1"}};
  const char* names[] = {"untraced", "traced, stacks off", "traced, HTTPTRACE_STACKS=1", "baseline, HTTPTRACE_STACKS=1"};
  if (!baseline.empty()) variants.push_back({"LD_PRELOAD=" + baseline, out, "HTTPTRACE_STACKS=1"});
  const int nv = static_cast<int>(variants.size());
  for (int depth : {4, 32}) {
    std::vector<uint64_t> t[4];
    for (int r = 0; r < rounds; ++r)
      for (int k = 0; k < nv; ++k) {
        const int v = (k + r) % nv;
        t[v].push_back(std::strtoull(
            spawn({self, "--child", std::to_string(connects), std::to_string(depth)}, variants[v]).out.c_str(), nullptr, 10));
        std::filesystem::remove_all(tmpl), std::filesystem::create_directory(tmpl);
      }
    std::printf("connect() from %d frames, median of %ld per process, median of %d rounds:\n", depth, connects, rounds);
    for (int v = 0; v < nv; ++v) std::printf("  %-28s %8llu ns\n", names[v], static_cast<unsigned long long>(median(t[v])));
    std::printf("  stacks on - stacks off      %8lld ns per connect\n", static_cast<long long>(median_diff(t[2], t[1])));
    std::printf("  stacks off - untraced       %8lld ns per connect\n", static_cast<long long>(median_diff(t[1], t[0])));
    if (nv == 4)
      std::printf("  stacks on - baseline on     %8lld ns per connect\n", static_cast<long long>(median_diff(t[2], t[3])));
  }
  std::vector<uint64_t> w[3];
  const int np = nv - 1;
  for (int r = 0; r < rounds * 3; ++r)
    for (int k = 0; k < np; ++k) {
      const int v = (k + r) % np;
      w[v].push_back(spawn({self, "--one"}, variants[v + 1]).wall_ns);
      std::filesystem::remove_all(tmpl), std::filesystem::create_directory(tmpl);
    }
  std::printf("one process (spawn .. one connect .. reap), median of %d rounds:\n", rounds * 3);
  std::printf("  %-28s %8.0f us\n", names[1], median(w[0]) / 1e3);
  std::printf("  %-28s %8.0f us\n", names[2], median(w[1]) / 1e3);
  if (np == 3) std::printf("  %-28s %8.0f us\n", names[3], median(w[2]) / 1e3);
  std::printf("  stacks on - stacks off      %8.0f us per process\n", median_diff(w[1], w[0]) / 1e3);
  if (np == 3) std::printf("  stacks on - baseline on     %8.0f us per process\n", median_diff(w[1], w[2]) / 1e3);
  std::filesystem::remove_all(tmpl);
  return 0;
}
