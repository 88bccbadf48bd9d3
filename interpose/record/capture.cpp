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

// For the copies into the capture (a line or a part of one, tens of bytes): GCC expands a
// memcpy whose size it cannot know but can bound into `rep movsq`, whose start-up cost was a
// third of the whole capture's time (perf on bench/capture_cost). Whole words, then bytes.
void copy_small(uint8_t* to, const uint8_t* from, size_t n) {
  for (; n >= 8; n -= 8, to += 8, from += 8) memcpy(to, from, 8);
  for (; n > 0; --n) *to++ = *from++;
}

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

// The end of the run of target characters (0x21..0x7e) in in[pos, end): eight bytes at a time
// while none is out of range (a request target is most of a request line's bytes).
size_t target_run(const uint8_t* in, size_t pos, size_t end) {
  constexpr uint64_t k01 = 0x0101010101010101ull, k80 = 0x8080808080808080ull;
  while (pos + 8 <= end) {
    uint64_t x;
    memcpy(&x, in + pos, 8);
    // A byte >= 0x80, one below 0x21, or one that becomes >= 0x80 when 1 is added (0x7f) sets
    // its top bit. Borrows and carries only ever run on from a byte that is out of range itself,
    // so "none" is exact; the byte loop below finds which one it is.
    if (((x | ((x - 0x21 * k01) & ~x) | (x + k01)) & k80) != 0) break;
    pos += 8;
  }
  while (pos < end && is_target_char(in[pos])) ++pos;
  return pos;
}

// Where the parts of a request line are, for the rewrite: in[0, kept_end) is the method, a space
// and the part of the target that is kept; in[ver, line_len) is " HTTP/d.d" (or what arrived of
// it). target_cut: the target was longer than kTargetMax and is cut at kept_end.
struct RequestLine {
  size_t kept_end = 0;
  size_t ver = 0;
  size_t line_len = 0;
  bool target_cut = false;
};

// METHOD SP target SP HTTP/d.d CRLF.
Line request_line(const uint8_t* in, size_t len, RequestLine& rl) {
  size_t pos = 0;
  while (pos < len && pos < 24 && is_method_char(in[pos])) ++pos;
  rl.kept_end = rl.ver = rl.line_len = pos;
  if (pos == 0) return Line::kNo;
  if (pos >= len) return Line::kCut;
  if (in[pos] != ' ') return Line::kNo;
  ++pos;
  const size_t target_start = pos;
  // Only the kept part of the target is checked byte by byte (it is what gets recorded); past
  // kTargetMax a memchr finds the space that ends it.
  const size_t keep_limit = target_start + format::kTargetMax < len
                                ? target_start + format::kTargetMax : len;
  pos = target_run(in, pos, keep_limit);
  rl.kept_end = rl.ver = rl.line_len = pos;
  if (pos == keep_limit && pos < len && is_target_char(in[pos])) {
    const void* sp = memchr(in + pos, ' ', len - pos);
    rl.target_cut = true;
    if (sp == nullptr) return Line::kCut;  // the call ended inside a long target
    pos = static_cast<size_t>(static_cast<const uint8_t*>(sp) - in);
    rl.ver = rl.line_len = pos;
  }
  if (pos >= len) return Line::kCut;
  if (pos == target_start || in[pos] != ' ') return Line::kNo;
  ++pos;
  Line v = http_version(in, len, pos);
  rl.line_len = v == Line::kCut ? len : pos;  // a cut version is still a valid prefix: keep it all
  if (v != Line::kWhole) return v;
  return line_end(in, len, pos);
}

