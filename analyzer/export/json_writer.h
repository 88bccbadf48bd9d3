// A small streaming JSON writer: enough for our exporters, with correct string escaping (control
// characters, quotes, and invalid UTF-8 replaced by U+FFFD, since captured bytes are arbitrary).
//
// Built for exports of millions of objects: output goes into one fixed 1 MiB buffer handed to the
// FILE* in whole blocks, integers are formatted straight into it (put_decimal), and strings
// made only of plain ASCII (every key, almost every value) are copied with one memcpy.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace httptrace::analyzer {

// v in decimal at out (room for 20 bytes); returns the end. Written in place from its last digit,
// two digits per step from a table: std::to_chars was a visible share of exports made mostly of
// numbers.
inline char* put_decimal(char* out, uint64_t v) {
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  unsigned n = 1;
  for (uint64_t t = v; t >= 10; t /= 10) ++n;
  char* const end = out + n;
  char* p = end;
  while (v >= 100) {
    const unsigned r = static_cast<unsigned>(v % 100);
    v /= 100;
    p -= 2;
    p[0] = kPairs[2 * r];
    p[1] = kPairs[2 * r + 1];
  }
  if (v >= 10) {
    p[-2] = kPairs[2 * v];
    p[-1] = kPairs[2 * v + 1];
  } else {
    p[-1] = static_cast<char>('0' + v);
  }
  return end;
}

class JsonWriter {
 public:
  // An object key: a string literal of printable ASCII without quotes or backslashes, checked at
  // compile time, so writing it needs no escaping.
  struct Key {
    consteval Key(const char* k) : text(k) {
      for (char c : text)
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') throw "JSON key needs escaping";
    }
    std::string_view text;
  };

  explicit JsonWriter(std::FILE* out);
  ~JsonWriter() { flush(); }
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object();
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array();
  [[gnu::always_inline]] JsonWriter& key(Key k) {
    // Inline: k.text is a literal, so its copy compiles to a few stores (a call per key was the
    // largest share of a JSON export's formatting time).
    reserve(k.text.size() + kSmall);
    separate();
    put('"');
    put(k.text);
    put('"');
    put(':');
    after_key_ = true;
    return *this;
  }
  JsonWriter& value(std::string_view s) {
    reserve(kSmall);
    separate();
    string(s);
    return *this;
  }
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(int64_t n) { return number(n); }
  JsonWriter& value(uint64_t n) { return number(n); }
  JsonWriter& value(int32_t n) { return number(n); }
  JsonWriter& value(uint32_t n) { return number(n); }
  JsonWriter& value(bool b) {
    reserve(kSmall);
    separate();
    put(b ? std::string_view("true") : std::string_view("false"));
    return *this;
  }
  // units / 10^decimals as a decimal number with exactly `decimals` fraction digits (decimals
  // 1..9): milliseconds or microseconds from integer ns/µs with no floating-point rounding.
  JsonWriter& fixed(int64_t units, unsigned decimals);
  // Text that is already JSON, placed like one element: one or more whole array elements, or
  // one or more "key":value object members ("a":1,"b":[]). For the constant runs and
  // pre-rendered pieces that make most of an exporter's output (short: up to kMaxRaw bytes go
  // through the buffer).
  static constexpr size_t kMaxRaw = 4096;
  JsonWriter& raw(std::string_view json_text);
  [[gnu::always_inline]] JsonWriter& null() {
    reserve(kSmall);
    separate();
    put(std::string_view("null"));
    return *this;
  }
  template <class T> JsonWriter& value(const std::optional<T>& v) { return v ? value(*v) : null(); }
  // Copies in as one value everything another JsonWriter wrote to in (a spool file, read from its
  // start), so a section produced during the stream can be placed after one written meanwhile.
  JsonWriter& splice(std::FILE* in);

  // Writes buffered bytes; false if the stream reported an error (e.g. disk full).
  bool flush();
  bool failed() const { return failed_; }

 private:
  static constexpr size_t kBufSize = 1u << 20;
  // Room any single token needs except strings, which reserve their own worst case.
  static constexpr size_t kSmall = 64;
  static constexpr size_t kMaxDepth = 64;

  [[gnu::always_inline]] void reserve(size_t n) {
    if (len_ + n > kBufSize) flush();
  }
  [[gnu::always_inline]] void put(char c) { buf_[len_++] = c; }
  [[gnu::always_inline]] void put(std::string_view s) {
    std::memcpy(buf_.get() + len_, s.data(), s.size());
    len_ += s.size();
  }
  // The comma before an element, unless it is the first of its container or follows a key.
  [[gnu::always_inline]] void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (depth_ > 0) {
      if (!first_[depth_ - 1]) put(',');
      first_[depth_ - 1] = false;
    }
  }
  JsonWriter& open(char c);
  void string(std::string_view s);
  template <class T> [[gnu::always_inline]] JsonWriter& number(T n) {
    reserve(kSmall);
    separate();
    char* p = buf_.get() + len_;
    if constexpr (std::is_signed_v<T>) {
      if (n < 0) {
        *p++ = '-';
        p = put_decimal(p, 0 - static_cast<uint64_t>(n));
      } else {
        p = put_decimal(p, static_cast<uint64_t>(n));
      }
    } else {
      p = put_decimal(p, n);
    }
    len_ = static_cast<size_t>(p - buf_.get());
    return *this;
  }

  std::FILE* out_;
  std::unique_ptr<char[]> buf_;
  size_t len_ = 0;
  std::array<bool, kMaxDepth> first_{};  // per open container: no element written yet
  size_t depth_ = 0;
  bool after_key_ = false;
  bool failed_ = false;
};

void append_json_string(std::string& out, std::string_view s);
// s quoted and escaped at out, which has room for json_string_bound(s.size()) bytes; returns the end.
char* put_json_string(char* out, std::string_view s);
constexpr size_t json_string_bound(size_t n) { return 6 * n + 5; }


// Writes units / 10^decimals (decimals 1..9) with exactly `decimals` fraction digits at out,
// which has room for 32 bytes; returns the end.
char* put_fixed(char* out, int64_t units, unsigned decimals);

}  // namespace httptrace::analyzer
