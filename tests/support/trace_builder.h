// Synthetic trace files, byte for byte per common/trace_format.h (in the manner of uftrace's
// create_test_data()): file header, per-thread segments with committed counts and thread_seq,
// fixed-layout events with padded tails. One encoder of events serves both users:
//
//   TraceBuilder   the whole file in memory, segments interleaved round-robin at the end
//                  (analyzer unit tests, golden traces, fuzz seeds);
//   TraceStreamer  segments written to a file descriptor as they fill, so a trace of many
//                  millions of events costs a segment per thread (bench/gen_trace).
//
// Kept under tests/support/: it is test infrastructure that the bench tools share, not part of
// the product (common/ is what the recorder and the analyzer are built from).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/trace_format.h"

namespace httptrace::testing {

namespace tf = httptrace::format;

inline tf::Addr ipv4(const char* ip, uint16_t port = 0) {
  tf::Addr a{};
  a.family = AF_INET;
  a.port = port;
  inet_pton(AF_INET, ip, a.ip);
  return a;
}

// ip in host byte order (0x0a000001 is 10.0.0.1).
inline tf::Addr ipv4_host_order(uint32_t ip, uint16_t port = 0) {
  tf::Addr a{};
  a.family = AF_INET;
  a.port = port;
  a.ip[0] = uint8_t(ip >> 24);
  a.ip[1] = uint8_t(ip >> 16);
  a.ip[2] = uint8_t(ip >> 8);
  a.ip[3] = uint8_t(ip);
  return a;
}

inline tf::Addr ipv6(const char* ip, uint16_t port = 0) {
  tf::Addr a{};
  a.family = AF_INET6;
  a.port = port;
  inet_pton(AF_INET6, ip, a.ip);
  return a;
}

// The file header and the events. Out (the derived class) takes each encoded event with
// append_event(stream, bytes) and decides where its segments go.
template <class Out> class TraceEncoder {
 public:
  explicit TraceEncoder(int32_t pid = 1000, int32_t ppid = 1) {
    std::memset(&hdr_, 0, sizeof hdr_);
    std::memcpy(hdr_.magic, tf::kMagic, sizeof hdr_.magic);
    hdr_.version = tf::kVersion;
    hdr_.min_reader_version = tf::kMinReaderVersion;
    hdr_.byte_order = tf::kByteOrderMark;
    hdr_.header_size = tf::kHeaderSize;
    hdr_.segment_size = tf::kSegmentSize;
    hdr_.pid = pid;
    hdr_.ppid = ppid;
    hdr_.mono_anchor_ns = 1'000'000'000;
    hdr_.real_anchor_ns = 1'700'000'000'000'000'000;
    set_exe("/usr/bin/client", {"client", "--flag"});
  }

  tf::FileHeader& header() { return hdr_; }
  size_t payload() const { return hdr_.segment_size - sizeof(tf::SegmentHeader); }

  void set_exe(std::string_view exe, const std::vector<std::string>& argv) {
    hdr_.exe_len = static_cast<uint32_t>(exe.size());
    std::memcpy(hdr_.exe, exe.data(), exe.size());
    std::string joined;
    for (const auto& a : argv) joined.append(a).push_back('\0');
    hdr_.argv_len = static_cast<uint32_t>(joined.size());
    hdr_.argc = static_cast<uint32_t>(argv.size());
    std::memcpy(hdr_.argv, joined.data(), joined.size());
  }

  // Appends an event record (fixed struct + tail) to tid's stream. The header's kind/conn/ts must
  // be set by the caller; size is computed.
  template <class T> void add(int32_t tid, T rec, std::string_view tail = {}) {
    size_t size = tf::padded(sizeof(T) + tail.size());
    rec.h.size = static_cast<uint16_t>(size);
    scratch_.assign(size, '\0');  // reuses its buffer: a bench trace has millions of events
    std::memcpy(scratch_.data(), &rec, sizeof(T));
    if (!tail.empty()) std::memcpy(scratch_.data() + sizeof(T), tail.data(), tail.size());
    static_cast<Out*>(this)->append_event(tid, scratch_);
  }

  static tf::EventHeader head(tf::EventKind kind, uint32_t conn, uint64_t ts) {
    return tf::EventHeader{static_cast<uint16_t>(kind), 0, conn, ts};
  }

  void dns(int32_t tid, uint64_t ts, std::string_view host, uint64_t dur, std::vector<tf::Addr> addrs,
           int32_t error = 0) {
    tf::DnsEvent e{};
    e.h = head(tf::EventKind::kDns, 0, ts);
    e.dur_ns = dur;
    e.error = error;
    e.lookup_id = ++lookups_;
    e.naddr = static_cast<uint16_t>(addrs.size());
    e.host_len = static_cast<uint16_t>(host.size());
    e.call = uint8_t(tf::DnsCall::kGetaddrinfo);
    for (size_t i = 0; i < addrs.size() && i < 8; ++i) e.addrs[i] = addrs[i];
    add(tid, e, host);
  }
  void socket(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd) {
    tf::SocketEvent e{};
    e.h = head(tf::EventKind::kSocket, conn, ts);
    e.fd = fd;
    e.domain = AF_INET;
    e.type = 1;
    add(tid, e);
  }
  // local: the connected socket's own address; by default 127.0.0.1:40000+conn (none on error).
  void connect(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, tf::Addr peer, uint64_t dur, int32_t error = 0,
               std::optional<tf::Addr> local = std::nullopt) {
    tf::ConnectEvent e{};
    e.h = head(tf::EventKind::kConnect, conn, ts);
    e.dur_ns = dur;
    e.fd = fd;
    e.error = error;
    e.peer = peer;
    if (local) e.local = *local;
    else if (error == 0) e.local = ipv4("127.0.0.1", 40000 + static_cast<uint16_t>(conn));
    add(tid, e);
  }
  void connect_done(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, int32_t error = 0) {
    tf::ConnectDoneEvent e{};
    e.h = head(tf::EventKind::kConnectDone, conn, ts);
    e.fd = fd;
    e.error = error;
    e.how = uint8_t(tf::ConnectDoneHow::kSoError);
    add(tid, e);
  }
  // call: write()/read() by default. A capture marks a change of direction (kDataDirChange).
  void data(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, tf::Direction dir, int64_t result, uint64_t dur,
            tf::CaptureKind cap = tf::CaptureKind::kNone, std::string_view captured = {}, uint8_t flags = 0,
            std::optional<tf::DataCall> call = std::nullopt) {
    tf::DataEvent e{};
    e.h = head(tf::EventKind::kData, conn, ts);
    e.result = result;
    e.dur_ns = dur;
    e.fd = fd;
    e.dir = uint8_t(dir);
    e.call = call ? uint8_t(*call)
             : dir == tf::Direction::kSend ? uint8_t(tf::DataCall::kWrite)
                                           : uint8_t(tf::DataCall::kRead);
    e.flags = flags | (captured.empty() ? 0 : tf::kDataDirChange);
    e.capture_kind = uint8_t(cap);
    e.cap_len = static_cast<uint16_t>(captured.size());
    add(tid, e, captured);
  }
  void send(int32_t tid, uint64_t ts, uint32_t conn, int64_t n, uint64_t dur, std::string_view req = {}) {
    data(tid, ts, conn, 3, tf::Direction::kSend, n, dur, req.empty() ? tf::CaptureKind::kNone : tf::CaptureKind::kHttpReq,
         req);
  }
  void recv(int32_t tid, uint64_t ts, uint32_t conn, int64_t n, uint64_t dur, std::string_view status = {}) {
    data(tid, ts, conn, 3, tf::Direction::kRecv, n, dur,
         status.empty() ? tf::CaptureKind::kNone : tf::CaptureKind::kHttpResp, status);
  }
  void close(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, int32_t error = 0) {
    tf::CloseEvent e{};
    e.h = head(tf::EventKind::kClose, conn, ts);
    e.fd = fd;
    e.error = error;
    e.how = uint8_t(tf::CloseHow::kClose);
    add(tid, e);
  }
  void dup(int32_t tid, uint64_t ts, uint32_t conn, int32_t oldfd, int32_t newfd) {
    tf::DupEvent e{};
    e.h = head(tf::EventKind::kDup, conn, ts);
    e.oldfd = oldfd;
    e.newfd = newfd;
    add(tid, e);
  }
  void inherit(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, uint32_t parent_conn) {
    tf::InheritEvent e{};
    e.h = head(tf::EventKind::kInherit, conn, ts);
    e.fd = fd;
    e.parent_conn = parent_conn;
    add(tid, e);
  }
  void tls_handshake(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, uint64_t dur, const char* alpn = "http/1.1",
                     const char* sni = "example.com", const char* cipher = "TLS_AES_128_GCM_SHA256") {
    tf::TlsHandshakeEvent e{};
    e.h = head(tf::EventKind::kTlsHandshake, conn, ts);
    e.dur_ns = dur;
    e.fd = fd;
    e.version = 0x0304;
    e.library = uint8_t(tf::TlsLibrary::kOpenssl);
    std::strncpy(e.cipher, cipher, sizeof e.cipher - 1);
    std::strncpy(e.sni, sni, sizeof e.sni - 1);
    std::strncpy(e.alpn, alpn, sizeof e.alpn - 1);
    add(tid, e);
  }

  // v2 records.
  void lost(int32_t tid, uint64_t ts, uint64_t count, tf::DropCause cause) {
    tf::LostEvent e{};
    e.h = head(tf::EventKind::kLost, 0, ts);
    e.count = count;
    e.cause = uint8_t(cause);
    add(tid, e);
  }
  // The rest of this stream's current segment belongs to new_tid / new_uid.
  void handoff(int32_t tid, uint64_t ts, int32_t new_tid, uint64_t new_uid, uint64_t seq = 0) {
    tf::ThreadEvent e{};
    e.h = head(tf::EventKind::kThread, 0, ts);
    e.tid = new_tid;
    e.thread_uid = new_uid;
    e.thread_seq = seq;
    add(tid, e);
  }
  void accept(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, int32_t listen_fd, tf::Addr peer, uint64_t dur) {
    tf::AcceptEvent e{};
    e.h = head(tf::EventKind::kAccept, conn, ts);
    e.dur_ns = dur;
    e.fd = fd;
    e.listen_fd = listen_fd;
    e.peer = peer;
    e.local = ipv4("127.0.0.1", 8080);
    add(tid, e);
  }
  void addr_path(int32_t tid, uint64_t ts, uint32_t conn, int32_t fd, uint8_t which, std::string_view path) {
    tf::AddrPathEvent e{};
    e.h = head(tf::EventKind::kAddrPath, conn, ts);
    e.fd = fd;
    e.which = which;
    e.path_len = static_cast<uint16_t>(path.size());
    add(tid, e, path);
  }
  void stack(int32_t tid, uint64_t ts, const std::vector<uint64_t>& addrs) {
    tf::StackEvent e{};
    e.h = head(tf::EventKind::kStack, 0, ts);
    e.depth = static_cast<uint32_t>(addrs.size());
    add(tid, e, std::string_view(reinterpret_cast<const char*>(addrs.data()), addrs.size() * 8));
  }

 protected:
  tf::FileHeader hdr_;

 private:
  std::string scratch_;
  uint32_t lookups_ = 0;
};

// The whole trace in memory; bytes() lays it out.
class TraceBuilder : public TraceEncoder<TraceBuilder> {
 public:
  using TraceEncoder::TraceEncoder;

