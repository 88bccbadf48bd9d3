// Reads TLS metadata from captured wire bytes (kCaptureTls): the ClientHello's SNI and offered
// ALPN, the ServerHello's version and chosen ALPN, and record boundaries. Only the public, clear
// text part of a handshake is looked at. Every length is checked against the captured bytes: a
// capture may be cut anywhere, and a hostile peer may lie in any field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace httptrace::analyzer {

inline constexpr uint8_t kTlsChangeCipherSpec = 0x14;
inline constexpr uint8_t kTlsAlert = 0x15;
inline constexpr uint8_t kTlsHandshake = 0x16;
inline constexpr uint8_t kTlsApplicationData = 0x17;

struct ClientHello {
  std::string sni;
  std::vector<std::string> alpn;  // offered, in preference order
  uint16_t max_version = 0;       // highest of legacy_version and supported_versions
};

struct ServerHello {
  uint16_t version = 0;           // chosen (supported_versions wins over legacy_version)
  uint16_t cipher_suite = 0;      // chosen
  std::string alpn;               // chosen; only visible in TLS 1.2 (1.3 encrypts it)
  bool change_cipher_spec = false;// a CCS record followed in the same capture
};

// True when bytes start with a TLS handshake record carrying a ClientHello. Fields are filled as
// far as the capture reaches.
bool parse_client_hello(std::string_view bytes, ClientHello& out);
bool parse_server_hello(std::string_view bytes, ServerHello& out);
// Content type of the first record, or 0 if bytes do not start with a plausible record header.
uint8_t first_record_type(std::string_view bytes);
// The size of the first record, header included, from its header; 0 if bytes hold no header.
uint64_t first_record_size(std::string_view bytes);
// For the client's flight that finishes a handshake (optional CCS records, then one Finished
// record): how many of the call's `total` bytes follow that Finished record, i.e. application data
// coalesced into the same write. 0 when nothing follows or the headers are not all captured.
uint64_t bytes_after_finished(std::string_view bytes, uint64_t total);

std::string tls_version_name(uint16_t version);
// The IANA name of a cipher suite ("TLS_AES_128_GCM_SHA256"), or "0xc0ff" for one not listed.
std::string cipher_suite_name(uint16_t suite);
// A record the client sends to end a session: an alert (0x15), or in TLS 1.3, where alerts are
// encrypted, one application-data record of exactly an alert's size (2 bytes + type + 16-byte tag).
bool looks_like_close_notify(std::string_view bytes, uint64_t total, bool tls13);

}  // namespace httptrace::analyzer
