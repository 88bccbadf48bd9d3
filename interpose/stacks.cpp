#include "interpose/stacks.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "common/trace_format.h"
#include "interpose/lifecycle.h"

namespace httptrace {

void record_stack(uint64_t ts, uint32_t conn) {
  if (!stacks_enabled()) return;
  constexpr int kMaxDepth = 64;
  void* ips[kMaxDepth];
  const int depth = unw_backtrace(ips, kMaxDepth);
  if (depth <= 0) return;
  uint64_t addrs[kMaxDepth];
  for (int i = 0; i < depth; ++i) addrs[i] = reinterpret_cast<uintptr_t>(ips[i]);
  format::StackEvent ev = {};
  ev.h.kind = static_cast<uint16_t>(format::EventKind::kStack);
  ev.h.conn = conn;
  ev.h.ts_ns = ts;
  ev.depth = static_cast<uint32_t>(depth);
  trace_writer().emit(&ev, sizeof(ev), addrs, sizeof(uint64_t) * static_cast<size_t>(depth));
}

}  // namespace httptrace
