// libdlopen_bare.so: dlopen()s a library by bare file name, found only through this module's own
// RUNPATH ($ORIGIN, build/tests/libs). glibc takes the RUNPATH from dlopen's caller, so the call
// works only while our exported dlopen leaves the caller to be this module, not libhttptrace.so.
// ht_get writes "dlopen ok" or the loader's message, and makes no request; mode 1 opens it
// RTLD_DEEPBIND (which our dlopen must then leave to glibc with this caller, untraced).
#include <dlfcn.h>

#include <cstdio>

#include "tests/libs/get_module.h"

extern "C" int ht_get(const char*, int, const char*, const char*, int mode, char* out, size_t cap) {
  void* h = dlopen("libssl-ht2.so.3", RTLD_NOW | RTLD_LOCAL | (mode == 1 ? RTLD_DEEPBIND : 0));
  snprintf(out, cap, "dlopen %s", h != nullptr ? "ok" : dlerror());
  return h != nullptr ? 0 : 1;
}
