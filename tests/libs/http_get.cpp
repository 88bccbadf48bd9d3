// libhttp_get.so: plain HTTP through libc's socket, connect, send and recv, called from inside a
// shared object, so that how the object was loaded (RTLD_DEEPBIND) decides what those calls
// bind to. send is called through a table of function pointers (an R_X86_64_64 relocation in
// data, not a PLT slot), as libraries with I/O vtables do. See get_module.h.
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "tests/libs/get_module.h"

// Exported, so the compiler cannot fold the pointer into a direct call.
extern "C" {
__attribute__((visibility("default"))) ssize_t (*ht_io_table[])(int, const void*, size_t, int) = {&send};
}

extern "C" int ht_get(const char* host, int port, const char* path, const char*, int, char* out,
                      size_t cap) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host, service.c_str(), &hints, &ai) != 0) {
    snprintf(out, cap, "getaddrinfo failed");
    return 1;
  }
  const int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  const bool connected = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
  freeaddrinfo(ai);
  if (!connected) {
    snprintf(out, cap, "connect: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  const std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host +
                          "\r\nConnection: close\r\n\r\n";
  if (ht_io_table[0](fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) {
    snprintf(out, cap, "send: %s", strerror(errno));
    close(fd);
    return 1;
  }
  std::string resp;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      snprintf(out, cap, "recv: %s", strerror(errno));
      close(fd);
      return 1;
    }
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  snprintf(out, cap, "%s", resp.substr(0, resp.find("\r\n")).c_str());
  return resp.compare(0, 5, "HTTP/") == 0 ? 0 : 1;
}
