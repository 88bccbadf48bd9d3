// libhttps_serve.so: the server half of a TLS handshake through OpenSSL, from a generic
// TLS_method() context. ht_get (get_module.h) connects to HOST:PORT, where a peer acts as the TLS
// client; cafile is "CERT,KEY"; mode 0 = SSL_accept, 1 = SSL_set_accept_state +
// SSL_do_handshake. Reads one request, answers 200 "ok", writes the request line to out.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <string>

#include "tests/libs/get_module.h"
#include "tests/libs/tls_serve.h"

extern "C" int ht_get(const char* host, int port, const char*, const char* files, int mode, char* out,
                      size_t cap) {
  std::string cert, key;
  if (!tls_serve::split_pair(files, &cert, &key)) {
    snprintf(out, cap, "want CERT,KEY");
    return 1;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    snprintf(out, cap, "certificate: %s", ERR_reason_error_string(ERR_get_error()));
    SSL_CTX_free(ctx);
    return 1;
  }
  const int fd = tls_serve::tcp_connect(host, port);
  if (fd < 0) {
    snprintf(out, cap, "connect failed");
    SSL_CTX_free(ctx);
    return 1;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  int rc = 1;
  const int hs = mode == 1 ? (SSL_set_accept_state(ssl), SSL_do_handshake(ssl)) : SSL_accept(ssl);
  if (hs != 1) {
    snprintf(out, cap, "handshake: %s", ERR_reason_error_string(ERR_get_error()));
  } else {
    std::string req;
    char buf[4096];
    int n;
    while (req.find("\r\n\r\n") == std::string::npos && (n = SSL_read(ssl, buf, sizeof buf)) > 0)
      req.append(buf, static_cast<size_t>(n));
    SSL_write(ssl, tls_serve::kResponse, sizeof tls_serve::kResponse - 1);
    SSL_shutdown(ssl);
    snprintf(out, cap, "%s", req.substr(0, req.find("\r\n")).c_str());
    rc = req.empty() ? 1 : 0;
  }
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return rc;
}
