// The recorder's SIGBUS guard (a trace file truncated under us must not kill the program) is
// invisible: the program sees its own SIGBUS action, its handler gets its own faults and never
// ours, the default action still kills, and an ignored SIGBUS stays ignored across exec
// (tests/clients/signals_client.cpp). Output traced and untraced must be identical. And a
// signal handler that does socket I/O at any instruction of a hook changes nothing the program
// sees and costs none of the program's own events.
#include <map>

#include "tests/integration/fixture.h"
#include "tests/unit/interpose_test_trace.h"

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
// at every instruction of our hooks (and of libc's call under them) a SIGTRAP handler does I/O of
// its own: one byte sent on connection B, as a self-pipe signal handler would, or a TCP socket
// opened and closed.
class SteppedHooks : public RecorderSignals {
 protected:
  // Runs `stepped 20 [mode]` traced and untraced; returns the handler's count line (the third).
  std::string run_stepped(const std::vector<std::string>& mode) {
    std::vector<std::string> argv = {signals_client(), "stepped", "20"};
    argv.insert(argv.end(), mode.begin(), mode.end());
    const RunResult plain = untraced(argv);
    EXPECT_EQ(plain.exit_code, 0) << plain.describe();
    if (plain.out.find("x86-64 only") != std::string::npos) return "";
    const RunResult r = traced(argv);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.err, "");
    // Line 1 is the port, line 3 the handler's count (more instructions traced): line 2 is what
    // the program saw of its calls.
    EXPECT_EQ(line(r.out, 2),
              "rounds 20: sends whole 20, responses whole 20, errno kept 40 of 40 calls, "
              "socket-connect-close 20");
    EXPECT_EQ(line(r.out, 2), line(plain.out, 2));
    port_ = std::stoi(line(r.out, 1).substr(5));
    return line(r.out, 3);
  }
  static std::string line(const std::string& s, int n) {
    size_t at = 0;
    for (int i = 1; i < n; ++i) at = s.find('\n', at) + 1;
    return s.substr(at, s.find('\n', at) - at);
  }
  // A: every stepped call is in the trace, none lost to the handler's events; and each round's
  // third connection, opened, connected and closed stepped. Returns {A, B}: the connection with
  // the requests, and the other one that stayed open.
  std::vector<json> check_a(const json& doc) {
    EXPECT_EQ(doc["summary"]["warnings"], 0);
    std::vector<json> ab, cycles;
    for (const json& c : connections_to(doc, port_)) {
      (c["close_ns"].is_null() ? ab : cycles).push_back(c);
    }
    EXPECT_EQ(cycles.size(), 20u) << doc.dump(1);
    // Their accepted ends, accepted and closed stepped.
    size_t accepted = 0;
    for (const json& c : doc["connections"]) {
      accepted += c["direction"] == "inbound" && !c["close_ns"].is_null();
    }
    EXPECT_EQ(accepted, 20u);
    for (const json& c : cycles) {
      EXPECT_FALSE(c["connect"].is_null()) << c.dump(1);
      if (!c["connect"].is_null()) {
        EXPECT_TRUE(c["connect"]["error"].is_null()) << c.dump(1);
      }
      EXPECT_FALSE(c["failed"].get<bool>()) << c.dump(1);
    }
    EXPECT_EQ(ab.size(), 2u) << doc.dump(1);
    if (ab.size() != 2) return ab;
    if (ab[0]["requests"].empty()) std::swap(ab[0], ab[1]);
    SCOPED_TRACE(describe(ab[0]));
    EXPECT_EQ(ab[0]["requests"].size(), 20u);
    for (size_t i = 0; i < 20 && i < ab[0]["requests"].size(); ++i) {
      EXPECT_EQ(targets(ab[0])[i], "/r" + std::to_string(i));
      EXPECT_EQ(statuses(ab[0])[i], 200);
    }
    EXPECT_EQ(ab[0]["bytes_sent"].get<int64_t>(), 10 * 35 + 10 * 36);
    EXPECT_EQ(ab[0]["bytes_received"].get<int64_t>(), 20 * 40);
    // Only the handler's events may be dropped: those nested inside one of our emits past the
    // 1 KiB a segment keeps for them.
    EXPECT_EQ(doc["summary"]["dropped_events"], doc["summary"]["dropped_by_cause"]["nested"]);
    return ab;
  }
  int port_ = 0;
};

