#include "analyzer/model/addr_format.h"

#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace httptrace::analyzer {

namespace {

char* put_dec(char* p, unsigned v) {  // v < 100000
  char tmp[5];
  int n = 0;
  do {
    tmp[n++] = char('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

char* put_ipv4(char* p, const uint8_t* b) {
  for (int i = 0; i < 4; ++i) {
    if (i) *p++ = '.';
    p = put_dec(p, b[i]);
  }
  return p;
}

char* put_hex16(char* p, unsigned v) {  // no leading zeros, like "%x"
  static constexpr char kHex[] = "0123456789abcdef";
  int shift = 12;
  while (shift > 0 && (v >> shift) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) *p++ = kHex[(v >> shift) & 15];
  return p;
}

char* put_ipv6(char* p, const uint8_t* b) {
  unsigned w[8];
  for (int i = 0; i < 8; ++i) w[i] = unsigned(b[2 * i]) << 8 | b[2 * i + 1];
  // The first longest run of zero groups; a lone zero group is not compressed.
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (w[i]) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && w[j] == 0) ++j;
    if (j - i > best_len) best = i, best_len = j - i;
    i = j;
  }
  if (best_len < 2) best = -1;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      *p++ = ':';
      i += best_len - 1;
      if (i == 7) *p++ = ':';
      continue;
    }
    if (i) *p++ = ':';
    // glibc's rule for a dotted IPv4 tail: ::a.b.c.d (but not ::1), and ::ffff:a.b.c.d.
    if (i == 6 && best == 0 &&
        (best_len == 6 || (best_len == 7 && w[7] != 1) || (best_len == 5 && w[5] == 0xffff)))
      return put_ipv4(p, b + 12);
    p = put_hex16(p, w[i]);
  }
  return p;
}

}  // namespace

size_t format_addr_to(char* out, const tf::Addr& a, bool with_port) {
  char* p = out;
  if (a.family == AF_INET) {
    p = put_ipv4(p, a.ip);
  } else if (a.family == AF_INET6) {
    if (with_port) *p++ = '[';
    p = put_ipv6(p, a.ip);
    if (with_port) *p++ = ']';
  } else {
    *p++ = '?';
    if (with_port) {
      std::memcpy(p, ":0", 2);
      p += 2;
    }
    return size_t(p - out);
  }
  if (with_port) {
    *p++ = ':';
    p = put_dec(p, a.port);
  }
  return size_t(p - out);
}

}  // namespace httptrace::analyzer
