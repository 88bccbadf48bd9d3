#include "analyzer/report/printable.h"

#include <cstdint>

namespace httptrace::analyzer {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void hex_byte(std::string& out, unsigned char c) {
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

// Length and code point of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 when the bytes there are not one.
size_t decode(std::string_view s, size_t i, uint32_t& cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF && cont(1)) {
    cp = (uint32_t(c & 0x1F) << 6) | (b(1) & 0x3F);
    return 2;
  }
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    cp = (uint32_t(c & 0x0F) << 12) | (uint32_t(b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    cp = (uint32_t(c & 0x07) << 18) | (uint32_t(b(1) & 0x3F) << 12) | (uint32_t(b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    if (cp < 0x10000 || cp > 0x10FFFF) return 0;
    return 4;
  }
  return 0;
}

bool invisible_control(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0x2028 || cp == 0x2029;
}

}  // namespace

void append_printable(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Plain ASCII runs are the common case: copy them whole.
    size_t j = i;
    while (j < s.size() && static_cast<unsigned char>(s[j]) >= 0x20 && static_cast<unsigned char>(s[j]) < 0x7F &&
           s[j] != '\\')
      ++j;
    out.append(s.data() + i, j - i);
    if (j == s.size()) return;
    i = j;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\\': out += "\\\\"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        default: hex_byte(out, c);
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t n = decode(s, i, cp);
    if (n == 0) {
      hex_byte(out, c);
      ++i;
    } else if (invisible_control(cp)) {
      out += "\\u{";
      for (int shift = cp > 0xFFFF ? 16 : 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 15];
      out += '}';
      i += n;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
}

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_printable(out, s);
  return out;
}

size_t columns(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string cut_to_columns(std::string_view s, size_t width) {
  if (columns(s) <= width) return std::string(s);
  if (width == 0) return "";
  // Keep width-1 code points, then the marker.
  size_t kept = 0, i = 0;
  while (i < s.size()) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (kept == width - 1) break;
      ++kept;
    }
    ++i;
  }
  return std::string(s.substr(0, i)) + "~";
}

}  // namespace httptrace::analyzer
