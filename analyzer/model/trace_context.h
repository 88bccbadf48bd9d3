// W3C Trace Context for the requests the model links into distributed traces (SPEC §5, §9).
//
// A request that carries a `traceparent` header names its trace and its parent span; one that
// does not gets ids derived from where it was recorded (the process's trace file anchor, its
// connection id and index), so re-exporting the same traces gives the same ids and two exports
// of one file agree, while two runs of the same program (other anchors) never collide.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace httptrace::analyzer {

struct TraceParent {
  std::array<uint8_t, 16> trace_id{};
  uint64_t parent_span_id = 0;
};

// The header's value ("00-<32 hex>-<16 hex>-<2 hex>"); nullopt unless it is valid per W3C
// (version not ff, ids not all zero; a future version may append fields after a '-').
std::optional<TraceParent> parse_traceparent(std::string_view v);

// The trace of a process tree's own outbound requests (SPEC §9: a CLI run is one trace), from
// the tree's root process: its pid and its trace file's wall-clock anchor.
std::array<uint8_t, 16> tree_trace_id(int32_t root_pid, uint64_t root_anchor_ns);

// Ids for a request that no traceparent names; an inbound one with no traced caller is the root
// of its own trace (a service's requests are separate traces, not one per process).
uint64_t derive_span_id(uint64_t anchor_ns, std::string_view conn_id, uint32_t index);
std::array<uint8_t, 16> derive_trace_id(uint64_t anchor_ns, std::string_view conn_id, uint32_t index);

// The same ids for many requests of one connection: the part of the hash that depends on the
// connection alone is computed once (a hash of the id per request was a visible share of the
// model's time on long keep-alive connections).
class RequestIds {
 public:
  RequestIds() = default;
  RequestIds(uint64_t anchor_ns, std::string_view conn_id);
  bool valid_for(uint64_t anchor_ns) const { return valid_ && anchor_ == anchor_ns; }
  uint64_t span_id(uint32_t index) const;
  std::array<uint8_t, 16> trace_id(uint32_t index) const;

 private:
  uint64_t anchor_ = 0, span_base_ = 0, trace_base_ = 0;
  bool valid_ = false;
};

// Lowercase hex, as W3C and OTLP/JSON write ids; out needs 2 * n (hex64_to: 16) characters.
inline size_t hex_to(char* out, const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return 2 * n;
}
inline size_t hex64_to(char* out, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
  return hex_to(out, b, 8);
}

}  // namespace httptrace::analyzer
