// hooks_client: programs whose socket and descriptor calls reproduce, on purpose, the cases the
// recorder's hooks got wrong (issue 7): the integration test recorder_hooks_test.cpp traces them
// and reads the raw trace.
//
//   hooks_client early-server FIFO         (run untraced) one connection, keep-alive; a POST is
//                                          answered as soon as its headers are read, and its body
//                                          is read only after a byte arrives on FIFO. Prints
//                                          "PORT <n>" first.
//   hooks_client early-response PORT FIFO  GET /first; then a reader thread waits for the response
//                                          while the main thread send()s a POST with a 1 MiB body
//                                          in one call: the response arrives while that send() is
//                                          blocked. The reader writes a byte to FIFO once it has it.
//   hooks_client rawclose PORT FILE        five connections, each closed with a raw close system
//                                          call (as libuv does) and its number reused by dup(),
//                                          fcntl(F_DUPFD), a UDP socket(), inotify_init1() and a
//                                          descriptor received with SCM_RIGHTS; writes to FILE
//                                          through the dup, the F_DUPFD and the received one
//   hooks_client get PORT                  one GET on a new connection; prints its environment
//   hooks_client exec-env PORT             fork + execve of "get" with envp = {PATH}, then
//                                          posix_spawn of "get" with envp = {FOO=bar}, then
//                                          vfork + execve of "get" with envp = {A=b}
//   hooks_client exec-keep PORT            a keep-alive connection and a close-on-exec one, one
//                                          request each; then execve of "reuse" (envp = {}),
//                                          which uses the first for 5 more requests
//   hooks_client reuse FD                  5 requests on the connected socket FD, then close;
//                                          prints its environment
//
// Prints one line per step so a run traced and untraced can be compared. Exit 0 on success, 1 on
// a failure (message on stderr), 2 on a usage error. libc and pthread only: it is what is traced.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr int kIoTimeoutMs = 20000;  // bounds a broken peer; no test waits this long

[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("hooks_client: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, " (errno %d: %s)\n", errno, std::strerror(errno));
  va_end(ap);
  std::exit(1);
}

void wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  const int r = poll(&p, 1, kIoTimeoutMs);
  if (r <= 0) die("poll timed out");
}

void send_all(int fd, const char* data, size_t len) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("send");
    done += static_cast<size_t>(n);
  }
}

// Reads up to and including the blank line that ends the header block; *extra gets the bytes
// read past it. False on a clean EOF before any byte.
bool read_head(int fd, std::string* head, std::string* extra) {
  head->clear();
  char buf[4096];
  for (int i = 0; i < 100000; ++i) {
    wait_for(fd, POLLIN);
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("recv");
    if (n == 0) {
      if (head->empty()) return false;
      die("EOF inside a header block");
    }
    head->append(buf, static_cast<size_t>(n));
    const size_t end = head->find("\r\n\r\n");
    if (end != std::string::npos) {
      *extra = head->substr(end + 4);
      head->resize(end + 4);
      return true;
    }
  }
  die("header block too long");
}

size_t content_length(const std::string& head) {
  const size_t p = head.find("Content-Length: ");
  return p == std::string::npos ? 0 : std::strtoul(head.c_str() + p + 16, nullptr, 10);
}

