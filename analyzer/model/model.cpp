#include "analyzer/model/model.h"

#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>

#include <fmt/format.h>

#include "analyzer/model/addr_format.h"
#include "analyzer/model/conn_table.h"
#include "analyzer/model/exchange_builder.h"
#include "analyzer/model/h2_streams.h"
#include "analyzer/model/http_sniff.h"
#include "analyzer/model/new_reason.h"
#include "analyzer/model/protocol.h"
#include "analyzer/model/tls_wire.h"
#include "analyzer/model/trace_context.h"
#include "analyzer/model/wire_tls_tracker.h"

namespace httptrace::analyzer {

namespace {

constexpr size_t kDnsTieWindow = 256;  // lookups searched back per process for a connect

constexpr uint64_t kAttemptWindowNs = 1'000'000'000;  // a claimed attempt ended at most this long before
constexpr size_t kMaxHeldAttempts = 16;  // per process; more unclaimed ones are reported at once

// ::ffff:a.b.c.d as a.b.c.d; any other address unchanged.
tf::Addr unmapped(const tf::Addr& a) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.family != AF_INET6 || std::memcmp(a.ip, kMapped, sizeof kMapped) != 0) return a;
  tf::Addr v4{};
  v4.family = AF_INET;
  v4.port = a.port;
  std::memcpy(v4.ip, a.ip + 12, 4);
  return v4;
}

bool same_ip(const tf::Addr& x, const tf::Addr& y) {
  const tf::Addr a = unmapped(x), b = unmapped(y);
  if (a.family != b.family) return false;
  // Constant lengths: compared inline (a memcmp call per open connection per connect showed).
  return a.family == AF_INET ? std::memcmp(a.ip, b.ip, 4) == 0 : std::memcmp(a.ip, b.ip, 16) == 0;
}

std::string fixed_str(const char* s, size_t cap) { return std::string(s, strnlen(s, cap)); }

const char* library_name(uint8_t lib) {
  switch (static_cast<tf::TlsLibrary>(lib)) {
    case tf::TlsLibrary::kOpenssl: return "openssl";
    case tf::TlsLibrary::kGnutls: return "gnutls";
    case tf::TlsLibrary::kWire: return "wire";
  }
  return "unknown";
}

// Frame headers are 9 bytes: length:24, type:8, flags:8, R:1 + stream:31. A client opens a stream
// with a HEADERS frame (type 1) on a new, increasing odd id; later HEADERS (trailers) reuse it.
// The server answers a stream with its first HEADERS frame on that id (responses may come in any
// order, and a later HEADERS on the same stream is trailers): one bit per client stream.
void count_h2_streams(Connection& c, std::string_view frames, bool sent) {
  for (size_t i = 0; i + 9 <= frames.size(); i += 9) {
    const auto* f = reinterpret_cast<const uint8_t*>(frames.data() + i);
    const uint32_t stream =
        ((uint32_t{f[5]} << 24) | (uint32_t{f[6]} << 16) | (uint32_t{f[7]} << 8) | f[8]) & 0x7fffffffu;
    if (f[3] != 1 || stream % 2 == 0) continue;
    if (sent && stream > c.h2_max_stream) {
      c.h2_max_stream = stream;
      ++c.h2_streams;
    } else if (!sent) {
      const size_t bit = stream / 2;
      if (bit >= (1u << 20)) continue;  // a hostile trace must not make us allocate without bound
      if (c.h2_answered.size() <= bit) c.h2_answered.resize(bit + 1);
      if (!c.h2_answered[bit]) {
        c.h2_answered[bit] = true;
        ++c.h2_responses;
      }
    }
  }
}

}  // namespace

std::string format_addr(const tf::Addr& a, bool with_port) {
  char buf[kMaxAddrText];
  return std::string(buf, format_addr_to(buf, a, with_port));
}

std::string errno_name(int err) {
  if (err == 0) return "";
  if (const char* n = strerrorname_np(err)) return n;
  return fmt::format("E{}", err);
}

std::string dns_error_name(uint8_t call, int32_t error) {
  if (error == 0) return "";
  if (call == uint8_t(tf::DnsCall::kGetaddrinfo)) {
    switch (error) {
      case EAI_BADFLAGS: return "EAI_BADFLAGS";
      case EAI_NONAME: return "EAI_NONAME";
      case EAI_AGAIN: return "EAI_AGAIN";
      case EAI_FAIL: return "EAI_FAIL";
      case EAI_FAMILY: return "EAI_FAMILY";
      case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
      case EAI_SERVICE: return "EAI_SERVICE";
      case EAI_MEMORY: return "EAI_MEMORY";
      case EAI_SYSTEM: return "EAI_SYSTEM";
      case EAI_OVERFLOW: return "EAI_OVERFLOW";
      case EAI_NODATA: return "EAI_NODATA";
      case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
    }
    return fmt::format("EAI_{}", error);
  }
  switch (error) {
    case HOST_NOT_FOUND: return "HOST_NOT_FOUND";
    case TRY_AGAIN: return "TRY_AGAIN";
    case NO_RECOVERY: return "NO_RECOVERY";
    case NO_DATA: return "NO_DATA";
  }
  return fmt::format("h_errno {}", error);
}

const char* new_reason_name(NewReason r) {
  switch (r) {
    case NewReason::kNone: return nullptr;
    case NewReason::kFirst: return "first";
    case NewReason::kBusy: return "busy";
    case NewReason::kPoolMiss: return "pool_miss";
    case NewReason::kClosedByPeer: return "closed_by_peer";
    case NewReason::kResetOnReuse: return "reset_on_reuse";
    case NewReason::kClosedByClient: return "closed_by_client";
  }
  return nullptr;
}

std::string Connection::endpoint_host() const {
  if (tunnel && direction == ConnDirection::kOutbound && !tunnel->host.empty()) return tunnel->host;
  return host ? *host : format_addr(peer, false);
}

struct Model::ConnState {
  Connection c;
  uint32_t file = 0;
  int open_fds = 1;
  ExchangeBuilder wire, plain;
  bool saw_plain = false;
  WireTlsTracker wire_tls;
  std::optional<TlsInfo> lib_tls;
  ProtocolDecision protocol;
  std::string first_host;  // Host header of the first sniffed request
  int32_t connect_tid = 0;
  bool accepted = false;  // an inbound connection (AcceptEvent)
  // Busy or idle: connections opened while this one was reading a response, waiting for its next
  // call to tell whether that response was complete (then they are pool misses).
  std::vector<uint32_t> miss_waiters;
  uint32_t miss_pending = 0;  // candidates this connection still waits on
  // The exchange opened by what looked like the client's closing alert, while nothing followed it.
  std::optional<uint32_t> close_notify_index;
  // A status line read a byte at a time (tf::kDataStatusLineMore), while it is being completed.
  std::string status_line;
  // Through an HTTP proxy: the target its first CONNECT named, "" when none (new_reason keys the
  // endpoint by proxy and target). reason_deferred: connected to a peer known to be a proxy, so
  // the reason waits for its first request, which says which endpoint it is for.
  std::string proxy_target;
  bool reason_deferred = false;
  uint64_t attempt_end_ns = 0;  // for a held attempt: when it was given up
  // The same connection in another traced process (mirrored addresses), when one is loaded.
  uint32_t mirror_file = kNoFile, mirror_conn = 0;
  std::string mirror_id;
  bool in_tuple_index = false;
  // Inbound: the thread that read its last request (its thread_uid), while it is registered.
  uint64_t serving_thread = 0;
  bool serving = false;
  uint64_t children_cover_end = 0;  // the union of its children's time so far ends here
  // Outbound: the inbound request the current exchange was made for.
  uint32_t parent_file = kNoFile, parent_conn = 0, parent_index = 0;
  static constexpr uint32_t kNoFile = UINT32_MAX;
  H2Streams h2;  // h2: the streams, which become the requests (h2_streams.h)
  // new_reason (new_reason.h): the server ended it (EOF/RST seen) before our close; a later
  // connect already named it as replaced; the idle one it could have used, and for how long.
  bool peer_ended = false, replaced_by_later = false;
  std::string miss_id;
  uint64_t miss_idle_ns = 0;
  RequestIds ids;  // derived span / trace ids of its requests (ids_of())

