// What the recorder costs a process once, side by side in one run (rounds rotate the order):
//
//   build/bench/fixed_cost [--rounds N] [--dir DIR] [--compare OTHER.so] build/libhttptrace.so
//
// --compare adds a fourth one-request variant, traced with OTHER.so (e.g. the library built from
// an earlier commit), in the same rotation, so before and after are measured side by side.
//
// The trace files go to a fresh directory under DIR (default /tmp): the file system matters,
// creating an inode is the largest single cost (ext4 on a busy /tmp: ~0.1 ms).
//
//   first-call   a program with a second thread already running times its first network call
//                (getaddrinfo("localhost")): our trace file is created inside it. Traced minus
//                untraced, in microseconds (the descriptor-table RCU stall was 9-14 ms).
//   one-request  a whole process (spawn, exec, load, connect to a loopback server in this
//                process, one HTTP request, exit), wall time from spawn to reap and its CPU
//                time: untraced, preloaded with HTTPTRACE_DISABLE=1 (the cost of loading us),
//                and traced (plus the file: creation, allocation, header, first segment).
//
// Prints per-variant medians and the median of the per-round differences and ratios.
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
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
#include <thread>
#include <vector>

extern char** environ;

namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// --- the children ------------------------------------------------------------------------------

void* sleeper(void*) {
  timespec ts = {0, 300'000'000};
  nanosleep(&ts, nullptr);
  return nullptr;
}

int child_first_call() {
  pthread_t t;
  pthread_create(&t, nullptr, sleeper, nullptr);
  const uint64_t t0 = now_ns();
  addrinfo* ai = nullptr;
  getaddrinfo("localhost", "80", nullptr, &ai);
  const uint64_t t1 = now_ns();
  if (ai != nullptr) freeaddrinfo(ai);
  printf("%llu\n", static_cast<unsigned long long>((t1 - t0) / 1000));
  fflush(stdout);
  _exit(0);  // not waiting for the sleeper
}

int child_request(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return 1;
  const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (write(fd, req, sizeof(req) - 1) != static_cast<ssize_t>(sizeof(req) - 1)) return 1;
  char buf[4096];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
  close(fd);
  return 0;
}

// --- the server --------------------------------------------------------------------------------

int start_server(int* port) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(ls, 64) != 0) return -1;
  socklen_t len = sizeof(sa);
  getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  std::thread([ls] {
    for (;;) {
      const int c = accept(ls, nullptr, nullptr);
      if (c < 0) continue;
      char buf[4096];
      size_t got = 0;
      while (got < sizeof(buf)) {
        const ssize_t n = read(c, buf + got, sizeof(buf) - got);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
        if (memmem(buf, got, "\r\n\r\n", 4) != nullptr) break;
      }
      const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      [[maybe_unused]] ssize_t w = write(c, resp, sizeof(resp) - 1);
      close(c);
    }
  }).detach();
  return 0;
}

// --- the parent --------------------------------------------------------------------------------

struct Outcome {
  uint64_t wall_ns = 0;
  uint64_t cpu_ns = 0;
  std::string out;
};

