// GnuTLS wrappers (wget, and anything built on libcurl-gnutls): the handshake phase across
// non-blocking gnutls_handshake calls, plaintext sends and receives, bye and deinit.
//
// Same shape as hooks/openssl.cpp: the real function from the calling object's own libgnutls
// (tls/gnutls_api.h), the real result returned unchanged, errno restored after recording.
#include <gnutls/gnutls.h>

#include <cerrno>

#include "interpose/record/clock.h"
#include "interpose/hooks/export.h"
#include "interpose/record/recorder.h"
#include "interpose/tls/gnutls_api.h"
#include "interpose/tls/record.h"


namespace httptrace::tls {
namespace {

using format::DataCall;
using format::Direction;

constexpr auto kLib = format::TlsLibrary::kGnutls;

uint16_t wire_version(gnutls_protocol_t p) {
  switch (p) {
    case GNUTLS_SSL3: return 0x0300;
    case GNUTLS_TLS1_0: return 0x0301;
    case GNUTLS_TLS1_1: return 0x0302;
    case GNUTLS_TLS1_2: return 0x0303;
    case GNUTLS_TLS1_3: return 0x0304;
    default: return 0;
  }
}

void describe_success(const GnutlsApi& api, gnutls_session_t session, format::TlsHandshakeEvent& ev) {
  ev.version = wire_version(api.gnutls_protocol_get_version(session));
  const char* suite = api.gnutls_ciphersuite_get != nullptr ? api.gnutls_ciphersuite_get(session) : nullptr;
  if (suite == nullptr) suite = api.gnutls_cipher_get_name(api.gnutls_cipher_get(session));
  copy_field(ev.cipher, sizeof ev.cipher, suite);
  size_t len = sizeof ev.sni - 1;
  unsigned type = 0;
  if (api.gnutls_server_name_get(session, ev.sni, &len, &type, 0) != 0 || type != GNUTLS_NAME_DNS)
    ev.sni[0] = '\0';
  ev.sni[sizeof ev.sni - 1] = '\0';
  gnutls_datum_t alpn = {};
  if (api.gnutls_alpn_get_selected_protocol(session, &alpn) == 0)
    copy_field(ev.alpn, sizeof ev.alpn, reinterpret_cast<const char*>(alpn.data), alpn.size);
  ev.resumed = api.gnutls_session_is_resumed(session) != 0;
}

// The session's socket as GnuTLS knows it; -1 for a custom transport (then the socket comes from
// the wire I/O seen during the call, tls/record.h).
int library_fd(const GnutlsApi& api, Session& s, gnutls_session_t session) {
  return s.conn == 0 ? api.gnutls_transport_get_int(session) : -1;
}

// A result in the recorder's convention: bytes, or -errno for the retry codes and -EIO otherwise.
int64_t data_result(ssize_t ret) {
  if (ret >= 0) return ret;
  if (ret == GNUTLS_E_AGAIN) return -EAGAIN;
  if (ret == GNUTLS_E_INTERRUPTED) return -EINTR;
  return -EIO;
}

using View = CallerApis<GnutlsApi>::View;

template <typename F>
F real_or_lookup(F cached, const void* caller, const char* name) {
  return cached != nullptr ? cached : gnutls().one<F>(caller, name);
}
#define HTTPTRACE_REAL(view, caller, name) \
  real_or_lookup<decltype(&::name)>((view).api != nullptr ? (view).api->name : nullptr, caller, #name)

template <typename Real>
ssize_t data_call(gnutls_session_t session, const void* caller, View v, Direction dir, DataCall kind, const void* buf,
                  Real&& real) {
  CallGuard guard(caller);
  Session* s = v.record && guard && recording() ? session_get(session) : nullptr;
  if (s == nullptr) return real();
  const DataStart start = begin_plaintext(*s, dir);
  const uint64_t t0 = now_ns();
  const ssize_t ret = real();
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  if (bind_socket(*s, library_fd(*v.api, *s, session)))
    record_plaintext(start, *s, dir, kind, t0, t1, data_result(ret), buf);
  return ret;
}


}  // namespace
}  // namespace httptrace::tls

using namespace httptrace;
using namespace httptrace::tls;

// Every wrapper takes its return address first: it names the calling object, whose own
// libgnutls is the real one (tls/symbols.h). A client or a server session alike.

HT_EXPORT int gnutls_handshake(gnutls_session_t session) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = gnutls().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, gnutls_handshake);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  CallGuard guard(caller);
  Session* s = v.record && guard && recording() ? session_get(session) : nullptr;
  if (s == nullptr) return real(session);
  const GnutlsApi* api = v.api;
  const uint64_t t0 = now_ns();
  handshake_call(*s, t0);
  const int ret = real(session);
  const uint64_t t1 = now_ns();
  ErrnoSaver keep;
  bind_socket(*s, library_fd(*api, *s, session));
  // GNUTLS_E_AGAIN / _INTERRUPTED and warning alerts are not fatal: the phase goes on.
  if (s->hs != HandshakeState::kRunning || (ret != 0 && !api->gnutls_error_is_fatal(ret))) return ret;
  format::TlsHandshakeEvent ev = {};
  if (ret == 0) {
    describe_success(*api, session, ev);
  } else {
    ev.error = ret;
    copy_field(ev.error_text, sizeof ev.error_text, api->gnutls_strerror(ret));
  }
  if (s->conn != 0) finish_handshake(*s, ev, kLib, t1);
  else s->hs = HandshakeState::kDone;
  return ret;
}

HT_EXPORT ssize_t gnutls_record_send(gnutls_session_t session, const void* data, size_t size) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = gnutls().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, gnutls_record_send);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  return data_call(session, caller, v, format::Direction::kSend, format::DataCall::kGnutlsSend, data,
                   [&]() -> ssize_t { return real(session, data, size); });
}

HT_EXPORT ssize_t gnutls_record_recv(gnutls_session_t session, void* data, size_t size) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = gnutls().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, gnutls_record_recv);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  return data_call(session, caller, v, format::Direction::kRecv, format::DataCall::kGnutlsRecv, data,
                   [&]() -> ssize_t { return real(session, data, size); });
}

HT_EXPORT int gnutls_bye(gnutls_session_t session, gnutls_close_request_t how) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = gnutls().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, gnutls_bye);
  if (real == nullptr) return GNUTLS_E_INTERNAL_ERROR;
  CallGuard guard(caller);
  const uint64_t t0 = now_ns();
  const int ret = real(session, how);
  if (guard && v.record) {
    ErrnoSaver keep;
    record_session_end(session, kLib, format::TlsCloseHow::kShutdown, t0);
  }
  return ret;
}

HT_EXPORT void gnutls_deinit(gnutls_session_t session) {
  const void* caller = caller_of(__builtin_return_address(0));
  const View v = gnutls().for_caller(caller);
  auto real = HTTPTRACE_REAL(v, caller, gnutls_deinit);
  CallGuard guard(caller);
  if (guard) {
    ErrnoSaver keep;
    record_session_end(session, kLib, format::TlsCloseHow::kFree, now_ns());  // before: see SSL_free
  }
  if (real != nullptr) real(session);
}