  bool moved_bytes() const { return c.bytes_sent || c.bytes_received || saw_plain; }
  // Never connected and never used: a probe, a listening socket. Not a connection at all.
  bool never_connected() const { return !c.has_connect && !accepted && !c.inherited && !moved_bytes() && !lib_tls; }
  bool is_attempt() const {
    return c.has_connect && (c.connect_pending || c.connect_error != 0) && !moved_bytes() && !c.inherited;
  }
  ConnectAttempt as_attempt() const {
    ConnectAttempt a;
    a.peer = c.peer;
    a.start_ns = c.connect_start_ns;
    a.duration_ns = c.connect_pending ? attempt_end_ns - std::min(attempt_end_ns, c.connect_start_ns)
                                      : c.connect_duration_ns;
    a.error = c.connect_pending ? 0 : c.connect_error;
    return a;
  }

  ExchangeBuilder& active() { return (saw_plain || lib_tls) ? plain : wire; }
  // Inbound: the request an outbound call made now would be for (a stream, on h2), or nullptr.
  Exchange* open_request() {
    if (protocol.h2()) return h2.only_open();
    return active().sending() ? active().current() : nullptr;
  }
  // The id stays, but an exec'd image's file has its own anchor.
  const RequestIds& ids_of(uint64_t anchor) {
    if (!ids.valid_for(anchor)) ids = RequestIds(anchor, c.id);
    return ids;
  }
};

struct Model::ProcState {
  std::string id_prefix;  // "pid" or "pid.gen" when an exec'd image reuses the pid
  std::array<uint8_t, 16> tree_trace{};  // the trace of its process tree's own requests
  ConnTable<ConnState> conns;  // owns the open connections
  EndpointHistory endpoints;   // how recent connections ended, for new_reason
  std::vector<tf::Addr> proxies;  // peers a CONNECT was sent to (a few: bounded by kMaxProxies)
  static constexpr size_t kMaxProxies = 16;
  // The last kDnsTieWindow lookups, for tying connects: a ring whose slots are overwritten in
  // place, so their strings and vectors keep their buffers and a lookup costs no allocation.
  struct RecentDns {
    DnsLookup l;
    std::vector<uint16_t> ports;  // peer ports of the connections tied to it so far
  };
  std::vector<RecentDns> recent_dns = std::vector<RecentDns>(kDnsTieWindow);
  // Attempts given up and not yet claimed by a winner, in the order they ended.
  std::vector<std::unique_ptr<ConnState>> held;
  size_t recent_head = 0, recent_n = 0;
  uint64_t max_dns_ns = 0;  // longest lookup so far
  // The open inbound connections whose last request each thread read (by thread_uid). A thread
  // that ever had two at once multiplexes them (an event loop): its outbound requests are tied to
  // an inbound one only while exactly one is unanswered, and with less confidence than those of
  // a thread that serves one connection at a time. Entries go when empty, unless multiplexing.
  struct Serving {
    std::vector<uint32_t> conns;
    bool multiplexed = false;
  };
  std::unordered_map<uint64_t, Serving> serving;
  RecentDns& recent(size_t age) {  // 0 = newest
    return recent_dns[(recent_head + recent_n - 1 - age) % kDnsTieWindow];
  }
};

// Open connections by their two addresses, across every loaded file: a connection whose local
// address is another's peer and whose peer is the other's local is the same TCP connection seen
// from its other end (SPEC §5). IPv4-mapped addresses are compared as IPv4.
struct Model::TupleIndex {
  using Key = std::array<uint8_t, 2 * 19>;  // per end: family, port, 16 address bytes
  struct Hash {
    // A word at a time (a byte-wise FNV over 38 bytes was a visible share of reuse's time).
    size_t operator()(const Key& k) const {
      uint64_t w[5] = {};
      std::memcpy(w, k.data(), k.size());
      uint64_t h = 0x9e3779b97f4a7c15ull;
      for (uint64_t x : w) h = (h ^ x) * 0xff51afd7ed558ccdull, h ^= h >> 32;
      return h;
    }
  };
  static void put(uint8_t* p, const tf::Addr& x) {
    const tf::Addr a = unmapped(x);
    p[0] = static_cast<uint8_t>(a.family);
    std::memcpy(p + 1, &a.port, 2);
    std::memcpy(p + 3, a.ip, 16);
  }
  static Key key(const tf::Addr& local, const tf::Addr& peer) {
    Key k{};
    put(k.data(), local);
    put(k.data() + 19, peer);
    return k;
  }
  std::unordered_map<Key, std::pair<uint32_t, uint32_t>, Hash> open;  // -> (file, conn)
};

Model::Model(const TraceSet& traces, ConnectionSink& sink, bool keep_dns)
    : traces_(traces), sink_(sink), keep_dns_(keep_dns), tuples_(std::make_unique<TupleIndex>()) {
  const auto& files = traces.files();
  for (size_t i = 0; i < files.size(); ++i) {
    auto p = std::make_unique<ProcState>();
    int gen = 0;
    for (size_t j = 0; j < i; ++j) gen += files[j].pid == files[i].pid;
    p->id_prefix = gen == 0 ? fmt::format("{}", files[i].pid) : fmt::format("{}.{}", files[i].pid, gen);
    // The tree's root: the oldest loaded ancestor (the first file of each pid names it).
    const TraceFile* root = &files[i];
    for (size_t hops = 0; hops < files.size(); ++hops) {  // bounded: a pid cycle cannot loop
      const TraceFile* up = nullptr;
      for (const TraceFile& f : files)
        if (f.pid == root->ppid) {
          up = &f;
          break;
        }
      if (!up || up == root) break;
      root = up;
    }
    p->tree_trace = tree_trace_id(root->pid, root->real_anchor_ns);
    procs_.push_back(std::move(p));
  }
}

Model::~Model() = default;

std::vector<ProcessInfo> Model::processes() const {
  std::vector<ProcessInfo> out;
  for (const auto& f : traces_.files()) out.push_back({f.pid, f.ppid, f.exe, f.argv, f.dropped_events});
  return out;
}

uint64_t Model::dropped_events() const {
  uint64_t n = 0;
  for (const auto& f : traces_.files()) n += f.dropped_events;
  return n;
}

Model::ConnState* Model::find(uint32_t file, uint32_t conn) { return procs_[file]->conns.find(conn); }

// Events of a socket created before tracing started (or whose SocketEvent was lost) still make a
// connection, starting at its first sighting.
Model::ConnState* Model::get_or_create(const Event& ev) {
  if (ConnState* c = find(ev.file, ev.h->conn)) return c;
  ProcState& p = *procs_[ev.file];
  std::unique_ptr<ConnState> st;
  if (free_.empty()) {
    st = std::make_unique<ConnState>();
  } else {
    st = std::move(free_.back());
    free_.pop_back();
  }
  st->file = ev.file;
  st->c.pid = ev.pid;
  st->c.conn = ev.h->conn;
  // Built by hand: one fmt::format per connection was a visible share of a many-connection export.
  char id[32];
  char* end = std::to_chars(id, id + sizeof id, ev.h->conn).ptr;
  st->c.id.reserve(p.id_prefix.size() + 1 + size_t(end - id));
  st->c.id.append(p.id_prefix).append(1, ':').append(id, end);
  st->c.start_ns = ev.h->ts_ns;
  return p.conns.insert(ev.h->conn, std::move(st));
}