  // Smaller segments keep checked-in golden traces small; readers take the size from the header.
  void set_segment_size(uint32_t n) { hdr_.segment_size = n; }

  // Appends raw bytes (possibly a deliberately broken event) to tid's stream.
  void add_raw(int32_t tid, const std::string& bytes) { append_event(tid, bytes); }
  void append_event(int32_t tid, std::string_view bytes) {
    auto& segs = threads_[tid];
    if (segs.empty() || segs.back().size() + bytes.size() > payload() || break_[tid]) segs.emplace_back();
    break_[tid] = false;
    segs.back() += bytes;
  }
  // The next event of this stream starts a new segment.
  void new_segment(int32_t tid) { break_[tid] = true; }

  // The tid argument of every method names a stream of segments. By default its segment headers
  // carry that tid and thread_uid = tid; here a stream gets another thread's identity (two streams
  // with one tid and different uids are a reused tid), and its first thread_seq.
  void set_thread(int32_t stream, int32_t tid, uint64_t uid, uint64_t first_seq = 0) {
    ident_[stream] = {tid, uid, first_seq};
  }

  // Adds a claimed-but-unstarted segment (magic 0), as a writer leaves when a thread claims one
  // and is killed before starting it.
  void add_unstarted_segment() { ++unstarted_; }

