// tls_static_client: an HTTPS client whose TLS stack our hooks cannot see, standing in for a
// program that bundles its own TLS library (Go, rustls, a statically linked OpenSSL).
//
//   tls_static_client HOST PORT SNI PATH...    one TLS connection (ALPN "http/1.1"), every PATH
//                                              requested on it; prints "<path> <status> <length>"
//   tls_static_client --implicit HOST PORT SNI PATH...
//                                              the same through the global symbols (so through
//                                              our hooks), with no handshake call at all: the
//                                              first SSL_write_ex runs it
//   tls_static_client --stepped HOST PORT SNI PATH...
//                                              as --implicit, with an explicit handshake, and
//                                              every SSL_write_ex/SSL_read_ex single-stepped
//                                              (tests/support/single_step.h): at each instruction
//                                              of them (and of our TLS hooks and libssl under
//                                              them) a SIGTRAP handler sends one byte on a
//                                              loopback connection of the client's own, as a
//                                              self-pipe handler would; then prints that
//                                              connection's port and "handler sent N, received M"
//
// By default libssl is opened RTLD_LOCAL and every SSL function is called through a pointer from
// dlsym(handle): such calls never pass through the exported SSL_* symbols of libhttptrace.so, so
// the recorder only sees the socket bytes and the analyzer has to read TLS off the wire. Only
// SSL_do_handshake (never SSL_connect) is used, because libssl's SSL_connect calls
// SSL_do_handshake through its PLT, which an LD_PRELOAD library would interpose.
//
// Not linked against libssl: <openssl/ssl.h> supplies the prototypes for the pointer types only.
// Exit 0 on success, 1 on failure (message on stderr), 2 on a usage error.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/single_step.h"