void discard(int fd, size_t len) {
  char buf[65536];
  while (len > 0) {
    wait_for(fd, POLLIN);
    const ssize_t n = recv(fd, buf, len < sizeof buf ? len : sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("recv body");
    len -= static_cast<size_t>(n);
  }
}

// One response: its status line and body length.
std::string read_response(int fd) {
  std::string head, extra;
  if (!read_head(fd, &head, &extra)) die("EOF before the response");
  const size_t len = content_length(head);
  if (extra.size() < len) discard(fd, len - extra.size());
  return head.substr(0, head.find("\r\n")) + " " + std::to_string(len);
}

int connect_local(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  return fd;
}

int listen_local(int rcvbuf) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Set on the listener so the accepted socket has it from the start (window scaling).
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind");
  if (listen(fd, 8) != 0) die("listen");
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("PORT %d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  return fd;
}

void fifo_byte(const char* path, bool write_it) {
  const int fd = open(path, write_it ? O_WRONLY : O_RDONLY);
  if (fd < 0) die("open %s", path);
  char c = 'x';
  if ((write_it ? write(fd, &c, 1) : read(fd, &c, 1)) != 1) die("fifo");
  close(fd);
}

const char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";

int early_server(const char* fifo) {
  const int lfd = listen_local(4096);
  wait_for(lfd, POLLIN);
  const int fd = accept(lfd, nullptr, nullptr);
  if (fd < 0) die("accept");
  std::string head, extra;
  while (read_head(fd, &head, &extra)) {
    const size_t len = content_length(head);
    send_all(fd, kOk, sizeof kOk - 1);
    if (len > 0) {
      fifo_byte(fifo, false);  // the client has the response: now let its send() finish
      if (extra.size() < len) discard(fd, len - extra.size());
    }
  }
  close(fd);
  close(lfd);
  return 0;
}

struct EarlyReader {
  int fd;
  const char* fifo;
  std::atomic<bool>* sending;
  std::string status;
  bool during_send = false;
};

void* early_reader(void* arg) {
  auto* r = static_cast<EarlyReader*>(arg);
  r->status = read_response(r->fd);
  r->during_send = r->sending->load();
  fifo_byte(r->fifo, true);
  return nullptr;
}

int early_response(int port, const char* fifo) {
  const int fd = connect_local(port);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const std::string get = "GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  send_all(fd, get.data(), get.size());
  std::printf("first: %s\n", read_response(fd).c_str());

  std::atomic<bool> sending{true};
  EarlyReader r{fd, fifo, &sending, {}, false};
  pthread_t t;
  if (pthread_create(&t, nullptr, early_reader, &r) != 0) die("pthread_create");
  const size_t body = 1 << 20;
  std::string post = "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                     std::to_string(body) + "\r\n\r\n";
  post.append(body, 'b');
  // One blocking send() of the whole request: it cannot return before the server reads the body,
  // which it does only after our reader has the response.
  const ssize_t n = send(fd, post.data(), post.size(), MSG_NOSIGNAL);
  sending.store(false);
  if (n != static_cast<ssize_t>(post.size())) die("send of the POST returned %zd", n);
  pthread_join(t, nullptr);
  std::printf("early: %s, read while sending: %s\n", r.status.c_str(),
              r.during_send ? "yes" : "no");
  close(fd);
  return 0;
}

int raw_close(int fd) { return static_cast<int>(syscall(SYS_close, fd)); }

// Sends fd over the socket pair and returns the number it arrives as (SCM_RIGHTS).
int pass_fd(const int pair[2], int fd) {
  char byte = 'f';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(pair[0], &m, 0) != 1) die("sendmsg");
  std::memset(control, 0, sizeof control);
  m.msg_controllen = sizeof control;
  if (recvmsg(pair[1], &m, 0) != 1) die("recvmsg");
  c = CMSG_FIRSTHDR(&m);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) die("no SCM_RIGHTS");
  int got;
  std::memcpy(&got, CMSG_DATA(c), sizeof(int));
  return got;
}

int rawclose(int port, const char* path) {
  const int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (file < 0) die("open %s", path);
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) die("socketpair");
  const std::string get = "GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (int step = 0; step < 5; ++step) {
    const int s = connect_local(port);
    send_all(s, get.data(), get.size());
    const std::string status = read_response(s);
    if (raw_close(s) != 0) die("raw close");
    int reused = -1;
    const char* how = "";
    if (step == 0) {
      reused = dup(file);
      how = "dup";
    } else if (step == 1) {
      reused = fcntl(file, F_DUPFD, s);
      how = "F_DUPFD";
    } else if (step == 2) {
      reused = socket(AF_INET, SOCK_DGRAM, 0);
      how = "udp socket";
    } else if (step == 3) {
      reused = inotify_init1(IN_CLOEXEC);
      how = "inotify";
    } else {
      reused = pass_fd(pair, file);
      how = "SCM_RIGHTS";
    }
    if (reused != s) die("%s gave %d, not the closed %d", how, reused, s);
    if (step != 2 && step != 3) {
      const char line[] = "file-bytes\n";
      if (write(reused, line, sizeof line - 1) != static_cast<ssize_t>(sizeof line - 1)) {
        die("write to the file");
      }
    }
    std::printf("%s: %s, fd %d reused by %s\n", get.substr(0, 6).c_str(), status.c_str(), s, how);
    close(reused);
  }
  close(pair[0]);
  close(pair[1]);
  close(file);
  return 0;
}

