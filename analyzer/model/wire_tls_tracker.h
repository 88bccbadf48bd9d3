// TLS seen only on the wire (no library hook): follows a socket's calls through the handshake so
// that its round trips are not taken for exchanges, and collects what the public part of the
// handshake says (tls_wire.h parses the records).
//
// The ClientHello send starts the handshake. The client's next flight tells the version: if it
// starts with a handshake record (0x16) this is a full TLS 1.2 handshake, which ends when the
// server's reply (its CCS + Finished) has been read, i.e. at the client's next write. If it starts
// with CCS (0x14) or application data (0x17) -- TLS 1.3, whose Finished is wrapped in 0x17, or an
// abbreviated 1.2 resumption -- the client's flight itself ends the handshake; application data
// coalesced into that same write (visible from the record lengths) starts the first exchange;
// a TLS 1.3 client that writes its CCS alone sends its Finished in its next write, which ends
// the handshake (java reads nothing in between and the recorder captures that write's record
// header; GnuTLS reads the rest of the server's flight first, so its Finished is a turn).
// A TLS 1.3 server sends its session tickets (NewSessionTicket, encrypted like data) as soon as
// it has the client's Finished, before it reads the request: node and java read them on their
// own, milliseconds before a slow response. The first reads after a 1.3 handshake that are whole
// records of one size, arriving soon after the Finished, are marked as possibly tickets
// (DataCall::maybe_tickets); the exchange builder takes them for tickets when the client reads
// something else before it writes (ExchangeBuilder::recv), else they were the response.
// A ClientHello that is read makes this the server's end (node's https server, java): the same
// steps from the other side (server_app_bytes), the tickets being our own writes, and the
// client's close_notify (with ours in answer) no request.
// A ClientHello after plain-text exchanges (STARTTLS: PostgreSQL's SSLRequest) starts a handshake
// too; the exchanges before it stay exchanges.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "analyzer/model/model.h"

namespace httptrace::analyzer {

// One data call that moved bytes (result >= 0), as the model's stages see it.
struct DataCall {
  bool is_send = false;
  uint64_t ts = 0, end = 0;  // call start, call end
  uint64_t bytes = 0;
  tf::CaptureKind capture = tf::CaptureKind::kNone;
  std::string_view cap;      // the captured bytes
  uint8_t flags = 0;         // tf::kData*
  bool tls_close_notify = false;  // set by WireTlsTracker: a record that looks like the closing alert
  bool maybe_tickets = false;     // set by WireTlsTracker: may be TLS 1.3 session tickets (see above)
};

class WireTlsTracker {
 public:
  // False when the call belongs to the handshake. Otherwise call.bytes is narrowed to the
  // application data behind the handshake's last records (with no capture of its own), and
  // call.tls_close_notify marks what looks like the closing alert.
  bool filter(DataCall& call) {
    // The common case, inline: no handshake under way and no TLS record header to look at.
    if ((state_ == State::kNone || state_ == State::kDone) && call.capture != tf::CaptureKind::kTls) return true;
    // (A std::optional<uint64_t> result here cost a store-forwarding stall on every call.)
    const uint64_t app = app_bytes(call);
    if (app == kHandshake) return false;
    if (call.is_send != server_ && app != 0) app_sent_ = true;
    if (app != call.bytes) {
      call.bytes = app;
      call.capture = tf::CaptureKind::kNone;
      call.cap = {};
    }
    return true;
  }
  // A socket inherited across fork: the parent's handshake (if any) is over for the child.
  void inherit(const WireTlsTracker& parent);
  bool seen() const { return info_.has_value(); }
  const std::optional<TlsInfo>& info() const { return info_; }
  // What was learnt, with the duration up to the last handshake call if it never finished.
  std::optional<TlsInfo> take();

 private:
  enum class State : uint8_t {
    kUnknown,            // no send yet
    kNone,               // the first send was not a ClientHello
    kAwaitServer,        // ClientHello sent
    kServerFlight,       // reading the server's first flight
    kAwaitServerFinish,  // TLS 1.2 full: client flight 2 sent, server CCS+Finished pending
    kServerFinish,       // reading the server's CCS+Finished
    kClientFinished,     // TLS 1.3: the client's CCS was written alone, its Finished is next
    kSrvHello,           // server: the ClientHello read, our flight next
    kSrvFlight,          // server: our flight written, the client's last flight next
    kSrvCcsRead,         // server, TLS 1.3: the client's CCS read alone, its Finished next
    kSrvAwaitFinish,     // server, TLS 1.2 full: the client's flight read, our CCS + Finished next
    kTicketsDue,         // TLS 1.3 done: the server's first records may be its session tickets
    kDone,
  };
  static constexpr uint64_t kHandshake = ~uint64_t{0};
  uint64_t app_bytes(DataCall& call);  // kHandshake, or how many bytes are application data
  void read_server_hello(const DataCall& call);
  uint64_t after_cut_finished(const DataCall& call) const;
  uint64_t server_app_bytes(DataCall& call);
  uint64_t finished_record() const;  // the size of a TLS 1.3 Finished record, from the suite
  void finish(uint64_t end);
  bool tickets(const DataCall& call);

  State state_ = State::kUnknown;
  std::optional<TlsInfo> info_;
  uint64_t last_end_ = 0;  // end of the last handshake call
  uint64_t hello_end_ = 0, turnaround_ = 0;  // ClientHello written; from then to the first server read
  uint64_t tickets_by_ = 0;     // kTicketsDue: tickets arrive before this
  uint64_t ticket_record_ = 0;  // the size of the tickets' records, once one was read
  bool app_sent_ = false;    // the client's application data (a request) went out
  bool server_ = false;      // the ClientHello was read: this is the server's end
  bool peer_closing_ = false;  // server: the client's close_notify was read
  uint16_t suite_ = 0;     // the ServerHello's cipher suite
};

}  // namespace httptrace::analyzer