Outcome spawn(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "HTTPTRACE_", 10) != 0) env_s.push_back(*e);
  }
  env_s.insert(env_s.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp, argv;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_c = args;
  for (auto& s : args_c) argv.push_back(s.data());
  argv.push_back(nullptr);
  int p[2];
  if (pipe(p) != 0) exit(1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  Outcome o;
  const uint64_t t0 = now_ns();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) exit(1);
  close(p[1]);
  char buf[256];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) o.out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int st;
  rusage ru;
  wait4(pid, &st, 0, &ru);
  o.wall_ns = now_ns() - t0;
  o.cpu_ns = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1'000'000'000ull +
             (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
  posix_spawn_file_actions_destroy(&fa);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "fixed_cost: child %s failed\n", args[1].c_str());
    exit(1);
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "child-first-call") == 0) return child_first_call();
  if (argc >= 3 && strcmp(argv[1], "child-request") == 0) return child_request(atoi(argv[2]));
  int rounds = 30;
  std::string base = "/tmp";
  std::string other;
  const char* usage = "usage: fixed_cost [--rounds N] [--dir DIR] [--compare OTHER.so] LIBHTTPTRACE\n";
  // Every option takes a value; anything else that starts with '-' (--help among them) is not a
  // library path.
  int a = 1;
  for (; a < argc && argv[a][0] == '-'; a += 2) {
    const bool known = !strcmp(argv[a], "--rounds") || !strcmp(argv[a], "--dir") || !strcmp(argv[a], "--compare");
    if (!known || a + 1 >= argc) {
      const bool help = !strcmp(argv[a], "--help") || !strcmp(argv[a], "-h");
      if (!help) fprintf(stderr, "fixed_cost: %s: %s\n", argv[a], known ? "needs a value" : "unknown option");
      fputs(usage, help ? stdout : stderr);
      return help ? 0 : 2;
    }
    if (strcmp(argv[a], "--rounds") == 0) rounds = atoi(argv[a + 1]);
    if (strcmp(argv[a], "--dir") == 0) base = argv[a + 1];
    if (strcmp(argv[a], "--compare") == 0) other = std::filesystem::absolute(argv[a + 1]).string();
  }
  if (a + 1 != argc) {
    fputs(usage, stderr);
    return 2;
  }
  const std::string lib = std::filesystem::absolute(argv[a]).string();
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  std::string tmpl_s = base + "/httptrace-fixed-XXXXXX";
  if (mkdtemp(tmpl_s.data()) == nullptr) {
    perror("fixed_cost: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl_s;
  int port = 0;
  if (start_server(&port) != 0) return 1;

  const std::vector<std::string> traced = {"LD_PRELOAD=" + lib, "HTTPTRACE_OUTPUT=" + dir + "/t.%p"};
  const std::vector<std::string> disabled = {"LD_PRELOAD=" + lib, "HTTPTRACE_DISABLE=1"};
  std::vector<std::vector<std::string>> variants = {{}, disabled, traced};
  const std::string other_name = "traced with " + other;
  const char* names[] = {"untraced", "preload, HTTPTRACE_DISABLE=1", "traced", other_name.c_str()};
  if (!other.empty()) {
    variants.push_back({"LD_PRELOAD=" + other, "HTTPTRACE_OUTPUT=" + dir + "/o.%p"});
  }
  const int nv = static_cast<int>(variants.size());

  std::vector<double> first[2], first_diff;
  std::vector<double> wall[4], cpu[4], wall_ratio[3], wall_diff[3], cpu_diff[3];
  for (int r = 0; r < rounds + 2; ++r) {  // two warm-up rounds, not counted
    double f[2], w[4], c[4];
    for (int k = 0; k < 2; ++k) {
      const int v = (r + k) % 2 == 0 ? 0 : 2;
      const Outcome o = spawn({self, "child-first-call"}, variants[v]);
      f[v == 0 ? 0 : 1] = atof(o.out.c_str());
    }
    for (int k = 0; k < nv; ++k) {
      const int v = (r + k) % nv;
      const Outcome o = spawn({self, "child-request", std::to_string(port)}, variants[v]);
      w[v] = o.wall_ns / 1e3;
      c[v] = o.cpu_ns / 1e3;
    }
    // Files are kept until the end, as a user's would be: ext4 makes the creation of an inode
    // right after a deletion much dearer (it scans for one not recently freed).
    if (r < 2) continue;
    for (int k = 0; k < 2; ++k) first[k].push_back(f[k]);
    first_diff.push_back(f[1] - f[0]);
    for (int v = 0; v < nv; ++v) {
      wall[v].push_back(w[v]);
      cpu[v].push_back(c[v]);
    }
    for (int v = 1; v < nv; ++v) {
      wall_ratio[v - 1].push_back(w[v] / w[0]);
      wall_diff[v - 1].push_back(w[v] - w[0]);
      cpu_diff[v - 1].push_back(c[v] - c[0]);
    }
  }
  std::filesystem::remove_all(dir);
  double load[3];
  getloadavg(load, 3);
  printf("fixed_cost: traces in %s\n", base.c_str());
  printf("fixed_cost: %d rounds, load average %.2f %.2f %.2f\n", rounds, load[0], load[1], load[2]);
  printf("first network call with a 2nd thread running (getaddrinfo localhost), median us:\n");
  printf("  untraced %.0f  traced %.0f  per-round difference %+.0f us\n", median(first[0]),
         median(first[1]), median(first_diff));
  printf("one-request process (spawn..reap), median:\n");
  for (int v = 0; v < nv; ++v) {
    printf("  %-30s wall %7.0f us  cpu %6.0f us", names[v], median(wall[v]), median(cpu[v]));
    if (v > 0) {
      printf("  per-round: wall %+5.0f us (x%.3f), cpu %+5.0f us", median(wall_diff[v - 1]),
             median(wall_ratio[v - 1]), median(cpu_diff[v - 1]));
    }
    printf("\n");
  }
  return 0;
}
