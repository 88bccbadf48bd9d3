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
};

// The same, pointing into the captured bytes: what the model uses, so a request costs no copies.
struct HttpRequestView {
  std::string_view method, target, host;
};

// "GET /x HTTP/1.1\r\nHost: example.com" -> method, target, host. False when not HTTP/1.x.
bool sniff_request(std::string_view bytes, HttpRequestView& out);
bool sniff_request(std::string_view bytes, HttpRequestLine& out);
// "HTTP/1.1 200 OK" -> 200. 0 when not an HTTP/1.x status line.
int sniff_status(std::string_view bytes);
// The client connection preface of HTTP/2 ("PRI * HTTP/2.0"), or as much of it as was captured
// (at least 8 bytes).
bool sniff_h2_preface(std::string_view bytes);
// "example.com:8080" -> "example.com", "[::1]:80" -> "::1".
std::string host_without_port(std::string_view host);

}  // namespace httptrace::analyzer
