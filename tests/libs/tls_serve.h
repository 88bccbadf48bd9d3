// Shared by the TLS-server test modules (https_serve.cpp, gnutls_serve.cpp): the TCP side. The
// module connects out to a peer that listens and then acts as the TLS *client*, so the traced
// process runs the server half of the handshake on a socket it connected itself (tracked before
// accept() tracking exists, and independent of it).
#pragma once

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace tls_serve {

inline int tcp_connect(const char* host, int port) {
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

// "CERT,KEY" (the modules' cafile argument) split in two.
inline bool split_pair(const char* s, std::string* cert, std::string* key) {
  const std::string all = s;
  const size_t comma = all.find(',');
  if (comma == std::string::npos) return false;
  *cert = all.substr(0, comma);
  *key = all.substr(comma + 1);
  return true;
}

inline constexpr char kResponse[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

}  // namespace tls_serve
