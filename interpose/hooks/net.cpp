// Interposed socket and descriptor functions. Every wrapper: look the real function up (ENOSYS
// if the C library lacks it), pass straight through for descriptors we do not track, otherwise
// time the real call and hand the result to the recorder with errno preserved.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "interpose/record/events.h"
#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/recorder.h"

using namespace httptrace;
using namespace httptrace::libc;
using format::CloseHow;
using format::DataCall;
using format::Direction;

namespace {

// The whole cost of a call on a descriptor we do not track (every file, pipe and UDP socket):
// the resolved pointer loaded once, one table load, one well-predicted branch, then a tail call
// into libc. Everything else, resolving the symbol included, is out of line (traced_*), so that
// path needs no stack frame.
template <typename Fn>
inline bool pass_through(Fn real, int fd) {
  return __builtin_expect(real != nullptr && conn_of_fd(fd) == 0, 1);
}

template <typename Call>
inline ssize_t traced_io(int fd, Direction dir, DataCall call, const iovec* iov, size_t iovcnt,
                         Call&& real_call) {
  const DataStart start = begin_data(fd, dir, false);
  const uint64_t t0 = now_ns();
  const ssize_t r = real_call();
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  record_data(start, fd, dir, call, 0, t0, t1,
              r >= 0 ? r : -static_cast<int64_t>(keep.saved()), iov, iovcnt);
  return r;
}

// The slow paths: the symbol not resolved yet, missing (ENOSYS), a tracked descriptor, or a call
// the wrapper says is not to be recorded (skip: a MSG_PEEK).
template <Direction kDir, DataCall kCall, typename Fn, typename Buf, typename... Rest>
__attribute__((noinline)) ssize_t traced_buf(RealSymbol& sym, bool skip, int fd, Buf buf,
                                             size_t n, Rest... rest) {
  const Fn real = real_fn<Fn>(sym);
  if (real == nullptr) return no_such_function<ssize_t>();
  if (skip || conn_of_fd(fd) == 0) return real(fd, buf, n, rest...);
  const iovec v{const_cast<void*>(static_cast<const void*>(buf)), n};
  return traced_io(fd, kDir, kCall, &v, 1, [=] { return real(fd, buf, n, rest...); });
}

template <Direction kDir, DataCall kCall, typename Fn>
__attribute__((noinline)) ssize_t traced_vec(RealSymbol& sym, int fd, const iovec* iov,
                                             int cnt) {
  const Fn real = real_fn<Fn>(sym);
  if (real == nullptr) return no_such_function<ssize_t>();
  if (conn_of_fd(fd) == 0) return real(fd, iov, cnt);
  return traced_io(fd, kDir, kCall, iov, cnt > 0 ? cnt : 0, [=] { return real(fd, iov, cnt); });
}

template <Direction kDir, DataCall kCall, typename Fn, typename Msg>
__attribute__((noinline)) ssize_t traced_msg(RealSymbol& sym, bool skip, int fd, Msg msg,
                                             int flags) {
  const Fn real = real_fn<Fn>(sym);
  if (real == nullptr) return no_such_function<ssize_t>();
  if (skip || conn_of_fd(fd) == 0) return real(fd, msg, flags);
  const iovec* iov = msg != nullptr ? msg->msg_iov : nullptr;
  const size_t cnt = msg != nullptr ? msg->msg_iovlen : 0;
  return traced_io(fd, kDir, kCall, iov, cnt, [=] { return real(fd, msg, flags); });
}

// A peek leaves the bytes in the socket: the read that follows is the one that counts.
inline bool peek(int flags) { return (flags & MSG_PEEK) != 0; }

}  // namespace

HT_EXPORT int socket(int domain, int type, int protocol) noexcept {
  auto real = real_socket();
  if (real == nullptr) return no_such_function<int>();
  const uint64_t t0 = now_ns();
  const int fd = real(domain, type, protocol);
  if (fd >= 0) {
    ErrnoSaver keep;
    on_socket(fd, domain, type, protocol, t0);
  }
  return fd;
}

HT_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
  auto real = real_connect();
  if (real == nullptr) return no_such_function<int>();
  const uint64_t t0 = now_ns();
  const int rc = real(fd, addr, len);
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  on_connect(fd, addr, len, t0, t1, rc, keep.saved());
  return rc;
}

HT_EXPORT int listen(int fd, int backlog) noexcept {
  auto real = real_listen();
  if (real == nullptr) return no_such_function<int>();
  const int rc = real(fd, backlog);
  if (rc == 0 && conn_of_fd(fd) != 0) {
    ErrnoSaver keep;
    on_listen(fd);
  }
  return rc;
}

