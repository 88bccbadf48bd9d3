// The connection / exchange model (SPEC §5), built in one pass over the merged event stream.
//
// Choices worth knowing:
// - Times here are CLOCK_MONOTONIC ns as recorded; reports subtract the trace's t0.
// - A connection lives from its socket (or first sighting) until its last descriptor is closed:
//   dup() adds a descriptor, close() of each removes one. shutdown() does not end it.
// - fork(): a tracked socket inherited by a child is its own record in the child, marked
//   inherited (with the parent's pid and id) and starting at the InheritEvent; peer, host, TLS,
//   protocol and exchange history are carried over from the parent's copy when it is still open,
//   so a request on it is reused when the connection carried one before. It is the same
//   connection on the wire: it does not count in connections(), and a copy the child never used
//   is not reported.
// - exec(): a new trace file (same pid). A socket the new image adopts (kExecInherit) is the same
//   connection and goes on there under its first id; others still open in the old image are
//   reported with close_ns null.
// - An exchange starts at the first write after the connection was idle or after a read, and ends
//   at the last read before the next write or the close. sent_ns is the end of the request's last
//   write, or the end of the first read if that came first (a response that arrived while the
//   request's last write was still under way: no negative wait); first_byte_ns the end of the
//   first read that returned bytes (for a blocking read, the moment the bytes arrived); end_ns
//   never before any of its calls returned. EAGAIN and other failed calls are not data; a 0-byte
//   read (EOF) ends the exchange at that read. Bytes read before any write (server-first protocols) form an
//   exchange whose sent_ns = start_ns.
// - An interim response (1xx but 101: 100 Continue, 103 Early Hints) is not the response: the
//   write that follows it (a body after the 100) goes on with the same request unless it starts a
//   request line, and status and first_byte_ns are the final response's. (curl's
//   time_starttransfer stops at the 100; SPEC §6 "the first read of the response" is read here as
//   the final response's, so that wait is the server's time for the whole request.)
// - CONNECT exchanges before any other are the connection's tunnel (struct Tunnel), not
//   requests: the first request through it is a new connection's, not a reuse. Inbound (a traced
//   proxy) the same, so that the requests relayed pair with its client's, in order.
// - TLS through a library hook (TlsHandshakeEvent / plaintext DataEvents): exchanges come from the
//   plaintext calls only; bytes_sent/bytes_received stay the wire totals.
// - TLS seen only on the wire: see wire_tls_tracker.h; its handshake calls are not exchanges.
// - A data call goes through four stages in turn: byte accounting (wire totals), the wire TLS
//   filter, the protocol decision (protocol.h: what the captured bytes say), the exchange builder.
// - protocol "h2" (ALPN h2 or the HTTP/2 preface): every stream is a request (h2_streams.h), from
//   the frame headers (kH2Frames) and HPACK-decoded fields (H2HeadersEvent); none without them.
//   h2_streams / h2_responses count the streams opened and answered.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "analyzer/model/http_sniff.h"
#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

// Why a new connection was opened (SPEC §5). kNone: not an opened connection (inbound, a copy
// inherited at fork, a connect that never succeeded). When several hold, the strongest wins:
// reset_on_reuse > closed_by_peer > pool_miss > busy > closed_by_client > first (the rules and
// why: analyzer/model/new_reason.h).
enum class NewReason : uint8_t { kNone, kFirst, kBusy, kPoolMiss, kClosedByPeer, kResetOnReuse, kClosedByClient };
const char* new_reason_name(NewReason r);  // "first", "busy", ...; nullptr for kNone

enum class ConnDirection : uint8_t { kOutbound, kInbound };  // connect()ed / accept()ed

// How an outbound request made by a thread serving an inbound request was tied to it (SPEC §5).
enum class ParentConfidence : uint8_t {
  kNone,
  kThread,      // thread-per-request: the serving thread made it inside the inbound window
  kSingleOpen,  // event loop: the only inbound request open on that thread at the time
};

