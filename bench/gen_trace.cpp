// Writes a synthetic but well-formed trace file, to time the analyzer on traces far larger than
// a test run produces.
//
//   build/bench/gen_trace -o FILE [-c CONNECTIONS] [-e EVENTS] [-t THREADS] [--tls-every K]
//
// Bytes are laid out exactly as common/trace_format.h says: a FileHeader, then 64 KiB segments,
// each owned by one thread, whose events are appended and covered by `committed`. Threads take
// segments in the order they fill them, so segments of different threads interleave in the file
// as they do in a real recording. Every connection looks like a small HTTP/1.1 client's: DNS
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

namespace fmt_ = httptrace::format;

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

class Writer {
 public:
  Writer(int fd, int threads) : fd_(fd), segs_(threads) {
    for (int t = 0; t < threads; ++t) {
      segs_[t].buf.resize(fmt_::kSegmentSize);
      segs_[t].tid = 100000 + t;
    }
  }

  // Appends one event (already holding its header) to thread t's current segment.
  void append(int t, const void* ev, size_t size) {
    Seg& s = segs_[t];
    if (s.used + size > fmt_::kSegmentPayload) flush(t);
    std::memcpy(s.buf.data() + sizeof(fmt_::SegmentHeader) + s.used, ev, size);
    s.used += size;
    ++events_;
  }

  void finish() {
    for (size_t t = 0; t < segs_.size(); ++t)
      if (segs_[t].used) flush(int(t));
  }

  uint64_t segments() const { return next_segment_; }
  uint64_t events() const { return events_; }

 private:
  struct Seg {
    std::vector<uint8_t> buf;
    size_t used = 0;
    uint64_t seq = 0;
    int32_t tid = 0;
  };

  void flush(int t) {
    Seg& s = segs_[t];
    fmt_::SegmentHeader h{};
    h.magic = fmt_::kSegmentMagic;
    h.tid = s.tid;
    h.committed = s.used;
    h.thread_seq = s.seq++;
    std::memcpy(s.buf.data(), &h, sizeof h);
    // Bytes past `committed` are whatever the previous use of the buffer left; a reader must
    // ignore them, and leaving them there checks that it does.
    const off_t at = off_t(fmt_::kHeaderSize) + off_t(next_segment_++) * fmt_::kSegmentSize;
    if (pwrite(fd_, s.buf.data(), fmt_::kSegmentSize, at) != ssize_t(fmt_::kSegmentSize)) {
      std::perror("gen_trace: write");
      std::exit(1);
    }
    s.used = 0;
  }

  int fd_;
  std::vector<Seg> segs_;
  uint64_t next_segment_ = 0;
  uint64_t events_ = 0;
};

fmt_::Addr ipv4(uint32_t host_order_ip, uint16_t port) {
  fmt_::Addr a{};
  a.family = 2;
  a.port = port;
  a.ip[0] = uint8_t(host_order_ip >> 24);
  a.ip[1] = uint8_t(host_order_ip >> 16);
  a.ip[2] = uint8_t(host_order_ip >> 8);
  a.ip[3] = uint8_t(host_order_ip);
  return a;
}

template <typename E>
void set_header(E& e, fmt_::EventKind kind, size_t size, uint32_t conn, uint64_t ts) {
  e.h.kind = uint16_t(kind);
  e.h.size = uint16_t(size);
  e.h.conn = conn;
  e.h.ts_ns = ts;
}

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

class Generator {
 public:
  Generator(const Options& o, Writer& w, uint64_t t0) : o_(o), w_(w), ts_(t0) {}

  uint64_t requests() const { return requests_; }

