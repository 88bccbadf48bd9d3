// The recorder's SIGBUS guard (a trace file truncated under us must not kill the program) is
// invisible: the program sees its own SIGBUS action, its handler gets its own faults and never
// ours, the default action still kills, and an ignored SIGBUS stays ignored across exec
// (tests/clients/signals_client.cpp). Output traced and untraced must be identical. And a
// signal handler that does socket I/O at any instruction of a hook changes nothing the program
// sees and costs none of the program's own events.
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

// signals_client stepped: a GET and its response on connection A, both calls single-stepped, and
// at every instruction of our hooks (and of libc's call under them) a SIGTRAP handler sends one
// byte on connection B, as a self-pipe signal handler would.
TEST_F(RecorderSignals, AHandlerDoingIoAtEveryInstructionOfAHookLosesNoneOfTheProgramsEvents) {
  const std::vector<std::string> argv = {signals_client(), "stepped", "20"};
  const RunResult plain = untraced(argv);
  ASSERT_EQ(plain.exit_code, 0) << plain.describe();
  if (plain.out.find("x86-64 only") != std::string::npos) GTEST_SKIP() << plain.out;
  const RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");
  // Line 1 is the port, line 3 the handler's count (more instructions traced): line 2 is what
  // the program saw of its calls.
  auto line = [](const std::string& s, int n) {
    size_t at = 0;
    for (int i = 1; i < n; ++i) at = s.find('\n', at) + 1;
    return s.substr(at, s.find('\n', at) - at);
  };
  EXPECT_EQ(line(r.out, 2), "rounds 20: sends whole 20, responses whole 20, errno kept 40 of 40 calls");
  EXPECT_EQ(line(r.out, 2), line(plain.out, 2));
  const int port = std::stoi(line(r.out, 1).substr(5));
  long sent = -1, received = -1;
  ASSERT_EQ(std::sscanf(line(r.out, 3).c_str(), "handler sent %ld, received %ld", &sent, &received), 2)
      << r.out;
  EXPECT_EQ(sent, received);
  EXPECT_GT(sent, 20 * 100) << "hundreds of instructions per traced call";

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  const auto out = connections_to(doc, port);  // A, then B: both connect to the one listener
  ASSERT_EQ(out.size(), 2u) << doc.dump(1);
  // A: every stepped call is in the trace, none lost to the handler's events.
  SCOPED_TRACE(describe(out[0]));
  ASSERT_EQ(out[0]["requests"].size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(targets(out[0])[i], "/r" + std::to_string(i));
    EXPECT_EQ(statuses(out[0])[i], 200);
  }
  EXPECT_EQ(out[0]["bytes_sent"].get<int64_t>(), 10 * 35 + 10 * 36);
  EXPECT_EQ(out[0]["bytes_received"].get<int64_t>(), 20 * 40);
  // B: the handler's sends, each one byte, recorded or counted. Only events nested inside one of
  // our emits may be dropped (a segment keeps 1 KiB for them), and only the handler's are.
  const int64_t nested = doc["summary"]["dropped_by_cause"]["nested"].get<int64_t>();
  EXPECT_EQ(doc["summary"]["dropped_events"].get<int64_t>(), nested);
  EXPECT_EQ(out[1]["bytes_sent"].get<int64_t>() + nested, sent);
  EXPECT_LT(nested, sent / 10);
  // B's accepted end reads them unstepped: every byte.
  const std::string b_local = out[1]["local"].get<std::string>();
  int64_t accepted_b = -1;
  for (const json& c : doc["connections"]) {
    if (c["peer"] == b_local) accepted_b = c["bytes_received"].get<int64_t>();
  }
  EXPECT_EQ(accepted_b, received);
}

}  // namespace
}  // namespace httptrace::itest
