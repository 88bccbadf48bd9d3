// The hook table for the C library: every interposed libc function, declared once.
//   X(name, return type, (parameter types), required)
// yields RealSymbol sym_<name> and the typed accessor real_<name>(); hook_*.cpp define the
// wrappers, exports.map exports exactly these names. Included by hook files only.
#pragma once

#include "interpose/hooks/export.h"

#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdio>

#include "interpose/hooks/real_symbols.h"

#define HTTPTRACE_LIBC_SYMBOLS(X)                                                              \
  X(getaddrinfo, int, (const char*, const char*, const addrinfo*, addrinfo**), true)            \
  X(gethostbyname, hostent*, (const char*), true)                                               \
  X(gethostbyname_r, int, (const char*, hostent*, char*, size_t, hostent**, int*), true)        \
  X(socket, int, (int, int, int), true)                                                         \
  X(connect, int, (int, const sockaddr*, socklen_t), true)                                      \
  X(listen, int, (int, int), true)                                                              \
  X(getsockopt, int, (int, int, int, void*, socklen_t*), true)                                  \
  X(send, ssize_t, (int, const void*, size_t, int), true)                                       \
  X(sendto, ssize_t, (int, const void*, size_t, int, const sockaddr*, socklen_t), true)         \
  X(sendmsg, ssize_t, (int, const msghdr*, int), true)                                          \
  X(write, ssize_t, (int, const void*, size_t), true)                                           \
  X(writev, ssize_t, (int, const iovec*, int), true)                                            \
  X(recv, ssize_t, (int, void*, size_t, int), true)                                             \
  X(recvfrom, ssize_t, (int, void*, size_t, int, sockaddr*, socklen_t*), true)                  \
  X(recvmsg, ssize_t, (int, msghdr*, int), true)                                                \
  X(read, ssize_t, (int, void*, size_t), true)                                                  \
  X(readv, ssize_t, (int, const iovec*, int), true)                                             \
  X(sendmmsg, int, (int, mmsghdr*, unsigned, int), true)                                        \
  X(recvmmsg, int, (int, mmsghdr*, unsigned, int, timespec*), true)                             \
  X(sendfile, ssize_t, (int, int, off_t*, size_t), true)                                        \
  X(sendfile64, ssize_t, (int, int, off64_t*, size_t), false)                                   \
  X(splice, ssize_t, (int, loff_t*, int, loff_t*, size_t, unsigned), true)                      \
  X(__read_chk, ssize_t, (int, void*, size_t, size_t), false)                                   \
  X(__recv_chk, ssize_t, (int, void*, size_t, size_t, int), false)                              \
  X(__recvfrom_chk, ssize_t, (int, void*, size_t, size_t, int, sockaddr*, socklen_t*), false)   \
  X(close, int, (int), true)                                                                    \
  X(close_range, int, (unsigned, unsigned, int), false)                                         \
  X(closefrom, void, (int), false)                                                              \
  X(shutdown, int, (int, int), true)                                                            \
  X(dup, int, (int), true)                                                                      \
  X(dup2, int, (int, int), true)                                                                \
  X(dup3, int, (int, int, int), true)                                                           \
  X(fcntl, int, (int, int, ...), true)                                                          \
  X(fcntl64, int, (int, int, ...), false)                                                       \
  X(open, int, (const char*, int, ...), true)                                                   \
  X(open64, int, (const char*, int, ...), false)                                                \
  X(openat, int, (int, const char*, int, ...), true)                                            \
  X(openat64, int, (int, const char*, int, ...), false)                                         \
  X(creat, int, (const char*, mode_t), true)                                                    \
  X(accept, int, (int, sockaddr*, socklen_t*), true)                                            \
  X(accept4, int, (int, sockaddr*, socklen_t*, int), false)                                     \
  X(pipe, int, (int*), true)                                                                    \
  X(pipe2, int, (int*, int), false)                                                             \
  X(socketpair, int, (int, int, int, int*), true)                                               \
  X(eventfd, int, (unsigned, int), false)                                                       \
  X(epoll_create, int, (int), false)                                                            \
  X(epoll_create1, int, (int), false)                                                           \
  X(timerfd_create, int, (int, int), false)                                                     \
  X(signalfd, int, (int, const sigset_t*, int), false)                                          \
  X(memfd_create, int, (const char*, unsigned), false)                                          \
  X(inotify_init, int, (), false)                                                               \
  X(inotify_init1, int, (int), false)                                                           \
  X(fork, pid_t, (), true)                                                                      \
  X(_Fork, pid_t, (), false)                                                                    \
  X(clone, int, (int (*)(void*), void*, int, void*, ...), false)                                \
  X(vfork, pid_t, (), false)                                                                    \
  X(__vfork, pid_t, (), false)                                                                  \
  X(execve, int, (const char*, char* const*, char* const*), true)                               \
  X(execv, int, (const char*, char* const*), true)                                              \
  X(execvp, int, (const char*, char* const*), true)                                             \
  X(execvpe, int, (const char*, char* const*, char* const*), false)                             \
  X(fexecve, int, (int, char* const*, char* const*), false)                                      \
  X(execveat, int, (int, const char*, char* const*, char* const*, int), false)                   \
  X(system, int, (const char*), true)                                                            \
  X(popen, FILE*, (const char*, const char*), true)                                              \
  X(sigaction, int, (int, const struct sigaction*, struct sigaction*), true)                     \
  X(__sigaction, int, (int, const struct sigaction*, struct sigaction*), false)                  \
  X(signal, sighandler_t, (int, sighandler_t), true)                                             \
  X(bsd_signal, sighandler_t, (int, sighandler_t), false)                                        \
  X(ssignal, sighandler_t, (int, sighandler_t), false)                                           \
  X(sysv_signal, sighandler_t, (int, sighandler_t), false)                                       \
  X(__sysv_signal, sighandler_t, (int, sighandler_t), false)                                     \
  X(sigset, sighandler_t, (int, sighandler_t), false)                                            \
  X(posix_spawn, int, (pid_t*, const char*, const posix_spawn_file_actions_t*,                  \
                       const posix_spawnattr_t*, char* const*, char* const*), false)            \
  X(posix_spawnp, int, (pid_t*, const char*, const posix_spawn_file_actions_t*,                 \
                        const posix_spawnattr_t*, char* const*, char* const*), false)

namespace httptrace::libc {

#define HTTPTRACE_DECLARE_SYMBOL(name, ret, params, req)            \
  using name##_fn = ret(*) params;                                  \
  inline RealSymbol sym_##name{#name, req, {nullptr}};              \
  inline name##_fn real_##name() { return real_fn<name##_fn>(sym_##name); }     \
  inline name##_fn loaded_##name() { return loaded_fn<name##_fn>(sym_##name); }
HTTPTRACE_LIBC_SYMBOLS(HTTPTRACE_DECLARE_SYMBOL)
#undef HTTPTRACE_DECLARE_SYMBOL

// Resolves the whole table (the constructor calls it, so no hook has to dlsym later).
inline void resolve_all() {
#define HTTPTRACE_RESOLVE_SYMBOL(name, ret, params, req) resolve_symbol(sym_##name);
  HTTPTRACE_LIBC_SYMBOLS(HTTPTRACE_RESOLVE_SYMBOL)
#undef HTTPTRACE_RESOLVE_SYMBOL
}

// What a wrapper returns when libc has no such function (a static or stripped-down libc): the
// call fails as libc itself would for an unimplemented call.
template <typename T>
T no_such_function() {
  errno = ENOSYS;
  return static_cast<T>(-1);
}

}  // namespace httptrace::libc

