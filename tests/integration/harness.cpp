#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

extern char** environ;

namespace httptrace::itest {
namespace {

using Clock = std::chrono::steady_clock;

milliseconds remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return std::max(left, milliseconds{0});
}

void close_fd(int* fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

// Our own environment minus anything that would change what the child records: the tests
// decide explicitly whether a child is traced and how.
std::vector<std::string> child_environment(const RunOptions& options) {
  auto set_later = [&](size_t i) {
    for (size_t j = i + 1; j < options.env.size(); ++j) {
      if (options.env[j].first == options.env[i].first) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("LD_PRELOAD=") || kv.starts_with("HTTPTRACE_")) continue;
    bool overridden = false;
    for (const auto& [k, v] : options.env) {
      if (kv.starts_with(k + "=")) overridden = true;
    }
    if (!overridden) env.emplace_back(kv);
  }
  // Later entries win, so a test can override the fixture's defaults.
  for (size_t i = 0; i < options.env.size(); ++i) {
    if (!set_later(i)) env.push_back(options.env[i].first + "=" + options.env[i].second);
  }
  if (options.preload) env.push_back("LD_PRELOAD=" + paths().lib.string());
  return env;
}

std::vector<char*> c_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

const Paths& paths() {
  static const Paths p = [] {
    Paths r;
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    r.build = exe.parent_path();
    r.root = r.build.parent_path();
    r.lib = r.build / "libhttptrace.so";
    r.cli = r.build / "httptrace";
    r.client = r.build / "tests" / "http_client";
    r.server = r.root / "tests" / "servers" / "http_server.py";
    r.python = "/usr/bin/python3";
    return r;
  }();
  return p;
}

std::string RunResult::describe() const {
  std::ostringstream s;
  s << "exit=" << exit_code << " signal=" << signal << (timed_out ? " TIMED OUT" : "")
    << "\n--- stdout ---\n" << out << "\n--- stderr ---\n" << err;
  return s.str();
}

Child::~Child() {
  if (pid_ > 0) {
    kill(-pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  close_fd(&in_);
  close_fd(&out_);
  close_fd(&err_);
}

bool Child::start(const std::vector<std::string>& argv, const RunOptions& options,
                  bool stdin_pipe, std::string* error) {
  int in[2] = {-1, -1}, out[2], err[2];
  if ((stdin_pipe && pipe2(in, O_CLOEXEC) != 0) || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }
  // Everything the child needs is built before fork: between fork and exec only
  // async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<std::string> env = child_environment(options);
  std::vector<char*> c_args = c_array(args);
  std::vector<char*> c_env = c_array(env);
  std::string cwd = options.cwd.string();
  int exec_error[2];
  if (pipe2(exec_error, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return false;
  }

  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    return false;
  }
  if (pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);  // dup2 onto 0 clears CLOEXEC
    dup2(stdin_pipe ? in[0] : devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (options.umask) ::umask(*options.umask);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      int e = errno;
      (void)!write(exec_error[1], &e, sizeof e);
      _exit(127);
    }
    execvpe(c_args[0], c_args.data(), c_env.data());
    int e = errno;
    (void)!write(exec_error[1], &e, sizeof e);
    _exit(127);
  }
  pid_ = pid;
  // Also from the parent, so a kill(-pid) right after start cannot miss the group.
  setpgid(pid, pid);
  close_fd(&exec_error[1]);
  if (stdin_pipe) close(in[0]);
  close(out[1]);
  close(err[1]);
  in_ = stdin_pipe ? in[1] : -1;
  out_ = out[0];
  err_ = err[0];
  // The exec-error pipe closes (CLOEXEC) on a successful exec, or carries the errno.
  int e = 0;
  ssize_t n;
  do {
    n = read(exec_error[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  close(exec_error[0]);
  if (n == sizeof e) {
    *error = "cannot run " + argv[0] + ": " + strerror(e);
    wait(milliseconds{5000});
    return false;
  }
  return true;
}

bool Child::pump(milliseconds budget) {
  pollfd fds[2];
  int n = 0;
  if (out_ >= 0) fds[n++] = {out_, POLLIN, 0};
  if (err_ >= 0) fds[n++] = {err_, POLLIN, 0};
  if (n == 0) return false;
  int rc = poll(fds, n, static_cast<int>(budget.count()));
  if (rc <= 0) return true;
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    int* fd = fds[i].fd == out_ ? &out_ : &err_;
    std::string& buf = fds[i].fd == out_ ? out_buf_ : err_buf_;
    char tmp[65536];
    ssize_t got = read(*fd, tmp, sizeof tmp);
    if (got > 0) {
      buf.append(tmp, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      close_fd(fd);
    }
  }
  return out_ >= 0 || err_ >= 0;
}

bool Child::read_line(std::string* line, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t nl = out_buf_.find('\n', out_pos_);
    if (nl != std::string::npos) {
      *line = out_buf_.substr(out_pos_, nl - out_pos_);
      out_pos_ = nl + 1;
      return true;
    }
    if (out_ < 0 || Clock::now() >= deadline) return false;
    pump(remaining(deadline));
  }
}

void Child::close_stdin() { close_fd(&in_); }

void Child::signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

RunResult Child::wait(milliseconds timeout) {
  RunResult r;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline && pump(remaining(deadline))) {
  }
  if (pid_ > 0) {
    int status = 0;
    pid_t got = waitpid(pid_, &status, WNOHANG);
    while (got == 0 && Clock::now() < deadline) {
      // Pipes are closed but the process has not exited yet (or handed its pipes on). Its
      // exit is imminent; wait in short bounded slices rather than blocking forever.
      pollfd none{-1, 0, 0};
      poll(&none, 1, 5);
      got = waitpid(pid_, &status, WNOHANG);
    }
    if (got == 0) {
      r.timed_out = true;
      kill(-pid_, SIGKILL);
      got = waitpid(pid_, &status, 0);
    }
    // Children it left behind in its group (a forked child outliving the parent) go too.
    kill(-pid_, SIGKILL);
    if (got == pid_) {
      if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    }
    pid_ = -1;
  }
  close_fd(&in_);
  close_fd(&out_);
  close_fd(&err_);
  r.out = out_buf_.substr(std::min(out_pos_, out_buf_.size()));
  r.err = err_buf_;
  return r;
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
  Child c;
  std::string error;
  if (!c.start(argv, options, false, &error)) {
    RunResult r;
    r.err = error;
    return r;
  }
  return c.wait(options.timeout);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/httptrace-itest-XXXXXX";
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty() || std::getenv("HTTPTRACE_ITEST_KEEP") != nullptr) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

bool make_self_signed_cert(const fs::path& dir, TlsFiles* out, std::string* error) {
  out->cert = dir / "cert.pem";
  out->key = dir / "key.pem";
  RunResult r = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                     "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                     "-keyout", out->key.string(), "-out", out->cert.string()});
  if (r.exit_code != 0) {
    *error = "openssl req failed: " + r.describe();
    return false;
  }
  return true;
}

TestServer::TestServer(const ServerOptions& options) : tls_(options.tls.has_value()) {
  std::vector<std::string> argv = {paths().python.string(), paths().server.string()};
  if (options.ipv6) argv.push_back("--ipv6");
  if (options.tls) {
    argv.push_back("--tls");
    argv.push_back(options.tls->cert.string());
    argv.push_back(options.tls->key.string());
  }
  if (!child_.start(argv, RunOptions{}, true, &error_)) return;
  std::string line;
  if (!child_.read_line(&line, milliseconds{10000})) {
    child_.close_stdin();
    error_ = "server did not print its port: " + child_.wait(milliseconds{2000}).describe();
    return;
  }
  if (line.rfind("PORT ", 0) != 0 || (port_ = std::atoi(line.c_str() + 5)) <= 0) {
    error_ = "unexpected server line: " + line;
    port_ = 0;
  }
}

TestServer::~TestServer() {
  // EOF on its stdin is the server's signal to exit; the Child destructor SIGKILLs a straggler.
  child_.close_stdin();
  child_.wait(milliseconds{3000});
}

std::string TestServer::url(const std::string& path, const std::string& host) const {
  return std::string(tls_ ? "https://" : "http://") + host + ":" + std::to_string(port_) + path;
}

ClosedPort::ClosedPort() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port_ = ntohs(a.sin_port);
  }
}

ClosedPort::~ClosedPort() {
  if (fd_ >= 0) close(fd_);
}

Env trace_env(const fs::path& dir) {
  // The SPEC default name, which is also what the CLI looks for in a directory (*.trace*).
  return {{"HTTPTRACE_OUTPUT", (dir / "httptrace.%p.trace").string()}};
}

Export export_json(const fs::path& trace_path) {
  Export e;
  RunResult r = run({paths().cli.string(), "export", "--format", "json", trace_path.string()});
  if (r.exit_code != 0) {
    e.error = "httptrace export failed: " + r.describe();
    return e;
  }
  e.doc = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (e.doc.is_discarded()) {
    e.error = "export output is not JSON:\n" + r.out.substr(0, 2000);
    return e;
  }
  e.ok = true;
  return e;
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace httptrace::itest
