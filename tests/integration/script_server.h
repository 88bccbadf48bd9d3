// A loopback server from tests/servers/ run by the system python3, by the contract those scripts
// share: one "PORT <n>" line on stdout once listening, exit at EOF on stdin (so a test that dies
// leaves none behind). Traced or not, as the RunOptions say.
#pragma once

#include <string>

#include "tests/integration/harness.h"

namespace httptrace::itest {

class ScriptServer {
 public:
  ScriptServer(const std::string& script, const RunOptions& o) {
    const std::string path = (paths().root / "tests" / "servers" / script).string();
    if (!child_.start({paths().python.string(), path}, o, true, &error_)) return;
    std::string line;
    if (!child_.read_line(&line, milliseconds{10000}) || line.rfind("PORT ", 0) != 0) {
      error_ = "no PORT line: " + line + child_.wait(milliseconds{2000}).describe();
      return;
    }
    port_ = std::stoi(line.substr(5));
  }
  ~ScriptServer() { stop(); }
  ScriptServer(const ScriptServer&) = delete;
  ScriptServer& operator=(const ScriptServer&) = delete;
  // Closes its stdin and waits: once this returns, a traced server's trace is complete.
  RunResult stop() {
    if (stopped_) return {};
    stopped_ = true;
    child_.close_stdin();
    return child_.wait(milliseconds{10000});
  }
  bool ok() const { return port_ > 0; }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  Child child_;
  int port_ = 0;
  bool stopped_ = false;
  std::string error_;
};

}  // namespace httptrace::itest
