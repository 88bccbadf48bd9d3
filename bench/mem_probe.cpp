// Resident memory of a small program, read from /proc/self/status at the end of its work, so
// scripts/bench.sh can compare it with and without libhttptrace.so preloaded.
//
//   build/bench/mem_probe keepalive HOST PORT N   N HTTP/1.1 GETs on one keep-alive connection
//                                                 (workload (a) of the side-by-side comparison)
//   build/bench/mem_probe threads N               N threads, each opening, using and closing its
//                                                 own loopback TCP connection; memory is read
//                                                 while all N are still alive
//
// Prints one line: "VmRSS=<kB> VmHWM=<kB> RssAnon=<kB> RssFile=<kB> RssShmem=<kB>".
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

void print_status() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) die("/proc/self/status");
  char line[256];
  std::string out;
  while (std::fgets(line, sizeof line, f)) {
    for (const char* key : {"VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:"}) {
      if (std::strncmp(line, key, std::strlen(key)) == 0) {
        long kb = std::strtol(line + std::strlen(key), nullptr, 10);
        out += std::string(key, std::strlen(key) - 1) + "=" + std::to_string(kb) + " ";
      }
    }
  }
  std::fclose(f);
  std::printf("%s\n", out.c_str());
}

int connect_to(const char* host, const char* port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res) != 0 || !res) die("getaddrinfo");
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) die("connect");
  freeaddrinfo(res);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Reads one response with a Content-Length body (what nginx's `return 200` sends).
void read_response(int fd, std::string& buf) {
  buf.clear();
  size_t header_end = std::string::npos;
  size_t need = 0;
  char chunk[4096];
  for (;;) {
    if (header_end == std::string::npos) {
      header_end = buf.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        size_t cl = buf.find("Content-Length: ");
        if (cl == std::string::npos || cl > header_end) die("response without Content-Length");
        need = header_end + 4 + std::strtoul(buf.c_str() + cl + 16, nullptr, 10);
      }
    }
    if (header_end != std::string::npos && buf.size() >= need) return;
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) die("recv");
    buf.append(chunk, size_t(n));
  }
}

int keepalive(const char* host, const char* port, long n) {
  int fd = connect_to(host, port);
  std::string req = std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n";
  std::string buf;
  for (long i = 0; i < n; ++i) {
    if (send(fd, req.data(), req.size(), 0) != ssize_t(req.size())) die("send");
    read_response(fd, buf);
  }
  close(fd);
  print_status();
  return 0;
}

int threads(long n) {
  int lst = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (lst < 0 || bind(lst, (sockaddr*)&a, sizeof a) != 0 || listen(lst, 4096) != 0 ||
      getsockname(lst, (sockaddr*)&a, &len) != 0)
    die("listen");

  pthread_barrier_t done, measured;
  pthread_barrier_init(&done, nullptr, unsigned(n) + 1);
  pthread_barrier_init(&measured, nullptr, unsigned(n) + 1);
  std::vector<std::thread> ts;
  ts.reserve(size_t(n));
  for (long i = 0; i < n; ++i) {
    ts.emplace_back([&] {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0 || connect(fd, (sockaddr*)&a, sizeof a) != 0) die("connect");
      if (send(fd, "x", 1, 0) != 1) die("send");
      close(fd);
      pthread_barrier_wait(&done);      // every thread has recorded its events ...
      pthread_barrier_wait(&measured);  // ... and stays alive until memory has been read
    });
  }
  // Accepting here keeps the listen backlog from filling, which would stall connects. What the
  // peer sent does not matter: only the client side is measured.
  for (long i = 0; i < n; ++i) {
    int s = accept(lst, nullptr, nullptr);
    if (s < 0) die("accept");
    close(s);
  }
  pthread_barrier_wait(&done);
  print_status();
  pthread_barrier_wait(&measured);
  for (auto& t : ts) t.join();
  close(lst);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view cmd = argc > 1 ? argv[1] : "";
  if (cmd == "keepalive" && argc == 5) return keepalive(argv[2], argv[3], std::atol(argv[4]));
  if (cmd == "threads" && argc == 3) return threads(std::atol(argv[2]));
  std::fprintf(stderr, "usage: mem_probe keepalive HOST PORT N | mem_probe threads N\n");
  return 2;
}
