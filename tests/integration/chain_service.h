// The services of the distributed-tracing tests (tests/servers/chain_service.py), traced into one
// directory as a user running every service under LD_PRELOAD does; shared by the tests that look
// at a call chain through different exports and reports.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace httptrace::itest {

// Traced runs write into one directory, as a user running every service under LD_PRELOAD does.
inline RunOptions traced_into(const fs::path& dir) {
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir);
  return o;
}

// tests/servers/chain_service.py, traced, on port 0; it exits when we close its stdin.
class Service {
 public:
  Service(const fs::path& trace_dir, std::optional<int> backend) {
    std::vector<std::string> argv = {paths().python.string(), (paths().root / "tests/servers/chain_service.py").string()};
    if (backend) {
      argv.push_back("--backend");
      argv.push_back(std::to_string(*backend));
    }
    if (!child_.start(argv, traced_into(trace_dir), true, &error_)) return;
    std::string line;
    if (!child_.read_line(&line, milliseconds{10000}) || line.rfind("PORT ", 0) != 0) {
      error_ = "service did not print its port: " + line;
      return;
    }
    port_ = std::atoi(line.c_str() + 5);
  }
  ~Service() { stop(); }
  // Ends the service and waits for it, so its trace file is complete.
  RunResult stop() {
    if (stopped_) return {};
    stopped_ = true;
    child_.close_stdin();
    return child_.wait(milliseconds{10000});
  }
  int port() const { return port_; }
  const std::string& error() const { return error_; }

 private:
  Child child_;
  int port_ = 0;
  bool stopped_ = false;
  std::string error_;
};

// A chain: a traced backend, a traced frontend calling it, and a traced curl asking the frontend
// for path (with extra curl arguments before the URL). Ends the services so their traces are
// complete; returns curl's result (out holds the page), or a failure described in err.
inline RunResult run_chain(const fs::path& trace_dir, const std::string& path,
                           const std::vector<std::string>& curl_args = {}) {
  Service backend(trace_dir, std::nullopt);
  if (backend.port() <= 0) return {.err = "backend: " + backend.error()};
  Service frontend(trace_dir, backend.port());
  if (frontend.port() <= 0) return {.err = "frontend: " + frontend.error()};
  std::vector<std::string> argv = {"curl", "-sS"};
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  argv.push_back("http://127.0.0.1:" + std::to_string(frontend.port()) + path);
  RunResult r = run(argv, traced_into(trace_dir));
  frontend.stop();
  backend.stop();
  return r;
}

}  // namespace httptrace::itest
