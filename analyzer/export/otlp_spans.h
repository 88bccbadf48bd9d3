// Spans for the OpenTelemetry export (SPEC §9), independent of how they are encoded.
//
// Per connection: an `HTTP connection_setup` span (INTERNAL) with `DNS lookup`, `socket connect`
// and `TLS handshake` children, as .NET's HttpClient names them, and a CLIENT span per request
// (HTTP semantic conventions) that links to the setup span of the connection that served it:
// a request is not a child of its connection's setup (the setup may have been done for an
// earlier request), but the link says which setup it paid for or reused.
//
// Ids are derived, not random: the trace id from the root process of the process tree (its pid
// and the wall-clock anchor of its trace file), span ids from the connection id and the request
// index. Re-exporting the same traces gives the same ids, so a collector deduplicates a re-push
// instead of showing the trace twice.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/analysis.h"
#include "analyzer/model/model.h"
#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer::otlp {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

enum class SpanKind : int { kInternal = 1, kServer = 2, kClient = 3 };
enum class StatusCode : int { kUnset = 0, kOk = 1, kError = 2 };

struct Attr {
  enum class Type : uint8_t { kString, kInt, kBool };
  std::string_view key;  // a string literal (its length known where it is named)
  Type type = Type::kString;
  bool b = false;
  int64_t i = 0;
  std::string s;
};

struct Link {
  TraceId trace_id{};
  SpanId span_id{};
};

struct Span {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent{};  // all zero: a root span
  bool has_parent = false;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  uint64_t start_unix_ns = 0, end_unix_ns = 0;
  std::vector<Attr> attrs;
  size_t n_attrs = 0;  // attrs beyond n_attrs are spent slots kept for their buffers
  std::vector<Link> links;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;

  void reset();
  Attr& add(std::string_view key, Attr::Type t);
  void add_str(std::string_view key, std::string_view v);
  void add_int(std::string_view key, int64_t v);
  void add_bool(std::string_view key, bool v);
};

// What a process's spans carry as their resource.
struct ProcessResource {
  int32_t pid = 0, ppid = 0;
  std::string exe, service_name;
  TraceId trace_id{};
};

// The resource of every loaded process and the trace id of its process tree.
class Resources {
 public:
  // service_name: OTEL_SERVICE_NAME when set (for every process), else each exe's base name.
  Resources(const TraceSet& traces, std::string_view service_name);
  // A pid that no loaded file names (should not happen) gets a resource of its own.
  const ProcessResource& of(int32_t pid);

 private:
  std::unordered_map<int32_t, ProcessResource> by_pid_;
  std::string service_name_;
};

// Turns one connection into its spans. The vector and its spans' buffers are reused across calls.
class SpanBuilder {
 public:
  SpanBuilder(Resources& resources, const TimeBase& tb) : resources_(resources), tb_(tb) {}
  // Appends c's spans to out (out.size() unchanged for the spans already there).
  void build(const Connection& c, std::vector<Span>& out, size_t& n_out);

 private:
  uint64_t unix_ns(uint64_t mono) const { return tb_.t0_unix_ns + (mono - tb_.t0_mono_ns); }
  Resources& resources_;
  const TimeBase& tb_;
};

// Lowercase hex, as the OTLP JSON mapping writes trace and span ids.
std::string to_hex(const uint8_t* p, size_t n);

}  // namespace httptrace::analyzer::otlp
