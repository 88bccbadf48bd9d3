// http_client: a small HTTP/1.1 client whose socket calls are chosen on purpose, so the
// integration tests can check that each interception path (non-blocking connect, vectored I/O,
// threads, fork, refused connect, connection reuse) is recorded as it happened.
//
//   http_client nonblock HOST PORT PATH...     getaddrinfo + non-blocking connect + poll + SO_ERROR,
//                                              then every PATH on that one connection
//   http_client iov HOST PORT PATH...          one connection; even requests writev/readv,
//                                              odd requests sendmsg/recvmsg
//   http_client threads HOST PORT N M          N threads, each its own connection, M requests each
//   http_client fork HOST PORT                 request; fork; child requests on a new connection;
//                                              parent waits, then requests on its old connection
//   http_client clone HOST PORT                the same with clone(fn, stack, SIGCHLD, arg), which
//                                              runs no atfork handlers
//   http_client refused HOST PORT              connect to a closed port, print the errno name
//   http_client sequential-new HOST PORT N     N requests, a new connection for each
//   http_client keepalive HOST PORT N          N requests on one connection, one summary line
//   http_client hang HOST PORT                 one request, print it, then block until killed
//
// Every request prints "<path> <status> <body length>" (keepalive prints one line in total), so
// runs with and without the tracer can be compared byte for byte. Exit 0 on success, 1 on any
// failure (with a message on stderr), 2 on a usage error.
//
// Deliberately dependency-free (libc + pthread) and single-file: it is the thing being traced.
#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string>
#include <sys/socket.h>
#include <sched.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr int kIoTimeoutMs = 30000;  // no test waits this long; it only bounds a broken server
constexpr size_t kMaxHeaderBytes = 64 * 1024;

[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("http_client: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::exit(1);
}

const char* errno_name(int e) {
  switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNRESET: return "ECONNRESET";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    default: return "EOTHER";
  }
}

// How a connection moves bytes; the iov subcommand switches per request.
enum class IoStyle { kPlain, kVectored, kMessage };

struct Target {
  std::string host;
  std::string port;
};

addrinfo* resolve(const Target& t) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &res);
  if (rc != 0) die("getaddrinfo %s: %s", t.host.c_str(), gai_strerror(rc));
  return res;
}

// Blocking connect to the first address that accepts; returns the fd or -errno of the last try.
int connect_blocking(const Target& t) {
  addrinfo* res = resolve(t);
  int last_error = ECONNREFUSED;
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    last_error = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd >= 0 ? fd : -last_error;
}

void wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  int rc;
  do {
    rc = poll(&p, 1, kIoTimeoutMs);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) die("timed out waiting on fd %d", fd);
  if (rc < 0) die("poll: %s", strerror(errno));
}

// The non-blocking dance real event-loop clients do: EINPROGRESS, poll for writable, then ask
// SO_ERROR whether it worked.
int connect_nonblocking(const Target& t) {
  addrinfo* res = resolve(t);
  int fd = -1;
  int last_error = ECONNREFUSED;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      wait_for(fd, POLLOUT);
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) break;
    last_error = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) die("connect %s:%s: %s", t.host.c_str(), t.port.c_str(), strerror(last_error));
  return fd;
}

int connect_or_die(const Target& t) {
  int fd = connect_blocking(t);
  if (fd < 0) die("connect %s:%s: %s", t.host.c_str(), t.port.c_str(), strerror(-fd));
  return fd;
}

