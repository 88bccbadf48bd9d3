// A fixed, deterministic sequence of calls for counting instructions per hooked call with
// valgrind --tool=callgrind, the one measurement on this VM that does not move with load
// (no hardware counters: `perf stat -e instructions` is "not supported"). Links nothing of
// httptrace; scripts/bench.sh (part `instr`) runs it bare and under libhttptrace.so and divides
// the inclusive instruction counts of each loop function by its call count.
//
//   build/bench/hook_cost N            the loops below, N calls each
//   build/bench/hook_cost --time N     only the /dev/zero loop, timed: prints ns per read()
//
// Each loop is its own noinline function so callgrind reports it separately:
//   loop_devzero_read   N x read(/dev/zero, 64 bytes): the non-socket path every file read pays
//   loop_pipe_rw        N x write + read of one byte through a pipe
//   loop_tcp_exchange   N x (client send of a request line, server recv + send of a status line,
//                       client recv) on a loopback TCP connection; both ends are tracked (the
//                       accepted socket too, since accept() is recorded), so under the preload
//                       each of the 4 calls records a data event, a direction change with its
//                       capture
//   loop_tcp_same_dir   N x client recv of 1 byte, when the previous call was a recv too (the
//                       common case inside a response: no capture)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

constexpr char kRequest[] = "GET /items/42 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
constexpr char kResponse[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

__attribute__((noinline)) long loop_devzero_read(int fd, long n) {
  char buf[64];
  long total = 0;
  for (long i = 0; i < n; ++i) total += read(fd, buf, sizeof buf);
  return total;
}

__attribute__((noinline)) long loop_pipe_rw(int r, int w, long n) {
  char c = 'x';
  long total = 0;
  for (long i = 0; i < n; ++i) {
    total += write(w, &c, 1);
    total += read(r, &c, 1);
  }
  return total;
}

// Reads exactly len bytes (loopback may split them); bounded by len reads.
long read_exact(int fd, char* buf, size_t len) {
  size_t got = 0;
  for (size_t tries = 0; got < len && tries < len; ++tries) {
    const ssize_t r = recv(fd, buf + got, len - got, 0);
    if (r <= 0) die("recv");
    got += size_t(r);
  }
  return long(got);
}

__attribute__((noinline)) long loop_tcp_exchange(int client, int server, long n) {
  char buf[256];
  long total = 0;
  for (long i = 0; i < n; ++i) {
    total += send(client, kRequest, sizeof kRequest - 1, 0);
    total += read_exact(server, buf, sizeof kRequest - 1);
    total += send(server, kResponse, sizeof kResponse - 1, 0);
    total += read_exact(client, buf, sizeof kResponse - 1);
  }
  return total;
}

__attribute__((noinline)) long loop_tcp_same_dir(int client, int server, long n) {
  char buf[4096];
  std::memset(buf, 'b', sizeof buf);
  long total = 0;
  for (long done = 0; done < n;) {
    const long chunk = n - done < long(sizeof buf) ? n - done : long(sizeof buf);
    if (send(server, buf, size_t(chunk), 0) != chunk) die("send");
    for (long i = 0; i < chunk; ++i) total += read_exact(client, buf, 1);
    done += chunk;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  const bool timed = argc > 2 && std::strcmp(argv[1], "--time") == 0;
  const long n = argc > 1 ? std::atol(argv[timed ? 2 : 1]) : 10000;
  if (n <= 0) die("usage: hook_cost [--time] N");

  const int zero = open("/dev/zero", O_RDONLY);
  if (zero < 0) die("/dev/zero");
  if (timed) {
    loop_devzero_read(zero, n / 10 + 1);  // warm caches and branch predictors
    timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const long sum = loop_devzero_read(zero, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double ns = double(t1.tv_sec - t0.tv_sec) * 1e9 + double(t1.tv_nsec - t0.tv_nsec);
    std::printf("devzero_read_ns=%.2f bytes=%ld\n", ns / double(n), sum);
    return 0;
  }
  int p[2];
  if (pipe(p) != 0) die("pipe");

  const int lst = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (lst < 0 || bind(lst, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lst, 1) != 0 ||
      getsockname(lst, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    die("listen");
  }
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0 || connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  const int server = accept(lst, nullptr, nullptr);
  if (server < 0) die("accept");
  const int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  long sum = loop_devzero_read(zero, n);
  sum += loop_pipe_rw(p[0], p[1], n);
  sum += loop_tcp_exchange(client, server, n);
  sum += loop_tcp_same_dir(client, server, n);
  std::printf("calls per loop %ld, checksum %ld\n", n, sum);
  close(client);
  close(server);
  close(lst);
  return 0;
}
