#include "analyzer/export/otlp_http.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace httptrace::analyzer::otlp {

namespace {

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
      return false;
    out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return true;
}

// Waits until fd is ready for events or the deadline passes; false on timeout (errno ETIMEDOUT).
bool wait_fd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return false;
    }
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

std::string printable_line(std::string_view s, size_t max) {
  std::string r;
  for (char c : s) {
    if (r.size() >= max) {
      r += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    r += (u == '\n' || u == '\r' || u == '\t') ? ' ' : (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  return std::string(trim(r));
}

// google.rpc.Status { int32 code = 1; string message = 2; ... } in protobuf: the message field.
std::optional<std::string> rpc_status_message(std::string_view b) {
  size_t i = 0;
  auto varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && i < b.size(); shift += 7) {
      const auto c = static_cast<uint8_t>(b[i++]);
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  };
  while (i < b.size()) {
    uint64_t key, v;
    if (!varint(key)) return std::nullopt;
    switch (key & 7) {
      case 0:
        if (!varint(v)) return std::nullopt;
        break;
      case 2:
        if (!varint(v) || v > b.size() - i) return std::nullopt;
        if ((key >> 3) == 2) return std::string(b.substr(i, v));
        i += v;
        break;
      case 1: i += 8; break;
      case 5: i += 4; break;
      default: return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

bool parse_endpoint(const std::string& url, bool exact, Endpoint& out, std::string& error) {
  std::string_view u = trim(url);
  if (u.starts_with("https://")) {
    error = fmt::format("OTLP endpoint {}: https is not supported yet (use http://, e.g. a local "
                        "OpenTelemetry Collector that forwards over TLS)", u);
    return false;
  }
  if (!u.starts_with("http://")) {
    error = fmt::format("OTLP endpoint '{}' is not an http:// URL", u);
    return false;
  }
  u.remove_prefix(7);
  const size_t slash = u.find('/');
  std::string_view authority = u.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : u.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    error = fmt::format("OTLP endpoint {}: user information in the URL is not supported "
                        "(use OTEL_EXPORTER_OTLP_HEADERS)", url);
    return false;
  }
  Endpoint ep;
  std::string_view port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = fmt::format("OTLP endpoint {}: unbalanced '[' in the host", url);
      return false;
    }
    ep.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        error = fmt::format("OTLP endpoint {}: junk after the IPv6 address", url);
        return false;
      }
      port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    ep.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (ep.host.empty()) {
    error = fmt::format("OTLP endpoint {}: no host", url);
    return false;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(port)) > 65535 || std::stoi(std::string(port)) == 0) {
      error = fmt::format("OTLP endpoint {}: bad port '{}'", url, port);
      return false;
    }
    ep.port = port;
  }
  ep.host_header = std::string(authority);
  if (exact) {
    ep.path = path.empty() ? "/" : std::string(path);
  } else {
    std::string base(path);
    while (!base.empty() && base.back() == '/') base.pop_back();
    ep.path = base + "/v1/traces";
  }
  ep.url = "http://" + ep.host_header + ep.path;
  out = std::move(ep);
  return true;
}

bool parse_headers(const std::string& spec, std::vector<std::pair<std::string, std::string>>& out,
                   std::string& error) {
  std::string_view s = spec;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    std::string_view item = trim(s.substr(0, comma));
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    std::string key, value;
    if (eq == std::string_view::npos || !percent_decode(trim(item.substr(0, eq)), key) ||
        !percent_decode(trim(item.substr(eq + 1)), value) || key.empty() ||
        key.find_first_of(" \t\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      error = fmt::format("OTEL_EXPORTER_OTLP_HEADERS: bad entry '{}' (want key=value,...)", item);
      return false;
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return true;
}

void HttpClient::disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool HttpClient::connect_to(int64_t deadline_ms, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(ep_.host.c_str(), ep_.port.c_str(), &hints, &res);
  if (rc != 0) {
    error = fmt::format("cannot resolve {}: {}", ep_.host, gai_strerror(rc));
    return false;
  }
  error.clear();
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        socklen_t len = sizeof err;
        err = wait_fd(fd, POLLOUT, deadline_ms) ? (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), err)
                                                : ETIMEDOUT;
      }
    }
    if (err == 0) {
      fd_ = fd;
      freeaddrinfo(res);
      return true;
    }
    ::close(fd);
    error = fmt::format("cannot connect to {}:{}: {}", ep_.host, ep_.port, std::strerror(err));
  }
  freeaddrinfo(res);
  if (error.empty()) error = fmt::format("cannot connect to {}:{}", ep_.host, ep_.port);
  return false;
}

