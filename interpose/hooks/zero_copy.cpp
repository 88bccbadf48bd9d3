// Interposed transfers that move a socket's bytes without a user buffer: sendfile (a file into a
// socket: nginx, Apache, python's socket.sendfile) and splice (a pipe into a socket, or a socket
// into a pipe: proxies). Same shape as net.cpp's wrappers; what differs is that no bytes pass
// through the program, so these events never carry a capture (an HTTP response's head, written
// before with write/writev, still does).
#include <fcntl.h>
#include <sys/sendfile.h>

#include <cerrno>

#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/recorder.h"

using namespace httptrace;
using namespace httptrace::libc;
using format::DataCall;
using format::Direction;

namespace {

template <typename Call>
ssize_t traced_no_buffer(int fd, Direction dir, DataCall call, Call&& real_call) {
  const DataStart start = begin_data(fd, dir, false);
  const uint64_t t0 = now_ns();
  const ssize_t r = real_call();
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  record_data(start, fd, dir, call, 0, t0, t1, r >= 0 ? r : -static_cast<int64_t>(keep.saved()),
              nullptr, 0);
  return r;
}

// in_fd cannot be a socket (sendfile reads through the page cache), so only out_fd matters.
template <typename Fn, typename Off>
__attribute__((noinline)) ssize_t sendfile_slow(RealSymbol& sym, int out_fd, int in_fd, Off* off,
                                                size_t n) {
  const Fn real = real_fn<Fn>(sym);
  if (real == nullptr) return no_such_function<ssize_t>();
  if (conn_of_fd(out_fd) == 0) return real(out_fd, in_fd, off, n);
  return traced_no_buffer(out_fd, Direction::kSend, DataCall::kSendfile,
                          [=] { return real(out_fd, in_fd, off, n); });
}

// One end of a splice is a pipe; the other may be a tracked socket, sending (pipe -> socket) or
// receiving (socket -> pipe).
__attribute__((noinline)) ssize_t splice_slow(int in_fd, loff_t* in_off, int out_fd,
                                              loff_t* out_off, size_t n, unsigned flags) {
  const auto real = real_splice();
  if (real == nullptr) return no_such_function<ssize_t>();
  const auto call = [=] { return real(in_fd, in_off, out_fd, out_off, n, flags); };
  if (conn_of_fd(out_fd) != 0) {
    return traced_no_buffer(out_fd, Direction::kSend, DataCall::kSpliceOut, call);
  }
  if (conn_of_fd(in_fd) != 0) {
    return traced_no_buffer(in_fd, Direction::kRecv, DataCall::kSpliceIn, call);
  }
  return call();
}

}  // namespace

HT_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* off, size_t n) noexcept {
  const auto real = loaded_sendfile();
  if (__builtin_expect(real != nullptr && conn_of_fd(out_fd) == 0, 1)) {
    return real(out_fd, in_fd, off, n);
  }
  return sendfile_slow<sendfile_fn>(sym_sendfile, out_fd, in_fd, off, n);
}

HT_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t* off, size_t n) noexcept {
  const auto real = loaded_sendfile64();
  if (__builtin_expect(real != nullptr && conn_of_fd(out_fd) == 0, 1)) {
    return real(out_fd, in_fd, off, n);
  }
  return sendfile_slow<sendfile64_fn>(sym_sendfile64, out_fd, in_fd, off, n);
}

HT_EXPORT ssize_t splice(int in_fd, loff_t* in_off, int out_fd, loff_t* out_off, size_t n,
                         unsigned flags) {
  const auto real = loaded_splice();
  if (__builtin_expect(real != nullptr && conn_of_fd(in_fd) == 0 && conn_of_fd(out_fd) == 0, 1)) {
    return real(in_fd, in_off, out_fd, out_off, n, flags);
  }
  return splice_slow(in_fd, in_off, out_fd, out_off, n, flags);
}