HT_EXPORT int getsockopt(int fd, int level, int name, void* val, socklen_t* len) noexcept {
  auto real = real_getsockopt();
  if (real == nullptr) return no_such_function<int>();
  const int rc = real(fd, level, name, val, len);
  if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR && val != nullptr && len != nullptr &&
      *len >= sizeof(int) && conn_of_fd(fd) != 0) {
    ErrnoSaver keep;
    on_so_error(fd, *static_cast<int*>(val), now_ns());
  }
  return rc;
}

// ---- writes -------------------------------------------------------------------------------

HT_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
  const auto real = loaded_send();
  if (pass_through(real, fd)) return real(fd, buf, n, flags);
  return traced_buf<Direction::kSend, DataCall::kSend, send_fn>(sym_send, false, fd, buf, n, flags);
}

HT_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to,
                         socklen_t tolen) {
  const auto real = loaded_sendto();
  if (pass_through(real, fd)) return real(fd, buf, n, flags, to, tolen);
  return traced_buf<Direction::kSend, DataCall::kSendto, sendto_fn>(
      sym_sendto, false, fd, buf, n, flags, to, tolen);
}

HT_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  const auto real = loaded_sendmsg();
  if (pass_through(real, fd)) return real(fd, msg, flags);
  return traced_msg<Direction::kSend, DataCall::kSendmsg, sendmsg_fn>(
      sym_sendmsg, false, fd, msg, flags);
}

HT_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  const auto real = loaded_write();
  if (pass_through(real, fd)) return real(fd, buf, n);
  return traced_buf<Direction::kSend, DataCall::kWrite, write_fn>(sym_write, false, fd, buf, n);
}

HT_EXPORT ssize_t writev(int fd, const iovec* iov, int cnt) {
  const auto real = loaded_writev();
  if (pass_through(real, fd)) return real(fd, iov, cnt);
  return traced_vec<Direction::kSend, DataCall::kWritev, writev_fn>(sym_writev, fd, iov, cnt);
}

// ---- reads --------------------------------------------------------------------------------

HT_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  const auto real = loaded_recv();
  if (pass_through(real, fd)) return real(fd, buf, n, flags);
  return traced_buf<Direction::kRecv, DataCall::kRecv, recv_fn>(
      sym_recv, peek(flags), fd, buf, n, flags);
}

HT_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* from,
                           socklen_t* fromlen) {
  const auto real = loaded_recvfrom();
  if (pass_through(real, fd)) return real(fd, buf, n, flags, from, fromlen);
  return traced_buf<Direction::kRecv, DataCall::kRecvfrom, recvfrom_fn>(
      sym_recvfrom, peek(flags), fd, buf, n, flags, from, fromlen);
}

namespace {
// Descriptors received with SCM_RIGHTS are new numbers like open()'s: a stale slot under one of
// them (its socket closed by a raw syscall) must not be taken for that socket. No clock read or
// syscall unless one is found (UDP programs pass control buffers with every packet).
void refresh_passed_fds(msghdr* m) {
  if (m->msg_controllen < sizeof(cmsghdr)) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(m); c != nullptr; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (g_fd_table.load(fd) == 0) continue;
      ErrnoSaver keep;
      on_new_fd(fd, now_ns());
    }
  }
}

// recvmsg with a control buffer, or on a tracked socket.
__attribute__((noinline)) ssize_t recvmsg_slow(int fd, msghdr* msg, int flags) {
  const auto real = real_recvmsg();
  if (real == nullptr) return no_such_function<ssize_t>();
  ssize_t r;
  if (conn_of_fd(fd) == 0) {
    r = real(fd, msg, flags);
  } else {
    r = traced_msg<Direction::kRecv, DataCall::kRecvmsg, recvmsg_fn>(sym_recvmsg, peek(flags), fd,
                                                                     msg, flags);
  }
  if (r >= 0 && msg != nullptr && msg->msg_controllen != 0) refresh_passed_fds(msg);
  return r;
}
}  // namespace

HT_EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  const auto real = loaded_recvmsg();
  // A call that asks for no ancillary data cannot be handed descriptors: the plain fast path.
  if (pass_through(real, fd) && (msg == nullptr || msg->msg_controllen == 0)) {
    return real(fd, msg, flags);
  }
  return recvmsg_slow(fd, msg, flags);
}

HT_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  const auto real = loaded_read();
  if (pass_through(real, fd)) return real(fd, buf, n);
  return traced_buf<Direction::kRecv, DataCall::kRead, read_fn>(sym_read, false, fd, buf, n);
}

HT_EXPORT ssize_t readv(int fd, const iovec* iov, int cnt) {
  const auto real = loaded_readv();
  if (pass_through(real, fd)) return real(fd, iov, cnt);
  return traced_vec<Direction::kRecv, DataCall::kReadv, readv_fn>(sym_readv, fd, iov, cnt);
}

