#include "analyzer/json_writer.h"

#include <fmt/format.h>

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

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_len(s, i);
      if (n == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        else out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  out.push_back('"');
}

void JsonWriter::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) raw(",");
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  raw("{");
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_object() {
  first_.pop_back();
  raw("}");
  if (first_.empty()) raw("\n");
  return *this;
}
JsonWriter& JsonWriter::begin_array() {
  separate();
  raw("[");
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_array() {
  first_.pop_back();
  raw("]");
  return *this;
}
JsonWriter& JsonWriter::key(std::string_view k) {
  separate();
  append_json_string(buf_, k);
  raw(":");
  after_key_ = true;
  return *this;
}
JsonWriter& JsonWriter::value(std::string_view s) {
  separate();
  append_json_string(buf_, s);
  return *this;
}
JsonWriter& JsonWriter::value(int64_t n) {
  separate();
  fmt::format_to(std::back_inserter(buf_), "{}", n);
  return *this;
}
JsonWriter& JsonWriter::value(uint64_t n) {
  separate();
  fmt::format_to(std::back_inserter(buf_), "{}", n);
  return *this;
}
JsonWriter& JsonWriter::value(bool b) {
  separate();
  raw(b ? "true" : "false");
  return *this;
}
JsonWriter& JsonWriter::null() {
  separate();
  raw("null");
  return *this;
}

bool JsonWriter::flush() {
  if (!buf_.empty()) {
    if (std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) failed_ = true;
    buf_.clear();
  }
  return !failed_;
}

}  // namespace httptrace::analyzer
