#include "analyzer/export/otlp_encode.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "analyzer/commands.h"
#include "analyzer/export/json_writer.h"

namespace httptrace::analyzer::otlp {

namespace {

std::vector<Attr> resource_attrs(const ProcessResource& r) {
  std::vector<Attr> v;
  auto s = [&](const char* k, std::string_view x) {
    Attr& a = v.emplace_back();
    a.key = k;
    a.s.assign(x);
  };
  auto i = [&](const char* k, int64_t x) {
    Attr& a = v.emplace_back();
    a.key = k;
    a.type = Attr::Type::kInt;
    a.i = x;
  };
  s("service.name", r.service_name);
  i("process.pid", r.pid);
  if (r.ppid) i("process.parent_pid", r.ppid);
  if (!r.exe.empty()) s("process.executable.path", r.exe);
  s("telemetry.sdk.name", kScopeName);
  s("telemetry.sdk.version", kProgramVersion);
  return v;
}

// Protobuf wire format, for this message only. Nested messages are written in place: begin()
// leaves one byte for the length, end() widens it when the body outgrew 127 bytes.
class Pb {
 public:
  explicit Pb(std::string& out) : b_(out) {}
  void varint(uint64_t v) {
    while (v >= 0x80) {
      b_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    b_.push_back(static_cast<char>(v));
  }
  void tag(uint32_t field, uint32_t wire) { varint(uint64_t(field) << 3 | wire); }
  void u64(uint32_t field, uint64_t v) {  // varint fields (int64, enum, bool)
    tag(field, 0);
    varint(v);
  }
  void fixed64(uint32_t field, uint64_t v) {
    tag(field, 1);
    char x[8];
    for (int i = 0; i < 8; ++i) x[i] = static_cast<char>(v >> (8 * i));
    b_.append(x, 8);
  }
  void bytes(uint32_t field, const void* p, size_t n) {
    tag(field, 2);
    varint(n);
    b_.append(static_cast<const char*>(p), n);
  }
  void str(uint32_t field, std::string_view s) { bytes(field, s.data(), s.size()); }
  void begin(uint32_t field) {
    tag(field, 2);
    open_.push_back(b_.size());
    b_.push_back(0);
  }
  void end() {
    const size_t at = open_.back();
    open_.pop_back();
    const size_t len = b_.size() - at - 1;
    char v[10];
    size_t n = 0;
    for (uint64_t x = len; ; x >>= 7) {
      v[n++] = static_cast<char>((x & 0x7f) | (x >= 0x80 ? 0x80 : 0));
      if (x < 0x80) break;
    }
    if (n > 1) b_.insert(at + 1, n - 1, '\0');
    std::memcpy(b_.data() + at, v, n);
  }

 private:
  std::string& b_;
  std::vector<size_t> open_;
};

// Field numbers from opentelemetry-proto (trace/v1/trace.proto, common/v1/common.proto).
void pb_attrs(Pb& pb, uint32_t field, const std::vector<Attr>& attrs, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const Attr& a = attrs[i];
    pb.begin(field);           // KeyValue
    pb.str(1, a.key);          //   key
    pb.begin(2);               //   value: AnyValue
    switch (a.type) {
      case Attr::Type::kString: pb.str(1, a.s); break;
      case Attr::Type::kBool: pb.u64(2, a.b); break;
      case Attr::Type::kInt: pb.u64(3, static_cast<uint64_t>(a.i)); break;
    }
    pb.end();
    pb.end();
  }
}

void pb_span(Pb& pb, const Span& s) {
  pb.begin(2);  // ScopeSpans.spans
  pb.bytes(1, s.trace_id.data(), s.trace_id.size());
  pb.bytes(2, s.span_id.data(), s.span_id.size());
  if (s.has_parent) pb.bytes(4, s.parent.data(), s.parent.size());
  pb.str(5, s.name);
  pb.u64(6, static_cast<uint64_t>(s.kind));
  pb.fixed64(7, s.start_unix_ns);
  pb.fixed64(8, s.end_unix_ns);
  pb_attrs(pb, 9, s.attrs, s.n_attrs);
  for (const Link& l : s.links) {
    pb.begin(13);
    pb.bytes(1, l.trace_id.data(), l.trace_id.size());
    pb.bytes(2, l.span_id.data(), l.span_id.size());
    pb.end();
  }
  if (s.status != StatusCode::kUnset) {
    pb.begin(15);
    if (!s.status_message.empty()) pb.str(2, s.status_message);
    pb.u64(3, static_cast<uint64_t>(s.status));
    pb.end();
  }
  pb.end();
}

}  // namespace

void OtlpJson::begin(size_t bound) {
  if (bound > scratch_cap_) {
    scratch_cap_ = std::max(bound, 2 * scratch_cap_);
    scratch_ = std::make_unique_for_overwrite<char[]>(scratch_cap_);
  }
  p_ = scratch_.get();
}

void OtlpJson::str(std::string_view s) {
  // Almost every value is plain ASCII: one copy. Anything else goes through the JSON export's
  // escaping (invalid UTF-8 becomes U+FFFD, as everywhere in our JSON).
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      p_ = put_json_string(p_, s);
      return;
    }
  put('"');
  put(s);
  put('"');
}

template <size_t N> void OtlpJson::id(const std::array<uint8_t, N>& v) {
  static constexpr char kHex[] = "0123456789abcdef";
  p_[0] = p_[2 * N + 1] = '"';
  for (size_t i = 0; i < N; ++i) {
    p_[1 + 2 * i] = kHex[v[i] >> 4];
    p_[2 + 2 * i] = kHex[v[i] & 15];
  }
  p_ += 2 * N + 2;
}

