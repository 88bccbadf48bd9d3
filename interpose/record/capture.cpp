#include "interpose/record/capture.h"

#include <cstring>

namespace httptrace::capture {

using format::CaptureKind;

size_t gather_prefix(const struct iovec* iov, size_t iovcnt, size_t total, uint8_t* out,
                     size_t out_cap) {
  size_t want = total < out_cap ? total : out_cap;
  size_t got = 0;
  for (size_t i = 0; i < iovcnt && got < want; ++i) {
    size_t n = iov[i].iov_len;
    if (n > want - got) n = want - got;
    if (n == 0 || iov[i].iov_base == nullptr) continue;
    memcpy(out + got, iov[i].iov_base, n);
    got += n;
  }
  return got;
}

namespace {

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_method_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }
bool is_target_char(uint8_t c) { return c > 0x20 && c < 0x7f; }
uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Matches `lit` against in[pos..len). Returns 1 on a full match, 0 on a mismatch, and -1 when the
// data ended while still matching (a request line cut short by the write boundary).
int match(const uint8_t* in, size_t len, size_t pos, const char* lit) {
  for (size_t i = 0; lit[i] != '\0'; ++i) {
    if (pos + i >= len) return -1;
    if (in[pos + i] != static_cast<uint8_t>(lit[i])) return 0;
  }
  return 1;
}

// Outcome of parsing a line prefix: not this protocol, the whole line (ending before line_end),
// or a valid prefix cut short by the end of the data.
enum class Line { kNo, kWhole, kCut };

// "HTTP/" DIGIT ["." DIGIT], starting at pos. Advances pos.
Line http_version(const uint8_t* in, size_t len, size_t& pos) {
  // Whole "HTTP/" present (the usual case): one compare instead of a byte loop.
  if (pos + 5 <= len) {
    if (memcmp(in + pos, "HTTP/", 5) != 0) return Line::kNo;
  } else {
    const int m = match(in, len, pos, "HTTP/");
    if (m == 0) return Line::kNo;
    if (m < 0) return Line::kCut;
  }
  pos += 5;
  if (pos >= len) return Line::kCut;
  if (!is_digit(in[pos])) return Line::kNo;
  ++pos;
  if (pos < len && in[pos] == '.') {
    ++pos;
    if (pos >= len) return Line::kCut;
    if (!is_digit(in[pos])) return Line::kNo;
    ++pos;
  }
  return Line::kWhole;
}

// At pos: "\r\n" or "\n" ends the line.
Line line_end(const uint8_t* in, size_t len, size_t pos) {
  if (pos >= len) return Line::kCut;
  if (in[pos] == '\n') return Line::kWhole;
  if (in[pos] != '\r') return Line::kNo;
  if (pos + 1 >= len) return Line::kCut;
  return in[pos + 1] == '\n' ? Line::kWhole : Line::kNo;
}

// METHOD SP target SP HTTP/d.d CRLF. Sets line_len to the bytes of the line (without CRLF) seen.
Line request_line(const uint8_t* in, size_t len, size_t& line_len) {
  size_t pos = 0;
  while (pos < len && pos < 24 && is_method_char(in[pos])) ++pos;
  line_len = pos;
  if (pos == 0) return Line::kNo;
  if (pos >= len) return Line::kCut;
  if (in[pos] != ' ') return Line::kNo;
  ++pos;
  const size_t target_start = pos;
  while (pos < len && is_target_char(in[pos])) ++pos;
  line_len = pos;
  if (pos >= len) return Line::kCut;
  if (pos == target_start || in[pos] != ' ') return Line::kNo;
  ++pos;
  Line v = http_version(in, len, pos);
  line_len = v == Line::kCut ? len : pos;  // a cut version is still a valid prefix: keep it all
  if (v != Line::kWhole) return v;
  return line_end(in, len, pos);
}

// HTTP/d.d SP ddd [SP reason] CRLF.
Line status_line(const uint8_t* in, size_t len, size_t& line_len) {
  size_t pos = 0;
  Line v = http_version(in, len, pos);
  line_len = v == Line::kCut ? len : pos;
  if (v != Line::kWhole) return v;
  if (pos >= len) return Line::kCut;
  if (in[pos] != ' ') return Line::kNo;
  ++pos;
  for (int i = 0; i < 3; ++i, ++pos) {
    if (pos >= len) { line_len = pos; return Line::kCut; }
    if (!is_digit(in[pos])) return Line::kNo;
  }
  while (pos < len && in[pos] != '\r' && in[pos] != '\n') {
    if (in[pos] < 0x20 && in[pos] != '\t') return Line::kNo;
    ++pos;
  }
  line_len = pos;
  if (pos >= len) return Line::kCut;
  return line_end(in, len, pos);
}

// Finds the Host header among the header lines that start at pos; sets value/value_len.
bool find_host(const uint8_t* in, size_t len, size_t pos, size_t& value, size_t& value_len) {
  while (pos < len) {
    const void* nl = memchr(in + pos, '\n', len - pos);
    size_t eol = nl != nullptr ? static_cast<size_t>(static_cast<const uint8_t*>(nl) - in) : len;
    size_t end = eol;  // exclusive, without CR
    if (end > pos && in[end - 1] == '\r') --end;
    if (end == pos) return false;  // blank line: end of the header block
    if (end - pos >= 5 && lower(in[pos]) == 'h' && lower(in[pos + 1]) == 'o' &&
        lower(in[pos + 2]) == 's' && lower(in[pos + 3]) == 't' && in[pos + 4] == ':') {
      size_t v = pos + 5;
      while (v < end && (in[v] == ' ' || in[v] == '\t')) ++v;
      size_t e = end;
      while (e > v && (in[e - 1] == ' ' || in[e - 1] == '\t')) --e;
      value = v;
      value_len = e - v;
      return true;
    }
    pos = eol + 1;
  }
  return false;
}

Result http_request(const uint8_t* in, size_t len, size_t line_len, bool whole, uint8_t* scratch) {
  constexpr size_t kMax = format::kHttpCaptureMax;
  size_t n = line_len < kMax ? line_len : kMax;
  memcpy(scratch, in, n);
  size_t value = 0, value_len = 0;
  if (whole) {
    size_t next = line_len + (in[line_len] == '\r' ? 2 : 1);
    static constexpr char kHost[] = "\r\nHost: ";
    constexpr size_t kHostLen = sizeof(kHost) - 1;
    if (find_host(in, len, next, value, value_len) && n + kHostLen < kMax) {
      memcpy(scratch + n, kHost, kHostLen);
      n += kHostLen;
      size_t take = value_len < kMax - n ? value_len : kMax - n;
      memcpy(scratch + n, in + value, take);
      n += take;
    }
  }
  return {CaptureKind::kHttpReq, scratch, static_cast<uint16_t>(n)};
}

Result tls_records(const uint8_t* in, size_t len) {
  size_t cap = len < format::kTlsCaptureMax ? len : format::kTlsCaptureMax;
  if (in[0] != 0x16) {
    // Other record types carry ciphertext or alerts: the 5-byte header is all we need.
    return {CaptureKind::kTls, in, static_cast<uint16_t>(cap < 5 ? cap : 5)};
  }
  // Consecutive handshake records only: in TLS 1.3 what follows ServerHello is encrypted.
  size_t pos = 0;
  while (pos + 5 <= cap && in[pos] == 0x16 && in[pos + 1] == 0x03) {
    size_t end = pos + 5 + ((static_cast<size_t>(in[pos + 3]) << 8) | in[pos + 4]);
    if (end >= cap) { pos = cap; break; }
    pos = end;
  }
  if (pos == 0) pos = cap;  // fewer than 5 bytes: keep the partial header
  return {CaptureKind::kTls, in, static_cast<uint16_t>(pos)};
}

bool looks_like_tls(const uint8_t* in, size_t len) {
  if (len < 3) return false;
  return in[0] >= 0x14 && in[0] <= 0x17 && in[1] == 0x03 && in[2] <= 0x04;
}

// Protocol prefaces worth recognising; the first 8 bytes name the protocol, nothing more.
constexpr const char* kPrefaces[] = {"PRI * HTTP/2.0\r\n", "SSH-2.0-"};

}  // namespace

