#include "interpose/tls/symbols.h"

#include <dlfcn.h>

#include <cerrno>

namespace httptrace::tls {

namespace {

bool in_self(const void* p) {
  return p != nullptr && self_object().contains(reinterpret_cast<uintptr_t>(p));
}

}  // namespace

LookupHygiene::LookupHygiene() : errno_(errno) {}

LookupHygiene::~LookupHygiene() {
  dlerror();
  errno = errno_;
}

void* dlsym_in(void* lib, const char* name) {
  if (lib == nullptr) return nullptr;
  void* p = dlsym(lib, name);
  // The main program's handle searches the global scope, preloads included.
  return in_self(p) ? nullptr : p;
}

void close_library(void* lib) {
  if (lib != nullptr) dlclose(lib);
}

void* find_library(const char* symbol, const char* const* sonames, size_t n_sonames) {
  // The global-scope definition, when there is one, is what the program's own calls would have
  // reached without us: prefer its library.
  if (void* next = dlsym(RTLD_NEXT, symbol)) {
    Dl_info info{};
    if (!in_self(next) && dladdr(next, &info) != 0 && info.dli_fname != nullptr) {
      if (void* lib = dlopen(info.dli_fname, RTLD_NOLOAD | RTLD_LAZY)) return lib;
    }
  }
  for (size_t i = 0; i < n_sonames; ++i) {
    if (void* lib = dlopen(sonames[i], RTLD_NOLOAD | RTLD_LAZY)) {
      if (dlsym_in(lib, symbol) != nullptr) return lib;
      dlclose(lib);
    }
  }
  return nullptr;
}

void* library_for(const CallerObject& obj, const char* probe, const char* const* sonames,
                  size_t n_sonames) {
  if (obj.lo == obj.hi) return find_library(probe, sonames, n_sonames);
  void* fn = lookup_for(obj, probe);
  if (fn == nullptr) return nullptr;
  CallerObject lib;
  if (!object_of(fn, &lib)) return nullptr;
  // "" is the main program (a static OpenSSL it exports): its handle, where dlsym_in skips us.
  return dlopen(lib.path[0] != '\0' ? lib.path : nullptr, RTLD_NOLOAD | RTLD_LAZY);
}

}  // namespace httptrace::tls
