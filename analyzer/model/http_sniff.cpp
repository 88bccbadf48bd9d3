#include "analyzer/model/http_sniff.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace httptrace::analyzer {

namespace {

// RFC 9110 tchar, which is what a method is made of.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos;
  return t;
}();
bool is_tchar(char c) { return kTchar[static_cast<uint8_t>(c)]; }

bool is_http1_version(std::string_view v) {
  return v.size() == 8 && v.substr(0, 7) == "HTTP/1." && (v[7] == '0' || v[7] == '1');
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

namespace {

// Calls f(name, value) for each "Name: value" line after the first line of bytes.
template <class F> void each_header(std::string_view bytes, size_t eol, F&& f) {
  while (eol != std::string_view::npos) {
    size_t start = eol + 2;
    eol = bytes.find("\r\n", start);
    std::string_view h = bytes.substr(start, eol == std::string_view::npos ? bytes.npos : eol - start);
    if (h.empty()) return;  // end of the header block
    size_t colon = h.find(':');
    if (colon != std::string_view::npos) f(h.substr(0, colon), trim(h.substr(colon + 1)));
  }
}

}  // namespace

bool sniff_request(std::string_view bytes, HttpRequestView& out, bool target_cut) {
  size_t eol = bytes.find("\r\n");
  std::string_view line = bytes.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos || sp1 > 32) return false;
  std::string_view method = line.substr(0, sp1);
  if (!std::all_of(method.begin(), method.end(), is_tchar)) return false;
  size_t sp2 = line.rfind(' ');
  std::string_view target;
  if (sp2 != sp1 && is_http1_version(line.substr(sp2 + 1))) {
    target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  } else if (target_cut) {
    // Cut inside the target: no version follows (a space inside a target is not HTTP/1.x).
    target = line.substr(sp1 + 1);
    if (target.find(' ') != std::string_view::npos) return false;
  } else {
    return false;
  }
  if (target.empty()) return false;
  out.method = method;
  out.target = target;
  // One by one: a chained assignment reloaded a just-stored view (a store-forwarding stall).
  out.host = {};
  out.connection = {};
  out.traceparent = {};
  each_header(bytes, eol, [&](std::string_view name, std::string_view value) {
    if (iequals(name, "host")) out.host = value;
    else if (iequals(name, "connection")) out.connection = value;
    else if (iequals(name, "traceparent")) out.traceparent = value;
  });
  return true;
}

bool sniff_request(std::string_view bytes, HttpRequestLine& out, bool target_cut) {
  HttpRequestView v;
  if (!sniff_request(bytes, v, target_cut)) return false;
  out.method.assign(v.method);
  out.target.assign(v.target);
  out.host.assign(v.host);
  out.connection.assign(v.connection);
  out.traceparent.assign(v.traceparent);
  return true;
}

int sniff_status(std::string_view bytes) {
  if (bytes.size() < 12 || !is_http1_version(bytes.substr(0, 8)) || bytes[8] != ' ') return 0;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (bytes[i] < '0' || bytes[i] > '9') return 0;
    code = code * 10 + (bytes[i] - '0');
  }
  if (bytes.size() > 12 && bytes[12] != ' ' && bytes[12] != '\r') return 0;
  return code >= 100 ? code : 0;
}

bool sniff_response(std::string_view bytes, HttpResponseView& out) {
  out.status = sniff_status(bytes);
  out.connection = {};
  out.keep_alive = {};
  if (!out.status) return false;
  each_header(bytes, bytes.find("\r\n"), [&](std::string_view name, std::string_view value) {
    if (iequals(name, "connection")) out.connection = value;
    else if (iequals(name, "keep-alive")) out.keep_alive = value;
  });
  return true;
}

bool connection_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool connection_says_close(std::string_view value) { return connection_has_token(value, "close"); }

bool offers_h2c_upgrade(std::string_view connection) { return connection_has_token(connection, "HTTP2-Settings"); }

int keep_alive_timeout_s(std::string_view value) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view p = trim(value.substr(0, comma));
    size_t eq = p.find('=');
    if (eq != std::string_view::npos && iequals(trim(p.substr(0, eq)), "timeout")) {
      std::string_view n = trim(p.substr(eq + 1));
      if (n.empty() || n.size() > 9) return -1;
      int v = 0;
      for (char ch : n) {
        if (ch < '0' || ch > '9') return -1;
        v = v * 10 + (ch - '0');
      }
      return v;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return -1;
}

bool sniff_h2_preface(std::string_view bytes) {
  constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (bytes.size() < 8) return false;
  size_t n = std::min(bytes.size(), kPreface.size());
  return bytes.substr(0, n) == kPreface.substr(0, n);
}

std::string host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close != std::string_view::npos) return std::string(host.substr(1, close - 1));
    return std::string(host);
  }
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(':') == colon) host = host.substr(0, colon);
  return std::string(host);
}

uint16_t port_of_authority(std::string_view authority) {
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close != std::string_view::npos && authority.substr(close + 1).starts_with(':')) port = authority.substr(close + 2);
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos && authority.find(':') == colon) {
    port = authority.substr(colon + 1);
  }
  unsigned n = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  return !port.empty() && ec == std::errc() && end == port.data() + port.size() && n <= 65535 ? static_cast<uint16_t>(n) : 0;
}

}  // namespace httptrace::analyzer