  // The file: header, then the threads' segments interleaved round-robin (so per-thread order has
  // to come from thread_seq, not file position), then unstarted segments.
  std::string bytes() const {
    std::vector<std::pair<int32_t, size_t>> order;  // (tid, index within thread)
    size_t max = 0;
    for (const auto& [tid, segs] : threads_) max = std::max(max, segs.size());
    for (size_t i = 0; i < max; ++i)
      for (const auto& [tid, segs] : threads_)
        if (i < segs.size()) order.emplace_back(tid, i);
    tf::FileHeader h = hdr_;
    h.segments_claimed = order.size() + unstarted_;
    std::string out(tf::kHeaderSize + h.segments_claimed * h.segment_size, '\0');
    std::memcpy(out.data(), &h, sizeof h);
    size_t off = tf::kHeaderSize;
    for (const auto& [tid, i] : order) {
      const std::string& payload = threads_.at(tid)[i];
      tf::SegmentHeader sh{};
      sh.magic = tf::kSegmentMagic;
      sh.tid = tid;
      sh.thread_uid = static_cast<uint32_t>(tid);
      sh.committed = payload.size();
      sh.thread_seq = i;
      if (auto it = ident_.find(tid); it != ident_.end()) {
        sh.tid = it->second.tid;
        sh.thread_uid = it->second.uid;
        sh.thread_seq = it->second.first_seq + i;
      }
      std::memcpy(out.data() + off, &sh, sizeof sh);
      std::memcpy(out.data() + off + sizeof sh, payload.data(), payload.size());
      off += h.segment_size;
    }
    return out;
  }

