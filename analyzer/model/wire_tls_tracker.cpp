#include "analyzer/model/wire_tls_tracker.h"

#include <string>

#include "analyzer/model/tls_wire.h"

namespace httptrace::analyzer {

void WireTlsTracker::read_server_hello(const DataCall& call) {
  TlsInfo& t = *info_;
  ServerHello sh;
  bool ok = false;
  if (state_ == State::kAwaitServer && call.capture == tf::CaptureKind::kTls) {
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
  if (!sh.alpn.empty()) t.alpn = sh.alpn;
}

std::optional<uint64_t> WireTlsTracker::filter(const DataCall& call) {
  switch (state_) {
    case State::kUnknown: {
      ClientHello ch;
      if (call.is_send && call.capture == tf::CaptureKind::kTls && parse_client_hello(call.cap, ch)) {
        TlsInfo t;
        t.start_ns = call.ts;
        t.library = "wire";
        t.sni = ch.sni;
        t.alpn_offered = ch.alpn;
        if (ch.alpn.size() == 1) t.alpn = ch.alpn[0];
        info_ = std::move(t);
        state_ = State::kAwaitServer;
        last_end_ = call.end;
        return std::nullopt;
      }
      state_ = State::kNone;
      return call.bytes;
    }
    case State::kNone:
    case State::kDone: return call.bytes;
    case State::kAwaitServer:
    case State::kServerFlight: {
      if (!call.is_send) {
        if (call.bytes == 0) return call.bytes;  // EOF during the handshake: ends the (empty) exchange
        read_server_hello(call);
        state_ = State::kServerFlight;
        last_end_ = call.end;
        return std::nullopt;
      }
      if (state_ == State::kAwaitServer) {  // more of the client's first flight
        last_end_ = call.end;
        return std::nullopt;
      }
      const uint8_t type = call.capture == tf::CaptureKind::kTls ? first_record_type(call.cap) : 0;
      if (type == kTlsHandshake && info_->version != "TLSv1.3") {
        state_ = State::kAwaitServerFinish;
        last_end_ = call.end;
        return std::nullopt;
      }
      // The client's flight finishes the handshake (TLS 1.3 or an abbreviated 1.2).
      info_->duration_ns = call.end - info_->start_ns;
      state_ = State::kDone;
      const uint64_t extra =
          call.capture == tf::CaptureKind::kTls ? bytes_after_finished(call.cap, call.bytes) : 0;
      if (extra == 0) return std::nullopt;
      return extra;
    }
    case State::kAwaitServerFinish:
    case State::kServerFinish:
      if (!call.is_send && call.bytes > 0) {
        state_ = State::kServerFinish;
        last_end_ = call.end;
        return std::nullopt;
      }
      if (call.is_send) {
        info_->duration_ns = last_end_ - info_->start_ns;
        state_ = State::kDone;
      }
      return call.bytes;
  }
  return call.bytes;
}

void WireTlsTracker::inherit(const WireTlsTracker& parent) {
  info_ = parent.info_;
  state_ = parent.state_ == State::kUnknown ? State::kUnknown : State::kDone;
}

std::optional<TlsInfo> WireTlsTracker::take() {
  if (info_ && state_ != State::kDone) info_->duration_ns = last_end_ - info_->start_ns;
  return std::move(info_);
}

}  // namespace httptrace::analyzer
