// OpenSSL wrappers: the handshake phase (SSL_connect / SSL_accept / SSL_do_handshake, or
// implicitly inside the first SSL_read / SSL_write), plaintext reads and writes, shutdown and free.
//
// Every wrapper has the shape of recorder.h: find the caller's real function (tls/symbols.h),
// call it, then record with errno saved, and return the real result unchanged. Nothing is
// recorded for a nested call (libssl calling its own exported functions), for a session whose
// socket is not a tracked connection, or for a caller whose libssl lacks a function we need to
// describe a session (it is then passed straight through, for good).
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

#include "interpose/record/clock.h"
#include "interpose/hooks/export.h"
#include "interpose/record/recorder.h"
#include "interpose/tls/openssl_api.h"
#include "interpose/tls/record.h"


namespace httptrace::tls {
namespace {

using format::DataCall;
using format::Direction;

constexpr auto kLib = format::TlsLibrary::kOpenssl;

// SSL_get_error's "call again later" answers: the operation (handshake included) goes on.
// SSL_want() alone is not enough: after a failed BIO read it still says SSL_READING.
bool retry_later(int err) {
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
    case SSL_ERROR_WANT_CONNECT:
    case SSL_ERROR_WANT_ACCEPT:
    case SSL_ERROR_WANT_X509_LOOKUP:
    case SSL_ERROR_WANT_ASYNC:
    case SSL_ERROR_WANT_ASYNC_JOB:
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
#ifdef SSL_ERROR_WANT_RETRY_VERIFY
    case SSL_ERROR_WANT_RETRY_VERIFY:
#endif
      return true;
    default:
      return false;
  }
}

// What a failed call left behind, in words: the first queued OpenSSL error, else the errno name.
void describe_failure(const OpensslApi& api, int err, int call_errno, format::TlsHandshakeEvent& ev) {
  ev.error = err;
  const char* text = nullptr;
  if (ev.error == SSL_ERROR_SSL) {
    if (unsigned long e = api.ERR_peek_error()) text = api.ERR_reason_error_string(e);
  } else if (ev.error == SSL_ERROR_SYSCALL) {
    text = call_errno != 0 ? strerrorname_np(call_errno) : "unexpected EOF";
  } else if (ev.error == SSL_ERROR_ZERO_RETURN) {
    text = "closed by peer";
  }
  copy_field(ev.error_text, sizeof ev.error_text, text != nullptr ? text : "handshake failed");
}

void describe_success(const OpensslApi& api, const SSL* ssl, format::TlsHandshakeEvent& ev) {
  ev.version = static_cast<uint16_t>(api.SSL_version(ssl));
  if (const SSL_CIPHER* c = api.SSL_get_current_cipher(ssl))
    copy_field(ev.cipher, sizeof ev.cipher, api.SSL_CIPHER_get_name(c));
  copy_field(ev.sni, sizeof ev.sni, api.SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  api.SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  copy_field(ev.alpn, sizeof ev.alpn, reinterpret_cast<const char*>(alpn), alpn != nullptr ? alpn_len : 0);
  ev.resumed = api.SSL_session_reused(ssl) == 1;
}

// After a call that may have run (part of) the handshake and returned ret (errno: call_errno).
// done: the call itself says the handshake completed (SSL_connect == 1). Records the handshake
// once it has ended.
void after_handshake_call(const OpensslApi& api, SSL* ssl, Session& s, int ret, int call_errno,
                          bool done, uint64_t t1) {
  if (s.hs != HandshakeState::kRunning) return;
  if (!done) done = api.SSL_is_init_finished(ssl) == 1;
  format::TlsHandshakeEvent ev = {};
  if (done) {
    describe_success(api, ssl, ev);
  } else if (ret > 0) {
    return;
  } else if (const int err = api.SSL_get_error(ssl, ret); retry_later(err)) {
    return;  // a non-blocking handshake between its round trips: the phase goes on
  } else {
    describe_failure(api, err, call_errno, ev);
    copy_field(ev.sni, sizeof ev.sni, api.SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  }
  if (s.conn != 0) finish_handshake(s, ev, kLib, t1);
  else s.hs = HandshakeState::kDone;  // never touched a tracked socket: nothing to attach it to
}

using View = CallerApis<OpensslApi>::View;

// The caller's real function `name`: from its cached table, else looked up on the spot (the
// table lacks it, or no library defines the probe for this caller). nullptr: nothing defines it.
template <typename F>
F real_or_lookup(F cached, const void* caller, const char* name) {
  return cached != nullptr ? cached : openssl().one<F>(caller, name);
}
#define HTTPTRACE_REAL(view, caller, name) \
  real_or_lookup<decltype(&::name)>((view).api != nullptr ? (view).api->name : nullptr, caller, #name)

// Shared by SSL_connect, SSL_accept and SSL_do_handshake: either side of the handshake. Whether
// a session is a client is not asked: SSL_new() of a TLS_method() context says "server" until
// SSL_connect itself sets the connect state, so an early SSL_is_server() misses every generic
// client (Ruby's). A server session is recorded just the same when its socket is tracked.
template <typename Real>
int handshake(SSL* ssl, const void* caller, View v, Real real) {
  if (real == nullptr) return -1;
  CallGuard guard(caller);
  Session* s = v.record && guard && ssl != nullptr && recording() ? session_get(ssl) : nullptr;
  if (s == nullptr) return real(ssl);
  const OpensslApi* api = v.api;
  const uint64_t t0 = now_ns();
  handshake_call(*s, t0);
  const int ret = real(ssl);
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  bind_socket(*s, s->conn == 0 ? api->SSL_get_rfd(ssl) : -1);
  after_handshake_call(*api, ssl, *s, ret, keep.saved(), ret == 1, t1);
  return ret;
}

// Shared by the four data calls. moved: bytes transferred (>= 0) when the call succeeded.
// real_call(nullptr-or-out) makes the real call.
template <typename Call>
int data_call(SSL* ssl, const void* caller, View v, Direction dir, DataCall kind, const void* buf, Call&& real_call,
              size_t (*moved)(int ret, size_t out)) {
  CallGuard guard(caller);
  Session* s = v.record && guard && recording() ? session_get(ssl) : nullptr;
  if (s == nullptr) return real_call(nullptr);
  const OpensslApi* api = v.api;
  const uint64_t t0 = now_ns();
  // A session whose handshake nobody called explicitly (SSL_set_connect_state, then SSL_write)
  // runs it inside this call. One that is already set up (by calls we did not see) is data only
  // from now on.
  if (s->hs != HandshakeState::kDone) {
    if (api->SSL_is_init_finished(ssl) == 1) s->hs = HandshakeState::kDone;
    else handshake_call(*s, t0);
  }
  const DataStart start = begin_plaintext(*s, dir);
  size_t out = 0;
  const int ret = real_call(&out);
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  if (!bind_socket(*s, s->conn == 0 ? api->SSL_get_rfd(ssl) : -1)) return ret;
  uint64_t data_t0 = t0;
  if (s->hs == HandshakeState::kRunning) {
    after_handshake_call(*api, ssl, *s, ret, keep.saved(), false, t1);
    // The handshake took up this call; its plaintext moved at the very end. Starting the data
    // at t0 would count the handshake's round trips into the first request.
    if (s->hs == HandshakeState::kDone) data_t0 = t1;
  }
  int64_t result;
  if (ret > 0) {
    result = static_cast<int64_t>(moved(ret, out));
  } else if (const int err = api->SSL_get_error(ssl, ret); retry_later(err)) {
    result = -EAGAIN;
  } else if (err == SSL_ERROR_ZERO_RETURN) {
    result = 0;  // close_notify: end of stream, like read() returning 0
  } else {
    result = -(err == SSL_ERROR_SYSCALL && keep.saved() != 0 ? keep.saved() : EIO);
  }
  record_plaintext(start, *s, dir, kind, data_t0, t1, result, buf);
  return ret;
}

size_t moved_by_ret(int ret, size_t) { return static_cast<size_t>(ret); }
size_t moved_by_out(int, size_t out) { return out; }


}  // namespace
}  // namespace httptrace::tls

using namespace httptrace;
using namespace httptrace::tls;

// Every wrapper takes its return address first: it names the calling object, whose own libssl
// is the real one (tls/symbols.h).

HT_EXPORT int SSL_connect(SSL* ssl) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  return handshake(ssl, caller, v, HTTPTRACE_REAL(v, caller, SSL_connect));
}

HT_EXPORT int SSL_accept(SSL* ssl) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  return handshake(ssl, caller, v, HTTPTRACE_REAL(v, caller, SSL_accept));
}

