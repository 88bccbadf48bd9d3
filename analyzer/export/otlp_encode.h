// ExportTraceServiceRequest encoders: OTLP/JSON (the protobuf JSON mapping with OTLP's
// exceptions: trace and span ids as hex, enums as integers, 64-bit integers as strings) and
// OTLP/protobuf.
//
// The protobuf writer is our own, for this one message, rather than libprotobuf: the message
// needs six wire operations (varint, fixed64, fixed32, length-delimited), generated code would
// bring protoc and the .proto files into the build, and libprotobuf's ABI changes with every
// Debian release. The tests decode what it writes with the OpenTelemetry project's own
// generated code (tests/servers/otlp_receiver.js).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "analyzer/export/otlp_spans.h"

namespace httptrace::analyzer::otlp {

// Spans to send together, in runs that share a resource (a process).
struct SpanBatch {
  struct Group {
    const ProcessResource* resource;
    size_t end;  // spans[previous group's end, end) belong to it
  };
  std::vector<Span> spans;  // the first n are live
  size_t n = 0;
  std::vector<Group> groups;

  void clear() {
    n = 0;
    groups.clear();
  }
  // Spans appended after this call up to the next one belong to r.
  void start_group(const ProcessResource& r) {
    if (groups.empty() || groups.back().resource != &r) groups.push_back({&r, n});
  }
  void close_group() {
    if (!groups.empty()) groups.back().end = n;
  }
};

// OTLP/JSON appended to a string, one ResourceSpans element at a time so a file export can stream
// a process's spans without holding them. Not through JsonWriter: an OTLP span is ~80 tokens,
// most of them constant (`{"key":"server.port","value":{"intValue":"`), and storing those as
// literals is several times faster than a generic writer's per-token bookkeeping. A span is
// formatted with plain stores into a scratch buffer sized for its worst case, then appended to
// the output at once: an append (a capacity check and a call) per token was most of its cost.
class OtlpJson {
 public:
  explicit OtlpJson(std::string& out) : b_(out) {}
  void begin_request() {
    b_ += "{\"resourceSpans\":[";
    first_resource_ = true;
  }
  void open_resource(const ProcessResource& r);
  void span(const Span& s);
  void close_resource() { b_ += "]}]}"; }
  void end_request() { b_ += "]}"; }

 private:
  static size_t attrs_bound(const std::vector<Attr>& a, size_t n);
  void begin(size_t bound);
  void commit() { b_.append(scratch_.get(), static_cast<size_t>(p_ - scratch_.get())); }
  template <size_t N> void lit(const char (&s)[N]) {
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  void put(char c) { *p_++ = c; }
  void put(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void attrs(const std::vector<Attr>& a, size_t n);
  void str(std::string_view s);
  template <size_t N> void id(const std::array<uint8_t, N>& v);
  void num(uint64_t v);
  void num(int64_t v);

  std::string& b_;
  std::unique_ptr<char[]> scratch_;
  size_t scratch_cap_ = 0;
  char* p_ = nullptr;
  bool first_resource_ = true, first_span_ = true;
};

// A whole request body of the batch's spans [from, to).
void encode_json(const SpanBatch& b, size_t from, size_t to, std::string& out);
void encode_protobuf(const SpanBatch& b, size_t from, size_t to, std::string& out);

// The instrumentation scope every span is reported under.
inline constexpr const char* kScopeName = "httptrace";

}  // namespace httptrace::analyzer::otlp