void Model::on_event(const Event& ev) {
  using K = tf::EventKind;
  const K kind = ev.kind();
  last_ts_ = std::max(last_ts_, ev.h->ts_ns);
  if (!procs_[ev.file]->held.empty()) expire_attempts(ev.file, ev.h->ts_ns, false);
  if (kind == K::kDns) return on_dns(ev);
  if (kind == K::kLost) {
    // Which connection lost what is not known; every one open in the process may miss events.
    procs_[ev.file]->conns.for_each([](uint32_t, ConnState& s) { s.c.events_lost = true; });
    return;
  }
  const uint32_t conn = ev.h->conn;
  if (conn == 0) return;  // fork, exec, stacks: not tied to a connection
  switch (kind) {
    case K::kSocket: {
      if (find(ev.file, conn)) close(ev.file, conn, std::nullopt);  // id reuse: lost close
      ConnState* c = get_or_create(ev);
      c->c.fd = ev.as<tf::SocketEvent>().fd;
      return;
    }
    case K::kConnect: return on_connect(ev, *get_or_create(ev));
    case K::kConnectDone: {
      ConnState* c = find(ev.file, conn);
      const auto& d = ev.as<tf::ConnectDoneEvent>();
      if (!c || !c->c.connect_pending) return;
      c->c.connect_pending = false;
      c->c.connect_duration_ns = ev.h->ts_ns > c->c.connect_start_ns ? ev.h->ts_ns - c->c.connect_start_ns : 0;
      c->c.connect_error = d.error;
      if (d.local.family) c->c.local = d.local;
      if (d.error == 0) index_addresses(*c);
      return;
    }
    case K::kData: return on_data(ev, *get_or_create(ev));
    case K::kClose: {
      const auto& d = ev.as<tf::CloseEvent>();
      ConnState* c = find(ev.file, conn);
      if (!c || d.how != uint8_t(tf::CloseHow::kClose) || d.error == EBADF) return;
      if (--c->open_fds <= 0) close(ev.file, conn, ev.h->ts_ns);
      return;
    }
    case K::kDup: {
      if (ConnState* c = find(ev.file, conn)) ++c->open_fds;
      return;
    }
    case K::kInherit: return on_inherit(ev, *get_or_create(ev));
    // v2 kinds: sized checks, since a reader may deliver a kind it knows only by its header.
    case K::kExecInherit:
      if (ev.h->size >= sizeof(tf::InheritEvent)) on_exec_inherit(ev);
      return;
    case K::kAccept: {
      if (ev.h->size < sizeof(tf::AcceptEvent)) return;
      if (find(ev.file, conn)) close(ev.file, conn, std::nullopt);  // id reuse: lost close
      const auto& d = ev.as<tf::AcceptEvent>();
      ConnState* c = get_or_create(ev);
      c->accepted = true;
      c->c.direction = ConnDirection::kInbound;
      c->c.fd = d.fd;
      c->c.peer = d.peer;
      c->c.local = d.local;
      index_addresses(*c);
      return;
    }
    case K::kTlsHandshake: return on_tls_handshake(ev, *get_or_create(ev));
    case K::kH2Headers: {
      if (ev.h->size < sizeof(tf::H2HeadersEvent)) return;
      const auto& d = ev.as<tf::H2HeadersEvent>();
      ConnState& c = *get_or_create(ev);
      const bool is_send = d.dir == uint8_t(tf::Direction::kSend);
      c.h2.on_headers(d, std::string_view(reinterpret_cast<const char*>(ev.tail<tf::H2HeadersEvent>()),
                                          ev.h->size - sizeof d),
                      is_send != c.accepted, ev.h->ts_ns);
      if (c.h2.any_opened()) open_streams(c, ev.thread_uid);
      return;
    }
    case K::kStack: {  // the connect's stack (recorded right after it, naming its connection)
      ConnState* c = find(ev.file, conn);
      if (!c) return;
      // The frames the event really holds, whatever its depth field says (a damaged trace).
      const uint32_t held = (ev.h->size - sizeof(tf::StackEvent)) / sizeof(uint64_t);
      const uint32_t depth = std::min<uint32_t>({ev.as<tf::StackEvent>().depth, held, 256});
      c->c.stack.resize(depth);
      if (depth != 0) std::memcpy(c->c.stack.data(), ev.tail<tf::StackEvent>(), depth * sizeof(uint64_t));
      return;
    }
    default: return;
  }
}

void Model::on_dns(const Event& ev) {
  const auto& d = ev.as<tf::DnsEvent>();
  ProcState& p = *procs_[ev.file];
  if (p.recent_n < kDnsTieWindow) ++p.recent_n;
  else p.recent_head = (p.recent_head + 1) % kDnsTieWindow;
  ProcState::RecentDns& slot = p.recent(0);
  slot.ports.clear();
  DnsLookup& l = slot.l;
  l.pid = ev.pid;
  l.tid = ev.tid;
  l.host.assign(reinterpret_cast<const char*>(ev.tail<tf::DnsEvent>()), d.host_len);
  l.start_ns = ev.h->ts_ns;
  l.duration_ns = d.dur_ns;
  p.max_dns_ns = std::max(p.max_dns_ns, l.duration_ns);
  l.error = d.error;
  l.call = d.call;
  l.addresses.assign(d.addrs, d.addrs + d.naddr);
  if (dns_sink_) dns_sink_->on_dns(l);
  if (keep_dns_) dns_.push_back(l);
}

namespace {

// Where o's idle time starts: the end of its exchange in progress or of its last one.
uint64_t last_end_of(ExchangeBuilder& b, uint64_t otherwise) {
  if (Exchange* x = b.current()) return x->end_ns;
  return b.done().empty() ? otherwise : b.done().back().end_ns;
}

}  // namespace

// Scans the open connections to c's endpoint when c connects: an idle one makes c a pool miss now;
// one still reading a response decides later (resolve_miss_waiters). Then the reason (new_reason.h).
void Model::mark_pool_miss(ProcState& p, ConnState& c) {
  if (!c.reason_deferred && c.proxy_target.empty()) {
    for (const tf::Addr& proxy : p.proxies) {
      if (same_ip(proxy, c.c.peer) && proxy.port == c.c.peer.port) {
        c.reason_deferred = true;  // decided at its first request (build_exchange)
        c.c.new_reason = NewReason::kFirst;
        return;
      }
    }
  }
  c.reason_deferred = false;
  using A = ExchangeBuilder::Availability;
  OpenScan scan;
  const uint64_t now = c.c.connect_start_ns;
  p.conns.for_each([&](uint32_t, ConnState& other) {
    if (&other == &c || !other.c.has_connect || other.c.connect_error || other.accepted) return;
    const auto& o = other.c;
    if (!same_ip(o.peer, c.c.peer) || o.peer.port != c.c.peer.port || other.proxy_target != c.proxy_target) return;
    if (other.peer_ended) {
      ExchangeBuilder& b = other.active();
      const NewReason ending = ending_of(b.done().empty() ? nullptr : &b.done().back(), true, now);
      if (new_reason_rank(ending) > new_reason_rank(scan.ended)) {
        scan.ended = ending;
        scan.ended_id = o.id;
        scan.ended_idle_ns = now - std::min(now, idle_since(b.done(), o.start_ns));
        other.replaced_by_later = true;
      }
      return;
    }
    ++scan.open;
    if (scan.idle || other.c.connect_pending) return;
    switch (other.active().availability()) {
      case A::kIdle:
        scan.idle = true;
        scan.idle_id = o.id;
        scan.idle_ns = now - std::min(now, last_end_of(other.active(), now));
        break;
      case A::kAnswered:
        other.miss_waiters.push_back(c.c.conn);
        ++c.miss_pending;
        if (c.miss_id.empty()) {  // tentative: used if this one turns out idle, or never tells
          c.miss_id = o.id;
          c.miss_idle_ns = now - std::min(now, last_end_of(other.active(), now));
        }
        break;
      case A::kBusy: break;
    }
  });
  if (scan.idle) c.c.pool_miss = 1;
  ReasonVerdict v = p.endpoints.decide(c.c.peer, c.proxy_target, now, scan);
  c.c.new_reason = v.reason;
  c.c.replaced = std::move(v.replaced);
  c.c.replaced_idle_ns = v.idle_ns;
}

