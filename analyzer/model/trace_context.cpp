#include "analyzer/model/trace_context.h"

namespace httptrace::analyzer {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // W3C: lowercase only
}

bool read_hex(std::string_view s, uint8_t* out) {
  for (size_t i = 0; 2 * i + 1 < s.size(); ++i) {
    const int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

uint64_t mix(uint64_t x) {  // splitmix64's finaliser: every input bit reaches every output bit
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr uint64_t kSpanSalt = 0x7370616eull;   // "span"
constexpr uint64_t kTraceSalt = 0x74726163ull;  // "trac"

// The connection's part of the hash.
uint64_t hash_base(uint64_t anchor_ns, std::string_view conn_id, uint64_t salt) {
  uint64_t h = 0xcbf29ce484222325ull ^ mix(anchor_ns ^ salt);
  for (unsigned char c : conn_id) h = (h ^ c) * 0x100000001b3ull;
  return h;
}
uint64_t hash_index(uint64_t base, uint32_t index, uint64_t salt) { return mix(base ^ mix(uint64_t{index} << 8 ^ salt)); }

uint64_t span_from(uint64_t v) { return v ? v : 1; }  // an all-zero span id is invalid
std::array<uint8_t, 16> trace_from(uint64_t hi) {
  const uint64_t lo = mix(hi ^ 0x65ull) | 1;
  std::array<uint8_t, 16> id{};
  for (int i = 0; i < 8; ++i) {
    id[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    id[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  return id;
}

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  uint8_t version, flags;
  TraceParent tp;
  uint8_t span[8];
  if (!read_hex(v.substr(0, 2), &version) || version == 0xff) return std::nullopt;
  if (!read_hex(v.substr(3, 32), tp.trace_id.data()) || !read_hex(v.substr(36, 16), span) ||
      !read_hex(v.substr(53, 2), &flags))
    return std::nullopt;
  if (version == 0 ? v.size() != 55 : (v.size() > 55 && v[55] != '-')) return std::nullopt;
  bool zero = true;
  for (uint8_t b : tp.trace_id) zero &= b == 0;
  for (uint8_t b : span) tp.parent_span_id = tp.parent_span_id << 8 | b;
  if (zero || tp.parent_span_id == 0) return std::nullopt;
  return tp;
}

std::array<uint8_t, 16> tree_trace_id(int32_t root_pid, uint64_t root_anchor_ns) {
  const uint64_t pid = uint32_t(root_pid);
  const uint64_t hi = mix(pid ^ mix(root_anchor_ns)), lo = mix(root_anchor_ns ^ 0x68747470ull) ^ pid;
  std::array<uint8_t, 16> id{};
  for (int i = 0; i < 8; ++i) {
    id[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    id[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  return id;
}

uint64_t derive_span_id(uint64_t anchor_ns, std::string_view conn_id, uint32_t index) {
  return span_from(hash_index(hash_base(anchor_ns, conn_id, kSpanSalt), index, kSpanSalt));
}

std::array<uint8_t, 16> derive_trace_id(uint64_t anchor_ns, std::string_view conn_id, uint32_t index) {
  return trace_from(hash_index(hash_base(anchor_ns, conn_id, kTraceSalt), index, kTraceSalt));
}

RequestIds::RequestIds(uint64_t anchor_ns, std::string_view conn_id)
    : anchor_(anchor_ns),
      span_base_(hash_base(anchor_ns, conn_id, kSpanSalt)),
      trace_base_(hash_base(anchor_ns, conn_id, kTraceSalt)),
      valid_(true) {}

uint64_t RequestIds::span_id(uint32_t index) const { return span_from(hash_index(span_base_, index, kSpanSalt)); }

std::array<uint8_t, 16> RequestIds::trace_id(uint32_t index) const {
  return trace_from(hash_index(trace_base_, index, kTraceSalt));
}

}  // namespace httptrace::analyzer
