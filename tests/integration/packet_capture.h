// Independent truth from the wire: tcpdump on the loopback interface, for one TCP port, read as
// it captures (text output, line-buffered, nanosecond timestamps). The kernel stamps a loopback
// packet when it is handed to the capture tap on transmit, inside the sender's system call, so a
// packet's time lies within the send() that wrote it.
//
// Start and end are found by the packets themselves: a connection of our own to the port is made
// until tcpdump shows its SYN (it is listening), and another one after the traced run, whose
// SYN, once read, means every packet before it has been read too.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace httptrace::itest {

struct WirePacket {
  uint64_t unix_ns = 0;
  int src_port = 0, dst_port = 0;
  std::string flags;  // tcpdump's: "S", "S.", ".", "P.", "F.", "R", ...
  uint64_t length = 0;  // TCP payload bytes new to the stream (a retransmission's repeat left out)
  uint32_t seq = 0;     // first payload byte's sequence number (absolute: -S)
};

// One TCP connection to the port, from the packets: the client's side is the other port.
struct WireConnection {
  int client_port = 0;
  uint64_t syn_ns = 0, syn_ack_ns = 0, client_fin_ns = 0;
  uint64_t bytes_to_server = 0, bytes_to_client = 0;
  uint64_t retransmitted = 0;  // payload bytes seen again (a tail loss probe, a timeout)
  // Payload packets in order, true when client -> server.
  std::vector<std::pair<bool, WirePacket>> payload;
  // Request/response turns: a client payload after a server payload (or the first) starts one.
  struct Turn {
    uint64_t first_request_ns = 0, last_request_ns = 0;
    uint64_t first_response_ns = 0, last_response_ns = 0;
    uint64_t request_bytes = 0, response_bytes = 0;
  };
  std::vector<Turn> turns() const {
    std::vector<Turn> t;
    bool last_from_client = false;
    for (const auto& [to_server, p] : payload) {
      if (to_server) {
        if (t.empty() || !last_from_client) t.push_back({p.unix_ns, p.unix_ns, 0, 0, 0, 0});
        t.back().last_request_ns = p.unix_ns;
        t.back().request_bytes += p.length;
      } else if (!t.empty()) {
        if (t.back().first_response_ns == 0) t.back().first_response_ns = p.unix_ns;
        t.back().last_response_ns = p.unix_ns;
        t.back().response_bytes += p.length;
      }
      last_from_client = to_server;
    }
    return t;
  }
};

// "1764713000.123456789 IP 127.0.0.1.53012 > 127.0.0.1.41235: Flags [S.], seq ..., length 0"
inline bool parse_tcpdump_line(const std::string& line, WirePacket* p) {
  const size_t dot = line.find('.'), sp = line.find(' ');
  if (dot == std::string::npos || sp == std::string::npos || dot > sp || sp - dot != 10) return false;
  p->unix_ns = std::stoull(line.substr(0, dot)) * 1000000000ull + std::stoull(line.substr(dot + 1, 9));
  const size_t gt = line.find(" > ");
  const size_t colon = line.find(": ", gt);
  const size_t fl = line.find("Flags [", colon);
  const size_t len_at = line.rfind(", length ");
  if (gt == std::string::npos || colon == std::string::npos || fl == std::string::npos ||
      len_at == std::string::npos) {
    return false;
  }
  auto port_of = [](const std::string& endpoint) { return std::atoi(endpoint.substr(endpoint.rfind('.') + 1).c_str()); };
  p->src_port = port_of(line.substr(0, gt));
  p->dst_port = port_of(line.substr(gt + 3, colon - gt - 3));
  p->flags = line.substr(fl + 7, line.find(']', fl) - fl - 7);
  p->length = std::stoull(line.substr(len_at + 9));
  // "seq 1000:1255," on a packet with payload; "seq 1000," (SYN, FIN) or none (a bare ACK).
  const size_t seq_at = line.find(", seq ", fl);
  if (p->length > 0) {
    if (seq_at == std::string::npos) return false;
    p->seq = static_cast<uint32_t>(std::stoull(line.substr(seq_at + 6)));
  }
  return true;
}

