// A small streaming JSON writer: enough for our exporters, with correct string escaping (control
// characters, quotes, and invalid UTF-8 replaced by U+FFFD, since captured bytes are arbitrary).
//
// Built for exports of millions of objects: output goes into one fixed 1 MiB buffer handed to the
// FILE* in whole blocks, integers are formatted with std::to_chars straight into it, and strings
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

namespace httptrace::analyzer {

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
  JsonWriter& key(Key k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(int64_t n) { return number(n); }
  JsonWriter& value(uint64_t n) { return number(n); }
  JsonWriter& value(int32_t n) { return number(n); }
  JsonWriter& value(uint32_t n) { return number(n); }
  JsonWriter& value(bool b);
  // units / 10^decimals as a decimal number with exactly `decimals` fraction digits (decimals
  // 1..9): milliseconds or microseconds from integer ns/µs with no floating-point rounding.
  JsonWriter& fixed(int64_t units, unsigned decimals);
  // Text that is already JSON, placed like one element: one or more whole array elements, or
  // one or more "key":value object members ("a":1,"b":[]). For the constant runs and
  // pre-rendered pieces that make most of an exporter's output (short: up to kMaxRaw bytes go
  // through the buffer).
  static constexpr size_t kMaxRaw = 4096;
  JsonWriter& raw(std::string_view json_text);
  JsonWriter& null();
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

  void reserve(size_t n) {
    if (len_ + n > kBufSize) flush();
  }
  void put(char c) { buf_[len_++] = c; }
  void put(std::string_view s) {
    std::memcpy(buf_.get() + len_, s.data(), s.size());
    len_ += s.size();
  }
  // The comma before an element, unless it is the first of its container or follows a key.
  void separate() {
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
  template <class T> JsonWriter& number(T n) {
    reserve(kSmall);
    separate();
    len_ = static_cast<size_t>(std::to_chars(buf_.get() + len_, buf_.get() + kBufSize, n).ptr - buf_.get());
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

// Writes units / 10^decimals (decimals 1..9) with exactly `decimals` fraction digits at out,
// which has room for 32 bytes; returns the end.
char* put_fixed(char* out, int64_t units, unsigned decimals);

}  // namespace httptrace::analyzer
