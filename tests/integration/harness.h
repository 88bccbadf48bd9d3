// The integration-test harness: runs real programs (with and without libhttptrace.so preloaded)
// against a real loopback server, and reads what the recorder wrote through the real CLI.
//
// Every wait is bounded: a child that outlives its timeout is killed (its whole process group),
// a server that does not announce its port in time fails the test. Nothing sleeps to
// synchronise; the server's "PORT <n>" line and a client's own stdout lines are the signals.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace httptrace::itest {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Env = std::vector<std::pair<std::string, std::string>>;

// Where the build and the sources are, found from /proc/self/exe (build/integration_tests), so
// the suite runs from any working directory.
struct Paths {
  fs::path build;     // .../build
  fs::path root;      // the repository
  fs::path lib;       // build/libhttptrace.so
  fs::path cli;       // build/httptrace
  fs::path client;    // build/tests/http_client
  fs::path server;    // tests/servers/http_server.py
  fs::path python;    // the system python3: stdlib only, no version manager shims in between
};
const Paths& paths();

struct RunOptions {
  Env env;                        // added to (or replacing in) a cleaned copy of our environment
  bool preload = false;           // LD_PRELOAD=build/libhttptrace.so
  milliseconds timeout{20000};
  std::optional<mode_t> umask;    // set in the child before exec
  fs::path cwd;                   // empty: inherit
};

struct RunResult {
  int exit_code = -1;   // WEXITSTATUS, or -1 when killed by a signal
  int signal = 0;       // the terminating signal, 0 if it exited
  bool timed_out = false;
  std::string out;
  std::string err;
  std::string describe() const;  // for failure messages
};

// A child process with its stdout/stderr on pipes (and optionally its stdin), in its own
// process group so a timeout kills everything it started.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  // Returns false (with *error set) if the program could not be started.
  bool start(const std::vector<std::string>& argv, const RunOptions& options, bool stdin_pipe,
             std::string* error);
  // Reads stdout up to and excluding the next '\n'. False on EOF or when timeout passes.
  bool read_line(std::string* line, milliseconds timeout);
  void close_stdin();
  void signal(int sig);  // to the child alone, not its group
  // Collects output until both pipes close, then reaps. Past the timeout the process group is
  // killed with SIGKILL and timed_out is set.
  RunResult wait(milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  bool pump(milliseconds budget);  // one poll round; false when both pipes are closed
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  int err_ = -1;
  std::string out_buf_;
  std::string err_buf_;
  size_t out_pos_ = 0;  // read_line consumed out_buf_[0, out_pos_)
};

RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// A fresh directory per test (HTTPTRACE_OUTPUT goes here). Removed on destruction unless
// HTTPTRACE_ITEST_KEEP is set, for post-mortems.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct TlsFiles {
  fs::path cert;
  fs::path key;
};
// A self-signed P-256 certificate for CN=localhost (SAN localhost, 127.0.0.1), valid one day.
bool make_self_signed_cert(const fs::path& dir, TlsFiles* out, std::string* error);

struct ServerOptions {
  bool ipv6 = false;
  std::optional<TlsFiles> tls;
};

// tests/servers/http_server.py, started on port 0. It exits when we close its stdin.
class TestServer {
 public:
  explicit TestServer(const ServerOptions& options = {});
  ~TestServer();
  bool ok() const { return port_ > 0; }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string port_str() const { return std::to_string(port_); }
  // http[s]://HOST:PORT/PATH with HOST "localhost" by default.
  std::string url(const std::string& path, const std::string& host = "localhost") const;

 private:
  Child child_;
  bool tls_ = false;
  int port_ = 0;
  std::string error_;
};

// A loopback TCP port where nothing listens: the socket is bound but never listens, so every
// connect is refused and nobody else can take the port while this object lives.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  int port() const { return port_; }
  std::string port_str() const { return std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Environment for a traced run writing one file per process into dir.
Env trace_env(const fs::path& dir);

// `httptrace export --format json DIR`, parsed.
struct Export {
  bool ok = false;
  std::string error;   // why not ok: exit status, stderr, parse error
  nlohmann::json doc;
};
Export export_json(const fs::path& trace_path);

std::vector<fs::path> files_in(const fs::path& dir);

}  // namespace httptrace::itest