// One HTTP/1.1 connection with a read buffer, so pipelined bytes of the next response are kept.
class Connection {
 public:
  Connection(int fd, bool nonblocking) : fd_(fd), nonblocking_(nonblocking) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }

  struct Response {
    int status = 0;
    size_t body_bytes = 0;
    bool server_closes = false;
  };

  Response request(const Target& t, const std::string& path, IoStyle style) {
    send_request(t, path, style);
    return read_response(style);
  }

  bool closed_by_server() const { return eof_; }
  int fd() const { return fd_; }

 private:
  // The vectored styles send the request line and the headers as two iovecs in one call, so
  // they really carry more than one piece. The plain style sends one buffer: two small send()s
  // would meet Nagle and the server's delayed ACK and stall each request by ~40 ms.
  void send_request(const Target& t, const std::string& path, IoStyle style) {
    std::string line = "GET " + path + " HTTP/1.1\r\n";
    std::string headers = "Host: " + t.host + ":" + t.port +
                          "\r\nUser-Agent: httptrace-test-client\r\nAccept: */*\r\n\r\n";
    if (style == IoStyle::kPlain) {
      line += headers;
      headers.clear();
    }
    iovec iov[2] = {{line.data(), line.size()}, {headers.data(), headers.size()}};
    size_t total = line.size() + headers.size();
    size_t done = 0;
    for (int attempts = 0; done < total; ++attempts) {
      if (attempts > 100000) die("send made no progress");
      // Skip what is already sent, keeping the iovec form for the remainder.
      iovec rest[2];
      int n = 0;
      size_t skip = done;
      for (auto& v : iov) {
        if (skip >= v.iov_len) {
          skip -= v.iov_len;
          continue;
        }
        rest[n++] = {static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
        skip = 0;
      }
      ssize_t rc;
      switch (style) {
        case IoStyle::kVectored:
          rc = writev(fd_, rest, n);
          break;
        case IoStyle::kMessage: {
          msghdr msg{};
          msg.msg_iov = rest;
          msg.msg_iovlen = n;
          rc = sendmsg(fd_, &msg, MSG_NOSIGNAL);
          break;
        }
        case IoStyle::kPlain:
        default:
          rc = send(fd_, rest[0].iov_base, rest[0].iov_len, MSG_NOSIGNAL);
          break;
      }
      if (rc < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          wait_for(fd_, POLLOUT);
          continue;
        }
        die("send: %s", strerror(errno));
      }
      done += static_cast<size_t>(rc);
    }
  }

  // Appends at least one byte to buf_, or sets eof_.
  void fill(IoStyle style) {
    char tmp[16384];
    for (int attempts = 0; attempts < 100000; ++attempts) {
      ssize_t rc;
      iovec iov{tmp, sizeof tmp};
      switch (style) {
        case IoStyle::kVectored:
          rc = readv(fd_, &iov, 1);
          break;
        case IoStyle::kMessage: {
          msghdr msg{};
          msg.msg_iov = &iov;
          msg.msg_iovlen = 1;
          rc = recvmsg(fd_, &msg, 0);
          break;
        }
        case IoStyle::kPlain:
        default:
          rc = nonblocking_ ? recv(fd_, tmp, sizeof tmp, 0) : read(fd_, tmp, sizeof tmp);
          break;
      }
      if (rc > 0) {
        buf_.append(tmp, static_cast<size_t>(rc));
        return;
      }
      if (rc == 0) {
        eof_ = true;
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(fd_, POLLIN);
        continue;
      }
      die("recv: %s", strerror(errno));
    }
    die("recv made no progress");
  }

  std::string read_line(IoStyle style) {
    for (;;) {
      size_t nl = buf_.find("\r\n", pos_);
      if (nl != std::string::npos) {
        std::string line = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 2;
        return line;
      }
      if (buf_.size() - pos_ > kMaxHeaderBytes) die("header line too long");
      if (eof_) die("connection closed inside a header line");
      fill(style);
    }
  }

  void skip_bytes(size_t n, IoStyle style) {
    while (n > 0) {
      if (pos_ == buf_.size()) {
        if (eof_) die("connection closed inside a body");
        fill(style);
        continue;
      }
      size_t take = std::min(n, buf_.size() - pos_);
      pos_ += take;
      n -= take;
    }
  }

  Response read_response(IoStyle style) {
    Response r;
    std::string status_line = read_line(style);
    if (std::sscanf(status_line.c_str(), "HTTP/1.%*d %d", &r.status) != 1) {
      die("bad status line: %s", status_line.c_str());
    }
    long long content_length = -1;
    bool chunked = false;
    for (size_t count = 0;; ++count) {
      if (count > 1000) die("too many headers");
      std::string h = read_line(style);
      if (h.empty()) break;
      size_t colon = h.find(':');
      if (colon == std::string::npos) continue;
      std::string name = h.substr(0, colon);
      std::string value = h.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "content-length") content_length = std::atoll(value.c_str());
      if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked = true;
      if (name == "connection" && value == "close") r.server_closes = true;
    }
    if (r.status == 204 || r.status == 304) {
      // No body by definition.
    } else if (chunked) {
      for (int chunks = 0;; ++chunks) {
        if (chunks > 1000000) die("too many chunks");
        std::string size_line = read_line(style);
        size_t n = std::strtoull(size_line.c_str(), nullptr, 16);
        if (n == 0) {
          // Trailers, then the empty line.
          while (!read_line(style).empty()) {
          }
          break;
        }
        skip_bytes(n, style);
        r.body_bytes += n;
        if (!read_line(style).empty()) die("chunk not followed by CRLF");
      }
    } else if (content_length >= 0) {
      skip_bytes(static_cast<size_t>(content_length), style);
      r.body_bytes = static_cast<size_t>(content_length);
    } else {
      // Body delimited by the server closing the connection.
      r.server_closes = true;
      for (int fills = 0; !eof_; ++fills) {
        if (fills > 1000000) die("unbounded close-delimited body");
        r.body_bytes += buf_.size() - pos_;
        pos_ = buf_.size();
        fill(style);
      }
      r.body_bytes += buf_.size() - pos_;
      pos_ = buf_.size();
    }
    // Keep the buffer from growing over a long keep-alive run.
    buf_.erase(0, pos_);
    pos_ = 0;
    return r;
  }

  int fd_;
  bool nonblocking_;
  bool eof_ = false;
  std::string buf_;
  size_t pos_ = 0;
};

