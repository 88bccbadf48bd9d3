// Run-time resolution of a TLS library's functions, per calling object.
//
// libhttptrace.so links neither libssl nor gnutls. When a program's object calls our exported
// SSL_read, the real one is the SSL_read that object would have bound to without us
// (tls/caller_scope.h): its own libssl, which may be a private copy loaded RTLD_LOCAL under
// another name (a manylinux wheel's libssl-<hash>.so.3), or one of two copies in the process.
// The wrapper passes its return address; the object holding it is looked up once, and every
// function of the API is then taken from the one library that defines the probe function for
// that object (dlsym on that library's handle: its own tree, so all functions come from one copy
// and never from us).
//
// Cached per calling object in a fixed append-only table: after the first call from an object,
// a call costs a short scan of address spans, with no lock, allocation or system call. Each
// entry settles for good: kRecord (every listed function present), or kPassThrough (the library
// lacks some function we need to describe a session, e.g. an older or non-OpenSSL libssl: the
// calls go straight to the caller's real functions and nothing is recorded). Only a dlclose()
// in the process makes entries be checked again (tls::dl_epoch()).
//
// Each API is a struct of typed pointers filled from an X-macro list of names (Api::fill).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>

#include "interpose/tls/caller_scope.h"

namespace httptrace::tls {

// For a caller in no object: a handle (from dlopen RTLD_NOLOAD) to the loaded library defining
// `symbol`: the one RTLD_NEXT finds if any, else the first of `sonames` already loaded.
void* find_library(const char* symbol, const char* const* sonames, size_t n_sonames);

// A handle (RTLD_NOLOAD; dlclose it) to the library defining probe for references from obj,
// nullptr if none; for an empty obj, find_library.
void* library_for(const CallerObject& obj, const char* probe, const char* const* sonames,
                  size_t n_sonames);

// dlsym(lib, name), never a definition in libhttptrace.so; nullptr for a null lib.
void* dlsym_in(void* lib, const char* name);
void close_library(void* lib);

// The same, cast to the pointer type of dst; true when found.
template <typename F>
bool load(F& dst, void* lib, const char* name) {
  dst = reinterpret_cast<F>(dlsym_in(lib, name));
  return dst != nullptr;
}

// Around our own dl* look-ups inside a wrapper: the program's errno comes back as it was, and
// the dlerror() messages our failed dlsym calls leave behind are taken away (the program's next
// dlerror() must not report a failure of ours).
class LookupHygiene {
 public:
  LookupHygiene();
  ~LookupHygiene();
  LookupHygiene(const LookupHygiene&) = delete;
  LookupHygiene& operator=(const LookupHygiene&) = delete;

 private:
  int errno_;
};

enum class ApiKind : uint32_t { kNone = 0, kRecord = 1, kPassThrough = 2 };

// Api provides kSonames (library names, for callers in no object), kProbe (a function the library
// must define) and `static bool fill(Api&, void* lib)`, which sets every pointer with load() and
// returns false when one needed for recording is missing (optional ones may stay nullptr).
template <typename Api>
class CallerApis {
 public:
  struct View {
    const Api* api = nullptr;  // nullptr: no library defines the probe for this caller
    bool record = false;       // kRecord: the call may be recorded
  };

  // The functions for calls made from the object holding the return address ret.
  View for_caller(const void* ret) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(ret);
    const uint32_t epoch = dl_epoch().load(std::memory_order_acquire);
    uint32_t n = used_.load(std::memory_order_acquire);
    if (n > kEntries) n = kEntries;
    for (uint32_t i = 0; i < n; ++i) {
      Entry& e = entries_[i];
      const uint32_t st = e.state.load(std::memory_order_acquire);
      if (st == 0 || a < e.lo || a >= e.hi) continue;
      if ((st >> 2) == (epoch & kEpochMask)) return view(e.api, st);
      return refresh(e, ret, epoch);
    }
    return resolve(ret, epoch);
  }

  // One function for the caller of ret, found on the spot (slow): for a View without api, or
  // an api that lacks this function.
  template <typename F>
  F one(const void* ret, const char* name) {
    LookupHygiene keep;
    CallerObject obj;
    if (object_of(ret, &obj)) return reinterpret_cast<F>(lookup_for(obj, name));
    void* lib = find_library(name, Api::kSonames, std::size(Api::kSonames));
    F f = reinterpret_cast<F>(dlsym_in(lib, name));
    close_library(lib);
    return f;
  }

