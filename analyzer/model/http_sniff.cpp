#include "analyzer/model/http_sniff.h"

#include <algorithm>
#include <array>

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

bool sniff_request(std::string_view bytes, HttpRequestView& out) {
  size_t eol = bytes.find("\r\n");
  std::string_view line = bytes.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos || sp1 > 32) return false;
  std::string_view method = line.substr(0, sp1);
  if (!std::all_of(method.begin(), method.end(), is_tchar)) return false;
  size_t sp2 = line.rfind(' ');
  if (sp2 == sp1) return false;
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || !is_http1_version(line.substr(sp2 + 1))) return false;
  out.method = method;
  out.target = target;
  out.host = {};
  // The recorder keeps only the Host header after the request line; look for it anyway.
  while (eol != std::string_view::npos) {
    size_t start = eol + 2;
    eol = bytes.find("\r\n", start);
    std::string_view h = bytes.substr(start, eol == std::string_view::npos ? bytes.npos : eol - start);
    size_t colon = h.find(':');
    if (colon != std::string_view::npos && iequals(h.substr(0, colon), "host")) {
      out.host = trim(h.substr(colon + 1));
      break;
    }
  }
  return true;
}

bool sniff_request(std::string_view bytes, HttpRequestLine& out) {
  HttpRequestView v;
  if (!sniff_request(bytes, v)) return false;
  out.method.assign(v.method);
  out.target.assign(v.target);
  out.host.assign(v.host);
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

}  // namespace httptrace::analyzer
