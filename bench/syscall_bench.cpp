// Calls a traced program makes, timed from inside the program. This binary links nothing of
// httptrace: scripts/bench.sh runs it as is, under a no-op preload, under
// HTTPTRACE_DISABLE=1 and under the real libhttptrace.so, and divides the medians. The
// differences are what the hooks cost.
//
// Everything runs on one thread so no result depends on the scheduler waking a peer.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

struct Pipe {
  int r = -1, w = -1;
  explicit Pipe(bool nonblock) {
    int p[2];
    if (pipe2(p, nonblock ? O_NONBLOCK : 0) != 0) die("pipe2");
    r = p[0];
    w = p[1];
  }
  ~Pipe() { close(r); close(w); }
};

// The cheapest possible non-socket read: an empty non-blocking pipe, so the kernel returns
// EAGAIN at once and the hook's fd check is a larger share of the total than for any real read.
void BM_PipeReadEmpty(benchmark::State& state) {
  Pipe p(true);
  char c;
  for (auto _ : state) {
    ssize_t n = read(p.r, &c, 1);
    benchmark::DoNotOptimize(n);
  }
}
BENCHMARK(BM_PipeReadEmpty);

// A read that moves a byte; the write that refills the pipe is hooked too (also a non-socket fd).
void BM_PipeWriteRead(benchmark::State& state) {
  Pipe p(false);
  char c = 'x';
  for (auto _ : state) {
    if (write(p.w, &c, 1) != 1) die("write");
    if (read(p.r, &c, 1) != 1) die("read");
  }
}
BENCHMARK(BM_PipeWriteRead);

// A connected loopback TCP pair made with socket()+connect() on the client side, so a tracer
// sees (and tracks) the client socket the way it would a real program's.
struct TcpPair {
  int client = -1, server = -1;
  TcpPair() {
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    if (lst < 0) die("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(lst, (sockaddr*)&a, sizeof a) != 0 || listen(lst, 1) != 0 ||
        getsockname(lst, (sockaddr*)&a, &len) != 0)
      die("listen");
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 || connect(client, (sockaddr*)&a, sizeof a) != 0) die("connect");
    server = accept(lst, nullptr, nullptr);
    if (server < 0) die("accept");
    close(lst);
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~TcpPair() { close(client); close(server); }
};

// One request/response round: client send, server recv, server send, client recv.
// Counted per round (4 calls, 2 of them on the tracked client socket).
void BM_TcpPingPong(benchmark::State& state) {
  TcpPair t;
  char buf[64];
  const char req[] = "ping";
  const char resp[] = "pong";
  for (auto _ : state) {
    if (send(t.client, req, 4, 0) != 4) die("send");
    if (recv(t.server, buf, sizeof buf, 0) != 4) die("recv");
    if (send(t.server, resp, 4, 0) != 4) die("send");
    if (recv(t.client, buf, sizeof buf, 0) != 4) die("recv");
  }
  benchmark::DoNotOptimize(buf);
}
BENCHMARK(BM_TcpPingPong);

// The same calls with nothing to wait for on the tracked socket: recv on an empty non-blocking
// client socket returns EAGAIN. Isolates the hook's per-call cost on a socket from the loopback
// round trip, which is large and noisy next to it.
void BM_TcpRecvEmpty(benchmark::State& state) {
  TcpPair t;
  char buf[64];
  fcntl(t.client, F_SETFL, fcntl(t.client, F_GETFL) | O_NONBLOCK);
  for (auto _ : state) {
    ssize_t n = recv(t.client, buf, sizeof buf, 0);
    benchmark::DoNotOptimize(n);
  }
}
BENCHMARK(BM_TcpRecvEmpty);

}  // namespace

BENCHMARK_MAIN();