// The reason is final when c is reported: a pool miss found after its connect (a candidate's next
// call said it had been idle) replaces a weaker reason; pool_miss mirrors the reason.
void Model::settle_new_reason(ConnState& s) {
  Connection& c = s.c;
  if (c.inherited || s.accepted || !c.has_connect || c.connect_error != 0) {
    c.new_reason = NewReason::kNone;
    c.replaced.clear();
    c.replaced_idle_ns.reset();
    c.pool_miss = 0;
    return;
  }
  if (c.pool_miss && new_reason_rank(c.new_reason) < new_reason_rank(NewReason::kPoolMiss)) {
    c.new_reason = NewReason::kPoolMiss;
    c.replaced = s.miss_id;
    c.replaced_idle_ns = s.miss_idle_ns;
  }
  c.pool_miss = c.new_reason == NewReason::kPoolMiss;
}

// A read that ended the stream (EOF) or a call that failed with the peer gone: the server ended
// the connection, and an exchange still waiting for its response failed.
void Model::note_peer_end(ConnState& c, int64_t result, bool is_send, uint64_t ts, uint64_t end) {
  if (result == 0 && is_send) return;
  if (result < 0 && result != -ECONNRESET && result != -EPIPE) return;  // EAGAIN, EINTR: nothing ended
  // A server's client hanging up is the client being done (see build_exchange), not a reuse gone
  // stale; and a failed write there is a response, which must not open a request.
  if (c.c.direction == ConnDirection::kInbound) return;
  c.peer_ended = true;
  ExchangeBuilder& b = c.active();
  // A request whose first write failed moved no bytes, yet it is the reuse that failed: it
  // opens an exchange (0 bytes sent) so that the failure is seen where it happened.
  if (is_send && result < 0 && b.any() && !b.sending()) b.send(ts, end, 0);
  Exchange* x = b.current();
  if (x && !x->first_byte_ns && !x->failed_errno) x->failed_errno = static_cast<int32_t>(-result);
}

// o's next call after connections were opened beside it: a read means its response was still
// arriving (busy); a write or its close means it had been idle.
void Model::resolve_miss_waiters(ConnState& o, bool was_idle) {
  for (uint32_t id : o.miss_waiters) {
    ConnState* w = find(o.file, id);
    if (!w) continue;  // already reported (see emit)
    if (w->miss_pending) --w->miss_pending;
    if (was_idle && !w->c.pool_miss) {
      w->c.pool_miss = 1;
      w->miss_id = o.c.id;
      w->miss_idle_ns = w->c.connect_start_ns - std::min(w->c.connect_start_ns, last_end_of(o.active(), 0));
    }
  }
  o.miss_waiters.clear();
}

void Model::on_connect(const Event& ev, ConnState& c) {
  const auto& d = ev.as<tf::ConnectEvent>();
  if (c.c.has_connect) {
    // Repeated connect() on a non-blocking socket polls its progress.
    if (c.c.connect_pending && d.error == EISCONN) {
      c.c.connect_pending = false;
      const uint64_t end = ev.h->ts_ns + d.dur_ns;
      c.c.connect_duration_ns = end > c.c.connect_start_ns ? end - c.c.connect_start_ns : 0;
    }
    if (d.error == EALREADY || d.error == EISCONN || d.error == EINPROGRESS) return;
  }
  Connection& k = c.c;
  k.has_connect = true;
  k.fd = d.fd;
  k.peer = d.peer;
  if (d.local.family) k.local = d.local;
  k.connect_start_ns = ev.h->ts_ns;
  k.connect_duration_ns = d.dur_ns;
  k.connect_pending = d.error == EINPROGRESS;
  k.connect_error = k.connect_pending ? 0 : d.error;
  c.connect_tid = ev.tid;

  ProcState& p = *procs_[ev.file];
  ProcState::RecentDns* best_slot = nullptr;
  for (size_t age = 0; age < p.recent_n; ++age) {
    ProcState::RecentDns& r = p.recent(age);
    const DnsLookup& l = r.l;
    // The ring is in stream (start) order: once even the slowest lookup started here could not
    // end after the best match, no older one can.
    if (best_slot && l.start_ns + p.max_dns_ns <= best_slot->l.start_ns + best_slot->l.duration_ns) break;
    if (l.start_ns + l.duration_ns > k.connect_start_ns) continue;
    if (best_slot && l.start_ns + l.duration_ns <= best_slot->l.start_ns + best_slot->l.duration_ns) continue;
    for (const auto& a : l.addresses)
      if (same_ip(a, k.peer)) {
        best_slot = &r;
        break;
      }
  }
  if (best_slot) {
    const DnsLookup& best = best_slot->l;
    // A connect() retried on the same socket re-finds its own lookup: it is not a new use.
    const bool again = k.dns && k.dns->start_ns == best.start_ns;
    auto& ports = best_slot->ports;
    if (!again) {
      k.dns_first_use = ports.empty();
      k.dns_first_for_port = std::find(ports.begin(), ports.end(), k.peer.port) == ports.end();
      if (k.dns_first_for_port) ports.push_back(k.peer.port);
    }
    k.host = best.host;
    k.dns = Connection::Dns{best.start_ns, best.duration_ns};
  }
  if (!p.held.empty()) claim_attempts(p, c);
  mark_pool_miss(p, c);
  if (k.connect_error == 0) index_addresses(c);
}

void Model::on_inherit(const Event& ev, ConnState& c) {
  const auto& d = ev.as<tf::InheritEvent>();
  const auto& files = traces_.files();
  const int32_t ppid = files[ev.file].ppid;
  c.c.inherited = true;
  c.c.parent_pid = ppid;
  c.c.fd = d.fd;
  c.c.start_ns = ev.h->ts_ns;
  c.c.parent_id = fmt::format("{}:{}", ppid, d.parent_conn);
  for (uint32_t f = 0; f < files.size(); ++f) {
    if (files[f].pid != ppid) continue;
    c.c.parent_id = fmt::format("{}:{}", procs_[f]->id_prefix, d.parent_conn);
    if (ConnState* parent = find(f, d.parent_conn)) {  // the image of the parent that had it open
      c.c.peer = parent->c.peer;
      c.c.local = parent->c.local;
      c.c.host = parent->c.host;
      c.lib_tls = parent->lib_tls;
      c.wire_tls.inherit(parent->wire_tls);
      c.protocol = parent->protocol;
      c.first_host = parent->first_host;
      c.saw_plain = parent->saw_plain;
      c.active().carry_over(parent->active());
    }
    break;
  }
}

// A socket that survived exec is the same connection, now in the new image's file: its state
// moves over (keeping its id) and goes on there.
void Model::on_exec_inherit(const Event& ev) {
  const auto& d = ev.as<tf::InheritEvent>();
  const auto& files = traces_.files();
  if (find(ev.file, ev.h->conn)) return;
  for (uint32_t f = ev.file; f-- > 0;) {
    if (files[f].pid != files[ev.file].pid) continue;
    std::unique_ptr<ConnState> st = procs_[f]->conns.take(d.parent_conn);
    if (!st) return;
    if (!st->miss_waiters.empty()) resolve_miss_waiters(*st, false);
    unindex(*st);
    st->file = ev.file;
    st->c.conn = ev.h->conn;  // the table key in its new file; the id names where it began
    st->c.fd = d.fd;
    index_addresses(*procs_[ev.file]->conns.insert(ev.h->conn, std::move(st)));
    return;
  }
}

