// libgnutls_serve.so: the server half of a TLS handshake through GnuTLS. Same contract as
// https_serve.cpp (mode is ignored).
#include <gnutls/gnutls.h>

#include <cstdio>
#include <string>

#include "tests/libs/get_module.h"
#include "tests/libs/tls_serve.h"

extern "C" int ht_get(const char* host, int port, const char*, const char* files, int, char* out,
                      size_t cap) {
  std::string cert, key;
  if (!tls_serve::split_pair(files, &cert, &key)) {
    snprintf(out, cap, "want CERT,KEY");
    return 1;
  }
  gnutls_certificate_credentials_t cred;
  gnutls_certificate_allocate_credentials(&cred);
  int r = gnutls_certificate_set_x509_key_file(cred, cert.c_str(), key.c_str(), GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    snprintf(out, cap, "certificate: %s", gnutls_strerror(r));
    gnutls_certificate_free_credentials(cred);
    return 1;
  }
  const int fd = tls_serve::tcp_connect(host, port);
  if (fd < 0) {
    snprintf(out, cap, "connect failed");
    gnutls_certificate_free_credentials(cred);
    return 1;
  }
  gnutls_session_t s;
  gnutls_init(&s, GNUTLS_SERVER);
  gnutls_set_default_priority(s);
  gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_transport_set_int(s, fd);
  int rc = 1;
  do {
    r = gnutls_handshake(s);
  } while (r < 0 && gnutls_error_is_fatal(r) == 0);
  if (r < 0) {
    snprintf(out, cap, "handshake: %s", gnutls_strerror(r));
  } else {
    std::string req;
    char buf[4096];
    ssize_t n;
    while (req.find("\r\n\r\n") == std::string::npos && (n = gnutls_record_recv(s, buf, sizeof buf)) > 0)
      req.append(buf, static_cast<size_t>(n));
    gnutls_record_send(s, tls_serve::kResponse, sizeof tls_serve::kResponse - 1);
    gnutls_bye(s, GNUTLS_SHUT_WR);
    snprintf(out, cap, "%s", req.substr(0, req.find("\r\n")).c_str());
    rc = req.empty() ? 1 : 0;
  }
  gnutls_deinit(s);
  close(fd);
  gnutls_certificate_free_credentials(cred);
  return rc;
}
