// The GnuTLS functions the hooks call, resolved from the libgnutls each calling object uses
// (tls/symbols.h).
#pragma once

#include <gnutls/gnutls.h>

#include "interpose/tls/symbols.h"

namespace httptrace::tls {

// The hooked functions (required: the wrappers must be able to call them) ...
#define HTTPTRACE_GNUTLS_HOOKED(X) \
  X(gnutls_handshake)              \
  X(gnutls_record_send)            \
  X(gnutls_record_recv)            \
  X(gnutls_bye)                    \
  X(gnutls_deinit)
// ... and the read-only queries that describe a session.
#define HTTPTRACE_GNUTLS_QUERIES(X)     \
  X(gnutls_transport_get_int)           \
  X(gnutls_error_is_fatal)              \
  X(gnutls_strerror)                    \
  X(gnutls_protocol_get_version)        \
  X(gnutls_cipher_get)                  \
  X(gnutls_cipher_get_name)             \
  X(gnutls_server_name_get)             \
  X(gnutls_alpn_get_selected_protocol)  \
  X(gnutls_session_is_resumed)
// Newer than some GnuTLS 3 releases still in use (3.7.4): nullptr when absent.
#define HTTPTRACE_GNUTLS_OPTIONAL(X) X(gnutls_ciphersuite_get)

struct GnutlsApi {
#define HTTPTRACE_DECLARE(name) decltype(&::name) name;
  HTTPTRACE_GNUTLS_HOOKED(HTTPTRACE_DECLARE)
  HTTPTRACE_GNUTLS_QUERIES(HTTPTRACE_DECLARE)
  HTTPTRACE_GNUTLS_OPTIONAL(HTTPTRACE_DECLARE)
#undef HTTPTRACE_DECLARE

  static constexpr const char* kSonames[] = {"libgnutls.so.30", "libgnutls.so"};
  static constexpr const char* kProbe = "gnutls_record_recv";
  static bool fill(GnutlsApi& api, void* lib);
};

CallerApis<GnutlsApi>& gnutls();

}  // namespace httptrace::tls
