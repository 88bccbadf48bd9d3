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
#include <grp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/clients/loopback_get.h"

namespace {

[[noreturn]] void die(const char* what) { loopback_get::die("drop_client", what); }

void get(const char* who, int port) {
  std::printf("%s: %s\n", who, loopback_get::status_line("drop_client", port, "/w").c_str());
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