Result sanitize(const uint8_t* in, size_t len, uint8_t* scratch) {
  if (in == nullptr || len == 0) return {};
  if (looks_like_tls(in, len)) return tls_records(in, len);
  // Before the HTTP/1 checks: the h2 preface is shaped like a request line.
  for (const char* p : kPrefaces) {
    if (in[0] != static_cast<uint8_t>(p[0])) continue;  // most transfers: one compare each
    size_t plen = strlen(p);
    size_t cmp = len < plen ? len : plen;
    if (len >= 8 && memcmp(in, p, cmp) == 0) return {CaptureKind::kOpaque, in, 8};
  }

  size_t line_len = 0;
  Line l = status_line(in, len, line_len);
  if (l != Line::kNo && line_len > 0) {
    size_t n = line_len < format::kHttpCaptureMax ? line_len : format::kHttpCaptureMax;
    memcpy(scratch, in, n);
    return {CaptureKind::kHttpResp, scratch, static_cast<uint16_t>(n)};
  }
  l = request_line(in, len, line_len);
  // A cut line still counts when it got past the method: "GET /very/long/target..." written in
  // pieces. A bare run of capital letters does not.
  if (l == Line::kWhole || (l == Line::kCut && memchr(in, ' ', line_len) != nullptr)) {
    return http_request(in, len, line_len, l == Line::kWhole, scratch);
  }

  return {};
}

}  // namespace httptrace::capture
