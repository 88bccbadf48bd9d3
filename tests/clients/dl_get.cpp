// dl_get: loads test modules (build/tests/libs/*.so, see tests/libs/get_module.h) with dlopen()
// and makes one request through each, the way Python loads extensions (RTLD_LOCAL) or PHP does
// (RTLD_DEEPBIND).
//
//   dl_get [--deepbind] [--global] [--close] HOST PORT PATH CAFILE MODE MODULE...
//
// Every module is loaded first (so several libssl copies are in the process at once), then each
// makes its request; with --close instead each is loaded, used and dlclose()d in turn (so the
// next may be mapped where the last one was). Prints "<module file name> <status line>" per
// module. Exit 0 when all succeeded, 1 otherwise (the reason on stdout's line), 2 on a usage
// error.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/libs/get_module.h"

int main(int argc, char** argv) {
  int flags = RTLD_NOW | RTLD_LOCAL;
  bool close_each = false;
  int i = 1;
  for (; i < argc && std::strncmp(argv[i], "--", 2) == 0; ++i) {
    if (std::strcmp(argv[i], "--deepbind") == 0) flags |= RTLD_DEEPBIND;
    else if (std::strcmp(argv[i], "--close") == 0) close_each = true;
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
  struct Module {
    std::string name;
    void* handle;
    ht_get_fn fn;
  };
  auto load = [&](const char* file, Module* out) {
    void* h = dlopen(file, flags);
    if (h == nullptr) {
      std::fprintf(stderr, "dl_get: %s\n", dlerror());
      return false;
    }
    auto fn = reinterpret_cast<ht_get_fn>(dlsym(h, "ht_get"));
    if (fn == nullptr) {
      std::fprintf(stderr, "dl_get: no ht_get in %s\n", file);
      return false;
    }
    const char* slash = std::strrchr(file, '/');
    *out = Module{slash != nullptr ? slash + 1 : file, h, fn};
    return true;
  };
  int status = 0;
  auto use = [&](const Module& m) {
    char line[512] = {};
    if (m.fn(host, port, path, cafile, mode, line, sizeof line) != 0) status = 1;
    std::printf("%s %s\n", m.name.c_str(), line);
    std::fflush(stdout);
  };
  std::vector<Module> modules;
  for (int m = i + 5; m < argc; ++m) {
    Module mod;
    if (!load(argv[m], &mod)) return 1;
    if (!close_each) {
      modules.push_back(mod);
      continue;
    }
    use(mod);
    if (dlclose(mod.handle) != 0) {
      std::fprintf(stderr, "dl_get: dlclose: %s\n", dlerror());
      return 1;
    }
  }
  for (const Module& m : modules) use(m);
  return status;
}
