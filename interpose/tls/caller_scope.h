// Which definition of a symbol a given calling object would have reached without us.
//
// Our exported SSL_*/gnutls_* wrappers win every caller's binding, because a preloaded library
// comes first in every lookup scope. The real function must then be found the way the dynamic
// linker would have found it for *that* caller: a Python extension from a manylinux wheel
// needs its bundled libssl-<hash>.so.3 (loaded RTLD_LOCAL, so outside the global scope), and a
// process holding two copies of libssl must hand each caller's SSL* to that caller's own copy.
//
// glibc's order for an object's references is the global scope (main program, preloads, their
// dependencies, RTLD_GLOBAL objects), then the object's own dependency tree; an object loaded
// RTLD_DEEPBIND searches its own tree first. lookup_for() reproduces that with dlsym(RTLD_NEXT)
// (the global scope after libhttptrace.so, so never ourselves) and dlsym on the caller's own
// handle (its dependency tree, which never holds a preload).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace httptrace::tls {

// A loaded object, by the span of its PT_LOAD segments. Empty (lo == hi == 0) for an address in
// no object (JIT code, an anonymous trampoline).
struct CallerObject {
  uintptr_t lo = 0;
  uintptr_t hi = 0;
  const char* path = nullptr;  // the link map's l_name: "" for the main program
  bool contains(uintptr_t a) const { return a >= lo && a < hi; }
};

// The object containing addr. False (and *out empty) when no object does.
bool object_of(const void* addr, CallerObject* out);

// The definition of name that references from obj resolve to, skipping libhttptrace.so. For an
// empty obj (unknown caller), the global scope only. nullptr when nothing defines it.
void* lookup_for(const CallerObject& obj, const char* name);

// dlclose() unloaded something: every cached per-caller answer must be checked again, because
// an object at a remembered address may now be another one. Bumped by the dlclose hook.
std::atomic<uint32_t>& dl_epoch();

// Objects loaded RTLD_DEEPBIND (hooks/dl.cpp registers them): their own tree comes first.
// Fixed capacity; an object that does not fit is looked up in the default order.
void note_deepbind(const CallerObject& obj);
bool is_deepbind(uintptr_t addr);
// After a dlclose: forgets registered objects that are no longer loaded.
void prune_deepbind();

// The span of libhttptrace.so itself (of the object holding this code).
CallerObject self_object();

}  // namespace httptrace::tls
