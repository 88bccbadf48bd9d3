#include "analyzer/model/wire_tls_tracker.h"

#include <string>

#include "analyzer/model/tls_wire.h"

namespace httptrace::analyzer {

void WireTlsTracker::read_server_hello(const DataCall& call) {
  TlsInfo& t = *info_;
  ServerHello sh;
  bool ok = false;
  if ((state_ == State::kAwaitServer || state_ == State::kSrvHello) && call.capture == tf::CaptureKind::kTls) {
    ok = parse_server_hello(call.cap, sh);
  } else if (call.capture == tf::CaptureKind::kTlsBody && t.version.empty()) {
    // The previous read was the record's bare header: put one back in front.
    const size_t n = call.cap.size();
    std::string record = {char(0x16), char(0x03), char(0x03), char(n >> 8), char(n & 0xff)};
    record.append(call.cap);
    ok = parse_server_hello(record, sh);
  }
  if (!ok) return;
  t.version = tls_version_name(sh.version);
  t.cipher = cipher_suite_name(sh.cipher_suite);
  suite_ = sh.cipher_suite;
  if (!sh.alpn.empty()) t.alpn = sh.alpn;
}

uint64_t WireTlsTracker::app_bytes(DataCall& call) {
  switch (state_) {
    case State::kUnknown:
    case State::kNone: {
      // Also after a plain-text start: STARTTLS-style protocols (PostgreSQL's SSLRequest, SMTP)
      // exchange a round trip before the ClientHello.
      ClientHello ch;
      if (call.capture == tf::CaptureKind::kTls && parse_client_hello(call.cap, ch)) {
        // Read: we are the server (node's https, a java server), and the handshake starts when
        // the ClientHello arrived.
        server_ = !call.is_send;
        TlsInfo t;
        t.start_ns = server_ ? call.end : call.ts;
        t.library = "wire";
        t.sni = ch.sni;
        t.alpn_offered = ch.alpn;
        if (ch.alpn.size() == 1) t.alpn = ch.alpn[0];
        info_ = std::move(t);
        state_ = server_ ? State::kSrvHello : State::kAwaitServer;
        last_end_ = hello_end_ = call.end;
        return kHandshake;
      }
      state_ = State::kNone;
      return call.bytes;
    }
    case State::kTicketsDue: {
      const bool from_server = call.is_send == server_;
      if (from_server && call.bytes > 0 && tickets(call)) {
        // Before any request nothing but tickets can come from a server that the client
        // offered HTTP (the client speaks first), and two records of one size are OpenSSL's
        // two tickets; otherwise a single record may be a greeting (SMTP over TLS).
        if (!app_sent_) {
          if (call.bytes >= 2 * ticket_record_) return kHandshake;
          for (const std::string& p : info_->alpn_offered)
            if (p == "http/1.1" || p == "h2" || p == "http/1.0") return kHandshake;
        }
        call.maybe_tickets = true;
        return call.bytes;
      }
      // The request may be written before the tickets are read (java); after them, it ends them.
      if (from_server || ticket_record_ != 0) state_ = State::kDone;
      [[fallthrough]];
    }
    case State::kDone:
      if (info_ && call.capture == tf::CaptureKind::kTls) {
        const bool alert = looks_like_close_notify(call.cap, call.bytes, info_->version == "TLSv1.3");
        if (!server_) {
          call.tls_close_notify = alert;
        } else if (alert && (!call.is_send || peer_closing_)) {
          // The client's close_notify, and ours in answer: the session ending, not a request.
          peer_closing_ = true;
          return kHandshake;
        }
      }
      return call.bytes;
    case State::kSrvHello:
    case State::kSrvFlight:
    case State::kSrvCcsRead:
    case State::kSrvAwaitFinish:
      return server_app_bytes(call);
    case State::kAwaitServer:
    case State::kServerFlight: {
      if (!call.is_send) {
        if (call.bytes == 0) return call.bytes;  // EOF during the handshake: ends the (empty) exchange
        if (state_ == State::kAwaitServer) turnaround_ = call.end - hello_end_;
        read_server_hello(call);
        state_ = State::kServerFlight;
        last_end_ = call.end;
        return kHandshake;
      }
      if (state_ == State::kAwaitServer) {  // more of the client's first flight
        last_end_ = call.end;
        return kHandshake;
      }
      const uint8_t type = call.capture == tf::CaptureKind::kTls ? first_record_type(call.cap) : 0;
      if (type == kTlsHandshake && info_->version != "TLSv1.3") {
        state_ = State::kAwaitServerFinish;
        last_end_ = call.end;
        return kHandshake;
      }
      // The client's flight finishes the handshake (TLS 1.3 or an abbreviated 1.2).
      info_->duration_ns = call.end - info_->start_ns;
      finish(call.end);
      uint64_t extra = call.capture == tf::CaptureKind::kTls ? bytes_after_finished(call.cap, call.bytes) : 0;
      if (extra == 0 && info_->version == "TLSv1.3") {
        if (type == kTlsChangeCipherSpec && call.bytes == 6) {
          state_ = State::kClientFinished;
          last_end_ = call.end;
          return kHandshake;
        }
        extra = after_cut_finished(call);
      }
      if (extra == 0) return kHandshake;
      return extra;
    }
    case State::kClientFinished: {
      if (!call.is_send && call.bytes > 0) {
        // The rest of the server's flight: GnuTLS writes its CCS as soon as it has read the
        // ServerHello, then reads on.
        last_end_ = call.end;
        return kHandshake;
      }
      // The Finished record, and whatever the same write carried behind it: the request.
      finish(call.end);
      const std::string_view c = call.cap;
      if (!call.is_send || call.capture != tf::CaptureKind::kTls || c.size() < 5 ||
          first_record_type(c) != kTlsApplicationData) {
        info_->duration_ns = last_end_ - info_->start_ns;
        return call.bytes;
      }
      info_->duration_ns = call.end - info_->start_ns;
      const uint64_t record = first_record_size(c);
      return call.bytes > record ? call.bytes - record : kHandshake;
    }
    case State::kAwaitServerFinish:
    case State::kServerFinish:
      if (!call.is_send && call.bytes > 0) {
        state_ = State::kServerFinish;
        last_end_ = call.end;
        return kHandshake;
      }
      if (call.is_send) {
        info_->duration_ns = last_end_ - info_->start_ns;
        state_ = State::kDone;
      }
      return call.bytes;
  }
  return call.bytes;
}

void WireTlsTracker::finish(uint64_t end) {
  if (info_->version != "TLSv1.3") {
    state_ = State::kDone;
    return;
  }
  // Tickets leave the server one turn after the Finished: within twice the ServerHello's turn
  // (which also covered the server's signature), with room for a busy server (50 ms: on a loaded
  // machine 10 ms was not always enough).
  state_ = State::kTicketsDue;
  tickets_by_ = end + 2 * turnaround_ + 50'000'000;
  ticket_record_ = 0;
}

// Whether a read after a TLS 1.3 handshake may be session tickets: records of one size (OpenSSL
// sends two alike; the recorder keeps the first one's header, later reads in a row have none),
// arriving soon after the Finished.
bool WireTlsTracker::tickets(const DataCall& call) {
  if (call.end > tickets_by_) return false;
  const std::string_view c = call.cap;
  if (call.capture == tf::CaptureKind::kTls) {
    if (c.size() < 5 || first_record_type(c) != kTlsApplicationData) return false;
    const uint64_t record = first_record_size(c);
    if (ticket_record_ != 0 && record != ticket_record_) return false;
    ticket_record_ = record;
  } else if (call.capture != tf::CaptureKind::kNone || ticket_record_ == 0) {
    return false;
  }
  return call.bytes % ticket_record_ == 0;
}

// The recorder keeps only the first record header of a flight that does not start with a
// handshake record, so a TLS 1.3 flight "CCS, Finished, request" (node coalesces them) shows its
// CCS header alone. The Finished record's size follows from the suite's hash: 5-byte header,
// 4-byte handshake header, the verify_data (hash size), the inner content type and a 16-byte tag.
// (A client certificate flight would be counted as request bytes: rare on the clients we see.)
uint64_t WireTlsTracker::after_cut_finished(const DataCall& call) const {
  const std::string_view c = call.cap;
  if (call.capture != tf::CaptureKind::kTls || c.size() != 5 || first_record_type(c) != kTlsChangeCipherSpec ||
      c[3] != 0 || c[4] != 1)
    return 0;
  const uint64_t flight = 6 + finished_record();
  return call.bytes > flight ? call.bytes - flight : 0;
}

uint64_t WireTlsTracker::finished_record() const {
  const uint64_t hash = suite_ == 0x1302 ? 48 : 32;  // TLS_AES_256_GCM_SHA384; the others use SHA-256
  return 5 + 4 + hash + 1 + 16;
}

// The server's side of the handshake: the ClientHello read, our flight written (its ServerHello
// names version and cipher), then the client's last flight read. In TLS 1.3 that is its Finished
// (after a CCS, in the same read or the one before), and what the same read carried behind it is
// the request; in a full TLS 1.2 handshake our CCS + Finished, written after it, end it.
uint64_t WireTlsTracker::server_app_bytes(DataCall& call) {
  if (call.bytes == 0) return call.bytes;  // EOF: ends the (empty) exchange
  const uint8_t type = call.capture == tf::CaptureKind::kTls ? first_record_type(call.cap) : 0;
  const bool tls13 = info_->version == "TLSv1.3";
  // The handshake ends with this call's first `handshake` bytes; the rest is the request.
  auto done = [&](uint64_t handshake) {
    info_->duration_ns = call.end - info_->start_ns;
    finish(call.end);
    return call.bytes > handshake ? call.bytes - handshake : kHandshake;
  };
  last_end_ = call.end;
  switch (state_) {
    case State::kSrvHello:  // the rest of the ClientHello, or our flight's first write
      if (call.is_send) {
        read_server_hello(call);
        turnaround_ = call.end - hello_end_;
        state_ = State::kSrvFlight;
      }
      return kHandshake;
    case State::kSrvFlight:
      if (call.is_send || type == kTlsHandshake) {  // more of our flight; a second ClientHello
        if (!call.is_send && !tls13) state_ = State::kSrvAwaitFinish;  // 1.2: ClientKeyExchange...
        return kHandshake;
      }
      if (!tls13) return done(call.bytes);  // 1.2 resumed: the client's CCS + Finished
      if (type == kTlsChangeCipherSpec && call.bytes == 6) {
        state_ = State::kSrvCcsRead;
        return kHandshake;
      }
      if (type == kTlsApplicationData) return done(first_record_size(call.cap));  // a Finished, no CCS
      return done((type == kTlsChangeCipherSpec ? 6 : 0) + finished_record());
    case State::kSrvCcsRead:  // the Finished after a lone CCS
      return call.is_send ? kHandshake : done(finished_record());
    case State::kSrvAwaitFinish:  // TLS 1.2: our CCS + Finished end it
      return call.is_send ? done(call.bytes) : kHandshake;
    default:
      return call.bytes;
  }
}

void WireTlsTracker::inherit(const WireTlsTracker& parent) {
  info_ = parent.info_;
  suite_ = parent.suite_;
  server_ = parent.server_;
  state_ = parent.state_ == State::kUnknown || parent.state_ == State::kNone ? parent.state_ : State::kDone;
  app_sent_ = true;
}

std::optional<TlsInfo> WireTlsTracker::take() {
  if (info_ && state_ != State::kDone && state_ != State::kTicketsDue) info_->duration_ns = last_end_ - info_->start_ns;
  return std::move(info_);
}

}  // namespace httptrace::analyzer