bool HttpClient::post(const std::string& content_type, const std::string& body, HttpResponse& resp,
                      std::string& error) {
  std::string req = fmt::format("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\n"
                                "Content-Length: {}\r\nUser-Agent: httptrace\r\n",
                                ep_.path, ep_.host_header, content_type, body.size());
  for (const auto& [k, v] : headers_) req += fmt::format("{}: {}\r\n", k, v);
  req += "\r\n";
  req += body;
  const int64_t deadline = now_ms() + timeout_ms_;
  // A kept-alive connection the receiver closed meanwhile fails before any answer: that is not
  // the receiver refusing the data, so one fresh connection is tried at once.
  for (int round = 0; round < 2; ++round) {
    const bool reused = fd_ >= 0;
    if (!reused && !connect_to(deadline, error)) return false;
    bool keep = false, nothing_read = false;
    resp = HttpResponse{};
    if (exchange(req, resp, deadline, keep, nothing_read, error)) {
      if (!keep) disconnect();
      return true;
    }
    disconnect();
    if (!(reused && nothing_read)) return false;
  }
  return false;
}

bool HttpClient::exchange(const std::string& req, HttpResponse& resp, int64_t deadline, bool& keep,
                          bool& nothing_read, std::string& error) {
  auto fail = [&](std::string_view what) {
    error = fmt::format("{} {}: {}", what, ep_.url, errno == ETIMEDOUT
                        ? fmt::format("no answer within {} ms", timeout_ms_) : std::strerror(errno));
    return false;
  };
  for (size_t off = 0; off < req.size();) {
    const ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_fd(fd_, POLLOUT, deadline)) return fail("sending to");
    } else {
      nothing_read = true;  // EPIPE / ECONNRESET on a stale connection
      return fail("sending to");
    }
  }
  std::string in;
  size_t header_end = std::string::npos;
  bool eof = false;
  char buf[16384];
  auto fill = [&]() -> bool {
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) {
        eof = true;
        return true;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN || !wait_fd(fd_, POLLIN, deadline)) return false;
    }
  };
  while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
    if (in.size() > 256 * 1024) {
      error = fmt::format("{}: response headers too long", ep_.url);
      return false;
    }
    if (!fill()) {
      nothing_read = in.empty() && errno == ECONNRESET;
      return fail("reading from");
    }
    if (eof) {
      nothing_read = in.empty();
      errno = 0;
      error = fmt::format("{}: connection closed before a complete response", ep_.url);
      return false;
    }
  }
  // Status line and the few headers we act on.
  std::string_view head(in.data(), header_end);
  const size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12) {
    error = fmt::format("{}: not an HTTP response: '{}'", ep_.url, printable_line(status_line, 80));
    return false;
  }
  resp.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  resp.reason = trim(status_line.size() > 13 ? status_line.substr(13) : std::string_view());
  keep = status_line.starts_with("HTTP/1.1");
  std::optional<uint64_t> length;
  bool chunked = false;
  for (size_t at = eol == std::string_view::npos ? head.size() : eol + 2; at < head.size();) {
    size_t next = head.find("\r\n", at);
    if (next == std::string_view::npos) next = head.size();
    std::string_view line = head.substr(at, next - at);
    at = next + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length") length = std::strtoull(std::string(value).c_str(), nullptr, 10);
    else if (name == "transfer-encoding") chunked = lower(value).find("chunked") != std::string::npos;
    else if (name == "connection") keep = keep ? lower(value) != "close" : lower(value) == "keep-alive";
    else if (name == "content-type") resp.content_type = lower(value);
    else if (name == "retry-after" && !value.empty() &&
             value.find_first_not_of("0123456789") == std::string_view::npos)
      resp.retry_after_s = std::strtoull(std::string(value).c_str(), nullptr, 10);
    // An HTTP-date Retry-After is left to the back-off: the receiver's clock is not ours.
  }
  in.erase(0, header_end + 4);
  auto keep_body = [&](std::string_view part) {
    const size_t room = HttpResponse::kMaxBody - std::min(HttpResponse::kMaxBody, resp.body.size());
    resp.body.append(part.substr(0, room));
  };
  if (chunked) {
    for (;;) {
      size_t crlf;
      while ((crlf = in.find("\r\n")) == std::string::npos) {
        if (!fill() || eof) return fail("reading from");
      }
      const uint64_t size = std::strtoull(in.substr(0, crlf).c_str(), nullptr, 16);
      in.erase(0, crlf + 2);
      while (in.size() < size + 2) {
        if (!fill() || eof) return fail("reading from");
      }
      keep_body(std::string_view(in).substr(0, size));
      in.erase(0, size + 2);
      if (size == 0) break;  // trailers, if any, end with the CRLF just consumed
    }
  } else if (length) {
    uint64_t left = *length;
    for (;;) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(left, in.size()));
      keep_body(std::string_view(in).substr(0, take));
      in.erase(0, take);
      left -= take;
      if (left == 0) break;
      if (!fill() || eof) return fail("reading from");
    }
  } else if (resp.status >= 200 && resp.status != 204 && resp.status != 304) {
    keep = false;  // the body runs to the close
    for (;;) {
      keep_body(in);
      in.clear();
      if (eof) break;
      if (!fill()) return fail("reading from");
    }
  }
  return true;
}

