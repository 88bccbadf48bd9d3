#include "interpose/hooks/real_symbols.h"

#include <dlfcn.h>

#include <cstring>

#include "interpose/record/recorder.h"
#include "interpose/record/sys.h"

namespace httptrace {

namespace {
thread_local constinit bool t_resolving = false;
}  // namespace

void* resolve_symbol(RealSymbol& s) {
  void* p = s.fn.load(std::memory_order_acquire);
  if (p != nullptr || s.looked_up.load(std::memory_order_acquire)) return p;
  if (t_resolving) return nullptr;
  ErrnoSaver keep;  // dlsym may set errno; the wrapper's caller must not see it
  t_resolving = true;
  p = dlsym(RTLD_NEXT, s.name);
  t_resolving = false;
  if (p == nullptr && s.required) {
    static const char kMsg[] = "httptrace: a C library function is missing: ";
    sys::write(2, kMsg, sizeof(kMsg) - 1);
    sys::write(2, s.name, strlen(s.name));
    sys::write(2, "\n", 1);
  }
  // Racing resolvers store the same values.
  if (p != nullptr) s.fn.store(p, std::memory_order_release);
  s.looked_up.store(true, std::memory_order_release);
  return p;
}

}  // namespace httptrace