// _FORTIFY_SOURCE builds call these instead when the buffer size is known at compile time; the
// real ones keep their overflow check.
HT_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  const auto real = loaded___read_chk();
  if (pass_through(real, fd)) return real(fd, buf, n, buflen);
  return traced_buf<Direction::kRecv, DataCall::kRead, __read_chk_fn>(
      sym___read_chk, false, fd, buf, n, buflen);
}

HT_EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  const auto real = loaded___recv_chk();
  if (pass_through(real, fd)) return real(fd, buf, n, buflen, flags);
  return traced_buf<Direction::kRecv, DataCall::kRecv, __recv_chk_fn>(
      sym___recv_chk, peek(flags), fd, buf, n, buflen, flags);
}

HT_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags,
                                 sockaddr* from, socklen_t* fromlen) {
  const auto real = loaded___recvfrom_chk();
  if (pass_through(real, fd)) return real(fd, buf, n, buflen, flags, from, fromlen);
  return traced_buf<Direction::kRecv, DataCall::kRecvfrom, __recvfrom_chk_fn>(
      sym___recvfrom_chk, peek(flags), fd, buf, n, buflen, flags, from, fromlen);
}

// ---- several messages in one call ----------------------------------------------------------

namespace {
// One DataEvent per call, as for writev: the call is what we time, and its result is what it
// moved, the sum of the messages' msg_len. The capture looks at the first message only, cut to
// its msg_len, so a receive never shows bytes the kernel did not fill.
constexpr size_t kMmsgCaptureIovs = 8;

struct FirstMessage {
  iovec v[kMmsgCaptureIovs];
  size_t n = 0;
};

void first_message(const mmsghdr* vec, int moved, FirstMessage& out) {
  if (vec == nullptr || moved <= 0 || vec[0].msg_hdr.msg_iov == nullptr) return;
  size_t left = vec[0].msg_len;
  const msghdr& m = vec[0].msg_hdr;
  for (size_t i = 0; i < m.msg_iovlen && out.n < kMmsgCaptureIovs && left > 0; ++i) {
    const size_t len = m.msg_iov[i].iov_len < left ? m.msg_iov[i].iov_len : left;
    out.v[out.n++] = iovec{m.msg_iov[i].iov_base, len};
    left -= len;
  }
}

int64_t mmsg_bytes(const mmsghdr* vec, int moved) {
  int64_t sum = 0;
  for (int i = 0; i < moved; ++i) sum += vec[i].msg_len;
  return sum;
}

template <typename Call>
int traced_mmsg(int fd, Direction dir, DataCall call, mmsghdr* vec, Call&& real_call) {
  const DataStart start = begin_data(fd, dir, false);
  const uint64_t t0 = now_ns();
  const int r = real_call();
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  FirstMessage first;
  first_message(vec, r, first);
  record_data(start, fd, dir, call, 0, t0, t1,
              r >= 0 ? mmsg_bytes(vec, r) : -static_cast<int64_t>(keep.saved()), first.v,
              first.n);
  return r;
}

__attribute__((noinline)) int sendmmsg_slow(int fd, mmsghdr* vec, unsigned vlen, int flags) {
  const auto real = real_sendmmsg();
  if (real == nullptr) return no_such_function<int>();
  if (conn_of_fd(fd) == 0) return real(fd, vec, vlen, flags);
  return traced_mmsg(fd, Direction::kSend, DataCall::kSendmmsg, vec,
                     [=] { return real(fd, vec, vlen, flags); });
}
}  // namespace

HT_EXPORT int sendmmsg(int fd, mmsghdr* vec, unsigned vlen, int flags) {
  const auto real = loaded_sendmmsg();
  if (pass_through(real, fd)) return real(fd, vec, vlen, flags);
  return sendmmsg_slow(fd, vec, vlen, flags);
}

// Not on the path of any TCP program we know, so one shape for all: descriptors passed in any of
// the messages are refreshed as recvmsg does.
HT_EXPORT int recvmmsg(int fd, mmsghdr* vec, unsigned vlen, int flags, timespec* timeout) {
  const auto real = real_recvmmsg();
  if (real == nullptr) return no_such_function<int>();
  int r;
  if (peek(flags) || conn_of_fd(fd) == 0) {
    r = real(fd, vec, vlen, flags, timeout);
  } else {
    r = traced_mmsg(fd, Direction::kRecv, DataCall::kRecvmmsg, vec,
                    [=] { return real(fd, vec, vlen, flags, timeout); });
  }
  for (int i = 0; i < r; ++i) {
    if (vec[i].msg_hdr.msg_controllen != 0) refresh_passed_fds(&vec[i].msg_hdr);
  }
  return r;
}

// ---- descriptor life-cycle ----------------------------------------------------------------