  // Emits the next event of c on thread t; returns false once the connection is closed.
  bool step(int t, Conn& c) {
    ts_ += 1000 + rng_.below(50'000);
    switch (c.stage) {
      case 0: dns(t, c); c.stage = 1; break;
      case 1: socket(t, c); c.stage = 2; break;
      case 2: connect(t, c); c.stage = c.tls ? 3 : 4; break;
      case 3: tls(t, c); c.stage = 4; break;
      case 4: data(t, c); break;
      case 5: close(t, c); c.stage = 6; return false;
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

  void dns(int t, Conn& c) {
    const std::string name = host_name(c.host);
    alignas(8) uint8_t buf[sizeof(fmt_::DnsEvent) + 256];
    const size_t size = fmt_::padded(sizeof(fmt_::DnsEvent) + name.size());
    std::memset(buf, 0, size);
    auto& e = *reinterpret_cast<fmt_::DnsEvent*>(buf);
    set_header(e, fmt_::EventKind::kDns, size, 0, ts_);
    e.dur_ns = 20'000 + rng_.below(200'000);
    ts_ += e.dur_ns;  // the next event, on any thread, starts after this call returned
    e.lookup_id = ++lookups_;
    e.naddr = 1;
    e.host_len = uint16_t(name.size());
    e.call = uint8_t(fmt_::DnsCall::kGetaddrinfo);
    e.addrs[0] = ipv4(host_ip(c.host), 0);
    std::memcpy(buf + sizeof e, name.data(), name.size());
    w_.append(t, buf, size);
  }

  void socket(int t, Conn& c) {
    fmt_::SocketEvent e{};
    set_header(e, fmt_::EventKind::kSocket, sizeof e, c.id, ts_);
    e.fd = c.fd;
    e.domain = 2;
    e.type = 1;
    w_.append(t, &e, sizeof e);
  }

  void connect(int t, Conn& c) {
    fmt_::ConnectEvent e{};
    set_header(e, fmt_::EventKind::kConnect, sizeof e, c.id, ts_);
    e.dur_ns = 50'000 + rng_.below(500'000);
    ts_ += e.dur_ns;  // the next event, on any thread, starts after this call returned
    e.fd = c.fd;
    e.peer = ipv4(host_ip(c.host), port(c));
    e.local = ipv4(0x7f000001u, uint16_t(32768 + c.id % 28000));
    w_.append(t, &e, sizeof e);
  }

  void tls(int t, Conn& c) {
    fmt_::TlsHandshakeEvent e{};
    set_header(e, fmt_::EventKind::kTlsHandshake, sizeof e, c.id, ts_);
    e.dur_ns = 300'000 + rng_.below(2'000'000);
    ts_ += e.dur_ns;  // the next event, on any thread, starts after this call returned
    e.fd = c.fd;
    e.version = 0x0304;
    e.library = uint8_t(fmt_::TlsLibrary::kOpenssl);
    std::snprintf(e.cipher, sizeof e.cipher, "TLS_AES_256_GCM_SHA384");
    std::snprintf(e.sni, sizeof e.sni, "%s", host_name(c.host).c_str());
    std::snprintf(e.alpn, sizeof e.alpn, "http/1.1");
    w_.append(t, &e, sizeof e);
  }

  void data(int t, Conn& c) {
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
    alignas(8) uint8_t buf[sizeof(fmt_::DataEvent) + sizeof cap + 8];
    const size_t size = fmt_::padded(sizeof(fmt_::DataEvent) + cap_len);
    std::memset(buf, 0, size);
    auto& e = *reinterpret_cast<fmt_::DataEvent*>(buf);
    set_header(e, fmt_::EventKind::kData, size, c.id, ts_);
    e.result = send ? int64_t(cap_len + 40) : int64_t(200 + rng_.below(4000));
    e.dur_ns = 2'000 + rng_.below(20'000);
    ts_ += e.dur_ns;  // the next event, on any thread, starts after this call returned
    e.fd = c.fd;
    e.dir = uint8_t(send ? fmt_::Direction::kSend : fmt_::Direction::kRecv);
    e.call = uint8_t(c.tls ? (send ? fmt_::DataCall::kSslWrite : fmt_::DataCall::kSslRead)
                           : (send ? fmt_::DataCall::kSend : fmt_::DataCall::kRecv));
    e.flags = uint8_t((continued ? 0 : fmt_::kDataDirChange) |
                      (c.tls ? fmt_::kDataTlsPlaintext : 0));
    e.capture_kind = uint8_t(continued ? fmt_::CaptureKind::kNone
                             : send    ? fmt_::CaptureKind::kHttpReq
                                       : fmt_::CaptureKind::kHttpResp);
    e.cap_len = uint16_t(cap_len);
    std::memcpy(buf + sizeof e, cap, cap_len);
    w_.append(t, buf, size);
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

  void close(int t, Conn& c) {
    fmt_::CloseEvent e{};
    set_header(e, fmt_::EventKind::kClose, sizeof e, c.id, ts_);
    e.fd = c.fd;
    e.how = uint8_t(fmt_::CloseHow::kClose);
    w_.append(t, &e, sizeof e);
  }

  const Options& o_;
  Writer& w_;
  uint64_t requests_ = 0;
  uint64_t ts_;
  uint32_t lookups_ = 0;
  Rng rng_;
};

uint64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

void write_header(int fd, uint64_t segments, uint64_t mono, uint64_t real) {
  fmt_::FileHeader h{};
  std::memcpy(h.magic, fmt_::kMagic, sizeof h.magic);
  h.version = fmt_::kVersion;
  h.min_reader_version = fmt_::kMinReaderVersion;
  h.byte_order = fmt_::kByteOrderMark;
  h.header_size = fmt_::kHeaderSize;
  h.segment_size = fmt_::kSegmentSize;
  h.pid = 4242;
  h.ppid = 1;
  h.mono_anchor_ns = mono;
  h.real_anchor_ns = real;
  h.segments_claimed = segments;
  h.max_segments = segments;
  static constexpr char kExe[] = "/usr/bin/synthetic-client";
  static constexpr char kArgv[] = "synthetic-client\0--generated";
  h.exe_len = sizeof kExe - 1;
  std::memcpy(h.exe, kExe, h.exe_len);
  h.argv_len = sizeof kArgv;
  std::memcpy(h.argv, kArgv, h.argv_len);
  h.argc = 2;
  std::vector<uint8_t> page(fmt_::kHeaderSize, 0);
  std::memcpy(page.data(), &h, sizeof h);
  if (pwrite(fd, page.data(), page.size(), 0) != ssize_t(page.size())) {
    std::perror("gen_trace: write header");
    std::exit(1);
  }
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
  Writer w(fd, o.threads);
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
  w.finish();
  write_header(fd, w.segments(), mono, real);
  close(fd);
  std::printf("%s: events=%llu connections=%llu requests=%llu segments=%llu threads=%d\n", o.out,
              (unsigned long long)w.events(), (unsigned long long)o.connections,
              (unsigned long long)g.requests(), (unsigned long long)w.segments(), o.threads);
  return 0;
}