namespace {

constexpr size_t kMaxResponseBytes = 16 * 1024 * 1024;

[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("tls_static_client: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::exit(1);
}

// The slice of the OpenSSL API this client needs, each resolved from the private handle.
struct Ssl {
  void* lib = nullptr;
  decltype(&TLS_client_method) client_method;
  decltype(&SSL_CTX_new) ctx_new;
  decltype(&SSL_CTX_free) ctx_free;
  decltype(&SSL_CTX_set_alpn_protos) set_alpn;
  decltype(&SSL_new) ssl_new;
  decltype(&SSL_free) ssl_free;
  decltype(&SSL_set_fd) set_fd;
  decltype(&SSL_ctrl) ctrl;  // SSL_set_tlsext_host_name is a macro over SSL_ctrl
  decltype(&SSL_set_connect_state) set_connect_state;
  decltype(&SSL_do_handshake) do_handshake;
  decltype(&SSL_get_error) get_error;
  decltype(&SSL_write_ex) write_ex;
  decltype(&SSL_read_ex) read_ex;
  decltype(&SSL_shutdown) shutdown;

  void* scope = nullptr;  // where functions are looked up: lib itself, or the global scope

  template <typename F>
  void get(F& fn, const char* name) {
    fn = reinterpret_cast<F>(dlsym(scope, name));
    if (fn == nullptr) die("dlsym %s: %s", name, dlerror());
  }

  void load(bool global) {
    lib = dlopen("libssl.so.3", RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
    if (lib == nullptr) die("dlopen libssl.so.3: %s", dlerror());
    scope = global ? RTLD_DEFAULT : lib;
    get(client_method, "TLS_client_method");
    get(ctx_new, "SSL_CTX_new");
    get(ctx_free, "SSL_CTX_free");
    get(set_alpn, "SSL_CTX_set_alpn_protos");
    get(ssl_new, "SSL_new");
    get(ssl_free, "SSL_free");
    get(set_fd, "SSL_set_fd");
    get(ctrl, "SSL_ctrl");
    get(set_connect_state, "SSL_set_connect_state");
    get(do_handshake, "SSL_do_handshake");
    get(get_error, "SSL_get_error");
    get(write_ex, "SSL_write_ex");
    get(read_ex, "SSL_read_ex");
    get(shutdown, "SSL_shutdown");
  }
};

int connect_to(const char* host, const char* port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) die("getaddrinfo %s: %s", host, gai_strerror(rc));
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) die("connect %s:%s: %s", host, port, std::strerror(errno));
  return fd;
}

// --stepped: the handler's connection (client end, and the accepted end it is drained from).
bool g_stepped = false;
int g_step_fd = -1, g_step_peer = -1, g_step_port = 0;
volatile sig_atomic_t g_step_sent = 0;

void on_trap(int) {
  const int saved = errno;
  if (send(g_step_fd, "x", 1, MSG_DONTWAIT) == 1) g_step_sent = g_step_sent + 1;
  errno = saved;
}

void start_stepping() {
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    die("listen: %s", std::strerror(errno));
  }
  g_step_port = ntohs(a.sin_port);
  g_step_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (g_step_fd < 0 || connect(g_step_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (g_step_peer = accept(lfd, nullptr, nullptr)) < 0) {
    die("loopback pair: %s", std::strerror(errno));
  }
  close(lfd);
  struct sigaction trap = {};
  trap.sa_handler = on_trap;
  sigemptyset(&trap.sa_mask);
  if (sigaction(SIGTRAP, &trap, nullptr) != 0) die("sigaction");
}

// f(), single-stepped under --stepped.
template <typename F>
[[gnu::noinline]] int maybe_stepped(F f) {
  if (!g_stepped) return f();
  httptrace::testing::step_on();
  const int r = f();
  httptrace::testing::step_off();
  return r;
}

long drain_stepping() {
  long got = 0;
  char buf[4096];
  for (int spins = 0; got < g_step_sent && spins < 1000; ++spins) {
    pollfd p = {g_step_peer, POLLIN, 0};
    if (poll(&p, 1, 1000) != 1) break;
    const ssize_t r = recv(g_step_peer, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) got += r;
  }
  return got;
}

// Reads one response (headers + Content-Length body); returns the status, sets body_len.
int read_response(Ssl& s, SSL* ssl, size_t* body_len) {
  std::string buf;
  char chunk[4096];
  size_t header_end = std::string::npos;
  size_t want = 0;
  while (buf.size() < kMaxResponseBytes) {
    if (header_end != std::string::npos && buf.size() >= header_end + 4 + want) break;
    size_t got = 0;
    if (maybe_stepped([&] { return s.read_ex(ssl, chunk, sizeof chunk, &got); }) != 1) {
      die("SSL_read_ex failed");
    }
    buf.append(chunk, got);
    if (header_end == std::string::npos) {
      header_end = buf.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        const char* cl = strcasestr(buf.c_str(), "\r\nContent-Length:");
        if (cl == nullptr || cl > buf.c_str() + header_end) die("response without Content-Length");
        want = std::strtoul(cl + 17, nullptr, 10);
      }
    }
  }
  int status = 0;
  if (std::sscanf(buf.c_str(), "HTTP/1.%*d %d", &status) != 1) die("bad status line");
  *body_len = want;
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  g_stepped = argc > 1 && std::strcmp(argv[1], "--stepped") == 0;
  const bool implicit = argc > 1 && std::strcmp(argv[1], "--implicit") == 0;
  const bool global = implicit || g_stepped;
  if (global) --argc, ++argv;
  if (argc < 5) {
    std::fputs("usage: tls_static_client [--implicit | --stepped] HOST PORT SNI PATH...\n", stderr);
    return 2;
  }
  if (g_stepped && !httptrace::testing::kSingleStep) {
    std::puts("single-stepping is x86-64 only");
    return 0;
  }
  if (g_stepped) start_stepping();
  const char* host = argv[1];
  const char* sni = argv[3];
  Ssl s;
  s.load(global);
  SSL_CTX* ctx = s.ctx_new(s.client_method());
  if (ctx == nullptr) die("SSL_CTX_new failed");
  static const unsigned char kAlpn[] = "\x08http/1.1";
  s.set_alpn(ctx, kAlpn, sizeof kAlpn - 1);  // verification stays off: the test cert is self-signed
  int fd = connect_to(host, argv[2]);
  SSL* ssl = s.ssl_new(ctx);
  if (ssl == nullptr || s.set_fd(ssl, fd) != 1) die("SSL_new/SSL_set_fd failed");
  s.ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(sni));
  s.set_connect_state(ssl);
  if (!implicit) {
    int rc = s.do_handshake(ssl);
    if (rc != 1) die("handshake failed: SSL_get_error %d", s.get_error(ssl, rc));
  }
  for (int i = 4; i < argc; ++i) {
    std::string req = std::string("GET ") + argv[i] + " HTTP/1.1\r\nHost: " + sni +
                      "\r\nUser-Agent: tls_static_client\r\n\r\n";
    size_t written = 0;
    if (maybe_stepped([&] { return s.write_ex(ssl, req.data(), req.size(), &written); }) != 1 ||
        written != req.size()) {
      die("SSL_write_ex failed");
    }
    size_t body = 0;
    int status = read_response(s, ssl, &body);
    std::printf("%s %d %zu\n", argv[i], status, body);
  }
  s.shutdown(ssl);
  s.ssl_free(ssl);
  s.ctx_free(ctx);
  close(fd);
  if (g_stepped) {
    const long received = drain_stepping();
    std::printf("port %d\nhandler sent %ld, received %ld\n", g_step_port, static_cast<long>(g_step_sent),
                received);
  }
  return 0;
}
