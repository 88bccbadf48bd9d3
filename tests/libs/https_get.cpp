// libhttps_*.so: HTTPS through OpenSSL called from inside a shared object, the way a Python
// extension or PHP's curl calls it. Built three times (Makefile): against the system libssl and
// against two renamed copies of it (libssl-ht1.so.3, libssl-ht2.so.3, as manylinux wheels
// bundle theirs), so one process can hold several libssl copies, each with its own callers.
//
// A generic TLS_method() context, as Ruby uses: its SSL says SSL_is_server() == 1 until the
// connect state is set. See get_module.h for the entry point.
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "tests/libs/get_module.h"

namespace {

int tcp_connect(const char* host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host, service.c_str(), &hints, &ai) != 0) return -1;
  int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

int fail(char* out, size_t cap, const char* what) {
  const unsigned long e = ERR_get_error();
  snprintf(out, cap, "%s: %s", what, e != 0 ? ERR_reason_error_string(e) : "failed");
  return 1;
}

}  // namespace

extern "C" int ht_get(const char* host, int port, const char* path, const char* cafile, int mode,
                      char* out, size_t cap) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return fail(out, cap, "SSL_CTX_new");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, cafile, nullptr) != 1) {
    SSL_CTX_free(ctx);
    return fail(out, cap, "load_verify_locations");
  }
  const int fd = tcp_connect(host, port);
  if (fd < 0) {
    SSL_CTX_free(ctx);
    snprintf(out, cap, "connect failed");
    return 1;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host);
  SSL_set1_host(ssl, host);
  int rc = 1;
  const int hs = mode == 1 ? (SSL_set_connect_state(ssl), SSL_do_handshake(ssl)) : SSL_connect(ssl);
  if (hs != 1) {
    rc = fail(out, cap, "handshake");
  } else {
    const std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host +
                            "\r\nConnection: close\r\n\r\n";
    if (SSL_write(ssl, req.data(), static_cast<int>(req.size())) != static_cast<int>(req.size())) {
      rc = fail(out, cap, "SSL_write");
    } else {
      std::string resp;
      char buf[4096];
      int n;
      while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
      snprintf(out, cap, "%s", resp.substr(0, resp.find("\r\n")).c_str());
      rc = resp.compare(0, 5, "HTTP/") == 0 ? 0 : 1;
      SSL_shutdown(ssl);
    }
  }
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return rc;
}
