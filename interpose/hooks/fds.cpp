// Interposed descriptor creators other than socket() and dup*(). We do not trace what they
// create; we only need to know that the number they return is no longer a socket we track
// (the program may have closed it with a raw syscall, as libuv does).
#include <fcntl.h>

#include <cerrno>
#include <cstdarg>

#include "interpose/record/events.h"
#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/recorder.h"

using namespace httptrace;
using namespace httptrace::libc;

namespace {

int no_such_function() {
  errno = ENOSYS;
  return -1;
}

inline int fresh(int fd) {
  if (fd >= 0 && g_fd_table.load(fd) != 0) {
    ErrnoSaver keep;
    on_new_fd(fd, now_ns());
  }
  return fd;
}

inline int fresh_pair(int rc, const int* fds) {
  if (rc == 0 && fds != nullptr) {
    fresh(fds[0]);
    fresh(fds[1]);
  }
  return rc;
}

// open's mode argument exists only when the flags ask for a file to be created.
inline bool takes_mode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

}  // namespace

#define HTTPTRACE_OPEN_MODE(flags)            \
  mode_t mode = 0;                            \
  if (takes_mode(flags)) {                    \
    va_list ap;                               \
    va_start(ap, flags);                      \
    mode = static_cast<mode_t>(va_arg(ap, int)); \
    va_end(ap);                               \
  }

HT_EXPORT int open(const char* path, int flags, ...) {
  HTTPTRACE_OPEN_MODE(flags)
  auto real = real_open();
  return real != nullptr ? fresh(real(path, flags, mode)) : no_such_function();
}

HT_EXPORT int open64(const char* path, int flags, ...) {
  HTTPTRACE_OPEN_MODE(flags)
  auto real = real_open64();
  return real != nullptr ? fresh(real(path, flags, mode)) : no_such_function();
}

HT_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  HTTPTRACE_OPEN_MODE(flags)
  auto real = real_openat();
  return real != nullptr ? fresh(real(dirfd, path, flags, mode)) : no_such_function();
}

HT_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  HTTPTRACE_OPEN_MODE(flags)
  auto real = real_openat64();
  return real != nullptr ? fresh(real(dirfd, path, flags, mode)) : no_such_function();
}

HT_EXPORT int creat(const char* path, mode_t mode) {
  auto real = real_creat();
  return real != nullptr ? fresh(real(path, mode)) : no_such_function();
}

namespace {
// The server side: every accepted stream socket is a connection (events.h on_accept).
template <typename Call>
int accepted(int lfd, sockaddr* addr, socklen_t* len, Call&& real_call) {
  // The kernel writes the full address length even when it cut the address to fit the buffer:
  // only what fits in the program's buffer may be read.
  const socklen_t cap = addr != nullptr && len != nullptr ? *len : 0;
  const uint64_t t0 = now_ns();
  const int fd = real_call();
  if (fd < 0) return fd;
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  const socklen_t got = cap > 0 ? (*len < cap ? *len : cap) : 0;
  on_accept(lfd, fd, cap > 0 ? addr : nullptr, got, t0, t1);
  return fd;
}
}  // namespace

HT_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
  auto real = real_accept();
  if (real == nullptr) return no_such_function();
  return accepted(fd, addr, len, [&] { return real(fd, addr, len); });
}

HT_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  auto real = real_accept4();
  if (real == nullptr) return no_such_function();
  return accepted(fd, addr, len, [&] { return real(fd, addr, len, flags); });
}

HT_EXPORT int pipe(int fds[2]) noexcept {
  auto real = real_pipe();
  return real != nullptr ? fresh_pair(real(fds), fds) : no_such_function();
}

HT_EXPORT int pipe2(int fds[2], int flags) noexcept {
  auto real = real_pipe2();
  return real != nullptr ? fresh_pair(real(fds, flags), fds) : no_such_function();
}

HT_EXPORT int socketpair(int domain, int type, int protocol, int fds[2]) noexcept {
  auto real = real_socketpair();
  return real != nullptr ? fresh_pair(real(domain, type, protocol, fds), fds)
                         : no_such_function();
}

HT_EXPORT int eventfd(unsigned count, int flags) noexcept {
  auto real = real_eventfd();
  return real != nullptr ? fresh(real(count, flags)) : no_such_function();
}

HT_EXPORT int epoll_create(int size) noexcept {
  auto real = real_epoll_create();
  return real != nullptr ? fresh(real(size)) : no_such_function();
}

HT_EXPORT int epoll_create1(int flags) noexcept {
  auto real = real_epoll_create1();
  return real != nullptr ? fresh(real(flags)) : no_such_function();
}

HT_EXPORT int timerfd_create(int clock, int flags) noexcept {
  auto real = real_timerfd_create();
  return real != nullptr ? fresh(real(clock, flags)) : no_such_function();
}

HT_EXPORT int signalfd(int fd, const sigset_t* mask, int flags) noexcept {
  auto real = real_signalfd();
  return real != nullptr ? fresh(real(fd, mask, flags)) : no_such_function();
}

HT_EXPORT int inotify_init() noexcept {
  auto real = real_inotify_init();
  return real != nullptr ? fresh(real()) : no_such_function();
}

HT_EXPORT int inotify_init1(int flags) noexcept {
  auto real = real_inotify_init1();
  return real != nullptr ? fresh(real(flags)) : no_such_function();
}

HT_EXPORT int memfd_create(const char* name, unsigned flags) noexcept {
  auto real = real_memfd_create();
  return real != nullptr ? fresh(real(name, flags)) : no_such_function();
}