void Model::on_tls_handshake(const Event& ev, ConnState& c) {
  const auto& d = ev.as<tf::TlsHandshakeEvent>();
  TlsInfo t;
  t.start_ns = ev.h->ts_ns;
  t.duration_ns = d.dur_ns;
  t.library = library_name(d.library);
  t.version = tls_version_name(d.version);
  t.cipher = fixed_str(d.cipher, sizeof d.cipher);
  t.sni = fixed_str(d.sni, sizeof d.sni);
  t.alpn = fixed_str(d.alpn, sizeof d.alpn);
  t.resumed = d.resumed != 0;
  t.error = d.error;
  t.error_text = fixed_str(d.error_text, sizeof d.error_text);
  c.protocol.note_alpn(t.alpn);
  c.lib_tls = std::move(t);
}

namespace {

// How many of xs, from the first, are CONNECTs (an HTTP proxy's tunnel being opened).
size_t leading_connects(const std::vector<Exchange>& xs) {
  size_t n = 0;
  while (n < xs.size() && xs[n].method == "CONNECT") ++n;
  return n;
}

// Moves the first n of xs (CONNECTs) into c's tunnel.
void take_tunnel(Connection& c, std::vector<Exchange>& xs, size_t n) {
  if (n == 0) return;
  Tunnel& t = c.tunnel ? *c.tunnel : c.tunnel.emplace();
  if (t.round_trips == 0) t.start_ns = xs[0].start_ns;
  const Exchange& last = xs[n - 1];
  t.duration_ns = last.end_ns > t.start_ns ? last.end_ns - t.start_ns : 0;
  t.target = last.target;
  // The server behind the proxy, which URLs and spans name.
  t.host = host_without_port(t.target);
  t.port = port_of_authority(t.target);
  t.status = last.status;
  t.round_trips += static_cast<uint32_t>(n);
  xs.erase(xs.begin(), xs.begin() + ptrdiff_t(n));
}

// When b's exchanges so far are an HTTP proxy's CONNECTs, the last answered 2xx, the tunnel is
// open: they become c's tunnel and b starts afresh.
void take_open_tunnel(Connection& c, ExchangeBuilder& b) {
  auto& xs = b.done();
  if (xs.empty() || leading_connects(xs) != xs.size() || xs.back().status < 200 || xs.back().status >= 300) return;
  take_tunnel(c, xs, xs.size());
  b.reset();
}

}  // namespace

// The stages of a data call: byte accounting (wire totals), the wire TLS filter, what the captured
// bytes say (protocol decision), and the exchange builder.
void Model::on_data(const Event& ev, ConnState& c) {
  const auto& d = ev.as<tf::DataEvent>();
  if (d.result <= 0) note_peer_end(c, d.result, d.dir == uint8_t(tf::Direction::kSend), ev.h->ts_ns, ev.h->ts_ns + d.dur_ns);
  if (d.result < 0) return;  // EAGAIN, EINTR, ...: no bytes moved
  DataCall call;
  call.is_send = d.dir == uint8_t(tf::Direction::kSend);
  call.ts = ev.h->ts_ns;
  call.end = call.ts + d.dur_ns;
  call.bytes = static_cast<uint64_t>(d.result);
  call.capture = static_cast<tf::CaptureKind>(d.capture_kind);
  call.cap = std::string_view(reinterpret_cast<const char*>(ev.tail<tf::DataEvent>()), d.cap_len);
  call.flags = d.flags;

  ExchangeBuilder* b = &c.plain;
  if (d.flags & tf::kDataTlsPlaintext) {
    c.saw_plain = true;
  } else {
    (call.is_send ? c.c.bytes_sent : c.c.bytes_received) += call.bytes;
    b = &c.wire;
    if (call.bytes == 0 && call.is_send) return;
    const bool had_tls = c.wire_tls.seen();
    if (!c.wire_tls.filter(call)) {
      // The ClientHello ends what went before in the clear (a STARTTLS round trip, a proxy's
      // CONNECT): the wire's later records are no part of it.
      if (!had_tls && c.wire_tls.seen()) {
        take_open_tunnel(c.c, c.wire);
        c.wire.finish_current();
      }
      return;
    }
  }

  if (call.capture == tf::CaptureKind::kNone) return build_exchange(c, *b, call, CallEvidence{}, ev.thread_uid);
  const CallEvidence e = read_call(call, c.c.direction == ConnDirection::kInbound, request_, response_);
  c.protocol.note(e.protocol);
  if (e.h2_frames) {
    count_h2_streams(c.c, call.cap, call.is_send);
    c.h2.on_frames(call.cap, call.is_send != c.accepted, call.is_send, call.ts, call.end,
                   call.flags & tf::kDataH2FramesCut);
    if (c.h2.any_opened()) open_streams(c, ev.thread_uid);
  }
  build_exchange(c, *b, call, e, ev.thread_uid);
}

namespace {

// 100 Continue, 103 Early Hints: a head before the response. (101 ends HTTP/1 on the connection.)
bool interim_status(int status) { return status >= 100 && status < 200 && status != 101; }

void set_response_headers(Exchange& x, const HttpResponseView& r) {
  if (r.connection.empty()) x.connection_close.reset();
  else x.connection_close = connection_says_close(r.connection);
  const int timeout = r.keep_alive.empty() ? -1 : keep_alive_timeout_s(r.keep_alive);
  if (timeout >= 0) x.keep_alive_timeout_s = timeout;
  else x.keep_alive_timeout_s.reset();
}

// x's response so far is an interim one. The recorder keeps the heads that followed it in the
// same call ("\r\n" and the next status line): the last of them is the response, else the
// request goes on (ExchangeBuilder::interim).
void final_after_interim(std::string_view cap, Exchange& x, ExchangeBuilder& b) {
  for (size_t at = cap.find("\r\nHTTP/"); at != std::string_view::npos; at = cap.find("\r\nHTTP/", at + 2)) {
    HttpResponseView next;
    if (!sniff_response(cap.substr(at + 2), next)) continue;
    x.status = next.status;
    set_response_headers(x, next);
  }
  if (interim_status(x.status)) b.interim();
}

// The status of a status line read in pieces (tf::kDataStatusLineMore), once its end arrived.
void more_status_line(Model::ConnState& c, ExchangeBuilder& b, Exchange& x, std::string_view more) {
  if (c.status_line.empty() || x.status != 0) return;
  if (c.status_line.size() + more.size() > tf::kHttpCaptureMax) {
    c.status_line.clear();
    return;
  }
  c.status_line.append(more);
  if (more.find('\n') == std::string_view::npos) return;
  const int status = sniff_status(c.status_line);
  c.status_line.clear();
  if (status == 0) return;
  x.status = status;
  if (interim_status(status)) b.interim();
}

}  // namespace

