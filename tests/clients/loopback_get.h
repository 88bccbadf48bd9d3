// One GET on a new connection to 127.0.0.1:PORT, read until the server closes: what the small
// test clients (drop_client, exec_client, signals_client) do to make the recorder write a
// connection. libc only, because libc is what is traced.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace loopback_get {

[[noreturn]] inline void die(const char* client, const char* what) {
  std::fprintf(stderr, "%s: %s (errno %d: %s)\n", client, what, errno, std::strerror(errno));
  std::exit(1);
}

// The response's status line; on any failure the client exits 1 with a message on stderr.
inline std::string status_line(const char* client, int port, const char* path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die(client, "connect");
  const std::string req =
      std::string("GET ") + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    die(client, "send");
  }
  std::string resp;
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) die(client, "poll timed out");
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die(client, "recv");
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return resp.substr(0, resp.find("\r\n"));
}

}  // namespace loopback_get