void print_result(const std::string& path, const Connection::Response& r) {
  std::printf("%s %d %zu\n", path.c_str(), r.status, r.body_bytes);
  std::fflush(stdout);
}

long parse_count(const char* s, long max) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max) {
    std::fprintf(stderr, "http_client: bad count '%s' (1..%ld)\n", s, max);
    std::exit(2);
  }
  return v;
}

int cmd_nonblock(const Target& t, const std::vector<std::string>& paths) {
  Connection c(connect_nonblocking(t), true);
  for (const auto& p : paths) print_result(p, c.request(t, p, IoStyle::kPlain));
  return 0;
}

int cmd_iov(const Target& t, const std::vector<std::string>& paths) {
  Connection c(connect_or_die(t), false);
  for (size_t i = 0; i < paths.size(); ++i) {
    IoStyle style = i % 2 == 0 ? IoStyle::kVectored : IoStyle::kMessage;
    print_result(paths[i], c.request(t, paths[i], style));
  }
  return 0;
}

struct ThreadJob {
  const Target* target;
  long requests;
  int index;
  std::vector<Connection::Response> results;
};

void* thread_main(void* arg) {
  auto* job = static_cast<ThreadJob*>(arg);
  Connection c(connect_or_die(*job->target), false);
  std::string path = "/thread/" + std::to_string(job->index);
  for (long i = 0; i < job->requests; ++i) {
    job->results.push_back(c.request(*job->target, path, IoStyle::kPlain));
  }
  return nullptr;
}

int cmd_threads(const Target& t, long n, long m) {
  std::vector<ThreadJob> jobs(static_cast<size_t>(n));
  std::vector<pthread_t> ids(static_cast<size_t>(n));
  for (long i = 0; i < n; ++i) {
    jobs[i] = ThreadJob{&t, m, static_cast<int>(i), {}};
    if (pthread_create(&ids[i], nullptr, thread_main, &jobs[i]) != 0) die("pthread_create");
  }
  for (long i = 0; i < n; ++i) pthread_join(ids[i], nullptr);
  // Printed after the join, in thread order, so the output does not depend on scheduling.
  for (const auto& job : jobs) {
    for (const auto& r : job.results) print_result("/thread/" + std::to_string(job.index), r);
  }
  return 0;
}

int fork_child_main(void* target) {
  const Target& t = *static_cast<const Target*>(target);
  Connection mine(connect_or_die(t), false);
  print_result("/child/1", mine.request(t, "/child/1", IoStyle::kPlain));
  std::fflush(stdout);
  // _exit: the child must not run the parent's atexit handlers or flush its stdio twice.
  _exit(0);
}

int cmd_fork(const Target& t, bool with_clone) {
  Connection c(connect_or_die(t), false);
  print_result("/parent/1", c.request(t, "/parent/1", IoStyle::kPlain));
  std::fflush(stdout);
  pid_t child;
  if (with_clone) {
    // The child's stack: a copy of ours is the child's own memory (no CLONE_VM).
    static char stack[256 * 1024] __attribute__((aligned(16)));
    child = clone(fork_child_main, stack + sizeof stack, SIGCHLD, const_cast<Target*>(&t));
  } else {
    child = fork();
    if (child == 0) fork_child_main(const_cast<Target*>(&t));
  }
  if (child < 0) die("fork: %s", strerror(errno));
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid: %s", strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("child failed (status %d)", status);
  print_result("/parent/2", c.request(t, "/parent/2", IoStyle::kPlain));
  return 0;
}

// Children that share our memory or never run our code: a clone(CLONE_VM | CLONE_VFORK) child
// and a vfork child that each close their copy of the connection's descriptor (as many spawn
// helpers do before exec) and exec, then a posix_spawn. The parent's connection must go on, tracked, as one connection.
int close_and_exec_true(void* fd) {
  close(*static_cast<const int*>(fd));
  execl("/bin/true", "true", static_cast<char*>(nullptr));
  _exit(127);
}

void wait_ok(pid_t child, const char* what) {
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid: %s", strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("%s child failed (status %d)", what, status);
}