struct Exchange {
  uint32_t index = 0;
  bool reused = false;
  std::optional<uint64_t> idle_ns;
  uint64_t start_ns = 0, sent_ns = 0, end_ns = 0;
  std::optional<uint64_t> first_byte_ns;
  uint64_t bytes_sent = 0, bytes_received = 0;
  std::string method, target;  // "" when not HTTP/1.x
  bool target_cut = false;     // the recorder kept only the start of a long target
  int status = 0;                    // 0 when unknown
  std::string traceparent;     // the request's W3C traceparent header, "" when none was seen
  // From the response's headers: Connection (close or not; unknown without the header) and the
  // Keep-Alive timeout (the server's idle limit), when present.
  std::optional<bool> connection_close;
  std::optional<int> keep_alive_timeout_s;
  bool request_close = false;  // the request's own Connection header said close
  // The call that ended it without a response: errno (ECONNRESET, EPIPE) or 0 for EOF; unset when
  // a response arrived or nothing says otherwise. A reuse that failed this way is a stale pool entry.
  std::optional<int32_t> failed_errno;
  std::optional<uint32_t> stream;  // HTTP/2 stream id; unset on HTTP/1.x and other protocols
  // Distributed tracing (issue 11). Request ids are "<connection id>#<index>".
  std::string parent;  // the inbound request this outbound one was made for; "" when none
  ParentConfidence parent_confidence = ParentConfidence::kNone;
  std::string linked;  // the same call as recorded by the other traced process; "" when none
  // W3C trace context of the span this request is (trace_context.h): from its traceparent, else
  // carried along parent / linked from the root request, else derived from the root's id.
  std::array<uint8_t, 16> trace_id{};
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0;  // 0: a root span
  // Inbound only: how much of its time the server spent waiting for the outbound requests made
  // for it (the union of their intervals inside its own).
  std::optional<uint64_t> children_ns;
};

struct DnsLookup {
  int32_t pid = 0, tid = 0;
  std::string host;
  uint64_t start_ns = 0, duration_ns = 0;
  int32_t error = 0;
  uint8_t call = 0;
  std::vector<tf::Addr> addresses;
};

struct TlsInfo {
  uint64_t start_ns = 0, duration_ns = 0;
  std::string library;  // "openssl" | "gnutls" | "wire"
  std::string version, cipher, sni, alpn;
  std::vector<std::string> alpn_offered;  // wire only
  bool resumed = false;
  int32_t error = 0;
  std::string error_text;
};

// An HTTP proxy's tunnel (CONNECT host:port, answered 2xx, then the bytes are the target's): part of
// setting the connection up, as curl's time_appconnect and DevTools' connection setup count it,
// not a request. A refused CONNECT (407) is a tunnel with that status and no requests after it.
struct Tunnel {
  uint64_t start_ns = 0, duration_ns = 0;  // the first CONNECT's start to the last one's end
  std::string target;                      // the last CONNECT's authority: "host:port"
  std::string host;                        // target's host ("::1" without brackets), port
  uint16_t port = 0;                       // 0 when target names none
  int status = 0;                          // the proxy's last answer; 0 when none was read
  uint32_t round_trips = 0;                // CONNECTs sent (2: a 407, then with credentials)
};

// A connect() that lost: refused, failed, or abandoned while pending (the other address of a
// happy-eyeballs race won). Reported under the connection that was made instead.
struct ConnectAttempt {
  tf::Addr peer{};
  uint64_t start_ns = 0, duration_ns = 0;
  int32_t error = 0;  // errno; 0 when it was abandoned before it finished
};

