// The common shape of an integration test: one loopback server, one fresh trace directory,
// a traced run of a real program, then the JSON export of what it recorded.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/trace_json.h"

namespace httptrace::itest {

class TracedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(paths().lib)) << paths().lib << " missing: run make";
    ASSERT_TRUE(fs::exists(paths().cli)) << paths().cli << " missing: run make";
    ASSERT_TRUE(fs::exists(paths().client)) << paths().client << " missing: run make integration";
    ASSERT_TRUE(server_.ok()) << server_.error();
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
  }

  // Runs argv with the recorder preloaded, writing httptrace.<pid>.trace files into dir_.
  RunResult traced(const std::vector<std::string>& argv, const Env& extra = {}) {
    RunOptions o;
    o.preload = true;
    o.env = trace_env(dir_.path());
    o.env.insert(o.env.end(), extra.begin(), extra.end());
    last_traced_ = run(argv, o);
    return last_traced_;
  }

  static RunResult untraced(const std::vector<std::string>& argv) { return run(argv); }

  std::vector<std::string> client(const std::string& cmd, std::vector<std::string> args) const {
    std::vector<std::string> argv = {paths().client.string(), cmd, "localhost", server_.port_str()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  TestServer server_;
  TempDir dir_;
  RunResult last_traced_;  // shown when an export fails: the loader's complaints land there
};

// Unpacks an Export into `doc`, failing the test (fatally) if the CLI could not produce it.
// Only inside a TracedTest.
#define HT_EXPORT(doc, path)                                                    \
  ::httptrace::itest::Export doc##_export = ::httptrace::itest::export_json(path); \
  ASSERT_TRUE(doc##_export.ok) << doc##_export.error << "\ntraced run: "          \
                               << last_traced_.describe();                      \
  const ::nlohmann::json& doc = doc##_export.doc

}  // namespace httptrace::itest
