// Interposed signal-disposition functions, for SIGBUS only (record/sigbus_guard.h): once our
// guard is installed, the program's SIGBUS action lives in the guard's shadow and these report
// and change that; every other signal, and SIGBUS before the guard exists, goes straight to libc.
// The signal() family builds the action glibc would and goes through the same shadow; so does
// System V's sigset() (glibc's calls its internal sigaction, past any interposer). sigvec() is
// not here: glibc keeps it only for binaries linked before 2.21. A raw rt_sigaction system call
// cannot be seen from here at all.
#include <signal.h>

#include <cerrno>

#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/sigbus_guard.h"

using namespace httptrace;
using namespace httptrace::libc;

namespace {

template <typename Real>
int sigaction_hook(Real real, int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig == SIGBUS && sigbus_guard_installed()) return sigbus_program_action(act, old);
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return real(sig, act, old);
}

// glibc's signal()/bsd_signal(): BSD semantics (the signal blocked in its handler, restarting
// system calls); sysv_signal(): one-shot, not blocked, interrupting.
sighandler_t signal_hook(sighandler_t (*real)(int, sighandler_t), int sig, sighandler_t h,
                         bool sysv) {
  if (sig != SIGBUS || !sigbus_guard_installed() || h == SIG_ERR) {
    if (real == nullptr) {
      errno = ENOSYS;
      return SIG_ERR;
    }
    return real(sig, h);
  }
  struct sigaction act = {};
  act.sa_handler = h;
  sigemptyset(&act.sa_mask);
  if (sysv) {
    act.sa_flags = SA_RESETHAND | SA_NODEFER;
  } else {
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
  }
  struct sigaction old = {};
  sigbus_program_action(&act, &old);
  return old.sa_handler;
}

}  // namespace

HT_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  return sigaction_hook(real_sigaction(), sig, act, old);
}

HT_EXPORT int __sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  return sigaction_hook(real___sigaction(), sig, act, old);
}

HT_EXPORT sighandler_t signal(int sig, sighandler_t h) noexcept {
  return signal_hook(real_signal(), sig, h, false);
}

HT_EXPORT sighandler_t bsd_signal(int sig, sighandler_t h) noexcept {
  return signal_hook(real_bsd_signal(), sig, h, false);
}

HT_EXPORT sighandler_t ssignal(int sig, sighandler_t h) noexcept {
  return signal_hook(real_ssignal(), sig, h, false);
}

HT_EXPORT sighandler_t sysv_signal(int sig, sighandler_t h) noexcept {
  return signal_hook(real_sysv_signal(), sig, h, true);
}

HT_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t h) noexcept {
  return signal_hook(real___sysv_signal(), sig, h, true);
}

// sigset(): disp is set with an empty mask and no flags and the signal unblocked, or with SIG_HOLD
// the signal is only blocked; the previous disposition is returned, or SIG_HOLD if the signal
// was blocked.
HT_EXPORT sighandler_t sigset(int sig, sighandler_t disp) noexcept {
  if (sig != SIGBUS || !sigbus_guard_installed() || disp == SIG_ERR) {
    auto real = real_sigset();
    if (real == nullptr) {
      errno = ENOSYS;
      return SIG_ERR;
    }
    return real(sig, disp);
  }
  sigset_t one, before;
  sigemptyset(&one);
  sigaddset(&one, sig);
  struct sigaction old = {};
  if (disp == SIG_HOLD) {
    sigbus_program_action(nullptr, &old);
    sigprocmask(SIG_BLOCK, &one, &before);
  } else {
    struct sigaction act = {};
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    sigbus_program_action(&act, &old);
    sigprocmask(SIG_UNBLOCK, &one, &before);
  }
  return sigismember(&before, sig) ? SIG_HOLD : old.sa_handler;
}
