// The baseline preload for the hooked-vs-unhooked benchmarks: it interposes the same calls as
// libhttptrace.so and forwards them untouched. "app + no-op preload" minus "app" is the price of
// interposition itself (an extra call through a pointer); "app + libhttptrace.so" minus "app +
// no-op preload" is what our recording adds. Built by scripts/bench.sh, not by the Makefile: it
// is a shared object, not a benchmark binary (and lives in a subfolder so bench/*.cpp skips it).
#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace {

template <typename Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// Resolved on first use rather than in a constructor: another library's constructor may call
// these before ours runs.
#define NOOP_FORWARD(ret, name, params, args)                        \
  extern "C" __attribute__((visibility("default"))) ret name params { \
    static auto real = next<ret(*) params>(#name);                   \
    return real args;                                                \
  }

}  // namespace

NOOP_FORWARD(ssize_t, read, (int fd, void* buf, size_t n), (fd, buf, n))
NOOP_FORWARD(ssize_t, write, (int fd, const void* buf, size_t n), (fd, buf, n))
NOOP_FORWARD(ssize_t, send, (int fd, const void* buf, size_t n, int flags), (fd, buf, n, flags))
NOOP_FORWARD(ssize_t, recv, (int fd, void* buf, size_t n, int flags), (fd, buf, n, flags))
NOOP_FORWARD(int, socket, (int domain, int type, int proto), (domain, type, proto))
NOOP_FORWARD(int, connect, (int fd, const sockaddr* a, socklen_t len), (fd, a, len))
NOOP_FORWARD(int, close, (int fd), (fd))
