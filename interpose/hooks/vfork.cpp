// vfork and __vfork: the one kind of child that runs in our memory under another pid. It must not
// close our table entries or record exec (lifecycle.h), and telling it apart costs a getpid()
// system call (1-1.5 us in a VM). These stubs let that check be skipped in every process that
// never vforks: they note that a vfork child may exist, then jump to the real vfork.
//
// A jump, not a call: a C++ wrapper's frame would be the one the child returns through and then
// clobbers, so the parent would come back to a broken stack. The stub keeps no frame of its own
// at the moment it jumps, so both child and parent return straight into the program's caller.
#include <unistd.h>

#include <cerrno>

#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/lifecycle.h"

namespace {

pid_t vfork_missing() {
  errno = ENOSYS;
  return -1;
}

}  // namespace

// Called by the stubs before they jump: returns where to jump. Preserves errno (resolution may
// call dlsym, which may set it) because the real vfork only sets it on failure.
extern "C" __attribute__((used, visibility("hidden"))) void* httptrace_before_vfork(int which) {
  httptrace::note_vfork();
  const int saved = errno;
  void* p = which == 0 ? reinterpret_cast<void*>(httptrace::libc::real_vfork())
                       : reinterpret_cast<void*>(httptrace::libc::real___vfork());
  errno = saved;
  return p != nullptr ? p : reinterpret_cast<void*>(&vfork_missing);
}

#if defined(__x86_64__)
// Entry: rsp = 8 mod 16; one 8-byte adjustment aligns it for the call and is undone before the
// jump, so the real vfork sees exactly the stack the program called us with.
#define HTTPTRACE_VFORK_STUB(name, which)            \
  ".globl " #name "\n"                               \
  ".type " #name ", @function\n" #name ":\n"         \
  "  sub $8, %rsp\n"                                 \
  "  mov $" #which ", %edi\n"                        \
  "  call httptrace_before_vfork\n"                  \
  "  add $8, %rsp\n"                                 \
  "  jmp *%rax\n"                                    \
  ".size " #name ", . - " #name "\n"
#elif defined(__aarch64__)
#define HTTPTRACE_VFORK_STUB(name, which)            \
  ".globl " #name "\n"                               \
  ".type " #name ", %function\n" #name ":\n"         \
  "  stp x29, x30, [sp, #-16]!\n"                    \
  "  mov w0, #" #which "\n"                          \
  "  bl httptrace_before_vfork\n"                    \
  "  ldp x29, x30, [sp], #16\n"                      \
  "  br x0\n"                                        \
  ".size " #name ", . - " #name "\n"
#endif

#ifdef HTTPTRACE_VFORK_STUB
asm(".text\n" HTTPTRACE_VFORK_STUB(vfork, 0) HTTPTRACE_VFORK_STUB(__vfork, 1));
#else
// No stub for this architecture: assume a vfork child may exist, i.e. always ask getpid().
__attribute__((constructor)) static void httptrace_no_vfork_stub() { httptrace::note_vfork(); }
#endif