  // Test hooks: how many times a caller's library was resolved, and forgetting every entry.
  uint32_t resolutions() const { return resolutions_.load(std::memory_order_relaxed); }
  void reset_for_test() {
    for (Entry& e : entries_) e.state.store(0, std::memory_order_relaxed);
    used_.store(0, std::memory_order_relaxed);
  }

 private:
  static constexpr uint32_t kEntries = 64;  // calling objects (libssl callers are few)
  static constexpr uint32_t kEpochMask = 0x3fffffff;

  struct Entry {
    std::atomic<uint32_t> state;  // 0: unused or dead; else epoch << 2 | ApiKind
    uintptr_t lo, hi;             // written before state is published, never changed after
    Api api;
  };

  static View view(const Api& api, uint32_t st) {
    return View{&api, static_cast<ApiKind>(st & 3) == ApiKind::kRecord};
  }

  ApiKind fill_for(const CallerObject& obj, Api& api) {
    LookupHygiene keep;
    resolutions_.fetch_add(1, std::memory_order_relaxed);
    api = Api{};
    void* lib = library_for(obj, Api::kProbe, Api::kSonames, std::size(Api::kSonames));
    if (lib == nullptr) return ApiKind::kNone;
    const bool complete = Api::fill(api, lib);
    close_library(lib);
    return complete ? ApiKind::kRecord : ApiKind::kPassThrough;
  }

  // The answer for a caller we could not store (the table is full): per thread, good until this
  // thread's next uncached call. A nested call (libssl calling back through its PLT) may refill
  // it in the middle of the outer one, with the same library's functions in practice.
  static View scratch(const Api& api, ApiKind kind) {
    static thread_local constinit Api t_api{};
    t_api = api;
    return View{&t_api, kind == ApiKind::kRecord};
  }

  __attribute__((noinline)) View resolve(const void* ret, uint32_t epoch) {
    CallerObject obj;
    object_of(ret, &obj);
    Api api;
    const ApiKind kind = fill_for(obj, api);
    // Nothing found: not remembered, because a library may still arrive (RTLD_GLOBAL dlopen)
    // for a caller that reached us through dlsym(RTLD_DEFAULT).
    if (kind == ApiKind::kNone) return View{};
    return store(obj, api, kind, epoch, reinterpret_cast<uintptr_t>(ret));
  }

  View store(const CallerObject& found, const Api& api, ApiKind kind, uint32_t epoch, uintptr_t a) {
    // A caller in no object (JIT code) is keyed by its page: its answer (the global scope, then
    // the known sonames) does not depend on where it is, only the look-up must not be repeated.
    CallerObject obj = found;
    if (obj.lo == obj.hi) {
      obj.lo = a & ~uintptr_t{4095};
      obj.hi = obj.lo + 4096;
    }
    const uint32_t i = used_.fetch_add(1, std::memory_order_acq_rel);
    if (i >= kEntries) {
      used_.store(kEntries, std::memory_order_relaxed);
      return scratch(api, kind);
    }
    Entry& e = entries_[i];
    e.lo = obj.lo;
    e.hi = obj.hi;
    e.api = api;
    const uint32_t st = ((epoch & kEpochMask) << 2) | static_cast<uint32_t>(kind);
    e.state.store(st, std::memory_order_release);
    return view(e.api, st);
  }

  // A dlclose() happened since e was filled: keep e if the same library still serves this span.
  __attribute__((noinline)) View refresh(Entry& e, const void* ret, uint32_t epoch) {
    CallerObject obj;
    object_of(ret, &obj);
    Api api;
    const ApiKind kind = fill_for(obj, api);
    if (obj.lo == obj.hi) {  // still in no object: the page it was keyed by
      obj.lo = reinterpret_cast<uintptr_t>(ret) & ~uintptr_t{4095};
      obj.hi = obj.lo + 4096;
    }
    const uint32_t old = e.state.load(std::memory_order_acquire);
    if (kind != ApiKind::kNone && obj.lo == e.lo && obj.hi == e.hi &&
        static_cast<ApiKind>(old & 3) == kind && std::memcmp(&api, &e.api, sizeof api) == 0) {
      const uint32_t st = ((epoch & kEpochMask) << 2) | static_cast<uint32_t>(kind);
      e.state.store(st, std::memory_order_release);
      return view(e.api, st);
    }
    // Another object (or library) now: this entry is dead; the caller gets a new one.
    e.state.store(0, std::memory_order_release);
    if (kind == ApiKind::kNone) return View{};
    return store(obj, api, kind, epoch, reinterpret_cast<uintptr_t>(ret));
  }

  std::atomic<uint32_t> used_{0};
  std::atomic<uint32_t> resolutions_{0};
  Entry entries_[kEntries]{};
};

}  // namespace httptrace::tls