const std::string kGet = "GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// The whole environment, ';'-separated: a child must see exactly what its parent gave it.
std::string environment() {
  std::string out;
  for (char** e = environ; *e != nullptr; ++e) out += std::string(out.empty() ? "" : ";") + *e;
  return out;
}

int get(int port) {
  const int fd = connect_local(port);
  send_all(fd, kGet.data(), kGet.size());
  std::printf("get: %s, env %s\n", read_response(fd).c_str(), environment().c_str());
  close(fd);
  return 0;
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) die("readlink");
  return std::string(buf, static_cast<size_t>(n));
}

int wait_child(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) die("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int exec_env(const char* port) {
  const std::string self = self_path();
  char* argv[] = {const_cast<char*>("hooks_client"), const_cast<char*>("get"),
                  const_cast<char*>(port), nullptr};
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
    execve(self.c_str(), argv, envp);
    _exit(127);
  }
  std::printf("execve child: %d\n", wait_child(pid));
  std::fflush(stdout);
  char* envp[] = {const_cast<char*>("FOO=bar"), nullptr};
  pid_t spawned = 0;
  if (posix_spawn(&spawned, self.c_str(), nullptr, nullptr, argv, envp) != 0) die("posix_spawn");
  std::printf("posix_spawn child: %d\n", wait_child(spawned));
  std::fflush(stdout);
  // A vfork child runs the exec hook in our memory, on our stack.
  char* venvp[] = {const_cast<char*>("A=b"), nullptr};
  const pid_t vpid = vfork();
  if (vpid < 0) die("vfork");
  if (vpid == 0) {
    execve(self.c_str(), argv, venvp);
    _exit(127);
  }
  std::printf("vfork child: %d\n", wait_child(vpid));
  return 0;
}

int exec_keep(int port) {
  const int keep = connect_local(port);
  send_all(keep, kGet.data(), kGet.size());
  std::printf("kept: %s\n", read_response(keep).c_str());
  const int other = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (other < 0 || connect(other, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  send_all(other, kGet.data(), kGet.size());
  std::printf("close-on-exec: %s\n", read_response(other).c_str());
  std::fflush(stdout);
  const std::string fd = std::to_string(keep);
  char* argv[] = {const_cast<char*>("hooks_client"), const_cast<char*>("reuse"),
                  const_cast<char*>(fd.c_str()), nullptr};
  char* envp[] = {nullptr};
  execve(self_path().c_str(), argv, envp);
  die("execve");
}

int reuse(int fd) {
  for (int i = 0; i < 5; ++i) {
    send_all(fd, kGet.data(), kGet.size());
    std::printf("reuse %d: %s\n", i, read_response(fd).c_str());
  }
  std::printf("env [%s]\n", environment().c_str());
  close(fd);
  return 0;
}

int usage() {
  std::fputs("usage: hooks_client early-server FIFO | early-response PORT FIFO | "
             "rawclose PORT FILE | get PORT | exec-env PORT | exec-keep PORT | reuse FD\n",
             stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  if (cmd == "early-server" && argc == 3) return early_server(argv[2]);
  if (cmd == "early-response" && argc == 4) return early_response(std::atoi(argv[2]), argv[3]);
  if (cmd == "rawclose" && argc == 4) return rawclose(std::atoi(argv[2]), argv[3]);
  if (cmd == "get" && argc == 3) return get(std::atoi(argv[2]));
  if (cmd == "exec-env" && argc == 3) return exec_env(argv[2]);
  if (cmd == "exec-keep" && argc == 3) return exec_keep(std::atoi(argv[2]));
  if (cmd == "reuse" && argc == 3) return reuse(std::atoi(argv[2]));
  return usage();
}
