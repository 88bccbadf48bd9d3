// Hand-assembled TLS records for tests: a ClientHello with SNI/ALPN/supported_versions, a
// ServerHello, and the records of later flights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace httptrace::testing {

inline std::string be16(size_t n) { return {char(n >> 8), char(n & 0xff)}; }
inline std::string be24(size_t n) { return {char(n >> 16), char((n >> 8) & 0xff), char(n & 0xff)}; }

inline std::string tls_record(uint8_t type, const std::string& body) {
  return std::string{char(type), 3, 3} + be16(body.size()) + body;
}

inline std::string extension(uint16_t type, const std::string& body) { return be16(type) + be16(body.size()) + body; }

inline std::string client_hello(const std::string& sni, const std::vector<std::string>& alpn, bool tls13 = true) {
  std::string exts;
  if (!sni.empty()) {
    std::string entry = std::string(1, '\0') + be16(sni.size()) + sni;
    exts += extension(0, be16(entry.size()) + entry);
  }
  if (!alpn.empty()) {
    std::string list;
    for (const auto& p : alpn) list += std::string(1, char(p.size())) + p;
    exts += extension(16, be16(list.size()) + list);
  }
  if (tls13) exts += extension(43, std::string{4, 3, 4, 3, 3});
  std::string body = "\x03\x03" + std::string(32, 'r') + std::string(1, '\0') + be16(2) + "\x13\x01" +
                     std::string{1, 0} + be16(exts.size()) + exts;
  return tls_record(0x16, std::string(1, 1) + be24(body.size()) + body);
}

inline std::string server_hello(bool tls13, const std::string& alpn = "") {
  std::string exts;
  if (tls13) exts += extension(43, "\x03\x04");
  if (!alpn.empty()) {
    std::string list = std::string(1, char(alpn.size())) + alpn;
    exts += extension(16, be16(list.size()) + list);
  }
  std::string body = "\x03\x03" + std::string(32, 's') + std::string(1, '\0') + "\x13\x01" + std::string(1, '\0') +
                     be16(exts.size()) + exts;
  return tls_record(0x16, std::string(1, 2) + be24(body.size()) + body);
}

inline std::string ccs() { return tls_record(0x14, std::string(1, 1)); }

}  // namespace httptrace::testing
