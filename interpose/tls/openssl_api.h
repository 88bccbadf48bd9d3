// The OpenSSL functions the hooks call, resolved from the libssl the program loaded
// for each calling object (tls/symbols.h). libssl 3 and 1.1 have the same signatures for
// everything listed here.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "interpose/tls/symbols.h"

namespace httptrace::tls {

// The hooked functions (required: the wrappers must be able to call them) ...
#define HTTPTRACE_OPENSSL_HOOKED(X) \
  X(SSL_connect)                    \
  X(SSL_accept)                     \
  X(SSL_do_handshake)               \
  X(SSL_read)                       \
  X(SSL_write)                      \
  X(SSL_shutdown)                   \
  X(SSL_free)
// Hooked, but newer than 1.1.0: nullptr there (a caller of such a library cannot call them).
#define HTTPTRACE_OPENSSL_OPTIONAL(X) \
  X(SSL_read_ex)                      \
  X(SSL_write_ex)
// ... and the read-only queries used to describe a session (none changes its state or the error
// queue: SSL_get_error and ERR_peek_error only look).
#define HTTPTRACE_OPENSSL_QUERIES(X) \
  X(SSL_get_rfd)                     \
  X(SSL_is_init_finished)            \
  X(SSL_get_error)                   \
  X(SSL_version)                     \
  X(SSL_get_current_cipher)          \
  X(SSL_CIPHER_get_name)             \
  X(SSL_get_servername)              \
  X(SSL_get0_alpn_selected)          \
  X(SSL_session_reused)              \
  X(ERR_peek_error)                  \
  X(ERR_reason_error_string)

struct OpensslApi {
#define HTTPTRACE_DECLARE(name) decltype(&::name) name;
  HTTPTRACE_OPENSSL_HOOKED(HTTPTRACE_DECLARE)
  HTTPTRACE_OPENSSL_QUERIES(HTTPTRACE_DECLARE)
  HTTPTRACE_OPENSSL_OPTIONAL(HTTPTRACE_DECLARE)
#undef HTTPTRACE_DECLARE

  static constexpr const char* kSonames[] = {"libssl.so.3", "libssl.so.1.1", "libssl.so"};
  static constexpr const char* kProbe = "SSL_read";
  static bool fill(OpensslApi& api, void* lib);
};

CallerApis<OpensslApi>& openssl();

}  // namespace httptrace::tls
