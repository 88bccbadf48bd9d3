#include "analyzer/report/duration_text.h"

#include <charconv>

namespace httptrace::analyzer {

void append_uint(std::string& out, uint64_t n) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
}

namespace {

char* put_uint(char* p, uint64_t n) { return std::to_chars(p, p + 20, n).ptr; }

char* put_two(char* p, uint64_t n) {
  *p++ = char('0' + n / 10 % 10);
  *p++ = char('0' + n % 10);
  return p;
}

// scaled / 10^decimals with that many decimals.
char* put_fixed(char* p, uint64_t scaled, int decimals) {
  if (decimals == 1) {
    p = put_uint(p, scaled / 10);
    *p++ = '.';
    *p++ = char('0' + scaled % 10);
    return p;
  }
  p = put_uint(p, scaled / 100);
  *p++ = '.';
  return put_two(p, scaled % 100);
}

char* put_text(char* p, const char* s) {
  while (*s) *p++ = *s++;
  return p;
}

}  // namespace

size_t format_duration(char* out, uint64_t ns) {
  constexpr uint64_t kUs = 1000, kMs = 1000 * kUs, kS = 1000 * kMs, kMin = 60 * kS, kH = 60 * kMin, kD = 24 * kH;
  char* p = out;
  if (ns < kUs) {
    p = put_text(put_uint(p, ns), "ns");
  } else if (ns < kMs) {
    p = put_text(put_fixed(p, (ns + 50) / 100, 1), "µs");
  } else if (ns < kS) {
    p = put_text(put_fixed(p, (ns + 5000) / 10000, 2), "ms");
  } else if (ns < kMin) {
    p = put_text(put_fixed(p, (ns + 5'000'000) / 10'000'000, 2), "s");
  } else if (ns < kH) {
    p = put_text(put_two(put_text(put_uint(p, ns / kMin), "m"), ns % kMin / kS), "s");
  } else if (ns < 48 * kH) {
    p = put_text(put_two(put_text(put_uint(p, ns / kH), "h"), ns % kH / kMin), "m");
  } else if (ns < 1000 * kD) {
    p = put_text(put_two(put_text(put_uint(p, ns / kD), "d"), ns % kD / kH), "h");
  } else {
    p = put_text(p, ">999d");
  }
  return size_t(p - out);
}

void append_duration(std::string& out, uint64_t ns) {
  char buf[kMaxDurationText];
  out.append(buf, format_duration(buf, ns));
}

std::string duration_text(uint64_t ns) {
  std::string s;
  append_duration(s, ns);
  return s;
}

}  // namespace httptrace::analyzer