HT_EXPORT int close(int fd) {
  auto real = real_close();
  if (real == nullptr) return no_such_function<int>();
  uint32_t conn;
  {
    ErrnoSaver keep;
    conn = untrack_for_close(fd);  // before the kernel can hand the number to another thread
  }
  if (conn == 0) return real(fd);
  const uint64_t t0 = now_ns();
  const int rc = real(fd);
  ErrnoSaver keep;
  record_close(fd, conn, rc == 0 ? 0 : keep.saved(), CloseHow::kClose, t0);
  return rc;
}

HT_EXPORT int close_range(unsigned first, unsigned last, int flags) noexcept {
  auto real = real_close_range();
  if (real == nullptr) return no_such_function<int>();
  if ((flags & CLOSE_RANGE_CLOEXEC) == 0 && first <= last) {
    ErrnoSaver keep;
    on_close_range(first, last, now_ns());
  }
  return real(first, last, flags);
}

HT_EXPORT void closefrom(int lowfd) noexcept {
  auto real = real_closefrom();
  if (real == nullptr) {
    errno = ENOSYS;
    return;
  }
  if (lowfd >= 0) {
    ErrnoSaver keep;
    on_close_range(static_cast<unsigned>(lowfd), ~0u, now_ns());
  }
  real(lowfd);
}

HT_EXPORT int shutdown(int fd, int how) noexcept {
  auto real = real_shutdown();
  if (real == nullptr) return no_such_function<int>();
  const uint32_t conn = conn_of_fd(fd);
  if (conn == 0) return real(fd, how);
  const uint64_t t0 = now_ns();
  const int rc = real(fd, how);
  ErrnoSaver keep;
  const CloseHow ch = how == SHUT_RD   ? CloseHow::kShutdownRd
                      : how == SHUT_WR ? CloseHow::kShutdownWr
                                       : CloseHow::kShutdownRdWr;
  record_close(fd, conn, rc == 0 ? 0 : keep.saved(), ch, t0);
  return rc;
}

namespace {
void refresh_dup(int oldfd, int newfd);
}  // namespace

HT_EXPORT int dup(int oldfd) noexcept {
  auto real = real_dup();
  if (real == nullptr) return no_such_function<int>();
  const int fd = real(oldfd);
  if (fd >= 0) refresh_dup(oldfd, fd);
  return fd;
}

namespace {
// A new number from dup/F_DUPFD: whatever socket we still had under it was closed where we could
// not see it (a raw syscall); then, if oldfd is a connection, newfd is one more way to it.
void refresh_dup(int oldfd, int newfd) {
  if (g_fd_table.load(newfd) == 0 && conn_of_fd(oldfd) == 0) return;
  ErrnoSaver keep;
  const uint64_t ts = now_ns();
  on_new_fd(newfd, ts);
  on_dup(oldfd, newfd, ts);
}

// dup2/dup3 close newfd first if it was open: it leaves its connection (and may be our trace
// file's descriptor, which untrack_for_dup_target notices).
template <typename Call>
int dup_onto(int oldfd, int newfd, Call&& real_call) {
  uint32_t prev;
  {
    ErrnoSaver keep;
    prev = untrack_for_dup_target(oldfd, newfd);
  }
  const uint64_t t0 = now_ns();
  const int rc = real_call();
  ErrnoSaver keep;
  if (rc < 0) {
    if (prev != 0) g_fd_table.track(newfd, prev);  // nothing happened: newfd is still that socket
    return rc;
  }
  if (prev != 0) record_close(newfd, prev, 0, CloseHow::kClose, t0);
  if (conn_of_fd(oldfd) != 0) on_dup(oldfd, newfd, t0);
  return rc;
}
}  // namespace

HT_EXPORT int dup2(int oldfd, int newfd) noexcept {
  auto real = real_dup2();
  if (real == nullptr) return no_such_function<int>();
  return dup_onto(oldfd, newfd, [&] { return real(oldfd, newfd); });
}

HT_EXPORT int dup3(int oldfd, int newfd, int flags) noexcept {
  auto real = real_dup3();
  if (real == nullptr) return no_such_function<int>();
  return dup_onto(oldfd, newfd, [&] { return real(oldfd, newfd, flags); });
}

namespace {
// fcntl's third argument is an int, a long or a pointer depending on cmd; like glibc we forward
// it as a pointer-sized value, which every one of them fits on the 64-bit ABIs we support.
int fcntl_common(fcntl_fn real, int fd, int cmd, void* arg) {
  if (real == nullptr) return no_such_function<int>();
  const int rc = real(fd, cmd, arg);
  if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) refresh_dup(fd, rc);
  return rc;
}
}  // namespace

HT_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(real_fcntl(), fd, cmd, arg);
}

HT_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(real_fcntl64(), fd, cmd, arg);
}
