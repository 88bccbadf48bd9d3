// drop_client: a server-style process tree whose worker drops privileges, as nginx started as
// root does with `user nobody;` (tests/integration/recorder_workers_test.cpp).
//
//   drop_client PORT [truncate]  a GET; then a fork child that switches to uid/gid 65534 and
//                                makes a GET of its own; the parent waits for it and prints its
//                                exit status. With "truncate" the parent first truncates its own
//                                trace file (HTTPTRACE_OUTPUT, as logrotate's copytruncate would).
//
// Prints one line per step. Must run as root (exit 2 otherwise: nothing to test). Exit 0 on
// success, 1 on a failure.
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "drop_client: %s (errno %d: %s)\n", what, errno, std::strerror(errno));
  std::exit(1);
}

void get(const char* who, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  const char req[] = "GET /w HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof req - 1)) {
    die("send");
  }
  std::string resp;
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) die("poll timed out");
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("recv");
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  std::printf("%s: %s\n", who, resp.substr(0, resp.find("\r\n")).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || geteuid() != 0) {
    std::fputs("usage (as root): drop_client PORT [truncate]\n", stderr);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  get("master", port);
  const char* out = getenv("HTTPTRACE_OUTPUT");
  if (argc == 3 && std::strcmp(argv[2], "truncate") == 0 && out != nullptr) {
    std::string path = out;
    const size_t at = path.find("%p");
    if (at != std::string::npos) path.replace(at, 2, std::to_string(getpid()));
    (void)truncate(path.c_str(), 0);
  }
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) die("setuid");
    get("worker", port);
    std::fflush(stdout);
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) die("waitpid");
  std::printf("worker exit: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}
