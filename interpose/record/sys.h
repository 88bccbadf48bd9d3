// Raw system calls for our own bookkeeping. Inside the preloaded library a plain call to read(),
// close(), fcntl() or getsockopt() would bind to our own exported wrapper (we are first in the
// symbol search order), so core code talks to the kernel directly. errno is still set on failure;
// callers run inside an ErrnoSaver.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace httptrace::sys {

inline long read(int fd, void* buf, size_t n) { return ::syscall(SYS_read, fd, buf, n); }
inline long write(int fd, const void* buf, size_t n) { return ::syscall(SYS_write, fd, buf, n); }
inline int close(int fd) { return static_cast<int>(::syscall(SYS_close, fd)); }
inline int openat(int dirfd, const char* path, int flags, unsigned mode) {
  return static_cast<int>(::syscall(SYS_openat, dirfd, path, flags, mode));
}
inline int fcntl(int fd, int cmd, long arg) { return static_cast<int>(::syscall(SYS_fcntl, fd, cmd, arg)); }
inline int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  return static_cast<int>(::syscall(SYS_getsockopt, fd, level, name, val, len));
}
inline int getsockname(int fd, sockaddr* sa, socklen_t* len) {
  return static_cast<int>(::syscall(SYS_getsockname, fd, sa, len));
}
inline int getpeername(int fd, sockaddr* sa, socklen_t* len) {
  return static_cast<int>(::syscall(SYS_getpeername, fd, sa, len));
}
inline int getpid() { return static_cast<int>(::syscall(SYS_getpid)); }
inline int getppid() { return static_cast<int>(::syscall(SYS_getppid)); }
inline int gettid() { return static_cast<int>(::syscall(SYS_gettid)); }

}  // namespace httptrace::sys
