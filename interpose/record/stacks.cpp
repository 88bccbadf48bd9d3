#include "interpose/record/stacks.h"

#include <dlfcn.h>

#include <atomic>

#include "common/trace_format.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/modules.h"
#include "interpose/record/recorder.h"

namespace httptrace {

namespace {
using BacktraceFn = int (*)(void**, int);
std::atomic<BacktraceFn> g_backtrace{nullptr};
}  // namespace

bool load_unwinder() {
  // Loaded only when stacks are asked for: linking libunwind would map it (and liblzma) into
  // every traced program, ~0.6 ms of start-up and a dozen page faults each.
  void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return false;
  auto fn = reinterpret_cast<BacktraceFn>(dlsym(lib, "unw_backtrace"));
  g_backtrace.store(fn, std::memory_order_release);
  return fn != nullptr;
}

void record_stack(uint64_t ts, uint32_t conn) {
  if (!stacks_enabled()) return;
  const BacktraceFn backtrace = g_backtrace.load(std::memory_order_acquire);
  if (backtrace == nullptr) return;
  constexpr int kMaxDepth = 64;
  void* ips[kMaxDepth];
  const int depth = backtrace(ips, kMaxDepth);
  if (depth <= 0) return;
  uint64_t addrs[kMaxDepth];
  for (int i = 0; i < depth; ++i) addrs[i] = reinterpret_cast<uintptr_t>(ips[i]);
  // After the unwind, so every object an address lies in is loaded, and written before the stack.
  record_new_modules(ts);
  auto ev = new_event<format::StackEvent>(format::EventKind::kStack, conn, ts);
  ev.depth = static_cast<uint32_t>(depth);
  trace_writer().emit(&ev, sizeof(ev), addrs, sizeof(uint64_t) * static_cast<size_t>(depth));
}

}  // namespace httptrace
