#include "interpose/tls_record.h"

#include <sys/uio.h>

#include <cstring>

#include "interpose/recorder.h"

namespace httptrace::tls {

bool bind_socket(Session& s, int lib_fd) {
  if (s.conn != 0) {
    // The descriptor may have been closed and its number reused for another connection while
    // the session lived on (a program closing the socket before SSL_free): stop attributing.
    if (conn_of_fd(s.fd) == s.conn) return true;
    s.conn = 0;
    return false;
  }
  int fd = lib_fd;
  if (conn_of_fd(fd) == 0) fd = t_wire_fd;
  const uint32_t conn = conn_of_fd(fd);
  if (conn == 0) return false;
  s.fd = fd;
  s.conn = conn;
  return true;
}

void finish_handshake(Session& s, format::TlsHandshakeEvent& ev, format::TlsLibrary lib,
                      uint64_t t1) {
  s.hs = HandshakeState::kDone;
  ev.h.ts_ns = s.hs_start_ns;
  ev.dur_ns = t1 - s.hs_start_ns;
  ev.fd = s.fd;
  ev.library = static_cast<uint8_t>(lib);
  s.h2 = ev.error == 0 && std::strcmp(ev.alpn, "h2") == 0;
  record_tls_handshake(ev);
}

void record_plaintext(Session& s, format::Direction dir, format::DataCall call, uint64_t t0,
                      uint64_t t1, int64_t result, const void* buf) {
  iovec iov = {const_cast<void*>(buf), result > 0 ? static_cast<size_t>(result) : 0};
  record_data(s.fd, dir, call, format::kDataTlsPlaintext, t0, t1, result, &iov, 1);
}

void record_close(Session& s, format::TlsLibrary lib, format::TlsCloseHow how, uint64_t ts) {
  if (s.conn != 0 && conn_of_fd(s.fd) == s.conn) record_tls_close(s.fd, lib, how, ts);
}

void copy_field(char* dst, size_t cap, const char* src, size_t len) {
  if (cap == 0) return;
  if (len > cap - 1) len = cap - 1;
  if (len > 0) std::memcpy(dst, src, len);
  dst[len] = '\0';
}

}  // namespace httptrace::tls