HT_EXPORT int SSL_do_handshake(SSL* ssl) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  return handshake(ssl, caller, v, HTTPTRACE_REAL(v, caller, SSL_do_handshake));
}

HT_EXPORT int SSL_read(SSL* ssl, void* buf, int num) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, SSL_read);
  if (real == nullptr) return -1;
  return data_call(
      ssl, caller, v, format::Direction::kRecv, format::DataCall::kSslRead, buf,
      [&](size_t*) { return real(ssl, buf, num); }, moved_by_ret);
}

HT_EXPORT int SSL_read_ex(SSL* ssl, void* buf, size_t num, size_t* readbytes) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, SSL_read_ex);
  if (real == nullptr) return 0;
  return data_call(
      ssl, caller, v, format::Direction::kRecv, format::DataCall::kSslReadEx, buf,
      [&](size_t* out) {
        const int ret = real(ssl, buf, num, readbytes);
        if (out != nullptr && readbytes != nullptr) *out = *readbytes;
        return ret;
      },
      moved_by_out);
}

HT_EXPORT int SSL_write(SSL* ssl, const void* buf, int num) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, SSL_write);
  if (real == nullptr) return -1;
  return data_call(
      ssl, caller, v, format::Direction::kSend, format::DataCall::kSslWrite, buf,
      [&](size_t*) { return real(ssl, buf, num); }, moved_by_ret);
}

HT_EXPORT int SSL_write_ex(SSL* ssl, const void* buf, size_t num, size_t* written) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, SSL_write_ex);
  if (real == nullptr) return 0;
  return data_call(
      ssl, caller, v, format::Direction::kSend, format::DataCall::kSslWriteEx, buf,
      [&](size_t* out) {
        const int ret = real(ssl, buf, num, written);
        if (out != nullptr && written != nullptr) *out = *written;
        return ret;
      },
      moved_by_out);
}

HT_EXPORT int SSL_shutdown(SSL* ssl) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, SSL_shutdown);
  if (real == nullptr) return -1;
  CallGuard guard(caller);
  const uint64_t t0 = now_ns();
  const int ret = real(ssl);
  if (guard && v.record) {
    ErrnoSaver keep;
    record_session_end(ssl, kLib, format::TlsCloseHow::kShutdown, t0);
  }
  return ret;
}

HT_EXPORT void SSL_free(SSL* ssl) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = openssl().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, SSL_free);
  CallGuard guard(caller);
  if (guard) {
    // Before the real free: after it, the address may already belong to a new SSL on another
    // thread, whose fresh entry must not be released. Not only for recording callers: a
    // session is released whoever frees it.
    ErrnoSaver keep;
    record_session_end(ssl, kLib, format::TlsCloseHow::kFree, now_ns());
  }
  if (real != nullptr) real(ssl);
}
