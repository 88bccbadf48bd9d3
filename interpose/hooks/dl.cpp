// dlopen and dlclose: code loaded RTLD_DEEPBIND is traced like any other (tls/deepbind.h), and
// an unloaded object makes the per-caller TLS answers be checked again (tls/symbols.h).
//
// dlopen must keep its caller. glibc takes the calling object from dlopen's return address: its
// namespace, its RPATH/RUNPATH for a bare file name, its DT_RPATH for the new object's
// dependencies, its directory for $ORIGIN. A C++ wrapper would make every dlopen look as if
// libhttptrace.so had called it. So the exported dlopen is a stub that jumps (no frame, return
// address untouched) to the real one, except for an RTLD_DEEPBIND load that httptrace_dlopen_route
// finds safe to make from here: a C++ function must see such a call return, to rebind the new
// objects, and then glibc sees us as the caller. That is safe when it changes nothing: the caller
// is in the base namespace like us, has no DT_RPATH, and, for a bare file name, no DT_RUNPATH
// either (we have neither), and the name has no $ORIGIN-style token. PHP's extensions (full
// paths, from a PHP binary without RPATH) qualify; any other deepbind load goes straight through,
// untraced as before, rather than possibly resolved differently.
//
// dlmopen is not hooked: objects in another namespace never see our preloaded wrappers, and
// binding them to us would mix two C libraries' state (see tls/deepbind.h).
//
// Nor is the module map (HTTPTRACE_STACKS=1) written here: the stub never sees a plain dlopen
// return, and dlmopen and glibc's own loads (NSS, iconv) pass no hook at all. record/modules.h
// notices new objects by dl_iterate_phdr's load counter before each stack instead.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cerrno>
#include <cstring>

#include "interpose/hooks/export.h"
#include "interpose/tls/caller_scope.h"
#include "interpose/tls/deepbind.h"

namespace {

using dlopen_fn = void* (*)(const char*, int);
using dlclose_fn = int (*)(void*);

dlclose_fn g_real_dlclose = nullptr;

}  // namespace

// Read by the stub: the real dlopen, or nullptr before our constructor ran.
extern "C" {
__attribute__((visibility("hidden"))) constinit dlopen_fn httptrace_real_dlopen = nullptr;
}

namespace {

dlopen_fn real_dlopen() {
  dlopen_fn f = __atomic_load_n(&httptrace_real_dlopen, __ATOMIC_ACQUIRE);
  if (f == nullptr) {
    const int saved = errno;
    f = reinterpret_cast<dlopen_fn>(dlsym(RTLD_NEXT, "dlopen"));
    errno = saved;
    __atomic_store_n(&httptrace_real_dlopen, f, __ATOMIC_RELEASE);
  }
  return f;
}

dlclose_fn real_dlclose() {
  dlclose_fn f = __atomic_load_n(&g_real_dlclose, __ATOMIC_ACQUIRE);
  if (f == nullptr) {
    const int saved = errno;
    f = reinterpret_cast<dlclose_fn>(dlsym(RTLD_NEXT, "dlclose"));
    errno = saved;
    __atomic_store_n(&g_real_dlclose, f, __ATOMIC_RELEASE);
  }
  return f;
}

__attribute__((constructor)) void resolve_dl() {
  real_dlopen();
  real_dlclose();
}

}  // namespace

// Asked by the stub for an RTLD_DEEPBIND load (caller: its return address): 1 if the load may
// be made from our C++ code (and rebound), 0 to jump straight to the real dlopen.
extern "C" __attribute__((used, visibility("hidden"))) int httptrace_dlopen_route(const char* file,
                                                                                  int, const void* caller) {
  if (real_dlopen() == nullptr) return 1;  // the slow path then fails the call as the real would
  if (file == nullptr || std::strchr(file, '$') != nullptr) return 0;
  const int saved = errno;
  Dl_info info{};
  link_map* map = nullptr;
  int ok = 0;
  if (dladdr1(caller, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) != 0 && map != nullptr) {
    // A glibc handle is its link map.
    Lmid_t ns = -1;
    const bool base = dlinfo(map, RTLD_DI_LMID, &ns) == 0 && ns == LM_ID_BASE;
    bool rpath = false, runpath = false;
    for (const ElfW(Dyn)* d = map->l_ld; d != nullptr && d->d_tag != DT_NULL; ++d) {
      rpath |= d->d_tag == DT_RPATH;
      runpath |= d->d_tag == DT_RUNPATH;
    }
    ok = base && !rpath && (std::strchr(file, '/') != nullptr || !runpath);
  }
  dlerror();  // a failed dladdr/dlinfo must not show in the program's dlerror()
  errno = saved;
  return ok;
}

