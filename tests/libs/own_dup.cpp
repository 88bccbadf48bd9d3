// libown_dup.so: defines its own `dup`, a name libhttptrace.so also exports, and calls it. Loaded
// RTLD_DEEPBIND its call must keep reaching its own definition when traced: rebinding a deepbind
// object to our wrappers must never change which library its symbols resolve to.
// ht_get writes "dup <n>" (4242 from its own dup) and makes no request.
#include <cstdio>

#include "tests/libs/get_module.h"

extern "C" __attribute__((visibility("default"), noinline)) int dup(int) { return 4242; }

extern "C" int ht_get(const char*, int, const char*, const char*, int, char* out, size_t cap) {
  const int n = dup(0);
  snprintf(out, cap, "dup %d", n);
  return n == 4242 ? 0 : 1;
}