struct Connection {
  std::string id;        // "pid:conn", unique within the loaded traces
  int32_t pid = 0;
  uint32_t conn = 0;
  int32_t fd = -1;
  std::optional<std::string> host;
  tf::Addr peer{}, local{};
  uint64_t start_ns = 0;
  std::optional<uint64_t> close_ns;
  uint64_t bytes_sent = 0, bytes_received = 0;
  struct Dns {
    uint64_t start_ns, duration_ns;
  };
  std::optional<Dns> dns;
  // This is the first connection tied to its lookup at all / to this peer port: lets a report
  // count each lookup's time once without remembering every lookup.
  bool dns_first_use = false, dns_first_for_port = false;
  bool has_connect = false;
  uint64_t connect_start_ns = 0, connect_duration_ns = 0;
  int32_t connect_error = 0;  // errno, 0 = success
  bool connect_pending = false;
  std::vector<ConnectAttempt> attempts;  // the losing attempts before (or beside) this connect
  std::optional<Tunnel> tunnel;  // through an HTTP proxy's CONNECT (inbound: a proxy's, served)
  std::optional<TlsInfo> tls;
  std::optional<std::string> protocol;  // "http/1.1" | "h2"
  bool inherited = false;
  int32_t parent_pid = 0;
  std::string parent_id;
  uint32_t pool_miss = 0;  // 1: opened while another connection to the same endpoint sat idle
  ConnDirection direction = ConnDirection::kOutbound;
  NewReason new_reason = NewReason::kNone;
  std::string replaced;  // id of the connection it replaced or could have used; "" when none
  std::optional<uint64_t> replaced_idle_ns;  // how long that one had been idle when this opened
  std::vector<uint64_t> stack;  // return addresses at connect, innermost first (HTTPTRACE_STACKS=1)
  // Its process lost events (LostEvent) while it was open: its numbers may be incomplete.
  bool events_lost = false;
  uint32_t h2_streams = 0;      // h2: client streams opened (HEADERS sent on a new stream id)
  uint32_t h2_responses = 0;    // h2: streams the server answered (its first HEADERS on each)
  std::vector<bool> h2_answered;  // by client stream id / 2
  uint32_t h2_max_stream = 0;   // h2: the highest client stream id opened so far
  std::vector<Exchange> requests;

  bool failed() const { return has_connect && !connect_pending && connect_error != 0; }
  // HTTP/2 inside TLS seen only on the wire (node's http2, java.net.http): its frames are
  // ciphertext, so how many requests it carried cannot be known (not: none).
  bool requests_unseen() const { return protocol && *protocol == "h2" && tls && tls->library == "wire"; }
  // Where requests went: the server behind a proxy's tunnel, else host when known, else the peer
  // IP; and the port.
  std::string endpoint_host() const;
  uint16_t endpoint_port() const {
    return tunnel && direction == ConnDirection::kOutbound && tunnel->port ? tunnel->port : peer.port;
  }
};

struct ProcessInfo {
  int32_t pid = 0, ppid = 0;
  std::string exe;
  std::vector<std::string> argv;
  uint64_t dropped_events = 0;
};

// Receives each connection once it is complete (closed, or open at the end of the trace).
class ConnectionSink {
 public:
  virtual ~ConnectionSink() = default;
  virtual void on_connection(const Connection& c) = 0;
  // The model is done with c: a sink that keeps it (e.g. to hand it to another thread) may take it.
  virtual void on_connection(Connection&& c) { on_connection(static_cast<const Connection&>(c)); }
};

// Receives each DNS lookup as the stream reaches it (exporters that list every lookup).
class DnsSink {
 public:
  virtual ~DnsSink() = default;
  virtual void on_dns(const DnsLookup& l) = 0;
};

class ExchangeBuilder;
struct DataCall;
struct CallEvidence;

class Model {
 public:
  // keep_dns: keep every lookup for dns() (the JSON export lists them); reports that only need
  // the lookup behind each connection pass false and keep a bounded window per process.
  Model(const TraceSet& traces, ConnectionSink& sink, bool keep_dns = true);
  ~Model();

  // Lookups also go to sink as they happen (with keep_dns false: instead of being kept).
  void set_dns_sink(DnsSink* sink) { dns_sink_ = sink; }

