// dl_get: loads test modules (build/tests/libs/*.so, see tests/libs/get_module.h) with dlopen()
// and makes one request through each, the way Python loads extensions (RTLD_LOCAL) or PHP does
// (RTLD_DEEPBIND).
//
//   dl_get [--deepbind] [--global] HOST PORT PATH CAFILE MODE MODULE...
//
// Every module is loaded first (so several libssl copies are in the process at once), then each
// makes its request; prints "<module file name> <status line>" per module. Exit 0 when all
// succeeded, 1 otherwise (the reason on stdout's line), 2 on a usage error.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/libs/get_module.h"

int main(int argc, char** argv) {
  int flags = RTLD_NOW | RTLD_LOCAL;
  int i = 1;
  for (; i < argc && std::strncmp(argv[i], "--", 2) == 0; ++i) {
    if (std::strcmp(argv[i], "--deepbind") == 0) flags |= RTLD_DEEPBIND;
    else if (std::strcmp(argv[i], "--global") == 0) flags = (flags & ~RTLD_LOCAL) | RTLD_GLOBAL;
    else return 2;
  }
  if (argc - i < 6) {
    std::fprintf(stderr, "usage: dl_get [--deepbind] [--global] HOST PORT PATH CAFILE MODE MODULE...\n");
    return 2;
  }
  const char* host = argv[i];
  const int port = std::atoi(argv[i + 1]);
  const char* path = argv[i + 2];
  const char* cafile = argv[i + 3];
  const int mode = std::atoi(argv[i + 4]);
  std::vector<std::pair<std::string, ht_get_fn>> modules;
  for (int m = i + 5; m < argc; ++m) {
    void* h = dlopen(argv[m], flags);
    if (h == nullptr) {
      std::fprintf(stderr, "dl_get: %s\n", dlerror());
      return 1;
    }
    auto fn = reinterpret_cast<ht_get_fn>(dlsym(h, "ht_get"));
    if (fn == nullptr) {
      std::fprintf(stderr, "dl_get: no ht_get in %s\n", argv[m]);
      return 1;
    }
    const char* slash = std::strrchr(argv[m], '/');
    modules.emplace_back(slash != nullptr ? slash + 1 : argv[m], fn);
  }
  int status = 0;
  for (const auto& [name, fn] : modules) {
    char line[512] = {};
    if (fn(host, port, path, cafile, mode, line, sizeof line) != 0) status = 1;
    std::printf("%s %s\n", name.c_str(), line);
  }
  return status;
}
