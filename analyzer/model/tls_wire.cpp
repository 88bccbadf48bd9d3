#include "analyzer/model/tls_wire.h"

#include <algorithm>

#include <fmt/format.h>

namespace httptrace::analyzer {

namespace {

// A bounds-checked cursor: every read that would pass the end fails and stays failed.
class Bytes {
 public:
  explicit Bytes(std::string_view s) : p_(reinterpret_cast<const uint8_t*>(s.data())), n_(s.size()) {}
  Bytes(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool ok() const { return ok_; }
  size_t left() const { return ok_ ? n_ - i_ : 0; }
  uint32_t u8() { return take(1) ? p_[i_ - 1] : 0; }
  uint32_t u16() { return take(2) ? (uint32_t{p_[i_ - 2]} << 8) | p_[i_ - 1] : 0; }
  uint32_t u24() {
    return take(3) ? (uint32_t{p_[i_ - 3]} << 16) | (uint32_t{p_[i_ - 2]} << 8) | p_[i_ - 1] : 0;
  }
  bool skip(size_t n) { return take(n); }
  // A sub-range of n bytes; when fewer are captured, the part that is there (for cut captures).
  Bytes sub(size_t n) {
    size_t have = std::min(n, left());
    Bytes b(p_ + i_, have);
    i_ += have;
    if (have < n) ok_ = false;
    return b;
  }
  std::string str(size_t n) {
    size_t have = std::min(n, left());
    std::string s(reinterpret_cast<const char*>(p_ + i_), have);
    take(n);
    return s;
  }

 private:
  bool take(size_t n) {
    if (!ok_ || n > n_ - i_) {
      ok_ = false;
      return false;
    }
    i_ += n;
    return true;
  }
  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
  bool ok_ = true;
};

// Opens the record and handshake headers; leaves b at the handshake body.
bool open_handshake(std::string_view bytes, uint32_t want_type, Bytes& body) {
  Bytes r(bytes);
  if (r.u8() != kTlsHandshake) return false;
  uint32_t legacy = r.u16();
  if ((legacy >> 8) != 3) return false;
  uint32_t rec_len = r.u16();
  if (!r.ok() || rec_len == 0 || rec_len > (1u << 14) + 2048) return false;
  Bytes rec = r.sub(rec_len);
  if (rec.u8() != want_type) return false;
  uint32_t hs_len = rec.u24();
  if (!rec.ok()) return false;
  body = rec.sub(hs_len);
  return true;
}

void parse_alpn_list(Bytes e, std::vector<std::string>& out) {
  Bytes list = e.sub(e.u16());
  while (list.left() > 0) {
    uint32_t n = list.u8();
    std::string p = list.str(n);
    if (!list.ok() || n == 0) break;
    out.push_back(std::move(p));
  }
}

bool printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

bool parse_client_hello(std::string_view bytes, ClientHello& out) {
  Bytes b("");
  if (!open_handshake(bytes, 1, b)) return false;
  out.max_version = static_cast<uint16_t>(b.u16());
  b.skip(32);              // random
  b.skip(b.u8());          // legacy_session_id
  b.skip(b.u16());         // cipher_suites
  b.skip(b.u8());          // legacy_compression_methods
  Bytes exts = b.sub(b.u16());
  while (exts.left() >= 4) {
    uint32_t type = exts.u16();
    Bytes e = exts.sub(exts.u16());
    if (type == 0) {  // server_name
      Bytes list = e.sub(e.u16());
      while (list.left() >= 3) {
        uint32_t name_type = list.u8();
        std::string name = list.str(list.u16());
        if (!list.ok()) break;
        if (name_type == 0 && printable(name)) {
          out.sni = std::move(name);
          break;
        }
      }
    } else if (type == 16) {  // application_layer_protocol_negotiation
      parse_alpn_list(e, out.alpn);
    } else if (type == 43) {  // supported_versions
      Bytes list = e.sub(e.u8());
      while (list.left() >= 2) out.max_version = std::max<uint16_t>(out.max_version, list.u16());
    }
  }
  return true;
}

bool parse_server_hello(std::string_view bytes, ServerHello& out) {
  Bytes b("");
  if (!open_handshake(bytes, 2, b)) return false;
  out.version = static_cast<uint16_t>(b.u16());
  b.skip(32);
  b.skip(b.u8());
  const uint32_t suite = b.u16();
  if (b.ok()) out.cipher_suite = static_cast<uint16_t>(suite);
  b.skip(1);  // legacy_compression_method
  Bytes exts = b.sub(b.u16());
  while (exts.left() >= 4) {
    uint32_t type = exts.u16();
    Bytes e = exts.sub(exts.u16());
    if (type == 43) {
      uint32_t v = e.u16();
      if (e.ok()) out.version = static_cast<uint16_t>(v);
    } else if (type == 16) {
      std::vector<std::string> chosen;
      parse_alpn_list(e, chosen);
      if (!chosen.empty()) out.alpn = chosen.front();
    }
  }
  // Walk the following records of the same capture for a ChangeCipherSpec.
  Bytes r(bytes);
  while (r.left() >= 5) {
    uint32_t type = r.u8();
    r.skip(2);
    uint32_t len = r.u16();
    if (type == kTlsChangeCipherSpec) {
      out.change_cipher_spec = true;
      break;
    }
    if (!r.skip(len)) break;
  }
  return true;
}

uint8_t first_record_type(std::string_view bytes) {
  if (bytes.size() < 3) return 0;
  auto t = static_cast<uint8_t>(bytes[0]);
  if (t < kTlsChangeCipherSpec || t > kTlsApplicationData || static_cast<uint8_t>(bytes[1]) != 3) return 0;
  return t;
}

uint64_t first_record_size(std::string_view bytes) {
  Bytes r(bytes);
  r.skip(3);
  const uint32_t len = r.u16();
  return r.ok() ? 5 + uint64_t{len} : 0;
}

uint64_t bytes_after_finished(std::string_view bytes, uint64_t total) {
  Bytes r(bytes);
  uint64_t pos = 0;
  for (;;) {
    uint32_t type = r.u8();
    r.skip(2);
    uint32_t len = r.u16();
    if (!r.ok()) return 0;
    pos += 5 + len;
    if (type != kTlsChangeCipherSpec) break;  // this one is the Finished record
    if (!r.skip(len)) return 0;
  }
  return total > pos ? total - pos : 0;
}

std::string tls_version_name(uint16_t v) {
  switch (v) {
    case 0x0301: return "TLSv1.0";
    case 0x0302: return "TLSv1.1";
    case 0x0303: return "TLSv1.2";
    case 0x0304: return "TLSv1.3";
    case 0: return "";
  }
  return fmt::format("{:#06x}", v);
}

std::string cipher_suite_name(uint16_t suite) {
  switch (suite) {
    case 0x1301: return "TLS_AES_128_GCM_SHA256";
    case 0x1302: return "TLS_AES_256_GCM_SHA384";
    case 0x1303: return "TLS_CHACHA20_POLY1305_SHA256";
    case 0x1304: return "TLS_AES_128_CCM_SHA256";
    case 0x1305: return "TLS_AES_128_CCM_8_SHA256";
    case 0xc02b: return "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    case 0xc02c: return "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    case 0xc02f: return "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";
    case 0xc030: return "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384";
    case 0xcca8: return "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";
    case 0xcca9: return "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256";
    case 0xccaa: return "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256";
    case 0xc009: return "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA";
    case 0xc00a: return "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA";
    case 0xc013: return "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA";
    case 0xc014: return "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA";
    case 0xc023: return "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256";
    case 0xc024: return "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384";
    case 0xc027: return "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256";
    case 0xc028: return "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384";
    case 0x009e: return "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256";
    case 0x009f: return "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384";
    case 0x009c: return "TLS_RSA_WITH_AES_128_GCM_SHA256";
    case 0x009d: return "TLS_RSA_WITH_AES_256_GCM_SHA384";
    case 0x002f: return "TLS_RSA_WITH_AES_128_CBC_SHA";
    case 0x0035: return "TLS_RSA_WITH_AES_256_CBC_SHA";
    case 0x003c: return "TLS_RSA_WITH_AES_128_CBC_SHA256";
    case 0x003d: return "TLS_RSA_WITH_AES_256_CBC_SHA256";
    case 0x0000: return "";
  }
  return fmt::format("{:#06x}", suite);
}

bool looks_like_close_notify(std::string_view bytes, uint64_t total, bool tls13) {
  const uint8_t type = first_record_type(bytes);
  if (type == kTlsAlert) return true;
  if (!tls13 || type != kTlsApplicationData || bytes.size() < 5 || total != 5 + 19) return false;
  return static_cast<uint8_t>(bytes[3]) == 0 && static_cast<uint8_t>(bytes[4]) == 19;
}

}  // namespace httptrace::analyzer
