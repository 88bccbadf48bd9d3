#include "analyzer/export/otlp_encode.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "analyzer/commands.h"

namespace httptrace::analyzer::otlp {

namespace {

void json_attrs(JsonWriter& w, const std::vector<Attr>& attrs, size_t n) {
  w.key("attributes").begin_array();
  for (size_t i = 0; i < n; ++i) {
    const Attr& a = attrs[i];
    w.begin_object();
    w.key("key").value(a.key);
    w.key("value").begin_object();
    switch (a.type) {
      case Attr::Type::kString: w.key("stringValue").value(a.s); break;
      case Attr::Type::kBool: w.key("boolValue").value(a.b); break;
      case Attr::Type::kInt: {
        char num[24];
        const auto end = std::to_chars(num, num + sizeof num, a.i).ptr;
        w.key("intValue").value(std::string_view(num, end - num));  // int64 is a string in OTLP/JSON
        break;
      }
    }
    w.end_object();
    w.end_object();
  }
  w.end_array();
}

void json_u64(JsonWriter& w, JsonWriter::Key k, uint64_t v) {
  char num[24];
  const auto end = std::to_chars(num, num + sizeof num, v).ptr;
  w.key(k).value(std::string_view(num, end - num));
}

// Hex of an id into a stack buffer (to_hex allocates; this runs four times per span).
template <size_t N> void json_id(JsonWriter& w, JsonWriter::Key k, const std::array<uint8_t, N>& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  char hex[2 * N];
  for (size_t i = 0; i < N; ++i) {
    hex[2 * i] = kHex[id[i] >> 4];
    hex[2 * i + 1] = kHex[id[i] & 15];
  }
  w.key(k).value(std::string_view(hex, 2 * N));
}

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

void json_open_resource(JsonWriter& w, const ProcessResource& r) {
  w.begin_object();
  w.key("resource").begin_object();
  const std::vector<Attr> attrs = resource_attrs(r);
  json_attrs(w, attrs, attrs.size());
  w.end_object();
  w.key("scopeSpans").begin_array();
  w.begin_object();
  w.key("scope").begin_object();
  w.key("name").value(kScopeName);
  w.key("version").value(kProgramVersion);
  w.end_object();
  w.key("spans").begin_array();
}

void json_span(JsonWriter& w, const Span& s) {
  w.begin_object();
  json_id(w, "traceId", s.trace_id);
  json_id(w, "spanId", s.span_id);
  if (s.has_parent) json_id(w, "parentSpanId", s.parent);
  w.key("name").value(s.name);
  w.key("kind").value(static_cast<int32_t>(s.kind));
  json_u64(w, "startTimeUnixNano", s.start_unix_ns);
  json_u64(w, "endTimeUnixNano", s.end_unix_ns);
  if (s.n_attrs) json_attrs(w, s.attrs, s.n_attrs);
  if (!s.links.empty()) {
    w.key("links").begin_array();
    for (const Link& l : s.links) {
      w.begin_object();
      json_id(w, "traceId", l.trace_id);
      json_id(w, "spanId", l.span_id);
      w.end_object();
    }
    w.end_array();
  }
  if (s.status != StatusCode::kUnset) {
    w.key("status").begin_object();
    if (!s.status_message.empty()) w.key("message").value(s.status_message);
    w.key("code").value(static_cast<int32_t>(s.status));
    w.end_object();
  }
  w.end_object();
}

void json_close_resource(JsonWriter& w) {
  w.end_array();   // spans
  w.end_object();  // the ScopeSpans
  w.end_array();   // scopeSpans
  w.end_object();  // the ResourceSpans
}

void encode_json(const SpanBatch& b, size_t from, size_t to, std::string& out) {
  out.clear();
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  if (!f) return;
  {
    JsonWriter w(f);
    w.begin_object();
    w.key("resourceSpans").begin_array();
    size_t begin = 0;
    for (const SpanBatch::Group& g : b.groups) {
      const size_t lo = std::max(begin, from), hi = std::min(g.end, to);
      begin = g.end;
      if (lo >= hi) continue;
      json_open_resource(w, *g.resource);
      for (size_t i = lo; i < hi; ++i) json_span(w, b.spans[i]);
      json_close_resource(w);
    }
    w.end_array();
    w.end_object();
    w.flush();
  }
  std::fclose(f);
  out.assign(buf, len);
  std::free(buf);
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
