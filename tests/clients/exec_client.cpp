// exec_client: children started through the exec entry points that do not go through execve()
// (tests/integration/recorder_exec_test.cpp traces them and counts the children's trace files).
//
//   exec_client get PORT        one GET on a new connection; prints the status and its environment
//   exec_client fexecve PORT    fork + fexecve of "get" (an O_CLOEXEC descriptor of itself),
//                               envp = {PATH=/usr/bin:/bin}
//   exec_client execveat PORT   fork + execveat(AT_FDCWD, itself, "get") with envp = {A=b}, then
//                               fork + execveat(fd, "", AT_EMPTY_PATH) with envp = {B=c}
//   exec_client system PORT     unsetenv("LD_PRELOAD") then system("<itself> get PORT"); then
//                               clearenv() + setenv("C", "d") then popen("<itself> get PORT")
//
// Prints one line per step, so a run traced and untraced can be compared. Exit 0 on success, 1 on
// a failure (message on stderr), 2 on a usage error. libc only: it is what is traced.
#include <fcntl.h>
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

[[noreturn]] void die(const char* what) { loopback_get::die("exec_client", what); }

std::string environment() {
  std::string out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    out += std::string(out.empty() ? "" : ";") + *e;
  }
  return out;
}

int get(int port) {
  std::printf("get: %s, env %s\n", loopback_get::status_line("exec_client", port, "/x").c_str(),
              environment().c_str());
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

// Runs exec in a fork child and prints "<what> child: <status>".
template <typename Exec>
void in_child(const char* what, Exec&& exec) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    exec();
    _exit(127);
  }
  std::printf("%s child: %d\n", what, wait_child(pid));
}

int run(const std::string& cmd, const char* port) {
  const std::string self = self_path();
  char* argv[] = {const_cast<char*>("exec_client"), const_cast<char*>("get"),
                  const_cast<char*>(port), nullptr};
  if (cmd == "fexecve") {
    in_child("fexecve", [&] {
      const int fd = open(self.c_str(), O_RDONLY | O_CLOEXEC);
      char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
      if (fd >= 0) fexecve(fd, argv, envp);
    });
    return 0;
  }
  if (cmd == "execveat") {
    in_child("execveat", [&] {
      char* envp[] = {const_cast<char*>("A=b"), nullptr};
      execveat(AT_FDCWD, self.c_str(), argv, envp, 0);
    });
    in_child("execveat empty path", [&] {
      const int fd = open(self.c_str(), O_RDONLY | O_CLOEXEC);
      char* envp[] = {const_cast<char*>("B=c"), nullptr};
      if (fd >= 0) execveat(fd, "", argv, envp, AT_EMPTY_PATH);
    });
    return 0;
  }
  if (cmd == "system") {
    const std::string line = self + " get " + port;
    unsetenv("LD_PRELOAD");
    std::fflush(stdout);
    const int st = system(line.c_str());
    std::printf("system: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    clearenv();
    setenv("C", "d", 1);
    std::fflush(stdout);
    FILE* f = popen(line.c_str(), "r");
    if (f == nullptr) die("popen");
    char buf[4096];
    while (std::fgets(buf, sizeof buf, f) != nullptr) std::fputs(buf, stdout);
    const int pst = pclose(f);
    std::printf("popen: %d\n", WIFEXITED(pst) ? WEXITSTATUS(pst) : -1);
    return 0;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "get") == 0) return get(std::atoi(argv[2]));
  if (argc == 3) {
    const int rc = run(argv[1], argv[2]);
    if (rc >= 0) return rc;
  }
  std::fputs("usage: exec_client get|fexecve|execveat|system PORT\n", stderr);
  return 2;
}
