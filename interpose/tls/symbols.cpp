#include "interpose/tls/symbols.h"

#include <dlfcn.h>

namespace httptrace::tls {

void* dlsym_in(void* lib, const char* name) { return lib != nullptr ? dlsym(lib, name) : nullptr; }

void* find_library(const char* symbol, const char* const* sonames, size_t n_sonames) {
  // The global-scope definition, when there is one, is what the program's own calls would have
  // reached without us: prefer its library.
  if (void* next = dlsym(RTLD_NEXT, symbol)) {
    Dl_info info{};
    if (dladdr(next, &info) != 0 && info.dli_fname != nullptr) {
      if (void* lib = dlopen(info.dli_fname, RTLD_NOLOAD | RTLD_LAZY)) return lib;
    }
  }
  for (size_t i = 0; i < n_sonames; ++i) {
    if (void* lib = dlopen(sonames[i], RTLD_NOLOAD | RTLD_LAZY)) {
      if (dlsym(lib, symbol) != nullptr) return lib;
      dlclose(lib);
    }
  }
  return nullptr;
}

void* resolve_one(const char* name, const char* const* sonames, size_t n_sonames) {
  return dlsym_in(find_library(name, sonames, n_sonames), name);
}

}  // namespace httptrace::tls
