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
  std::atomic<void*> fn;  // the function, or nullptr: not resolved yet, or missing
  std::atomic<bool> looked_up{false};  // dlsym has run: a nullptr fn now means missing
};

// Slow path: dlsym and remember. nullptr when missing or while this thread is resolving.
void* resolve_symbol(RealSymbol& s);

// Every wrapper calls this first, so a resolved symbol costs one load and one test of the
// pointer the call then goes through; only nullptr (not yet resolved, or missing) leaves it.
// The pointer as it is now, nullptr if not resolved yet: for a fast path that must not call
// out (and so needs no stack frame); its slow path then calls real_fn.
template <typename Fn>
inline Fn loaded_fn(const RealSymbol& s) {
  return reinterpret_cast<Fn>(s.fn.load(std::memory_order_acquire));
}

template <typename Fn>
inline Fn real_fn(RealSymbol& s) {
  void* p = s.fn.load(std::memory_order_acquire);
  if (__builtin_expect(p == nullptr, 0)) p = resolve_symbol(s);
  return reinterpret_cast<Fn>(p);
}

}  // namespace httptrace
