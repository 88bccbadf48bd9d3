// tls_static_client: an HTTPS client whose TLS stack our hooks cannot see, standing in for a
// program that bundles its own TLS library (Go, rustls, a statically linked OpenSSL).
//
//   tls_static_client HOST PORT SNI PATH...    one TLS connection (ALPN "http/1.1"), every PATH
//                                              requested on it; prints "<path> <status> <length>"
//   tls_static_client --implicit HOST PORT SNI PATH...
//                                              the same through the global symbols (so through
//                                              our hooks), with no handshake call at all: the
//                                              first SSL_write_ex runs it
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
#include <openssl/ssl.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

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

// Reads one response (headers + Content-Length body); returns the status, sets body_len.
int read_response(Ssl& s, SSL* ssl, size_t* body_len) {
  std::string buf;
  char chunk[4096];
  size_t header_end = std::string::npos;
  size_t want = 0;
  while (buf.size() < kMaxResponseBytes) {
    if (header_end != std::string::npos && buf.size() >= header_end + 4 + want) break;
    size_t got = 0;
    if (s.read_ex(ssl, chunk, sizeof chunk, &got) != 1) die("SSL_read_ex failed");
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
  const bool implicit = argc > 1 && std::strcmp(argv[1], "--implicit") == 0;
  if (implicit) --argc, ++argv;
  if (argc < 5) {
    std::fputs("usage: tls_static_client [--implicit] HOST PORT SNI PATH...\n", stderr);
    return 2;
  }
  const char* host = argv[1];
  const char* sni = argv[3];
  Ssl s;
  s.load(implicit);
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
    if (s.write_ex(ssl, req.data(), req.size(), &written) != 1 || written != req.size())
      die("SSL_write_ex failed");
    size_t body = 0;
    int status = read_response(s, ssl, &body);
    std::printf("%s %d %zu\n", argv[i], status, body);
  }
  s.shutdown(ssl);
  s.ssl_free(ssl);
  s.ctx_free(ctx);
  close(fd);
  return 0;
}
