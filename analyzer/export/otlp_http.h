// OTLP/HTTP push: an HTTP/1.1 POST client over a plain TCP socket, and the exporter's retry
// policy (OTLP specification, "OTLP/HTTP Throttling" and "Failures"): 429, 502, 503 and 504 are
// retried with exponential back-off or after the Retry-After the receiver asked for; every other
// answer (400 bad data, 413 too large, 401 ...) is final, since sending the same bytes again
// cannot succeed. Only http:// endpoints: TLS to a receiver is not supported yet.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace httptrace::analyzer::otlp {

struct Endpoint {
  std::string url;   // the full URL requests go to, for messages
  std::string host;  // as written (IPv6 without brackets)
  std::string port = "80";
  std::string path;  // "/v1/traces" under the base URL
  std::string host_header;
};

// base: OTEL_EXPORTER_OTLP_ENDPOINT style (path /v1/traces is appended); exact:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT style (used as it is). False with the reason in error.
bool parse_endpoint(const std::string& url, bool exact, Endpoint& out, std::string& error);

// "k1=v1,k2=v2" with percent-encoded values (the OTEL_EXPORTER_OTLP_HEADERS syntax).
bool parse_headers(const std::string& spec, std::vector<std::pair<std::string, std::string>>& out,
                   std::string& error);

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::string content_type;
  std::string body;  // at most kMaxBody bytes are kept
  std::optional<uint64_t> retry_after_s;
  static constexpr size_t kMaxBody = 64 * 1024;
};

class HttpClient {
 public:
  HttpClient(Endpoint ep, std::vector<std::pair<std::string, std::string>> headers, int timeout_ms)
      : ep_(std::move(ep)), headers_(std::move(headers)), timeout_ms_(timeout_ms) {}
  ~HttpClient() { disconnect(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // One POST (reusing the kept-alive connection; a stale one is replaced once). False on a
  // network failure (refused, timeout, reset) with the reason in error.
  bool post(const std::string& content_type, const std::string& body, HttpResponse& resp,
            std::string& error);
  const Endpoint& endpoint() const { return ep_; }
  int timeout_ms() const { return timeout_ms_; }

 private:
  bool connect_to(int64_t deadline_ms, std::string& error);
  void disconnect();
  bool exchange(const std::string& request, HttpResponse& resp, int64_t deadline_ms, bool& keep,
                bool& nothing_read, std::string& error);

  Endpoint ep_;
  std::vector<std::pair<std::string, std::string>> headers_;
  int timeout_ms_;
  int fd_ = -1;
};

struct RetryPolicy {
  int max_attempts = 6;
  uint64_t first_backoff_ms = 1000, max_backoff_ms = 30000, max_retry_after_s = 60;
};

// Sends body with retries. Returns "" on success (2xx), else what went wrong, naming the
// endpoint, the status and an excerpt of the receiver's explanation. sleep_ms is how it waits
// (tests pass their own).
std::string send_with_retries(HttpClient& client, const std::string& content_type,
                              const std::string& body, const RetryPolicy& policy,
                              const std::function<void(uint64_t)>& sleep_ms);

bool retryable_status(int status);
// What a refusal's body says: the text of a JSON or protobuf google.rpc.Status message when it
// is one, else the body's start, printable and cut to a line.
std::string body_excerpt(const HttpResponse& r);

}  // namespace httptrace::analyzer::otlp
