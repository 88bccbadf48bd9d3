// Run-time resolution of the TLS libraries: nothing while the library is not loaded (and nothing
// gets loaded by asking), then the real functions of a copy that was dlopen()ed RTLD_LOCAL -- the
// python3 _ssl case, invisible to dlsym(RTLD_NEXT).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include "interpose/tls/gnutls_api.h"
#include "interpose/tls/openssl_api.h"

namespace httptrace::tls {
namespace {

bool loaded(const char* soname) {
  void* h = dlopen(soname, RTLD_NOLOAD | RTLD_LAZY);
  if (h != nullptr) dlclose(h);
  return h != nullptr;
}

template <typename Api>
void expect_resolves_after_local_dlopen(ApiTable<Api>& table, const char* soname, const char* fn) {
  // This test binary links neither library, so a lookup before the dlopen finds nothing and
  // must not load it as a side effect.
  ASSERT_FALSE(loaded(soname)) << soname << " already loaded: the precondition does not hold";
  EXPECT_EQ(table.table(), nullptr);
  EXPECT_FALSE(loaded(soname));
  EXPECT_EQ(dlsym(RTLD_DEFAULT, fn), nullptr);

  void* lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  EXPECT_EQ(dlsym(RTLD_DEFAULT, fn), nullptr) << "RTLD_LOCAL should keep it out of the global scope";
  const Api* api = table.table();
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(table.table(), api) << "resolved once, then cached";
  EXPECT_EQ(table.template one<void*>(fn), dlsym(lib, fn));
}

TEST(TlsSymbols, OpensslFromAnRtldLocalCopy) {
  expect_resolves_after_local_dlopen(openssl(), "libssl.so.3", "SSL_read");
  const OpensslApi* api = openssl().table();
  ASSERT_NE(api, nullptr);
  void* lib = dlopen("libssl.so.3", RTLD_NOLOAD | RTLD_LAZY);
  EXPECT_EQ(reinterpret_cast<void*>(api->SSL_read), dlsym(lib, "SSL_read"));
  EXPECT_EQ(reinterpret_cast<void*>(api->SSL_free), dlsym(lib, "SSL_free"));
  // From libcrypto, a dependency: dlsym on the libssl handle searches it too.
  EXPECT_EQ(reinterpret_cast<void*>(api->ERR_peek_error), dlsym(lib, "ERR_peek_error"));
  EXPECT_NE(api->ERR_peek_error, nullptr);
  dlclose(lib);
}

TEST(TlsSymbols, GnutlsFromAnRtldLocalCopy) {
  expect_resolves_after_local_dlopen(gnutls(), "libgnutls.so.30", "gnutls_record_recv");
  const GnutlsApi* api = gnutls().table();
  ASSERT_NE(api, nullptr);
  EXPECT_NE(api->gnutls_handshake, nullptr);
  EXPECT_NE(api->gnutls_ciphersuite_get, nullptr) << "Debian 12 ships GnuTLS 3.7.9";
  EXPECT_EQ(api->gnutls_error_is_fatal(GNUTLS_E_AGAIN), 0);
  EXPECT_NE(api->gnutls_error_is_fatal(GNUTLS_E_DECRYPTION_FAILED), 0);
}

}  // namespace
}  // namespace httptrace::tls