void Model::build_exchange(ConnState& c, ExchangeBuilder& b, const DataCall& call, const CallEvidence& e,
                           uint64_t thread) {
  if (!c.miss_waiters.empty() && &b == &c.active()) resolve_miss_waiters(c, call.is_send);
  // An inbound connection's exchanges run the other way: a request read, then a response written.
  const bool inbound = c.c.direction == ConnDirection::kInbound;
  // After our close_notify, the peer's close_notify and the end of the stream are the session
  // closing too (python's asyncio reads to EOF after its alert): the alert stays the last word
  // and the peer's is not a response. Any other call means it was not.
  if (c.close_notify_index && !call.is_send && !inbound && (call.bytes == 0 || call.tls_close_notify)) {
    if (call.bytes != 0) return;
  } else {
    c.close_notify_index.reset();
  }
  if (!call.is_send && call.bytes == 0) {
    // The client hung up. On our side that ends a response read to EOF; on a server's, it is the
    // client being done, not part of the response (which may even still be coming, after a
    // half-close).
    if (!inbound) b.eof(call.end);
    else if (!b.sending()) b.finish_current();
    return;
  }
  const bool request_side = call.is_send != inbound;
  // The first request through a proxy's tunnel: what came before was setting the connection up,
  // and this request is numbered, and counted, as a new connection's first. (Inbound: a traced
  // proxy's side of it, so that its requests pair with its client's, in order.)
  if (request_side && !b.sending() && b.any()) take_open_tunnel(c.c, b);
  bool opens;
  if (request_side) {
    // A request read counts from when its bytes arrived (the read's end), not from when the
    // server began waiting for them.
    opens = b.send(inbound ? call.end : call.ts, call.end, call.bytes, e.has_request);
  } else {
    opens = b.current() == nullptr;
    const bool first = b.recv(call.ts, call.end, call.bytes, call.maybe_tickets);
    // The server's response began when it started writing it.
    if (inbound && first) b.current()->first_byte_ns = std::max(call.ts, b.current()->sent_ns);
  }
  Exchange* x = b.current();
  if (request_side) {
    if (call.tls_close_notify && opens && !inbound) c.close_notify_index = x->index;
    if (e.has_request && x->method.empty()) {
      const HttpRequestView& r = request_;
      x->method.assign(r.method);
      x->target.assign(r.target);
      x->target_cut = call.flags & tf::kDataCaptureCut;
      if (!r.traceparent.empty()) x->traceparent.assign(r.traceparent);
      x->request_close = !r.connection.empty() && connection_says_close(r.connection);
      // Only the first request's Host is used (as the host when no lookup matched).
      if (c.first_host.empty() && !r.host.empty()) c.first_host = host_without_port(r.host);
      c.h2.on_http1_request(offers_h2c_upgrade(r.connection));
    }
  } else if (call.flags & tf::kDataStatusLineMore) {
    more_status_line(c, b, *x, call.cap);
  } else if (!e.has_response && call.capture == tf::CaptureKind::kHttpResp && x->status == 0) {
    c.status_line.assign(call.cap, 0, std::min<size_t>(call.cap.size(), tf::kHttpCaptureMax));  // the start of one
  } else if (e.has_response && (x->status == 0 || x->status < 200)) {
    const HttpResponseView& r = response_;
    x->status = r.status;
    set_response_headers(*x, r);
    if (c.h2.on_http1_status(r.status, *x, inbound ? call.ts : call.end)) {  // h2c: stream 1
      c.protocol.note(Protocol::kH2);
      c.c.h2_max_stream = 1;
      ++c.c.h2_streams;
    }
    if (interim_status(r.status)) final_after_interim(call.cap, *x, b);
  }
  if (opens && request_side && !inbound && x->index == 0 && !c.c.tunnel && c.proxy_target.empty()) first_request(c, *x);
  if (&b != &c.active()) return;
  if (opens && request_side) open_exchange(c, *x, thread);
  else if (c.parent_file != ConnState::kNoFile) account_child(c, *x);
}

// An outbound connection's first request: a CONNECT makes its peer a proxy and names the
// endpoint (proxy, target) that a reason put off until now is decided for.
void Model::first_request(ConnState& c, const Exchange& x) {
  ProcState& p = *procs_[c.file];
  if (x.method == "CONNECT" && !x.target.empty()) {
    c.proxy_target = x.target;
    const bool known = std::any_of(p.proxies.begin(), p.proxies.end(), [&](const tf::Addr& a) {
      return same_ip(a, c.c.peer) && a.port == c.c.peer.port;
    });
    if (!known && p.proxies.size() < ProcState::kMaxProxies) p.proxies.push_back(c.c.peer);
  }
  if (c.reason_deferred) mark_pool_miss(p, c);
}

// Where a request sits in a distributed trace, decided when it opens (its request's first call,
// which carries its traceparent): an inbound request joins the trace of the call that sent it
// (its traceparent, else the same call recorded by the client's process); an outbound one, the
// trace of the inbound request its thread is serving. Anything else starts a trace of its own.
void Model::open_exchange(ConnState& c, Exchange& x, uint64_t thread) {
  const uint64_t anchor = traces_.files()[c.file].real_anchor_ns;
  const std::optional<TraceParent> tp = parse_traceparent(x.traceparent);
  const Exchange* from = nullptr;  // whose trace it joins
  if (c.c.direction == ConnDirection::kInbound) {
    serve(c, thread);
    x.children_ns = 0;
    c.children_cover_end = 0;
    if (Exchange* m = exchange_of(c.mirror_file, c.mirror_conn, x.index)) {
      x.linked = fmt::format("{}#{}", c.mirror_id, x.index);
      m->linked = fmt::format("{}#{}", c.c.id, x.index);
      from = m;
    }
    // The traced client's span is its parent: the traceparent may name a span further up (a
    // proxy passes its inbound one on unchanged), and it says the same trace.
    x.span_id = c.ids_of(anchor).span_id(x.index);
    x.parent_span_id = from ? from->span_id : tp ? tp->parent_span_id : 0;
    x.trace_id = from ? from->trace_id : tp ? tp->trace_id : c.ids_of(anchor).trace_id(x.index);
  } else {
    c.parent_file = ConnState::kNoFile;
    ProcState& p = *procs_[c.file];
    auto it = p.serving.find(thread);
    ConnState* parent = nullptr;
    const Exchange* px = nullptr;
    if (it != p.serving.end()) {
      for (uint32_t id : it->second.conns) {
        // A request read and not yet answered: what a server calls out for before it replies.
        ConnState* in = find(c.file, id);
        const Exchange* open = in && in->serving ? in->open_request() : nullptr;
        if (!open) continue;
        if (parent) {  // two open on this thread: it is not known which one this was for
          parent = nullptr;
          px = nullptr;
          break;
        }
        parent = in;
        px = open;
      }
    }
    if (px) {
      x.parent = fmt::format("{}#{}", parent->c.id, px->index);
      // An h2 connection multiplexes its streams even on a thread that serves only it.
      x.parent_confidence = it->second.multiplexed || parent->protocol.h2() ? ParentConfidence::kSingleOpen
                                                                            : ParentConfidence::kThread;
      c.parent_file = c.file;
      c.parent_conn = parent->c.conn;
      c.parent_index = px->index;
      from = px;
      account_child(c, x);
    }
    // A header sent only because a proxy passed on its inbound request's one, or one an earlier
    // request on this connection already carried (one -H for several URLs), does not name this
    // request's span: this request is a child of the span it names.
    const auto& done = c.active().done();
    const Exchange* prev = x.stream ? c.h2.before(x) : done.size() > 1 ? &done[done.size() - 2] : nullptr;
    const bool names_it = tp && !(px && px->traceparent == x.traceparent) &&
                          !(prev && prev->traceparent == x.traceparent);
    x.span_id = names_it ? tp->parent_span_id : c.ids_of(anchor).span_id(x.index);
    x.parent_span_id = from ? from->span_id : tp && !names_it ? tp->parent_span_id : 0;
    x.trace_id = tp ? tp->trace_id : from ? from->trace_id : procs_[c.file]->tree_trace;
  }
}

// h2 streams opened by the last event: an outbound one is placed in a trace as an HTTP/1 request
// is when it opens; an inbound one becomes a span that the outbound calls made for it name.
void Model::open_streams(ConnState& c, uint64_t thread) {
  const uint64_t anchor = traces_.files()[c.file].real_anchor_ns;
  c.h2.each_opened([&](Exchange& x) {
    if (!c.accepted) return open_exchange(c, x, thread);
    serve(c, thread);
    const std::optional<TraceParent> tp = parse_traceparent(x.traceparent);
    x.children_ns = 0;
    c.children_cover_end = 0;
    // The same stream as the traced client's process saw it, opened there first.
    ConnState* m = c.mirror_file == ConnState::kNoFile ? nullptr : find(c.mirror_file, c.mirror_conn);
    Exchange* from = m && x.stream ? m->h2.by_stream(*x.stream) : nullptr;
    if (from && !from->span_id) from = nullptr;  // never opened there (a promise): not a span yet
    if (from) {
      x.linked = fmt::format("{}#{}", c.mirror_id, from->index);
      from->linked = fmt::format("{}#{}", c.c.id, x.index);
    }
    x.span_id = derive_span_id(anchor, c.c.id, x.index);
    x.parent_span_id = from ? from->span_id : tp ? tp->parent_span_id : 0;
    x.trace_id = from ? from->trace_id : tp ? tp->trace_id : derive_trace_id(anchor, c.c.id, x.index);
  });
}