// The stub's way out for a deepbind load, and for any load before the real dlopen is known
// (a library constructor running before ours). A tail jump from the stub: it returns straight to
// the program.
extern "C" __attribute__((used, visibility("hidden"))) void* httptrace_dlopen_slow(const char* file,
                                                                                   int mode) {
  dlopen_fn real = real_dlopen();
  if (real == nullptr) return nullptr;
  if ((mode & RTLD_DEEPBIND) == 0) return real(file, mode);
  const int saved = errno;
  const uint64_t before = httptrace::tls::objects_added();
  errno = saved;
  void* handle = real(file, mode);
  if (handle != nullptr && httptrace::tls::objects_added() != before) {
    const int after = errno;
    httptrace::tls::rebind_deepbind(handle);
    errno = after;
  }
  return handle;
}

#if defined(__x86_64__)
// RTLD_DEEPBIND is 8 (mode in esi). At entry rsp = 8 mod 16: two pushes and 8 more bytes align
// the call to the router; everything is undone before the jump, so the real dlopen (or the slow
// path) sees exactly the stack and arguments the program called us with.
asm(".text\n"
    ".globl dlopen\n"
    ".type dlopen, @function\n"
    "dlopen:\n"
    "  test $8, %esi\n"
    "  jnz 1f\n"
    "2:\n"
    "  mov httptrace_real_dlopen(%rip), %rax\n"
    "  test %rax, %rax\n"
    "  jz httptrace_dlopen_slow\n"
    "  jmp *%rax\n"
    "1:\n"
    "  push %rdi\n"
    "  push %rsi\n"
    "  sub $8, %rsp\n"
    "  mov 24(%rsp), %rdx\n"
    "  call httptrace_dlopen_route\n"
    "  add $8, %rsp\n"
    "  pop %rsi\n"
    "  pop %rdi\n"
    "  test %eax, %eax\n"
    "  jz 2b\n"
    "  jmp httptrace_dlopen_slow\n"
    ".size dlopen, . - dlopen\n");
#elif defined(__aarch64__)
asm(".text\n"
    ".globl dlopen\n"
    ".type dlopen, %function\n"
    "dlopen:\n"
    "  tbnz w1, #3, 1f\n"
    "2:\n"
    "  adrp x16, httptrace_real_dlopen\n"
    "  ldr x16, [x16, :lo12:httptrace_real_dlopen]\n"
    "  cbz x16, httptrace_dlopen_slow\n"
    "  br x16\n"
    "1:\n"
    "  stp x29, x30, [sp, #-32]!\n"
    "  stp x0, x1, [sp, #16]\n"
    "  mov x2, x30\n"
    "  bl httptrace_dlopen_route\n"
    "  mov w9, w0\n"
    "  ldp x0, x1, [sp, #16]\n"
    "  ldp x29, x30, [sp], #32\n"
    "  cbz w9, 2b\n"
    "  b httptrace_dlopen_slow\n"
    ".size dlopen, . - dlopen\n");
#else
HT_EXPORT void* dlopen(const char* file, int mode) { return httptrace_dlopen_slow(file, mode); }
#endif

HT_EXPORT int dlclose(void* handle) {
  dlclose_fn real = real_dlclose();
  if (real == nullptr) return -1;
  const int saved = errno;
  const uint64_t before = httptrace::tls::objects_removed();
  errno = saved;
  const int ret = real(handle);
  // Only an unload can make a remembered address belong to another object; our own
  // RTLD_NOLOAD look-ups and most program dlcloses unload nothing.
  if (ret == 0) {
    const int after = errno;
    if (httptrace::tls::objects_removed() != before) {
      httptrace::tls::dl_epoch().fetch_add(1, std::memory_order_acq_rel);
      httptrace::tls::prune_deepbind();
    }
    errno = after;
  }
  return ret;
}