TEST_F(SteppedHooks, AHandlerSendingAtEveryInstructionOfAHookLosesNoneOfTheProgramsEvents) {
  const std::string handler = run_stepped({});
  if (handler.empty()) GTEST_SKIP() << "single-stepping is x86-64 only";
  long sent = -1, received = -1;
  ASSERT_EQ(std::sscanf(handler.c_str(), "handler sent %ld, received %ld", &sent, &received), 2)
      << handler;
  EXPECT_EQ(sent, received);
  EXPECT_GT(sent, 20 * 100) << "hundreds of instructions per traced call";

  HT_EXPORT(doc, dir_.path());
  const auto out = check_a(doc);
  ASSERT_EQ(out.size(), 2u) << doc.dump(1);
  // B: the handler's sends, each one byte, recorded or counted.
  const int64_t nested = doc["summary"]["dropped_by_cause"]["nested"].get<int64_t>();
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

TEST_F(SteppedHooks, AHandlerOpeningSocketsAtEveryInstructionOfAHookLosesNoneOfTheProgramsEvents) {
  const std::string handler = run_stepped({"sockets"});
  if (handler.empty()) GTEST_SKIP() << "single-stepping is x86-64 only";
  long made = -1;
  ASSERT_EQ(std::sscanf(handler.c_str(), "handler sockets %ld", &made), 1) << handler;
  EXPECT_GT(made, 20 * 100);

  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(check_a(doc).size(), 2u) << doc.dump(1);
  // Every handler socket is a socket event and a close event, recorded or counted. The program's
  // own: socket() for the listener, A, B and each round's third connection, and closes for the
  // latter, its dup() and its accepted end.
  size_t sockets = 0, closes = 0;
  for (const auto& f : files_in(dir_.path())) {
    for (const auto& s : httptrace::testing::parse_trace(f.string()).segments) {
      for (const auto& ev : s.events) {
        const auto kind = httptrace::testing::as<format::EventHeader>(ev).kind;
        sockets += kind == static_cast<uint16_t>(format::EventKind::kSocket);
        closes += kind == static_cast<uint16_t>(format::EventKind::kClose);
      }
    }
  }
  const int64_t nested = doc["summary"]["dropped_by_cause"]["nested"].get<int64_t>();
  EXPECT_EQ(static_cast<int64_t>(sockets - 3 - 20 + closes - 3 * 20) + nested, 2 * made);
  EXPECT_LT(nested, made / 5);
}

// signals_client stepped-fork: fork() single-stepped, the handler sending on B at every
// instruction in the parent and in the child. The child's first instructions run before any
// atfork handler, with its parent's writer still mapped: its events there must not go into the
// parent's file (where they were lost, racing the parent's own writes), and the child's own file
// must still announce what it inherited.
TEST_F(SteppedHooks, AHandlerSendingAtEveryInstructionOfForkWritesOnlyIntoItsOwnProcesssTrace) {
  const std::vector<std::string> argv = {signals_client(), "stepped-fork", "10"};
  const RunResult plain = untraced(argv);
  ASSERT_EQ(plain.exit_code, 0) << plain.describe();
  if (plain.out.find("x86-64 only") != std::string::npos) GTEST_SKIP() << "single-stepping is x86-64 only";
  const RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(line(r.out, 2), "rounds 10: responses whole 10, children exited 0: 10");
  EXPECT_EQ(line(r.out, 2), line(plain.out, 2));
  port_ = std::stoi(line(r.out, 1).substr(5));
  long sent = -1, parent_sent = -1, children_sent = -1, received = -1;
  ASSERT_EQ(std::sscanf(line(r.out, 3).c_str(), "handler sent %ld (parent %ld, children %ld), received %ld",
                        &sent, &parent_sent, &children_sent, &received),
            4)
      << r.out;
  EXPECT_EQ(sent, received);
  EXPECT_GT(children_sent, 10 * 100) << "hundreds of instructions of fork in each child";

  // Lost events per process, from each file's own header.
  std::map<int64_t, int64_t> nested_of;
  for (const auto& f : files_in(dir_.path())) {
    const auto h = httptrace::testing::parse_trace(f.string()).header;
    nested_of[h.pid] += static_cast<int64_t>(h.dropped_by_cause[static_cast<int>(format::DropCause::kNested)]);
  }
  ASSERT_EQ(nested_of.size(), 11u) << "the parent and its ten children, each with a file";

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  EXPECT_EQ(doc["summary"]["processes"], 11);
  // B's client end, in the parent and (inherited) in every child: one local address.
  std::string b_local;
  int64_t parent_pid = 0;
  for (const json& c : connections_to(doc, port_)) {
    if (c["requests"].size() == 10) {
      EXPECT_EQ(targets(c)[9], "/f9");
      parent_pid = c["pid"].get<int64_t>();
    }
  }
  ASSERT_NE(parent_pid, 0) << doc.dump(1);
  for (const json& c : connections_to(doc, port_)) {
    if (c["pid"].get<int64_t>() == parent_pid && c["requests"].size() == 1) b_local = c["local"];
  }
  ASSERT_FALSE(b_local.empty()) << doc.dump(1);
  int64_t parent_bytes = 0, children_bytes = 0, children_with_b = 0, children_nested = 0;
  for (const json& c : doc["connections"]) {
    if (c["local"] != b_local || c["direction"] != "outbound") continue;
    const int64_t pid = c["pid"].get<int64_t>();
    (pid == parent_pid ? parent_bytes : children_bytes) += c["bytes_sent"].get<int64_t>();
    children_with_b += pid != parent_pid;
  }
  for (const auto& [pid, n] : nested_of) {
    if (pid != parent_pid) children_nested += n;
  }
  EXPECT_EQ(children_with_b, 10) << "each child's B is its parent's connection, addresses known";
  EXPECT_EQ(parent_bytes + nested_of[parent_pid], parent_sent);
  EXPECT_EQ(children_bytes + children_nested, children_sent);
}

}  // namespace
}  // namespace httptrace::itest
