// Writes a synthetic but well-formed trace file, to time the analyzer on traces far larger than
// a test run produces.
//
//   build/bench/gen_trace -o FILE [-c CONNECTIONS] [-e EVENTS] [-t THREADS] [--tls-every K]
//
// Bytes are laid out exactly as common/trace_format.h says, by the synthetic trace builder the
// analyzer's tests use (tests/support/trace_builder.h, streaming: a segment per thread in memory):
// a FileHeader, then 64 KiB segments, each owned by one thread, whose events are appended and
// covered by `committed`. Threads take segments in the order they fill them, so segments of
// different threads interleave in the file as they do in a real recording. Every connection looks like a small HTTP/1.1 client's: DNS
// lookup, socket, connect, optionally a TLS handshake, then request/response exchanges on the
// same connection (so the reuse report has something to count), then close. Connections are
// interleaved, one per thread at a time; calls never overlap in time (each event starts after
// the previous one's call returned), so every phase ends before the next one of its connection.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/trace_format.h"
#include "tests/support/trace_builder.h"

namespace fmt_ = httptrace::format;
using httptrace::testing::ipv4_host_order;
using httptrace::testing::TraceStreamer;

namespace {

struct Options {
  const char* out = nullptr;
  uint64_t connections = 1000;
  uint64_t events = 100'000;
  int threads = 4;
  uint64_t tls_every = 4;  // every K-th connection has a TLS handshake; 0 = none
  uint64_t hosts = 50;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: gen_trace -o FILE [-c CONNECTIONS] [-e EVENTS] [-t THREADS] "
               "[--tls-every K] [--hosts H]\n");
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    auto number = [&]() { return std::strtoull(value(), nullptr, 10); };
    if (a == "-o") o.out = value();
    else if (a == "-c") o.connections = number();
    else if (a == "-e") o.events = number();
    else if (a == "-t") o.threads = int(number());
    else if (a == "--tls-every") o.tls_every = number();
    else if (a == "--hosts") o.hosts = number();
    else usage();
  }
  if (!o.out || o.connections == 0 || o.threads <= 0 || o.hosts == 0) usage();
  return o;
}

// Deterministic, so two runs produce identical files and timings compare like for like.
struct Rng {
  uint64_t s = 0x9e3779b97f4a7c15u;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

// One connection being generated: its remaining event budget and where it is in its life.
struct Conn {
  uint32_t id = 0;
  int fd = 0;
  uint64_t host = 0;
  bool tls = false;
  uint64_t budget = 0;  // events still to emit, including the close
  int stage = 0;        // 0 dns, 1 socket, 2 connect, 3 tls, 4 exchanges, 5 close, 6 done
  bool send_next = true;
  bool split_recv = false;  // an odd data budget: the first response arrives in two reads
  bool cont_due = false;    // the next event is the second read of that response
  uint64_t request = 0;
};

// Threads are streams 100000 + t of the trace.
class Generator {
 public:
  Generator(const Options& o, TraceStreamer& w, uint64_t t0) : o_(o), w_(w), ts_(t0) {}

  uint64_t requests() const { return requests_; }

  // Emits the next event of c on thread t; returns false once the connection is closed.
  bool step(int t, Conn& c) {
    ts_ += 1000 + rng_.below(50'000);
    const int32_t tid = 100000 + t;
    switch (c.stage) {
      case 0: dns(tid, c); c.stage = 1; break;
      case 1: w_.socket(tid, ts_, c.id, c.fd); c.stage = 2; break;
      case 2: connect(tid, c); c.stage = c.tls ? 3 : 4; break;
      case 3: tls(tid, c); c.stage = 4; break;
      case 4: data(tid, c); break;
      case 5: w_.close(tid, ts_, c.id, c.fd); c.stage = 6; return false;
      default: return false;
    }
    --c.budget;
    // Entering the exchanges: all but the close are data events, and whole exchanges (a send
    // then a recv) keep the request count exact; an odd remainder becomes a second read.
    if (c.stage == 4 && c.request == 0 && c.send_next) c.split_recv = (c.budget - 1) % 2 == 1;
    if (c.budget <= 1 && c.stage >= 4) c.stage = 5;
    return true;
  }

 private:
  std::string host_name(uint64_t h) { return "host" + std::to_string(h) + ".example"; }
  uint32_t host_ip(uint64_t h) { return 0x0a000000u + uint32_t(h) + 1; }  // 10.0.0.h+1
  uint16_t port(const Conn& c) { return c.tls ? 443 : 80; }

  // Each call's duration is drawn before the next event's: the next event, on any thread,
  // starts after this call returned.
  void dns(int32_t tid, Conn& c) {
    const uint64_t dur = 20'000 + rng_.below(200'000);
    w_.dns(tid, ts_, host_name(c.host), dur, {ipv4_host_order(host_ip(c.host))});
    ts_ += dur;
  }

