// sites_client: connections opened from named functions, for `httptrace sites` and the stack
// exports (tests/integration/sites_test.cpp). Built -O2 -g like every client; the functions are
// kept out of line (noinline) except one helper that is always inlined, so its frame exists only
// in the debug info. The lines marked SITE: are what the test expects the stacks to name.
//
//   sites_client HOST PORT MODULE
//
// Makes three requests from fetch_primary, one from fetch_secondary (through the inlined
// open_inlined), then dlopen()s MODULE (build/tests/libs/libhttp_get.so) and makes one request
// through its ht_get: an object loaded after the trace file was created. Prints "ok" and exits 0
// when every request got a status line.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/libs/get_module.h"

namespace {

int g_port = 0;
const char* g_host = nullptr;

sockaddr_in server_address() {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(g_port));
  inet_pton(AF_INET, g_host, &sa.sin_addr);
  return sa;
}

// One request on fd ("Connection: close"), read to EOF; true when a status line came back.
bool exchange(int fd) {
  const std::string req = std::string("GET /sites HTTP/1.1\r\nHost: ") + g_host + "\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) return false;
  char buf[4096];
  std::string got;
  for (int i = 0; i < 1000; ++i) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got.starts_with("HTTP/1.");
}

__attribute__((always_inline)) inline int open_inlined() {
  const sockaddr_in sa = server_address();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0 && connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {  // SITE:inlined
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

__attribute__((noinline)) bool fetch_primary() {
  const sockaddr_in sa = server_address();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {  // SITE:primary
    close(fd);
    return false;
  }
  return exchange(fd);
}

__attribute__((noinline)) bool fetch_secondary() {
  const int fd = open_inlined();  // SITE:secondary
  return fd >= 0 && exchange(fd);
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: sites_client HOST PORT MODULE\n");
    return 2;
  }
  g_host = argv[1];
  g_port = std::atoi(argv[2]);
  bool ok = true;
  for (int i = 0; i < 3; ++i) ok = fetch_primary() && ok;
  ok = fetch_secondary() && ok;
  void* lib = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
  auto get = lib != nullptr ? reinterpret_cast<ht_get_fn>(dlsym(lib, "ht_get")) : nullptr;
  char status[256] = "";
  ok = get != nullptr && get(g_host, g_port, "/module", nullptr, 0, status, sizeof status) == 0 && ok;
  std::printf("%s\n", ok ? "ok" : "failed");
  return ok ? 0 : 1;
}