// HTTP/d.d SP ddd [SP reason] CRLF.
[[gnu::always_inline]] inline Line status_line(const uint8_t* in, size_t len, size_t& line_len) {
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

// A header whose whole line may be kept: lower-case name to match, the spelling we write.
struct AllowedHeader {
  const char* lower_name;
  const char* name;
  uint8_t len;
};
constexpr AllowedHeader kRequestHeaders[] = {
    {"host", "Host", 4}, {"connection", "Connection", 10}, {"traceparent", "traceparent", 11}};
constexpr AllowedHeader kResponseHeaders[] = {
    {"connection", "Connection", 10}, {"keep-alive", "Keep-Alive", 10}};

// Bit (c - 'a') set for each first letter of a list's names.
template <size_t N>
constexpr uint32_t first_letters(const AllowedHeader (&list)[N]) {
  uint32_t m = 0;
  for (const AllowedHeader& h : list) m |= 1u << (h.lower_name[0] - 'a');
  return m;
}

template <const auto& list>
const AllowedHeader* allowed(const uint8_t* line, size_t len) {
  // Most lines are rejected here, on their first byte (| 0x20 lower-cases a letter and maps no
  // other byte onto one).
  constexpr uint32_t kLetters = first_letters(list);
  const unsigned f = static_cast<unsigned>(line[0] | 0x20) - 'a';
  if (f >= 26 || ((kLetters >> f) & 1) == 0) return nullptr;
  const uint8_t first = lower(line[0]);
  for (const AllowedHeader& h : list) {
    if (static_cast<uint8_t>(h.lower_name[0]) != first || len <= h.len || line[h.len] != ':') {
      continue;  // most lines: one compare
    }
    size_t i = 1;
    while (i < h.len && lower(line[i]) == static_cast<uint8_t>(h.lower_name[i])) ++i;
    if (i == h.len) return &h;
  }
  return nullptr;
}

// Appends to out[0, n) the allow-listed header lines among those that start at in[pos], each as
// "\r\nName: value". A line goes in whole or not at all: one the call cut short, one continued on
// the next line (obs-fold), or one that does not fit in
// kHttpCaptureMax is left out. (The value is this header's own: whatever bytes it holds, they
// are not another header's secret.) Stops at the blank line that ends the header block.
template <const auto& list>
[[gnu::always_inline]] inline size_t append_headers(const uint8_t* in, size_t len, size_t pos, uint8_t* out, size_t n) {
  constexpr size_t kMax = format::kHttpCaptureMax;
  while (pos < len) {
    const void* nl = memchr(in + pos, '\n', len - pos);
    if (nl == nullptr) break;  // the call ended inside this line
    const size_t eol = static_cast<size_t>(static_cast<const uint8_t*>(nl) - in);
    size_t end = eol;
    if (end > pos && in[end - 1] == '\r') --end;
    if (end == pos) break;  // blank line: end of the header block
    const AllowedHeader* h = allowed<list>(in + pos, end - pos);
    if (h != nullptr && !(eol + 1 < len && (in[eol + 1] == ' ' || in[eol + 1] == '\t'))) {
      size_t v = pos + h->len + 1;
      while (v < end && (in[v] == ' ' || in[v] == '\t')) ++v;
      size_t e = end;
      while (e > v && (in[e - 1] == ' ' || in[e - 1] == '\t')) --e;
      const size_t line = 2 + h->len + 2 + (e - v);
      if (n + line <= kMax) {
        memcpy(out + n, "\r\n", 2);
        copy_small(out + n + 2, reinterpret_cast<const uint8_t*>(h->name), h->len);
        memcpy(out + n + 2 + h->len, ": ", 2);
        copy_small(out + n + 4 + h->len, in + v, e - v);
        n += line;
      }
    }
    pos = eol + 1;
  }
  return n;
}

size_t after_line(const uint8_t* in, size_t line_len) {
  return line_len + (in[line_len] == '\r' ? 2 : 1);
}

// A whole status line ("HTTP/d[.d] ddd", checked by status_line()) of an interim head: 1xx but
// 101, after which the bytes are another protocol.
bool interim_status(const uint8_t* line) {
  const uint8_t* code = line + (line[6] == '.' ? 9 : 7);
  return code[0] == '1' && !(code[1] == '0' && code[2] == '1');
}

// After an interim head (1xx but 101: "100 Continue"), the heads that share the call with it
// (python's http.server writes the 100 and its answer at once): each as "\r\n", its status line
// and its allow-listed lines, at most three more. Out of line: the usual response has none.
__attribute__((noinline)) size_t interim_heads(const uint8_t* in, size_t len, size_t line_len, uint8_t* out,
                                               size_t n) {
  for (size_t at = 0, heads = 0;; ++heads) {
    const size_t head = at + after_line(in + at, line_len);
    n = append_headers<kResponseHeaders>(in + at, len - at, head - at, out, n);
    if (!interim_status(in + at) || heads == 3) return n;
    // Past the blank line that ends this head.
    size_t pos = head;
    while (line_end(in, len, pos) != Line::kWhole) {
      const void* nl = pos < len ? memchr(in + pos, '\n', len - pos) : nullptr;
      if (nl == nullptr) return n;
      pos = static_cast<size_t>(static_cast<const uint8_t*>(nl) - in) + 1;
    }
    at = pos + (in[pos] == '\r' ? 2 : 1);
    if (at >= len) return n;
    if (status_line(in + at, len - at, line_len) != Line::kWhole ||
        n + 2 + line_len > format::kHttpCaptureMax) {
      return n;
    }
    memcpy(out + n, "\r\n", 2);
    copy_small(out + n + 2, in + at, line_len);
    n += 2 + line_len;
  }
}

Result http_request(const uint8_t* in, size_t len, const RequestLine& rl, bool whole,
                    uint8_t* scratch) {
  // At most 24 + 1 + kTargetMax + the version: always within kHttpCaptureMax.
  static_assert(24 + 1 + format::kTargetMax + 16 < format::kHttpCaptureMax);
  size_t n = rl.kept_end;
  copy_small(scratch, in, n);
  size_t tail = rl.line_len - rl.ver;
  if (tail > 16) tail = 16;  // " HTTP/d.d" (anything longer was not a version)
  copy_small(scratch + n, in + rl.ver, tail);
  n += tail;
  if (whole) n = append_headers<kRequestHeaders>(in, len, after_line(in, rl.line_len), scratch, n);
  return {CaptureKind::kHttpReq, scratch, static_cast<uint16_t>(n), rl.target_cut};
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
    copy_small(scratch, in, n);
    if (l == Line::kWhole) {
      n = interim_status(in) ? interim_heads(in, len, line_len, scratch, n)
                             : append_headers<kResponseHeaders>(in, len, after_line(in, line_len), scratch, n);
    }
    return {CaptureKind::kHttpResp, scratch, static_cast<uint16_t>(n)};
  }
  RequestLine rl;
  l = request_line(in, len, rl);
  // A cut line still counts when it got past the method: "GET /very/long/target..." written in
  // pieces. A bare run of capital letters does not.
  if (l == Line::kWhole || (l == Line::kCut && rl.kept_end > 0 && memchr(in, ' ', rl.kept_end))) {
    return http_request(in, len, rl, l == Line::kWhole, scratch);
  }

  return {};
}

}  // namespace httptrace::capture
