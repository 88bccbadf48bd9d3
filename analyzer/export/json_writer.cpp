#include "analyzer/export/json_writer.h"

#include <algorithm>

namespace httptrace::analyzer {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one (overlong, surrogate, > U+10FFFF).
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c = b(i);
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) return 0;
  if (n == 3 && c == 0xED && b(i + 1) >= 0xA0) return 0;
  if (n == 4 && c == 0xF0 && b(i + 1) < 0x90) return 0;
  if (n == 4 && c == 0xF4 && b(i + 1) >= 0x90) return 0;
  return n;
}

constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();
bool plain(uint8_t c) { return kPlain[c]; }

// No byte of w needs escaping (each is in 0x20..0x7e and not '"' or '\\'): plain text is
// scanned 8 bytes at a time. Each test is exact as to whether some byte matches.
bool plain8(uint64_t w) {
  constexpr uint64_t k1 = 0x0101010101010101ull, k80 = 0x8080808080808080ull;
  auto zero_byte = [](uint64_t x) { return (x - k1) & ~x & k80; };
  const uint64_t below_space = (w - 0x20 * k1) & ~w & k80;
  return ((w & k80) | below_space | zero_byte(w ^ ('"' * k1)) | zero_byte(w ^ ('\\' * k1)) |
          zero_byte(w ^ (0x7f * k1))) == 0;
}

// The most bytes escaping one input byte can produce ("\u001f", "\ufffd").
constexpr size_t kMaxExpansion = 6;

// Escapes s[i, limit) (a UTF-8 sequence starting before limit is finished) into dst, which has
// room for kMaxExpansion bytes per input byte plus 3; returns the bytes written and advances i.
size_t escape(std::string_view s, size_t& i, size_t limit, char* dst) {
  char* const start = dst;
  while (i < limit) {
    // Plain runs are copied as they are scanned: a word at a time, then byte by byte (a memcpy
    // call per run cost more than the run, most values being short).
    for (uint64_t w; i + 8 <= limit; i += 8, dst += 8) {
      std::memcpy(&w, s.data() + i, 8);
      if (!plain8(w)) break;
      std::memcpy(dst, &w, 8);
    }
    while (i < limit && plain(static_cast<uint8_t>(s[i]))) *dst++ = s[i++];
    if (i == limit) break;
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x80) {
      const size_t n = utf8_len(s, i);
      if (n == 0) {
        std::memcpy(dst, "\\ufffd", 6);
        dst += 6;
        ++i;
      } else {
        std::memcpy(dst, s.data() + i, n);
        dst += n;
        i += n;
      }
      continue;
    }
    *dst++ = '\\';
    switch (c) {
      case '"': *dst++ = '"'; break;
      case '\\': *dst++ = '\\'; break;
      case '\n': *dst++ = 'n'; break;
      case '\r': *dst++ = 'r'; break;
      case '\t': *dst++ = 't'; break;
      default: {  // other controls and DEL
        static constexpr char kHex[] = "0123456789abcdef";
        const char u[5] = {'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        std::memcpy(dst, u, 5);
        dst += 5;
      }
    }
    ++i;
  }
  return static_cast<size_t>(dst - start);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  size_t len = out.size();
  out.resize(len + kMaxExpansion * s.size() + 5);
  len = static_cast<size_t>(put_json_string(out.data() + len, s) - out.data());
  out.resize(len);
}

char* put_json_string(char* out, std::string_view s) {
  *out++ = '"';
  size_t i = 0;
  out += escape(s, i, s.size(), out);
  *out++ = '"';
  return out;
}

// Not zeroed (1 MiB per writer, per export): every byte is written before it is read.
JsonWriter::JsonWriter(std::FILE* out) : out_(out), buf_(std::make_unique_for_overwrite<char[]>(kBufSize)) {}

JsonWriter& JsonWriter::open(char c) {
  reserve(kSmall);
  separate();
  put(c);
  // Deeper nesting than our exporters use would lose commas: refuse rather than write bad JSON.
  if (depth_ == kMaxDepth) failed_ = true;
  else first_[depth_++] = true;
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  reserve(kSmall);
  if (depth_ > 0) --depth_;
  put('}');
  if (depth_ == 0) put('\n');
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  reserve(kSmall);
  if (depth_ > 0) --depth_;
  put(']');
  return *this;
}

// Long strings (argv, exe) go in slices so the escaped form never has to fit the buffer at once.
void JsonWriter::string(std::string_view s) {
  constexpr size_t kSlice = (kBufSize - kSmall) / kMaxExpansion - 8;
  put('"');  // the caller reserved kSmall
  for (size_t i = 0; i < s.size();) {
    const size_t limit = i + std::min(s.size() - i, kSlice);
    reserve(kMaxExpansion * (limit - i) + kSmall);
    len_ += escape(s, i, limit, buf_.get() + len_);
  }
  put('"');
}

namespace {

// Constant divisors: the compiler turns them into multiplications (this runs for every
// timestamp of a Chrome trace).
template <unsigned D> char* put_fixed_d(char* p, uint64_t mag) {
  constexpr uint64_t kScale = [] {
    uint64_t v = 1;
    for (unsigned i = 0; i < D; ++i) v *= 10;
    return v;
  }();
  uint64_t frac = mag % kScale;
  p = put_decimal(p, mag / kScale);
  *p++ = '.';
  for (unsigned i = D; i-- > 0; frac /= 10) p[i] = static_cast<char>('0' + frac % 10);
  return p + D;
}

}  // namespace

char* put_fixed(char* p, int64_t units, unsigned decimals) {
  const uint64_t mag = units < 0 ? 0 - static_cast<uint64_t>(units) : static_cast<uint64_t>(units);
  if (units < 0) *p++ = '-';
  switch (std::clamp(decimals, 1u, 9u)) {
    case 1: return put_fixed_d<1>(p, mag);
    case 2: return put_fixed_d<2>(p, mag);
    case 3: return put_fixed_d<3>(p, mag);
    case 4: return put_fixed_d<4>(p, mag);
    case 5: return put_fixed_d<5>(p, mag);
    case 6: return put_fixed_d<6>(p, mag);
    case 7: return put_fixed_d<7>(p, mag);
    case 8: return put_fixed_d<8>(p, mag);
    default: return put_fixed_d<9>(p, mag);
  }
}

JsonWriter& JsonWriter::fixed(int64_t units, unsigned decimals) {
  reserve(kSmall);
  separate();
  len_ = static_cast<size_t>(put_fixed(buf_.get() + len_, units, decimals) - buf_.get());
  return *this;
}

JsonWriter& JsonWriter::raw(std::string_view text) {
  reserve(std::min(text.size(), kMaxRaw) + kSmall);
  separate();
  if (text.size() <= kMaxRaw) {
    put(text);
  } else {  // not what raw() is for, but still correct output
    flush();
    if (std::fwrite(text.data(), 1, text.size(), out_) != text.size()) failed_ = true;
  }
  return *this;
}

JsonWriter& JsonWriter::splice(std::FILE* in) {
  reserve(kSmall);
  separate();
  std::rewind(in);
  for (;;) {
    flush();
    len_ = std::fread(buf_.get(), 1, kBufSize, in);
    if (len_ == 0) break;
  }
  if (std::ferror(in)) failed_ = true;
  return *this;
}

bool JsonWriter::flush() {
  if (len_ > 0) {
    if (std::fwrite(buf_.get(), 1, len_, out_) != len_) failed_ = true;
    len_ = 0;
  }
  return !failed_;
}

}  // namespace httptrace::analyzer
