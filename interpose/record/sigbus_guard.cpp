#include "interpose/record/sigbus_guard.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "interpose/record/trace_writer.h"

namespace httptrace {

namespace {

constexpr size_t kKernelSigsetBytes = _NSIG / 8;  // what rt_sigaction copies

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

SigactionFn g_real = nullptr;  // libc's sigaction (ours is exported under the same name)
std::atomic<TraceWriter*> g_guarded{nullptr};
std::atomic<char*> g_extra{nullptr};
std::atomic<size_t> g_extra_len{0};

// A fault in the extra mapping: anonymous memory under it, as abandon_mapping_at does.
bool abandon_extra_at(const void* addr) {
  char* base = g_extra.load(std::memory_order_acquire);
  const size_t len = g_extra_len.load(std::memory_order_relaxed);
  const char* a = static_cast<const char*>(addr);
  if (base == nullptr || a < base || a >= base + len) return false;
  return mmap(base, len, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED;
}
std::atomic<bool> g_installed{false};

// The program's own action, double-buffered: the handler may run on any thread while another
// thread's sigaction() changes it, and reads whole copies only. Writers take turns (a spin flag:
// changing SIGBUS is rare and never on a hot path).
struct sigaction g_app[2];
std::atomic<int> g_app_at{0};
std::atomic_flag g_app_busy = ATOMIC_FLAG_INIT;

struct sigaction app_action() { return g_app[g_app_at.load(std::memory_order_acquire)]; }

void on_sigbus(int sig, siginfo_t* info, void* uc);

bool is_function(const struct sigaction& a) {
  return a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN;
}

// What the kernel holds while the program believes it holds app: our handler, run with the
// program's mask and flags so its handler (called from ours) runs exactly as it asked, minus
// SA_RESETHAND (emulated, so the guard survives it). For SIG_DFL/SIG_IGN: SA_RESTART, so a
// kill(SIGBUS) the program ignores does not interrupt its restartable system calls.
struct sigaction kernel_action(const struct sigaction& app) {
  struct sigaction k = {};
  k.sa_sigaction = on_sigbus;
  if (is_function(app)) {
    k.sa_mask = app.sa_mask;
    k.sa_flags = (app.sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
  } else {
    sigemptyset(&k.sa_mask);
    k.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  }
  return k;
}

// The kernel's view of an action: what a query returns untraced. glibc adds its restorer
// (learnt from our own action, installed through the same sigaction); the kernel drops
// SIGKILL/SIGSTOP from the mask.
#if defined(__x86_64__) || defined(__i386__)
constexpr int kSaRestorer = 0x04000000;  // the kernel's SA_RESTORER, which glibc always sets here
#define HTTPTRACE_HAS_RESTORER 1
#endif
void* g_restorer = nullptr;
int g_restorer_flag = 0;

struct sigaction as_kernel_keeps(const struct sigaction& a) {
  struct sigaction k = a;
  k.sa_flags |= g_restorer_flag;
#ifdef HTTPTRACE_HAS_RESTORER
  if (g_restorer_flag != 0) k.sa_restorer = reinterpret_cast<void (*)()>(g_restorer);
#endif
  sigdelset(&k.sa_mask, SIGKILL);
  sigdelset(&k.sa_mask, SIGSTOP);
  return k;
}

void learn_restorer() {
  struct sigaction k;
  if (g_real(SIGBUS, nullptr, &k) != 0) return;
#ifdef HTTPTRACE_HAS_RESTORER
  g_restorer_flag = k.sa_flags & kSaRestorer;
  g_restorer = reinterpret_cast<void*>(k.sa_restorer);
#endif
}

void set_app_action(const struct sigaction& a) {
  for (int i = 0; i < 1000000 && g_app_busy.test_and_set(std::memory_order_acquire); ++i) {
  }
  const int next = 1 - g_app_at.load(std::memory_order_relaxed);
  g_app[next] = as_kernel_keeps(a);
  g_app_at.store(next, std::memory_order_release);
  const struct sigaction k = kernel_action(a);
  g_real(SIGBUS, &k, nullptr);
  g_app_busy.clear(std::memory_order_release);
}

void on_sigbus(int sig, siginfo_t* info, void* uc) {
  const int saved_errno = errno;
  TraceWriter* w = g_guarded.load(std::memory_order_acquire);
  // si_code > 0: a fault the kernel raised (a kill()'s siginfo has no address).
  if (info != nullptr && info->si_code > 0 &&
      ((w != nullptr && w->abandon_mapping_at(info->si_addr)) || abandon_extra_at(info->si_addr))) {
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  const struct sigaction app = app_action();
  if (is_function(app)) {
    if ((app.sa_flags & SA_RESETHAND) != 0) {
      struct sigaction dfl = app;  // the kernel resets the handler only
      dfl.sa_handler = SIG_DFL;
      set_app_action(dfl);
    }
    if ((app.sa_flags & SA_SIGINFO) != 0) {
      app.sa_sigaction(sig, info, uc);
    } else {
      app.sa_handler(sig);
    }
    return;
  }
  // A fault that would be retried (the access is made again on return) or a signal sent to us:
  // with the program's disposition back in the kernel, the retry or a re-raise gets exactly
  // what it would have got untraced (SIGBUS from a fault kills even when ignored).
  const bool sent = info == nullptr || info->si_code <= 0 || info->si_code == BUS_MCEERR_AO;
  if (app.sa_handler == SIG_IGN && sent) return;
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  g_real(SIGBUS, &dfl, nullptr);
  if (sent) raise(SIGBUS);  // blocked until we return: then the default action
}

}  // namespace

void set_sigbus_real_sigaction(int (*real)(int, const struct sigaction*, struct sigaction*)) {
  if (g_real == nullptr) g_real = real;
}

void install_sigbus_guard(TraceWriter* w) {
  g_guarded.store(w, std::memory_order_release);
  if (g_installed.load(std::memory_order_acquire)) return;
  if (g_real == nullptr) g_real = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  if (g_real == nullptr) return;
  const int saved_errno = errno;
  struct sigaction now;
  if (g_real(SIGBUS, nullptr, &now) == 0) {
    g_app[0] = now;
    g_app_at.store(0, std::memory_order_release);
    const struct sigaction k = kernel_action(now);
    if (g_real(SIGBUS, &k, nullptr) == 0) g_installed.store(true, std::memory_order_release);
  }
  errno = saved_errno;
}

void guard_extra_mapping(void* addr, size_t len) {
  g_extra_len.store(len, std::memory_order_relaxed);
  g_extra.store(static_cast<char*>(addr), std::memory_order_release);
}

bool sigbus_guard_installed() { return g_installed.load(std::memory_order_acquire); }

int sigbus_program_action(const struct sigaction* act, struct sigaction* old) {
  // Learnt at the program's first SIGBUS call, not at install (a system call every traced
  // process would pay); calls are rare and serialised enough for a plain flag.
  static std::atomic<bool> learnt{false};
  if (!learnt.exchange(true)) learn_restorer();
  const struct sigaction before = app_action();
  if (act != nullptr) set_app_action(*act);
  if (old != nullptr) {
    // As glibc fills it from the kernel: the mask's first kernel-sized word only.
    old->sa_handler = before.sa_handler;
    old->sa_flags = before.sa_flags;
#ifdef HTTPTRACE_HAS_RESTORER
    old->sa_restorer = before.sa_restorer;
#endif
    memcpy(&old->sa_mask, &before.sa_mask, kKernelSigsetBytes);
  }
  return 0;
}

bool sigbus_exec_needs_care() {
  return sigbus_guard_installed() && app_action().sa_handler == SIG_IGN;
}

void sigbus_before_exec() {
  if (!sigbus_exec_needs_care()) return;
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  g_real(SIGBUS, &ign, nullptr);
}

void sigbus_after_failed_exec() {
  if (!sigbus_exec_needs_care()) return;
  const struct sigaction k = kernel_action(app_action());
  g_real(SIGBUS, &k, nullptr);
}

}  // namespace httptrace
