// The next definition of an interposed function (dlsym(RTLD_NEXT)), resolved once.
//
// Each hook table entry is a RealSymbol. The constructor resolves every entry; a hook that runs
// earlier (another library's constructor) resolves its own entry lazily. A missing symbol is
// remembered as missing, and the wrapper then fails with ENOSYS instead of calling through null.
//
// glibc's dlsym may call calloc. We do not hook the allocator, but a preloaded allocator or
// tracer behind us could do I/O from calloc and land in one of our hooks while the same thread
// is inside dlsym: that nested call sees "being resolved" and gets ENOSYS rather than recursing
// into dlsym forever.
#pragma once

#include <atomic>

namespace httptrace {

struct RealSymbol {
  const char* name;
  bool required;  // warn once if absent: the C library itself is expected to provide it
  std::atomic<void*> fn;
};

// Stored in RealSymbol::fn for a symbol that does not exist, so it is looked up only once.
inline char g_missing_symbol;

// Slow path: dlsym and remember. nullptr when missing or while this thread is resolving.
void* resolve_symbol(RealSymbol& s);

template <typename Fn>
inline Fn real_fn(RealSymbol& s) {
  void* p = s.fn.load(std::memory_order_acquire);
  if (__builtin_expect(p == nullptr || p == &g_missing_symbol, 0)) p = resolve_symbol(s);
  return reinterpret_cast<Fn>(p);
}

}  // namespace httptrace