void OtlpJson::num(uint64_t v) { p_ = put_decimal(p_, v); }
void OtlpJson::num(int64_t v) {
  if (v < 0) {
    put('-');
    p_ = put_decimal(p_, 0 - static_cast<uint64_t>(v));
  } else {
    p_ = put_decimal(p_, static_cast<uint64_t>(v));
  }
}

// Room for the longest literals around an attribute and its number.
constexpr size_t kAttrFixed = 64;
constexpr size_t kNumMax = 24;

size_t OtlpJson::attrs_bound(const std::vector<Attr>& a, size_t n) {
  size_t bound = 16;
  for (size_t i = 0; i < n; ++i) bound += kAttrFixed + kNumMax + a[i].key.size() + json_string_bound(a[i].s.size());
  return bound;
}

void OtlpJson::attrs(const std::vector<Attr>& a, size_t n) {
  lit("\"attributes\":[");
  for (size_t i = 0; i < n; ++i) {
    if (i) put(',');
    lit("{\"key\":\"");
    put(a[i].key);  // our keys are plain ASCII literals
    switch (a[i].type) {
      case Attr::Type::kString:
        lit("\",\"value\":{\"stringValue\":");
        str(a[i].s);
        lit("}}");
        break;
      case Attr::Type::kInt:  // int64 is a string in OTLP/JSON
        lit("\",\"value\":{\"intValue\":\"");
        num(a[i].i);
        lit("\"}}");
        break;
      case Attr::Type::kBool:
        if (a[i].b) lit("\",\"value\":{\"boolValue\":true}}");
        else lit("\",\"value\":{\"boolValue\":false}}");
        break;
    }
  }
  put(']');
}

void OtlpJson::open_resource(const ProcessResource& r) {
  const std::vector<Attr> a = resource_attrs(r);
  begin(256 + attrs_bound(a, a.size()) + json_string_bound(std::strlen(kScopeName)) +
        json_string_bound(std::strlen(kProgramVersion)));
  if (!first_resource_) put(',');
  first_resource_ = false;
  first_span_ = true;
  lit("{\"resource\":{");
  attrs(a, a.size());
  lit("},\"scopeSpans\":[{\"scope\":{\"name\":");
  str(kScopeName);
  lit(",\"version\":");
  str(kProgramVersion);
  lit("},\"spans\":[");
  commit();
}

void OtlpJson::span(const Span& s) {
  // Literals and ids (under 300 bytes), the name, the numbers, attributes, links, status.
  begin(512 + json_string_bound(s.name.size()) + attrs_bound(s.attrs, s.n_attrs) + 96 * s.links.size() +
        json_string_bound(s.status_message.size()));
  if (!first_span_) put(',');
  first_span_ = false;
  lit("{\"traceId\":");
  id(s.trace_id);
  lit(",\"spanId\":");
  id(s.span_id);
  if (s.has_parent) {
    lit(",\"parentSpanId\":");
    id(s.parent);
  }
  lit(",\"name\":");
  str(s.name);
  lit(",\"kind\":");
  num(int64_t(s.kind));
  lit(",\"startTimeUnixNano\":\"");
  num(s.start_unix_ns);
  lit("\",\"endTimeUnixNano\":\"");
  num(s.end_unix_ns);
  put('"');
  if (s.n_attrs) {
    put(',');
    attrs(s.attrs, s.n_attrs);
  }
  if (!s.links.empty()) {
    lit(",\"links\":[");
    for (size_t i = 0; i < s.links.size(); ++i) {
      if (i) put(',');
      lit("{\"traceId\":");
      id(s.links[i].trace_id);
      lit(",\"spanId\":");
      id(s.links[i].span_id);
      put('}');
    }
    put(']');
  }
  if (s.status != StatusCode::kUnset) {
    lit(",\"status\":{");
    if (!s.status_message.empty()) {
      lit("\"message\":");
      str(s.status_message);
      put(',');
    }
    lit("\"code\":");
    num(int64_t(s.status));
    put('}');
  }
  put('}');
  commit();
}

void encode_json(const SpanBatch& b, size_t from, size_t to, std::string& out) {
  out.clear();
  OtlpJson j(out);
  j.begin_request();
  size_t begin = 0;
  for (const SpanBatch::Group& g : b.groups) {
    const size_t lo = std::max(begin, from), hi = std::min(g.end, to);
    begin = g.end;
    if (lo >= hi) continue;
    j.open_resource(*g.resource);
    for (size_t i = lo; i < hi; ++i) j.span(b.spans[i]);
    j.close_resource();
  }
  j.end_request();
}

void encode_protobuf(const SpanBatch& b, size_t from, size_t to, std::string& out) {
  out.clear();
  Pb pb(out);
  size_t begin = 0;
  for (const SpanBatch::Group& g : b.groups) {
    const size_t lo = std::max(begin, from), hi = std::min(g.end, to);
    begin = g.end;
    if (lo >= hi) continue;
    pb.begin(1);  // ExportTraceServiceRequest.resource_spans
    pb.begin(1);  //   resource
    const std::vector<Attr> attrs = resource_attrs(*g.resource);
    pb_attrs(pb, 1, attrs, attrs.size());
    pb.end();
    pb.begin(2);  //   scope_spans
    pb.begin(1);  //     scope
    pb.str(1, kScopeName);
    pb.str(2, kProgramVersion);
    pb.end();
    for (size_t i = lo; i < hi; ++i) pb_span(pb, b.spans[i]);
    pb.end();
    pb.end();
  }
}

}  // namespace httptrace::analyzer::otlp
