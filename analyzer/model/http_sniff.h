// Recognises HTTP/1.x request and status lines (and the HTTP/2 preface) in the few bytes the
// recorder captures at a direction change. Input is untrusted and may be cut anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace httptrace::analyzer {

struct HttpRequestLine {
  std::string method;
  std::string target;
  std::string host;  // Host header value, "" when absent from the capture
  std::string connection, traceparent;
};

// The same, pointing into the captured bytes: what the model uses, so a request costs no copies.
// Header values are "" when the header is absent from the capture.
struct HttpRequestView {
  std::string_view method, target, host, connection, traceparent;
};

// "GET /x HTTP/1.1\r\nHost: example.com\r\ntraceparent: 00-..." -> method, target and the
// allow-listed headers the recorder keeps (Host, Connection, traceparent). False when not
// HTTP/1.x. target_cut: the recorder cut the target (kDataCaptureCut), so the line may end
// inside it, without the version.
bool sniff_request(std::string_view bytes, HttpRequestView& out, bool target_cut = false);
bool sniff_request(std::string_view bytes, HttpRequestLine& out, bool target_cut = false);

struct HttpResponseView {
  int status = 0;
  std::string_view connection, keep_alive;  // header values, "" when absent
};
// "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5" -> 200 and the headers.
// status 0 (and false) when not an HTTP/1.x status line.
bool sniff_response(std::string_view bytes, HttpResponseView& out);
// "HTTP/1.1 200 OK" -> 200. 0 when not an HTTP/1.x status line.
int sniff_status(std::string_view bytes);
// Whether a Connection header value holds the token (comma-separated, any case).
bool connection_has_token(std::string_view value, std::string_view token);
// ... the token "close".
bool connection_says_close(std::string_view value);
// A request's Connection header that offers the h2c upgrade (RFC 7540 §3.2): its HTTP2-Settings
// header is hop-by-hop, so it is named there. The Upgrade header itself is not captured; no other
// upgrade (WebSocket) names HTTP2-Settings.
bool offers_h2c_upgrade(std::string_view connection);
// The timeout=N parameter of a Keep-Alive header value in seconds, -1 when absent or not a number.
int keep_alive_timeout_s(std::string_view value);
// The client connection preface of HTTP/2 ("PRI * HTTP/2.0"), or as much of it as was captured
// (at least 8 bytes).
bool sniff_h2_preface(std::string_view bytes);
// "example.com:8080" -> "example.com", "[::1]:80" -> "::1".
std::string host_without_port(std::string_view host);
// The port an authority ("host:port", "[v6]:port") names; 0 when none.
uint16_t port_of_authority(std::string_view authority);

}  // namespace httptrace::analyzer
