// Run-time resolution of a TLS library's functions, from the copy the program actually loaded.
//
// libhttptrace.so links neither libssl nor gnutls. When the program calls our exported SSL_read,
// the real one is usually dlsym(RTLD_NEXT) — but not when libssl arrived through dlopen() of a
// module loaded RTLD_LOCAL (python3's _ssl): then it is outside the global scope that RTLD_NEXT
// searches, while the module's calls still reach us because preloaded symbols come first in every
// lookup scope. So the library is found by soname with RTLD_NOLOAD (never loading anything), and
// every function is taken from that one handle: dlsym(handle) searches only that library and its
// dependencies, so it can never return our own wrapper, and all functions come from one copy.
//
// Each API is a struct of typed pointers filled from an X-macro list of names; ApiTable<...>
// resolves it once, at the first intercepted call (dlopen/dlsym allocate and lock, which is why it
// happens once); a thread arriving while another resolves gets nullptr from table() and
// falls back to resolve_one() for the one function it must call, recording nothing that time.
#pragma once

#include <atomic>
#include <cstddef>
#include <iterator>

namespace httptrace::tls {

// A handle (from dlopen RTLD_NOLOAD) to the loaded library defining `symbol`: the one RTLD_NEXT
// finds if any, else the first of `sonames` already loaded. nullptr if none is loaded.
void* find_library(const char* symbol, const char* const* sonames, size_t n_sonames);

// dlsym(find_library(...), name) for one function, for the rare call that cannot use the table.
void* resolve_one(const char* name, const char* const* sonames, size_t n_sonames);

// Resolves Api once. Api provides kSonames (candidate library names), kProbe (a function the
// library must define) and `static bool fill(Api&, void* lib)`, which sets every pointer with
// dlsym_in and returns false when a required one is missing (optional ones may stay nullptr, e.g.
// a function newer than the loaded library).
template <typename Api>
class ApiTable {
 public:
  // The resolved table, or nullptr (not loaded, or being resolved by another thread right now).
  const Api* table() {
    int s = state_.load(std::memory_order_acquire);
    if (s == kReady) return &api_;
    if (s != kUnresolved) return nullptr;
    int expected = kUnresolved;
    if (!state_.compare_exchange_strong(expected, kResolving, std::memory_order_acq_rel)) return nullptr;
    void* lib = find_library(Api::kProbe, Api::kSonames, std::size(Api::kSonames));
    const bool ok = lib != nullptr && Api::fill(api_, lib);
    // Not loaded yet (or incomplete): try again at a later call rather than giving up for good.
    // A library that stays incomplete (older than every function listed) costs a lookup per
    // call through one() and is never recorded; the supported libssl 1.1.1/3 and GnuTLS 3 have
    // everything.
    state_.store(ok ? kReady : kUnresolved, std::memory_order_release);
    return ok ? &api_ : nullptr;
  }

  // The real function when the table is not usable (not yet resolved, or another thread is
  // resolving it right now): resolved on the spot, slowly; the caller then records nothing.
  template <typename F>
  F one(const char* name) {
    return reinterpret_cast<F>(resolve_one(name, Api::kSonames, std::size(Api::kSonames)));
  }

 private:
  static constexpr int kUnresolved = 0, kResolving = 1, kReady = 2;
  std::atomic<int> state_{kUnresolved};
  Api api_{};
};

// dlsym(lib, name); nullptr for a null lib.
void* dlsym_in(void* lib, const char* name);
// The same, cast to the pointer type of dst; true when found.
template <typename F>
bool load(F& dst, void* lib, const char* name) {
  dst = reinterpret_cast<F>(dlsym_in(lib, name));
  return dst != nullptr;
}

}  // namespace httptrace::tls
