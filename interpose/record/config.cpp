#include "interpose/record/config.h"

#include <cstring>

namespace httptrace {

uint64_t parse_max_mb(const char* text, bool* invalid) {
  *invalid = false;
  if (text == nullptr || text[0] == '\0') return kDefaultMaxMb;
  uint64_t v = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9' || v > kLargestMaxMb) {
      *invalid = true;
      return kDefaultMaxMb;
    }
    v = v * 10 + static_cast<uint64_t>(*p - '0');
  }
  if (v == 0 || v > kLargestMaxMb) {
    *invalid = true;
    return kDefaultMaxMb;
  }
  return v;
}

namespace {
// Decimal digits of v into buf (no terminator); returns how many.
size_t format_uint(unsigned v, char* buf) {
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < sizeof(tmp));
  for (size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  return n;
}
}  // namespace

bool expand_output_path(const char* tmpl, int pid, bool append_pid_if_absent, char* out,
                        size_t out_cap) {
  char digits[16];
  const size_t ndigits = format_uint(static_cast<unsigned>(pid), digits);
  size_t n = 0;
  bool saw_pid = false;
  auto put = [&](const char* s, size_t len) {
    if (n + len >= out_cap) return false;
    memcpy(out + n, s, len);
    n += len;
    return true;
  };
  for (const char* p = tmpl; *p != '\0'; ++p) {
    if (p[0] == '%' && p[1] == 'p') {
      if (!put(digits, ndigits)) return false;
      saw_pid = true;
      ++p;
    } else if (!put(p, 1)) {
      return false;
    }
  }
  if (!saw_pid && append_pid_if_absent && (!put(".", 1) || !put(digits, ndigits))) return false;
  if (n == 0 || out_cap == 0) return false;
  out[n] = '\0';
  return true;
}

bool env_flag(const char* value) { return value != nullptr && strcmp(value, "1") == 0; }

}  // namespace httptrace
