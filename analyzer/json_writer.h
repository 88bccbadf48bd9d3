// A small streaming JSON writer: enough for our exporters, with correct string escaping (control
// characters, quotes, and invalid UTF-8 replaced by U+FFFD, since captured bytes are arbitrary).
// Output is buffered and handed to a FILE* in large blocks.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace httptrace::analyzer {

class JsonWriter {
 public:
  explicit JsonWriter(std::FILE* out) : out_(out) {}
  ~JsonWriter() { flush(); }

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(int64_t n);
  JsonWriter& value(uint64_t n);
  JsonWriter& value(int32_t n) { return value(int64_t{n}); }
  JsonWriter& value(uint32_t n) { return value(uint64_t{n}); }
  JsonWriter& value(bool b);
  JsonWriter& null();
  template <class T> JsonWriter& value(const std::optional<T>& v) { return v ? value(*v) : null(); }

  // Writes buffered bytes; false if the stream reported an error (e.g. disk full).
  bool flush();
  bool failed() const { return failed_; }

 private:
  void separate();
  void raw(std::string_view s) {
    buf_.append(s);
    if (buf_.size() >= (1u << 16)) flush();
  }

  std::FILE* out_;
  std::string buf_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
  bool failed_ = false;
};

void append_json_string(std::string& out, std::string_view s);

}  // namespace httptrace::analyzer