  void on_event(const Event& ev);
  // Flushes connections still open (close_ns null). Call once after the last event.
  void finish();

  const std::vector<DnsLookup>& dns() const { return dns_; }
  std::vector<ProcessInfo> processes() const;
  uint64_t connections() const { return n_connections_; }
  uint64_t failed_connects() const { return n_failed_; }
  uint64_t requests() const { return n_requests_; }
  uint64_t reused_requests() const { return n_reused_; }
  uint64_t requests_unseen() const { return n_unseen_; }  // connections whose requests are unseen
  uint64_t dropped_events() const;

  struct ConnState;  // per open connection (model.cpp)

 private:
  struct ProcState;

  ConnState* find(uint32_t file, uint32_t conn);
  ConnState* get_or_create(const Event& ev);
  void on_dns(const Event& ev);
  void on_connect(const Event& ev, ConnState& c);
  void on_data(const Event& ev, ConnState& c);
  void build_exchange(ConnState& c, ExchangeBuilder& b, const DataCall& call, const CallEvidence& e,
                      uint64_t thread);
  // Distributed tracing (SPEC §5): mirrored connections, inbound -> outbound parents, trace ids.
  struct TupleIndex;
  void index_addresses(ConnState& c);
  void unindex(ConnState& c);
  void first_request(ConnState& c, const Exchange& x);
  void open_exchange(ConnState& c, Exchange& x, uint64_t thread);
  void open_streams(ConnState& c, uint64_t thread);
  void serve(ConnState& c, uint64_t thread);
  void stop_serving(ConnState& c);
  void account_child(const ConnState& c, const Exchange& x);
  Exchange* exchange_of(uint32_t file, uint32_t conn, uint32_t index);
  void on_inherit(const Event& ev, ConnState& c);
  void on_exec_inherit(const Event& ev);
  void on_tls_handshake(const Event& ev, ConnState& c);
  void close(uint32_t file, uint32_t conn, std::optional<uint64_t> close_ns);
  void settle(uint32_t file, std::unique_ptr<ConnState> st);
  bool attach_to_winner(ProcState& p, ConnState& loser);
  void claim_attempts(ProcState& p, ConnState& c);
  void expire_attempts(uint32_t file, uint64_t now, bool all);
  void emit(ConnState& c);
  void recycle(std::unique_ptr<ConnState> st);
  void mark_pool_miss(ProcState& p, ConnState& c);
  void resolve_miss_waiters(ConnState& o, bool was_idle);
  // new_reason (new_reason.h)
  void settle_new_reason(ConnState& s);
  void note_peer_end(ConnState& c, int64_t result, bool is_send, uint64_t ts, uint64_t end);
  void remember_close(ProcState& p, ConnState& s, uint64_t close_ns);

  const TraceSet& traces_;
  ConnectionSink& sink_;
  std::vector<std::unique_ptr<ProcState>> procs_;  // one per file
  // Closed ConnStates, reset for reuse with their buffers: a trace of millions of short
  // connections would otherwise allocate and free one (and its vectors) per connection.
  std::vector<std::unique_ptr<ConnState>> free_;
  std::vector<DnsLookup> dns_;
  bool keep_dns_;
  DnsSink* dns_sink_ = nullptr;
  uint64_t n_connections_ = 0, n_failed_ = 0, n_requests_ = 0, n_reused_ = 0, n_unseen_ = 0;
  uint64_t last_ts_ = 0;  // latest event time seen
  std::unique_ptr<TupleIndex> tuples_;  // open connections by (local, peer), across files
  // Where read_call puts what a capture says: kept, so no call pays for zeroing them.
  HttpRequestView request_;
  HttpResponseView response_;
};

std::string format_addr(const tf::Addr& a, bool with_port);
std::string errno_name(int err);
// A DnsEvent error: EAI_* name for getaddrinfo (negative codes), h_errno name for gethostbyname*.
std::string dns_error_name(uint8_t call, int32_t error);

}  // namespace httptrace::analyzer