  void connect(int32_t tid, Conn& c) {
    const uint64_t dur = 50'000 + rng_.below(500'000);
    w_.connect(tid, ts_, c.id, c.fd, ipv4_host_order(host_ip(c.host), port(c)), dur, 0,
               ipv4_host_order(0x7f000001u, uint16_t(32768 + c.id % 28000)));
    ts_ += dur;
  }

  void tls(int32_t tid, Conn& c) {
    const uint64_t dur = 300'000 + rng_.below(2'000'000);
    w_.tls_handshake(tid, ts_, c.id, c.fd, dur, "http/1.1", host_name(c.host).c_str(), "TLS_AES_256_GCM_SHA384");
    ts_ += dur;
  }

  void data(int32_t tid, Conn& c) {
    char cap[fmt_::kHttpCaptureMax];
    size_t cap_len = 0;
    const bool send = c.send_next;
    // The rest of a response read in two calls: same direction, so no capture and no flag.
    const bool continued = !send && c.request > 0 && c.split_recv && c.cont_due;
    if (continued) {
    } else if (send) {
      ++requests_;
      cap_len = size_t(std::snprintf(cap, sizeof cap, "GET /item/%llu HTTP/1.1\r\nHost: %s",
                                     (unsigned long long)c.request++,
                                     host_name(c.host).c_str()));
    } else {
      static constexpr char kStatus[] = "HTTP/1.1 200 OK";
      cap_len = sizeof kStatus - 1;
      std::memcpy(cap, kStatus, cap_len);
    }
    const int64_t result = send ? int64_t(cap_len + 40) : int64_t(200 + rng_.below(4000));
    const uint64_t dur = 2'000 + rng_.below(20'000);
    const auto dir = send ? fmt_::Direction::kSend : fmt_::Direction::kRecv;
    const auto call = c.tls ? (send ? fmt_::DataCall::kSslWrite : fmt_::DataCall::kSslRead)
                            : (send ? fmt_::DataCall::kSend : fmt_::DataCall::kRecv);
    const auto kind = continued ? fmt_::CaptureKind::kNone
                      : send    ? fmt_::CaptureKind::kHttpReq
                                : fmt_::CaptureKind::kHttpResp;
    // The builder marks a captured call (the first of its direction) with kDataDirChange.
    w_.data(tid, ts_, c.id, c.fd, dir, result, dur, kind, std::string_view(cap, cap_len),
            uint8_t(c.tls ? fmt_::kDataTlsPlaintext : 0), call);
    ts_ += dur;
    if (continued) {
      c.split_recv = false;
      c.cont_due = false;
      c.send_next = true;
    } else if (send) {
      c.send_next = false;
    } else if (c.split_recv) {
      c.cont_due = true;  // stay on the receive side for one more read
    } else {
      c.send_next = true;
    }
  }

  const Options& o_;
  TraceStreamer& w_;
  uint64_t requests_ = 0;
  uint64_t ts_;
  Rng rng_;
};

uint64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int fd = open(o.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "gen_trace: %s: %s\n", o.out, std::strerror(errno));
    return 1;
  }
  const uint64_t mono = clock_ns(CLOCK_MONOTONIC), real = clock_ns(CLOCK_REALTIME);
  TraceStreamer w(fd, 4242, 1);
  w.header().mono_anchor_ns = mono;
  w.header().real_anchor_ns = real;
  w.set_exe("/usr/bin/synthetic-client", {"synthetic-client", "--generated"});
  Generator g(o, w, mono);

  // Each connection's share of the event budget; the remainder goes to the first ones. A
  // connection needs at least dns+socket+connect+close, plus the handshake when it has TLS.
  const uint64_t per = o.events / o.connections, extra = o.events % o.connections;
  uint64_t next_conn = 0;
  auto start = [&](Conn& c) {
    const uint64_t i = next_conn++;
    c = Conn{};
    c.id = uint32_t(i + 1);
    c.fd = 3 + int(i % 1000);
    c.host = i % o.hosts;
    c.tls = o.tls_every && i % o.tls_every == 0;
    c.budget = std::max<uint64_t>(per + (i < extra ? 1 : 0), c.tls ? 5 : 4);
  };
  // One live connection per thread; threads take turns one event at a time.
  std::vector<Conn> live(size_t(o.threads));
  std::vector<bool> active(live.size(), false);
  for (size_t t = 0; t < live.size() && next_conn < o.connections; ++t) {
    start(live[t]);
    active[t] = true;
  }
  for (bool any = true; any;) {
    any = false;
    for (size_t t = 0; t < live.size(); ++t) {
      if (!active[t]) continue;
      any = true;
      if (!g.step(int(t), live[t])) {
        if (next_conn < o.connections) start(live[t]);
        else active[t] = false;
      }
    }
  }
  if (!w.finish()) {
    std::perror("gen_trace: write");
    return 1;
  }
  close(fd);
  std::printf("%s: events=%llu connections=%llu requests=%llu segments=%llu threads=%d\n", o.out,
              (unsigned long long)w.events(), (unsigned long long)o.connections,
              (unsigned long long)g.requests(), (unsigned long long)w.segments(), o.threads);
  return 0;
}
