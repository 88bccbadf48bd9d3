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
//   exec_client system-cancel DIR
//                               unsetenv("LD_PRELOAD"), then a thread runs system() of a shell
//                               that says it is up through the FIFO DIR/up and then sleeps; the
//                               thread is cancelled while system() waits; prints SIGINT's and
//                               SIGQUIT's actions and whether the shell is still there
//
// Prints one line per step, so a run traced and untraced can be compared. Exit 0 on success, 1 on
// a failure (message on stderr), 2 on a usage error. libc only: it is what is traced.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
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
  if (cmd == "system-cancel") {
    // glibc's system() kills and reaps the shell of a cancelled caller and gives SIGINT and
    // SIGQUIT back their actions; a traced one must too.
    const std::string fifo = std::string(port) + "/up";
    if (mkfifo(fifo.c_str(), 0600) != 0) die("mkfifo");
    unsetenv("LD_PRELOAD");
    static std::string line;
    line = "echo $$ > " + fifo + "; exec sleep 30 </dev/null >/dev/null 2>&1";
    pthread_t t;
    if (pthread_create(&t, nullptr, [](void*) -> void* { system(line.c_str()); return nullptr; }, nullptr) != 0)
      die("pthread_create");
    FILE* up = std::fopen(fifo.c_str(), "r");  // returns once the shell has opened it
    int shell = 0;
    if (up == nullptr || std::fscanf(up, "%d", &shell) != 1) die("fifo");
    std::fclose(up);
    // The shell is up, so its system() is past the spawn and in (or about to enter) waitpid.
    pthread_cancel(t);
    void* ret = nullptr;
    pthread_join(t, &ret);
    std::printf("cancelled: %s\n", ret == PTHREAD_CANCELED ? "yes" : "no");
    for (int sig : {SIGINT, SIGQUIT}) {
      struct sigaction now = {};
      sigaction(sig, nullptr, &now);
      std::printf("%s: %s\n", sig == SIGINT ? "SIGINT" : "SIGQUIT", now.sa_handler == SIG_IGN ? "ignored" : "default");
    }
    const bool left = kill(shell, 0) == 0 && waitpid(shell, nullptr, WNOHANG) == 0;
    std::printf("shell: %s\n", left ? "still running" : "gone");
    if (left) {
      kill(shell, SIGKILL);
      waitpid(shell, nullptr, 0);
    }
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
  std::fputs("usage: exec_client get|fexecve|execveat|system PORT | system-cancel DIR\n", stderr);
  return 2;
}