// The exchange with that index on a connection still open, in the builder its exchanges come from.
Exchange* Model::exchange_of(uint32_t file, uint32_t conn, uint32_t index) {
  if (file == ConnState::kNoFile) return nullptr;
  ConnState* o = find(file, conn);
  if (!o) return nullptr;
  auto& done = o->active().done();
  if (done.empty() || index < done.front().index) return nullptr;
  const size_t k = index - done.front().index;
  return k < done.size() ? &done[k] : nullptr;
}

// An inbound request is open from its first read until the next one or its connection's close;
// the thread that read it is the one serving it.
void Model::serve(ConnState& c, uint64_t thread) {
  ProcState& p = *procs_[c.file];
  if (c.serving && c.serving_thread != thread) stop_serving(c);
  ProcState::Serving& s = p.serving[thread];
  if (!c.serving) s.conns.push_back(c.c.conn);
  c.serving = true;
  c.serving_thread = thread;
  // Drop connections closed since, then see whether this thread now serves two at once.
  std::erase_if(s.conns, [&](uint32_t id) {
    const ConnState* o = find(c.file, id);
    return !o || !o->serving || o->serving_thread != thread;
  });
  if (s.conns.size() > 1) s.multiplexed = true;
}

void Model::stop_serving(ConnState& c) {
  if (!c.serving) return;
  c.serving = false;
  ProcState& p = *procs_[c.file];
  auto it = p.serving.find(c.serving_thread);
  if (it == p.serving.end()) return;
  std::erase(it->second.conns, c.c.conn);
  if (it->second.conns.empty() && !it->second.multiplexed) p.serving.erase(it);
}

// The parent's time waiting for its children is the union of their intervals: concurrent
// children count once. x has just grown; its interval is merged into what is covered so far.
void Model::account_child(const ConnState& c, const Exchange& x) {
  ConnState* in = find(c.parent_file, c.parent_conn);
  if (!in) return;
  Exchange* px = in->protocol.h2() ? in->h2.by_index(c.parent_index) : in->active().current();
  if (!px || px->index != c.parent_index || !px->children_ns) return;
  uint64_t& cover = in->children_cover_end;
  const uint64_t end = std::max(x.end_ns, x.start_ns);
  if (x.start_ns >= cover) *px->children_ns += end - x.start_ns;
  else if (end > cover) *px->children_ns += end - cover;
  cover = std::max(cover, end);
}

// Called when both addresses of a connection are known: pairs it with its other end if that
// end's process is loaded too.
void Model::index_addresses(ConnState& c) {
  if (c.in_tuple_index || !c.c.local.family || !c.c.peer.family) return;
  if (c.c.local.family != AF_INET && c.c.local.family != AF_INET6) return;
  auto& open = tuples_->open;
  auto it = open.find(TupleIndex::key(c.c.peer, c.c.local));
  if (it != open.end()) {
    ConnState* o = find(it->second.first, it->second.second);
    if (o && o->c.direction != c.c.direction && o->mirror_file == ConnState::kNoFile) {
      o->mirror_file = c.file;
      o->mirror_conn = c.c.conn;
      o->mirror_id = c.c.id;
      c.mirror_file = it->second.first;
      c.mirror_conn = it->second.second;
      c.mirror_id = o->c.id;
    }
  }
  open[TupleIndex::key(c.c.local, c.c.peer)] = {c.file, c.c.conn};
  c.in_tuple_index = true;
}

void Model::unindex(ConnState& c) {
  stop_serving(c);
  if (!c.in_tuple_index) return;
  c.in_tuple_index = false;
  auto& open = tuples_->open;
  auto it = open.find(TupleIndex::key(c.c.local, c.c.peer));
  if (it != open.end() && it->second == std::pair(c.file, c.c.conn)) open.erase(it);
}

// A connected outbound connection's end, for the reasons of the connects after it.
void Model::remember_close(ProcState& p, ConnState& s, uint64_t close_ns) {
  const Connection& c = s.c;
  if (s.accepted || c.inherited || !c.has_connect || c.connect_pending || c.connect_error) return;
  const auto& done = s.active().done();
  const Exchange* last = done.empty() ? nullptr : &done.back();
  p.endpoints.on_close(c.peer, s.proxy_target, c.id, close_ns, idle_since(done, c.start_ns),
                       ending_of(last, s.peer_ended, close_ns), s.replaced_by_later);
}

void Model::close(uint32_t file, uint32_t conn, std::optional<uint64_t> close_ns) {
  ProcState& p = *procs_[file];
  ConnState* open = p.conns.find(conn);
  if (!open) return;
  if (!open->miss_waiters.empty()) resolve_miss_waiters(*open, true);
  if (close_ns) remember_close(p, *open, *close_ns);
  unindex(*open);
  std::unique_ptr<ConnState> st = p.conns.take(conn);
  st->c.close_ns = close_ns;
  settle(file, std::move(st));
}

// A connection is over: report it, unless it was never one, or was an attempt that a winner
// claims (now or, held, later).
void Model::settle(uint32_t file, std::unique_ptr<ConnState> st) {
  // Not a connection: never connected; or a copy inherited at fork that the child never used.
  if (st->never_connected() || (st->c.inherited && !st->c.bytes_sent && !st->c.bytes_received)) return recycle(std::move(st));
  if (st->is_attempt()) {
    ProcState& p = *procs_[file];
    st->attempt_end_ns = st->c.close_ns.value_or(std::max(last_ts_, st->c.connect_start_ns));
    if (attach_to_winner(p, *st)) return recycle(std::move(st));
    if (p.held.size() >= kMaxHeldAttempts) {
      emit(*p.held.front());
      recycle(std::move(p.held.front()));
      p.held.erase(p.held.begin());
    }
    p.held.push_back(std::move(st));
    return;
  }
  emit(*st);
  recycle(std::move(st));
}

namespace {

// Could `winner` be the connect that `loser` was racing or was retried as?
bool same_race(const Connection& loser, int32_t loser_tid, const Connection& winner, int32_t winner_tid) {
  if (loser.peer.port != winner.peer.port || same_ip(loser.peer, winner.peer)) return false;
  const bool same_lookup = loser.dns && winner.dns && loser.dns->start_ns == winner.dns->start_ns;
  return same_lookup || loser_tid == winner_tid;
}

// The winner reports the loser (and the attempts it carried), and its first use of their lookup.
void absorb(Model::ConnState& winner, const Model::ConnState& loser) {
  auto& into = winner.c.attempts;
  into.insert(into.end(), loser.c.attempts.begin(), loser.c.attempts.end());
  into.push_back(loser.as_attempt());
  // The race's first connect may have taken the close it replaces: the stronger reason stands.
  if (new_reason_rank(loser.c.new_reason) > new_reason_rank(winner.c.new_reason)) {
    winner.c.new_reason = loser.c.new_reason;
    winner.c.replaced = loser.c.replaced;
    winner.c.replaced_idle_ns = loser.c.replaced_idle_ns;
  }
  const auto& wd = winner.c.dns;
  const auto& ld = loser.c.dns;
  if (wd && ld && wd->start_ns == ld->start_ns) {
    winner.c.dns_first_use |= loser.c.dns_first_use;
    winner.c.dns_first_for_port |= loser.c.dns_first_for_port;
  }
}

}  // namespace

