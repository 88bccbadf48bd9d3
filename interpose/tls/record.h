// What the OpenSSL and GnuTLS wrappers have in common: the per-thread re-entry guard, tying a
// session to its socket, the handshake phase, and recording plaintext calls.
//
// Finding the socket. A session's library usually knows its descriptor (SSL_get_rfd,
// gnutls_transport_get_int), but not always: curl gives OpenSSL its own BIO, so SSL_get_rfd says
// -1. Either way, the library's own send()/recv() on the socket run on this thread inside our
// wrapper, and the recorder notes the descriptor of every wire transfer in t_last_wire_fd
// (record/recorder.h). A wrapper clears it before the real call; a descriptor found there
// afterwards is the session's socket. The first call that moved wire bytes (the ClientHello write, at the
// latest) binds the session, until that descriptor stops being that connection (closed, or
// renumbered in a fork child); then the next call's wire I/O binds it again.
#pragma once

#include <cstdint>

#include "common/trace_format.h"
#include "interpose/record/recorder.h"
#include "interpose/tls/caller_scope.h"
#include "interpose/tls/sessions.h"

namespace httptrace::tls {

inline thread_local constinit bool t_in_tls_call = false;
inline thread_local constinit const void* t_outer_caller = nullptr;  // of the outermost call

// The calling object a wrapper resolves the real function for, from its return address. One
// inside libhttptrace.so means a TLS library tail-called its own exported function while we were
// calling it (libssl's SSL_connect ends in a jump to SSL_do_handshake through its PLT, which
// lands in our wrapper with our return address): that call belongs to the library the outer
// wrapper called, which the outer wrapper's caller names.
inline const void* caller_of(const void* ret) {
  return t_in_tls_call && self_object().contains(reinterpret_cast<uintptr_t>(ret)) ? t_outer_caller
                                                                                   : ret;
}

// Marks "inside a TLS library call" for the calling thread. A library calling its own exported
// functions (SSL_connect -> SSL_do_handshake through libssl's PLT, which we interpose) must not
// be recorded twice: the inner wrapper sees the outer one and just calls through.
class CallGuard {
 public:
  explicit CallGuard(const void* caller) : outer_(!t_in_tls_call) {
    if (outer_) {
      t_in_tls_call = true;
      t_outer_caller = caller;
      t_last_wire_fd = -1;
    }
  }
  ~CallGuard() {
    if (outer_) t_in_tls_call = false;
  }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;
  // False for a nested call, which must pass through unrecorded.
  explicit operator bool() const { return outer_; }

 private:
  bool outer_;
};

// After the real call: binds s to its socket if not (or no longer) bound. lib_fd: what the library
// reports, -1 if nothing or not asked. True when s has a tracked connection.
bool bind_socket(Session& s, int lib_fd);

// Before the real call of anything that may run the handshake: the first such call starts it.
inline void handshake_call(Session& s, uint64_t t0) {
  if (s.hs == HandshakeState::kNone) {
    s.hs = HandshakeState::kRunning;
    s.hs_start_ns = t0;
  }
}

// The handshake ended (ev.error 0 = success) at t1: fills h.ts_ns, dur_ns, fd, library and
// records. ev's metadata fields are the caller's. Later calls on s are data only.
void finish_handshake(Session& s, format::TlsHandshakeEvent& ev, format::TlsLibrary lib, uint64_t t1);

// Before the real call of a plaintext read or write on a session already bound to its socket:
// tells the other direction this one has begun (recorder.h begin_data, the plaintext turn bits),
// so a response read by one thread while another is still inside SSL_write of the request is a
// turn and keeps its capture. Nothing for a session not bound yet (its first call).
inline DataStart begin_plaintext(const Session& s, format::Direction dir) {
  if (s.conn == 0 || conn_of_fd(s.fd) != s.conn) return {};
  return begin_data(s.fd, dir, true);
}

// One plaintext read or write; result is bytes (>= 0) or -errno. buf holds the bytes moved.
// start: what begin_plaintext() returned before the call.
void record_plaintext(const DataStart& start, Session& s, format::Direction dir,
                      format::DataCall call, uint64_t t0, uint64_t t1, int64_t result,
                      const void* buf);

// SSL_shutdown/SSL_free/gnutls_bye/gnutls_deinit.
void record_close(Session& s, format::TlsLibrary lib, format::TlsCloseHow how, uint64_t ts);
// SSL_shutdown / SSL_free / gnutls_bye / gnutls_deinit on the session named by key (the SSL* or
// gnutls_session_t): the close event, and for a free the end of the session's entry.
void record_session_end(const void* key, format::TlsLibrary lib, format::TlsCloseHow how,
                        uint64_t ts);

// Copies a C string into a fixed, NUL-terminated field (truncating).
void copy_field(char* dst, size_t cap, const char* src, size_t len);
inline void copy_field(char* dst, size_t cap, const char* src) {
  size_t n = 0;
  if (src != nullptr)
    while (n < cap && src[n] != '\0') ++n;
  copy_field(dst, cap, src, n);
}

}  // namespace httptrace::tls
