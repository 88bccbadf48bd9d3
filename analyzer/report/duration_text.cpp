#include "analyzer/report/duration_text.h"

#include <charconv>

namespace httptrace::analyzer {

void append_uint(std::string& out, uint64_t n) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
}

namespace {

// value / 10^decimals, rounded half up, with that many decimals.
void append_fixed(std::string& out, uint64_t scaled, int decimals) {
  uint64_t div = decimals == 1 ? 10 : 100;
  append_uint(out, scaled / div);
  out += '.';
  uint64_t frac = scaled % div;
  if (decimals == 2 && frac < 10) out += '0';
  append_uint(out, frac);
}

void append_two(std::string& out, uint64_t n) {
  if (n < 10) out += '0';
  append_uint(out, n);
}

}  // namespace

void append_duration(std::string& out, uint64_t ns) {
  constexpr uint64_t kUs = 1000, kMs = 1000 * kUs, kS = 1000 * kMs, kMin = 60 * kS, kH = 60 * kMin, kD = 24 * kH;
  if (ns < kUs) {
    append_uint(out, ns);
    out += "ns";
  } else if (ns < kMs) {
    append_fixed(out, (ns + 50) / 100, 1);
    out += "µs";
  } else if (ns < kS) {
    append_fixed(out, (ns + 5000) / 10000, 2);
    out += "ms";
  } else if (ns < kMin) {
    append_fixed(out, (ns + 5'000'000) / 10'000'000, 2);
    out += 's';
  } else if (ns < kH) {
    append_uint(out, ns / kMin);
    out += 'm';
    append_two(out, ns % kMin / kS);
    out += 's';
  } else if (ns < 48 * kH) {
    append_uint(out, ns / kH);
    out += 'h';
    append_two(out, ns % kH / kMin);
    out += 'm';
  } else if (ns < 1000 * kD) {
    append_uint(out, ns / kD);
    out += 'd';
    append_two(out, ns % kD / kH);
    out += 'h';
  } else {
    out += ">999d";
  }
}

std::string duration_text(uint64_t ns) {
  std::string s;
  append_duration(s, ns);
  return s;
}

}  // namespace httptrace::analyzer