// A happy-eyeballs loser given up while the winner's connect is already under way.
bool Model::attach_to_winner(ProcState& p, ConnState& loser) {
  ConnState* best = nullptr;
  p.conns.for_each([&](uint32_t, ConnState& o) {
    const Connection& w = o.c;
    if (!w.has_connect || w.connect_error != 0) return;
    if (w.connect_start_ns + kAttemptWindowNs < loser.c.connect_start_ns) return;
    if (!same_race(loser.c, loser.connect_tid, w, o.connect_tid)) return;
    if (!best || w.connect_start_ns < best->c.connect_start_ns) best = &o;
  });
  if (!best) return false;
  absorb(*best, loser);
  return true;
}

// A new connect takes over the attempts given up just before it.
void Model::claim_attempts(ProcState& p, ConnState& c) {
  auto& held = p.held;
  for (size_t i = 0; i < held.size();) {
    ConnState& h = *held[i];
    if (h.attempt_end_ns + kAttemptWindowNs >= c.c.connect_start_ns &&
        same_race(h.c, h.connect_tid, c.c, c.connect_tid)) {
      absorb(c, h);
      recycle(std::move(held[i]));
      held.erase(held.begin() + ptrdiff_t(i));
    } else {
      ++i;
    }
  }
}

// Held attempts that no connect claimed in time are failed connections of their own.
void Model::expire_attempts(uint32_t file, uint64_t now, bool all) {
  auto& held = procs_[file]->held;
  size_t n = 0;
  while (n < held.size() && (all || held[n]->attempt_end_ns + kAttemptWindowNs < now)) {
    emit(*held[n]);
    recycle(std::move(held[n]));
    ++n;
  }
  held.erase(held.begin(), held.begin() + ptrdiff_t(n));
}

void Model::recycle(std::unique_ptr<ConnState> st) {
  constexpr size_t kMaxFree = 64;  // only a burst of closes needs more; those are allocated
  if (free_.size() >= kMaxFree) return;
  // After emit, c holds whatever the sink left in it (a spent connection from ConnectionPipe):
  // keep only the buffers worth keeping, and everything else as a fresh ConnState has it.
  std::string id = std::move(st->c.id);
  std::vector<Exchange> requests = std::move(st->c.requests);
  ExchangeBuilder wire = std::move(st->wire), plain = std::move(st->plain);
  // Rebuilt in place: assigning a fresh temporary moved every member of this large struct twice.
  std::destroy_at(st.get());
  std::construct_at(st.get());
  id.clear();
  const size_t keep = free_.size() < ExchangeBuilder::kKeepLargeSlots ? ExchangeBuilder::kKeepLarge : 64;
  if (requests.capacity() > keep) std::vector<Exchange>().swap(requests);
  else requests.clear();
  wire.reset(keep);
  plain.reset(keep);
  st->c.id = std::move(id);
  st->c.requests = std::move(requests);
  st->wire = std::move(wire);
  st->plain = std::move(plain);
  free_.push_back(std::move(st));
}

namespace {

// With library TLS the exchanges come from the plaintext calls; a round trip in the clear before
// the handshake (STARTTLS: PostgreSQL's SSLRequest) is seen only on the wire. It goes first.
// A proxy's CONNECT before it is the tunnel.
void prepend_clear_text_exchanges(Model::ConnState& s) {
  std::vector<Exchange>& out = s.c.requests;
  const uint64_t tls_start = s.wire_tls.info() ? s.wire_tls.info()->start_ns : s.c.tls->start_ns;
  auto& wire = s.wire.done();
  take_tunnel(s.c, wire, leading_connects(wire));
  size_t pre = 0;
  while (pre < wire.size() && wire[pre].end_ns <= tls_start) ++pre;
  if (pre == 0) return;
  out.insert(out.begin(), wire.begin(), wire.begin() + ptrdiff_t(pre));
  for (size_t i = pre; i < out.size(); ++i) {
    Exchange& x = out[i];
    x.index += static_cast<uint32_t>(pre);
    x.reused = true;
    if (!x.idle_ns) {
      const uint64_t prev = out[i - 1].end_ns;
      x.idle_ns = x.start_ns > prev ? x.start_ns - prev : 0;
    }
  }
}

}  // namespace

void Model::emit(ConnState& s) {
  Connection& c = s.c;
  // A candidate that stayed silent for this connection's whole life was most likely idle.
  if (s.miss_pending) c.pool_miss = 1;
  settle_new_reason(s);
  s.wire.finish_current();
  s.plain.finish_current();
  if (s.lib_tls) {
    c.tls = std::move(s.lib_tls);
    // Some libraries will not say what they sent (GnuTLS has no client-side SNI getter); the
    // ClientHello seen on the wire is the truth about what was offered.
    if (const auto& w = s.wire_tls.info()) {
      if (c.tls->sni.empty()) c.tls->sni = w->sni;
      if (c.tls->alpn_offered.empty()) c.tls->alpn_offered = w->alpn_offered;
    }
  } else if (s.wire_tls.seen()) {
    c.tls = s.wire_tls.take();
    s.protocol.note_alpn(c.tls->alpn, &c.tls->alpn_offered);
  }
  c.protocol = s.protocol.name();
  // The client's close_notify alone is not an exchange.
  if (auto& wire = s.wire.done(); s.close_notify_index && !wire.empty() &&
      wire.back().index == *s.close_notify_index && wire.back().bytes_received == 0)
    wire.pop_back();
  // Swapped, not moved: the builder inherits c.requests' (empty) buffer for a recycled ConnState.
  c.requests.swap(s.active().done());
  if (&s.active() == &s.plain && !s.wire.done().empty() && c.tls) {
    prepend_clear_text_exchanges(s);
  } else if (leading_connects(c.requests) == c.requests.size()) {
    take_tunnel(c, c.requests, c.requests.size());  // refused, or never used
  }
  if (s.protocol.h2()) {
    c.h2_responses = std::max(c.h2_responses, s.h2.take(c.requests));
    if (s.first_host.empty()) s.first_host = host_without_port(s.h2.first_authority());
  }
  if (!c.host && !s.first_host.empty()) c.host = std::move(s.first_host);
  if (!c.host && c.tls && !c.tls->sni.empty()) c.host = c.tls->sni;
  std::sort(c.attempts.begin(), c.attempts.end(),
            [](const ConnectAttempt& a, const ConnectAttempt& b) { return a.start_ns < b.start_ns; });
  n_connections_ += !c.inherited;  // the same connection on the wire as its parent's copy
  n_failed_ += c.failed();
  n_requests_ += c.requests.size();
  n_unseen_ += !c.inherited && c.requests_unseen();
  const uint64_t anchor = traces_.files()[s.file].real_anchor_ns;
  const bool inbound = c.direction == ConnDirection::kInbound;
  for (auto& x : c.requests) {
    n_reused_ += x.reused;
    // Built with the request as the side that opens an exchange; on the wire a server received it.
    if (inbound) std::swap(x.bytes_sent, x.bytes_received);
    if (x.span_id) continue;
    // Not opened by a request of its own (a server-first exchange, an h2 stream): a root.
    x.span_id = s.ids_of(anchor).span_id(x.index);
    x.trace_id = inbound ? s.ids_of(anchor).trace_id(x.index) : procs_[s.file]->tree_trace;
  }
  sink_.on_connection(std::move(c));
}

void Model::finish() {
  for (uint32_t f = 0; f < procs_.size(); ++f) {
    // Emit in start order so the output does not depend on hash-table order.
    std::vector<std::pair<uint64_t, uint32_t>> open;
    procs_[f]->conns.for_each([&](uint32_t id, const ConnState& st) { open.emplace_back(st.c.start_ns, id); });
    std::sort(open.begin(), open.end());
    for (auto& [ts, id] : open) close(f, id, std::nullopt);
    expire_attempts(f, 0, true);
  }
}

}  // namespace httptrace::analyzer