// The connections in packets to port, the clients' ports in ours left out; each byte of payload
// counted once.
inline std::map<int, WireConnection> connections_from(const std::vector<WirePacket>& packets, int port,
                                                      const std::map<int, bool>& ours) {
  std::map<int, WireConnection> out;
  // Per connection and direction, the sequence number one past the highest byte seen.
  std::map<std::pair<int, bool>, uint32_t> next_seq;
  for (WirePacket p : packets) {
    const bool to_server = p.dst_port == port;
    const int client = to_server ? p.src_port : p.dst_port;
    if (ours.count(client) != 0) continue;
    WireConnection& c = out[client];
    c.client_port = client;
    if (p.flags == "S") c.syn_ns = p.unix_ns;
    if (p.flags == "S.") c.syn_ack_ns = p.unix_ns;
    if (to_server && p.flags.find('F') != std::string::npos && c.client_fin_ns == 0) c.client_fin_ns = p.unix_ns;
    // A loaded machine makes the kernel send a tail loss probe on lo too (one 255-byte session
    // ticket twice in CI): the program reads those bytes once, and so does this count.
    if (p.length > 0) {
      uint32_t& next = next_seq.try_emplace({client, to_server}, p.seq).first->second;
      const int32_t behind = static_cast<int32_t>(next - p.seq);  // > 0: bytes seen already
      const uint64_t repeat = behind > 0 ? std::min<uint64_t>(p.length, static_cast<uint64_t>(behind)) : 0;
      c.retransmitted += repeat;
      p.seq += static_cast<uint32_t>(repeat);
      p.length -= repeat;
      const uint32_t end = p.seq + static_cast<uint32_t>(p.length);
      if (static_cast<int32_t>(end - next) > 0) next = end;
    }
    if (p.length > 0) {
      (to_server ? c.bytes_to_server : c.bytes_to_client) += p.length;
      c.payload.emplace_back(to_server, p);
    }
  }
  return out;
}

class PacketCapture {
 public:
  explicit PacketCapture(int port) : port_(port) {
    const char* tcpdump = "/usr/bin/tcpdump";
    if (access(tcpdump, X_OK) != 0) {
      reason_ = "tcpdump is not installed (scripts/install-deps.sh --test)";
      return;
    }
    RunOptions o;
    o.timeout = std::chrono::milliseconds(60000);
    // -l: every packet at once; -nn: numeric; -tt + nano: seconds.nanoseconds; -S: absolute
    // sequence numbers (nothing relative to remember across lines). -s 128 -B: the ring holds
    // one frame per snap length, and with the default 256 KiB snap a burst of four threads
    // overflowed it and the kernel dropped packets; headers are all we read (the payload length
    // comes from the IP header, not the captured bytes).
    if (!tcpdump_.start({tcpdump, "-i", "lo", "-l", "-nn", "-tt", "-S", "--immediate-mode", "-s", "128", "-B", "8192",
                         "--time-stamp-precision=nano", "tcp", "port", std::to_string(port)},
                        o, false, &reason_)) {
      return;
    }
    started_ = true;
    // Listening once it shows a SYN of ours; bounded: each wait is 200 ms, at most 50 of them.
    for (int i = 0; i < 50 && !ready_; ++i) {
      const int mine = poke();
      ready_ = mine > 0 && read_until_syn_from(mine, std::chrono::milliseconds(200));
    }
    if (!ready_) reason_ = "tcpdump captured nothing on lo (no CAP_NET_RAW?): " + tcpdump_.wait(std::chrono::milliseconds(2000)).describe();
  }
  ~PacketCapture() {
    if (started_) {
      tcpdump_.signal(SIGTERM);
      tcpdump_.wait(std::chrono::milliseconds(5000));
    }
  }
  PacketCapture(const PacketCapture&) = delete;
  PacketCapture& operator=(const PacketCapture&) = delete;

  bool ready() const { return ready_; }
  const std::string& reason() const { return reason_; }

  // Every connection seen since the capture became ready, ours left out; false (see reason())
  // if the closing SYN of ours never showed or the kernel dropped a packet: truth with a hole in
  // it is no truth.
  bool finish(std::map<int, WireConnection>* out) {
    const int mine = poke();
    if (mine <= 0 || !read_until_syn_from(mine, std::chrono::milliseconds(10000))) {
      reason_ = "the capture's closing SYN never showed";
      return false;
    }
    tcpdump_.signal(SIGTERM);
    const RunResult end = tcpdump_.wait(std::chrono::milliseconds(5000));
    started_ = false;
    const size_t at = end.err.find(" packets dropped by kernel");
    const size_t from = end.err.rfind('\n', at) == std::string::npos ? 0 : end.err.rfind('\n', at) + 1;
    if (at == std::string::npos || std::stoull(end.err.substr(from, at - from)) != 0) {
      reason_ = "tcpdump lost packets: " + end.describe();
      return false;
    }
    *out = connections_from(packets_, port_, ours_);
    return true;
  }

 private:
  // A connection of our own to the port, opened and closed: its client port, or -1.
  int poke() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int local = -1;
    if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      local = ntohs(a.sin_port);
      ours_[local] = true;
    }
    if (fd >= 0) close(fd);
    return local;
  }

  bool read_until_syn_from(int client_port, std::chrono::milliseconds timeout) {
    std::string line;
    while (tcpdump_.read_line(&line, timeout)) {
      WirePacket p;
      if (!parse_tcpdump_line(line, &p)) continue;
      packets_.push_back(p);
      if (p.src_port == client_port && p.flags == "S") return true;
    }
    return false;
  }

  int port_;
  Child tcpdump_;
  bool started_ = false, ready_ = false;
  std::string reason_;
  std::vector<WirePacket> packets_;
  std::map<int, bool> ours_;
};

}  // namespace httptrace::itest