bool retryable_status(int status) { return status == 429 || status == 502 || status == 503 || status == 504; }

std::string body_excerpt(const HttpResponse& r) {
  std::string text = r.body;
  if (r.content_type.find("protobuf") != std::string::npos) {
    if (auto m = rpc_status_message(r.body)) text = *m;
    else text.clear();  // binary we cannot read says nothing useful
  } else if (r.content_type.find("json") != std::string::npos) {
    // {"code":3,"message":"..."}: the message is the readable part.
    const size_t k = text.find("\"message\"");
    if (k != std::string::npos) {
      const size_t q = text.find('"', text.find(':', k) + 1);
      if (q != std::string::npos) {
        std::string m;
        for (size_t i = q + 1; i < text.size() && text[i] != '"'; ++i) {
          if (text[i] == '\\' && i + 1 < text.size()) ++i;
          m += text[i];
        }
        text = m;
      }
    }
  }
  return printable_line(text, 300);
}

std::string send_with_retries(HttpClient& client, const std::string& content_type,
                              const std::string& body, const RetryPolicy& policy,
                              const std::function<void(uint64_t)>& sleep_ms) {
  uint64_t backoff = policy.first_backoff_ms;
  std::string last;
  for (int attempt = 1; attempt <= policy.max_attempts; ++attempt) {
    HttpResponse r;
    std::string error;
    uint64_t wait = backoff;
    if (!client.post(content_type, body, r, error)) {
      last = error;  // the network failed: worth another try, the receiver may be restarting
    } else if (r.status >= 200 && r.status < 300) {
      return "";
    } else {
      const std::string excerpt = body_excerpt(r);
      last = fmt::format("the OTLP receiver at {} refused {} bytes of spans: HTTP {}{}{}{}",
                         client.endpoint().url, body.size(), r.status, r.reason.empty() ? "" : " ",
                         r.reason, excerpt.empty() ? "" : ": " + excerpt);
      if (!retryable_status(r.status)) return last + " (not retried)";
      if (r.retry_after_s) wait = std::min(*r.retry_after_s, policy.max_retry_after_s) * 1000;
    }
    if (attempt == policy.max_attempts) break;
    sleep_ms(wait);
    backoff = std::min(backoff * 2, policy.max_backoff_ms);
  }
  return fmt::format("{} (gave up after {} attempts)", last, policy.max_attempts);
}

}  // namespace httptrace::analyzer::otlp