int cmd_spawn(const Target& t) {
  Connection c(connect_or_die(t), false);
  print_result("/spawn/1", c.request(t, "/spawn/1", IoStyle::kPlain));
  std::fflush(stdout);
  int fd = c.fd();
  // First a vfork-like child made with clone(CLONE_VM | CLONE_VFORK), before any vfork().
  static char stack[64 * 1024] __attribute__((aligned(16)));
  pid_t child = clone(close_and_exec_true, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &fd);
  if (child < 0) die("clone: %s", strerror(errno));
  wait_ok(child, "clone");
  child = vfork();
  if (child < 0) die("vfork: %s", strerror(errno));
  if (child == 0) close_and_exec_true(&fd);
  wait_ok(child, "vfork");
  char arg0[] = "true";
  char* spawn_argv[] = {arg0, nullptr};
  if (int e = posix_spawn(&child, "/bin/true", nullptr, nullptr, spawn_argv, environ); e != 0) {
    die("posix_spawn: %s", strerror(e));
  }
  wait_ok(child, "posix_spawn");
  print_result("/spawn/2", c.request(t, "/spawn/2", IoStyle::kPlain));
  return 0;
}

// A daemon-style program that closes every descriptor but stdio mid-run (here with close_range,
// after a first request), then carries on: the recorder's own trace descriptor goes too.
int cmd_closeall(const Target& t) {
  {
    Connection c(connect_or_die(t), false);
    print_result("/before", c.request(t, "/before", IoStyle::kPlain));
  }
  std::fflush(stdout);
  if (close_range(3, ~0u, 0) != 0) die("close_range: %s", strerror(errno));
  Connection c(connect_or_die(t), false);
  print_result("/after", c.request(t, "/after", IoStyle::kPlain));
  return 0;
}

int cmd_refused(const Target& t) {
  int fd = connect_blocking(t);
  if (fd >= 0) {
    close(fd);
    die("connect to %s:%s unexpectedly succeeded", t.host.c_str(), t.port.c_str());
  }
  std::printf("%s\n", errno_name(-fd));
  return 0;
}

int cmd_sequential_new(const Target& t, long n) {
  for (long i = 0; i < n; ++i) {
    Connection c(connect_or_die(t), false);
    std::string path = "/seq/" + std::to_string(i);
    print_result(path, c.request(t, path, IoStyle::kPlain));
  }
  return 0;
}

int cmd_keepalive(const Target& t, long n) {
  Connection c(connect_or_die(t), false);
  long ok = 0;
  for (long i = 0; i < n; ++i) {
    auto r = c.request(t, "/", IoStyle::kPlain);
    if (r.status == 200) ++ok;
    if (r.server_closes) die("server closed the keep-alive connection at request %ld", i);
  }
  std::printf("keepalive %ld requests %ld ok\n", n, ok);
  return ok == n ? 0 : 1;
}

int cmd_hang(const Target& t) {
  Connection c(connect_or_die(t), false);
  print_result("/hang", c.request(t, "/hang", IoStyle::kPlain));
  // The test synchronises on the line above, then kills us. The alarm bounds our life if the
  // test itself dies first: its default action terminates the process.
  alarm(60);
  for (;;) pause();
}

[[noreturn]] void usage() {
  std::fputs(
      "usage: http_client nonblock|iov HOST PORT PATH...\n"
      "       http_client threads HOST PORT N M\n"
      "       http_client fork|clone|spawn|closeall|refused|hang HOST PORT\n"
      "       http_client sequential-new|keepalive HOST PORT N\n",
      stderr);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) usage();
  // A server that closes early must show up as an error message, not a silent SIGPIPE death.
  signal(SIGPIPE, SIG_IGN);
  std::string cmd = argv[1];
  Target t{argv[2], argv[3]};
  std::vector<std::string> rest(argv + 4, argv + argc);

  if (cmd == "nonblock" || cmd == "iov") {
    if (rest.empty()) usage();
    return cmd == "nonblock" ? cmd_nonblock(t, rest) : cmd_iov(t, rest);
  }
  if (cmd == "threads") {
    if (rest.size() != 2) usage();
    return cmd_threads(t, parse_count(argv[4], 1000), parse_count(argv[5], 100000));
  }
  if (cmd == "sequential-new" || cmd == "keepalive") {
    if (rest.size() != 1) usage();
    long n = parse_count(argv[4], 10000000);
    return cmd == "keepalive" ? cmd_keepalive(t, n) : cmd_sequential_new(t, n);
  }
  if (!rest.empty()) usage();
  if (cmd == "fork" || cmd == "clone") return cmd_fork(t, cmd == "clone");
  if (cmd == "spawn") return cmd_spawn(t);
  if (cmd == "closeall") return cmd_closeall(t);
  if (cmd == "refused") return cmd_refused(t);
  if (cmd == "hang") return cmd_hang(t);
  usage();
}