  // Trailing zero bytes of each segment are not needed by a reader; drop the final ones so small
  // test files (and golden files) stay small.
  std::string compact_bytes() const {
    std::string b = bytes();
    size_t end = b.size();
    while (end > tf::kHeaderSize && b[end - 1] == '\0') --end;
    return b.substr(0, (end + 7) & ~size_t{7});
  }

  static bool write_file(const std::string& path, const std::string& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return std::fclose(f) == 0 && ok;
  }

 private:
  std::map<int32_t, std::vector<std::string>> threads_;
  std::map<int32_t, bool> break_;
  struct Ident {
    int32_t tid;
    uint64_t uid, first_seq;
  };
  std::map<int32_t, Ident> ident_;
  size_t unstarted_ = 0;
};

// Writes each stream's segment to fd when it is full (at the next free slot: threads' segments
// interleave in the file as they do in a recording), and the header last. Segment headers carry
// the stream's tid and thread_uid 0 (the reader then names the thread by its tid). A failed
// write is reported by finish().
class TraceStreamer : public TraceEncoder<TraceStreamer> {
 public:
  explicit TraceStreamer(int fd, int32_t pid = 1000, int32_t ppid = 1) : TraceEncoder(pid, ppid), fd_(fd) {}

  void append_event(int32_t tid, std::string_view bytes) {
    Seg& s = segs_[tid];
    if (s.buf.empty()) s.buf.resize(hdr_.segment_size);
    if (s.used + bytes.size() > payload()) flush(tid, s);
    std::memcpy(s.buf.data() + sizeof(tf::SegmentHeader) + s.used, bytes.data(), bytes.size());
    s.used += bytes.size();
    ++events_;
  }

  // Flushes every stream's last segment, then writes the header (segments_claimed and
  // max_segments: the segments written). False if a write failed (errno says why).
  bool finish() {
    for (auto& [tid, s] : segs_)
      if (s.used) flush(tid, s);
    hdr_.segments_claimed = hdr_.max_segments = next_segment_;
    std::vector<uint8_t> page(hdr_.header_size, 0);
    std::memcpy(page.data(), &hdr_, sizeof hdr_);
    if (ok_ && pwrite(fd_, page.data(), page.size(), 0) != ssize_t(page.size())) ok_ = false;
    return ok_;
  }

  uint64_t segments() const { return next_segment_; }
  uint64_t events() const { return events_; }

 private:
  struct Seg {
    std::vector<uint8_t> buf;
    size_t used = 0;
    uint64_t seq = 0;
  };

  void flush(int32_t tid, Seg& s) {
    tf::SegmentHeader h{};
    h.magic = tf::kSegmentMagic;
    h.tid = tid;
    h.committed = s.used;
    h.thread_seq = s.seq++;
    std::memcpy(s.buf.data(), &h, sizeof h);
    // Bytes past `committed` are whatever the previous use of the buffer left; a reader must
    // ignore them, and leaving them there checks that it does.
    const off_t at = off_t(hdr_.header_size) + off_t(next_segment_++) * off_t(hdr_.segment_size);
    if (ok_ && pwrite(fd_, s.buf.data(), s.buf.size(), at) != ssize_t(s.buf.size())) ok_ = false;
    s.used = 0;
  }

  int fd_;
  std::map<int32_t, Seg> segs_;
  uint64_t next_segment_ = 0;
  uint64_t events_ = 0;
  bool ok_ = true;
};

}  // namespace httptrace::testing
