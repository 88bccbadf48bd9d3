// The recorder's SIGBUS guard (a trace file truncated under us must not kill the program) is
// invisible: the program sees its own SIGBUS action, its handler gets its own faults and never
// ours, the default action still kills, and an ignored SIGBUS stays ignored across exec
// (tests/clients/signals_client.cpp). Output traced and untraced must be identical.
#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

class RecorderSignals : public TracedTest {
 protected:
  std::string signals_client() const {
    return (paths().build / "tests" / "signals_client").string();
  }
  void SetUp() override {
    TracedTest::SetUp();
    ASSERT_TRUE(fs::exists(signals_client())) << "run make integration";
  }
};

TEST_F(RecorderSignals, ProgramSeesAndGetsOnlyItsOwnSigbusAction) {
  const std::vector<std::string> argv = {signals_client(), "own", server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* line : {"before: default\n", "signal() returned: default\n", "old: default\n",
                           "installed: own\n", "own fault: calls 1, at its address yes\n",
                           "after the trace was truncated: calls 1\n", "restored: default\n",
                           "child: signal 7\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " in\n" << r.out;
  }
  EXPECT_EQ(r.out, untraced(argv).out);
  EXPECT_EQ(r.err, "");
}

TEST_F(RecorderSignals, OneShotHandlerAndIgnoredKillBehaveAsUntraced) {
  const std::vector<std::string> argv = {signals_client(), "oneshot", server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* line : {"one-shot installed: own, SIGUSR1 in mask 1, SIGBUS in mask 0\n",
                           "after one shot: default\n", "signal() returned default\n",
                           "still here, calls 1\n", "ignored: ignore\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " in\n" << r.out;
  }
  EXPECT_EQ(r.out, untraced(argv).out);
}

TEST_F(RecorderSignals, IgnoredSigbusStaysIgnoredAcrossExec) {
  const std::vector<std::string> argv = {signals_client(), "exec-ign", server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("ignored: ignore\n"), std::string::npos) << r.out;
  const size_t first = r.out.find("show: ignore\n");  // the posix_spawn child, then the exec
  ASSERT_NE(first, std::string::npos) << r.out;
  EXPECT_NE(r.out.find("show: ignore\n", first + 1), std::string::npos) << r.out;
  // posix_spawn, system() and the exec: three children, each started with SIGBUS ignored.
  size_t shows = 0;
  for (size_t at = r.out.find("show: "); at != std::string::npos; at = r.out.find("show: ", at + 1)) ++shows;
  EXPECT_EQ(shows, 3u) << r.out;
  EXPECT_EQ(r.out.find("show: default"), std::string::npos) << r.out;
  EXPECT_EQ(r.out, untraced(argv).out);
}

}  // namespace
}  // namespace httptrace::itest
