// Which application protocol a connection speaks, decided in one place from every kind of
// evidence: a library's negotiated ALPN, the ALPN seen in a wire handshake, the HTTP/2 preface
// or frame headers, an HTTP/1.x request or status line. HTTP/2 evidence always wins (an h2c
// upgrade starts as HTTP/1.1); HTTP/1.1 is only taken while nothing else is known.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "analyzer/model/http_sniff.h"
#include "analyzer/model/wire_tls_tracker.h"

namespace httptrace::analyzer {

enum class Protocol : uint8_t { kUnknown, kHttp1, kH2 };

// What one call's captured bytes say. Small on purpose: it is made for every captured call, and
// the request / response views live in storage the caller keeps (zeroing them per call showed).
struct CallEvidence {
  Protocol protocol = Protocol::kUnknown;
  bool has_request = false;   // a request line (and the allow-listed headers) filled in
  bool has_response = false;  // a status line (and the allow-listed headers) filled in
  bool h2_frames = false;     // the capture holds h2 frame headers
};

// The one reader of captured application bytes. request / response point into the capture.
// inbound: the connection was accepted, so requests are read and responses written.
CallEvidence read_call(const DataCall& call, bool inbound, HttpRequestView& request, HttpResponseView& response);

class ProtocolDecision {
 public:
  void note(Protocol p) {
    if (p == Protocol::kH2 || p_ == Protocol::kUnknown) p_ = p;
  }
  // A negotiated ALPN (library hook or a wire ServerHello) and what the client offered.
  void note_alpn(std::string_view chosen, const std::vector<std::string>* offered = nullptr) {
    if (chosen == "h2" || (offered && offered->size() == 1 && (*offered)[0] == "h2")) note(Protocol::kH2);
  }
  Protocol get() const { return p_; }
  bool h2() const { return p_ == Protocol::kH2; }
  std::optional<std::string> name() const {
    switch (p_) {
      case Protocol::kHttp1: return "http/1.1";
      case Protocol::kH2: return "h2";
      case Protocol::kUnknown: break;
    }
    return std::nullopt;
  }

 private:
  Protocol p_ = Protocol::kUnknown;
};

}  // namespace httptrace::analyzer
