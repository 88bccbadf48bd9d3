// Children started through exec entry points that never call execve() in a way we see: fexecve
// and execveat reach the kernel from inside glibc (tests/clients/exec_client.cpp). Like execve
// with a custom envp (SPEC §3, HTTPTRACE_FOLLOW), their children are traced unless FOLLOW=0,
// and each child sees exactly the environment it was given.
#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

class RecorderExec : public TracedTest {
 protected:
  std::string exec_client() const { return (paths().build / "tests" / "exec_client").string(); }
  void SetUp() override {
    TracedTest::SetUp();
    ASSERT_TRUE(fs::exists(exec_client())) << "run make integration";
  }
  // The same program and environment (HTTPTRACE_* included), not preloaded: what each child
  // must see is exactly this.
  RunResult unpreloaded(const std::vector<std::string>& argv, const Env& extra = {}) {
    RunOptions o;
    o.env = trace_env(dir_.path());
    o.env.insert(o.env.end(), extra.begin(), extra.end());
    return run(argv, o);
  }
  std::vector<fs::path> traces() const {
    std::vector<fs::path> out;
    for (const auto& f : files_in(dir_.path())) {
      if (f.filename().string().find(".trace") != std::string::npos) out.push_back(f);
    }
    return out;
  }
  // Requests recorded in the trace files, summed (through the CLI's export).
  int requests_recorded() {
    int n = 0;
    for (const auto& f : traces()) {
      Export e = export_json(f);
      EXPECT_TRUE(e.ok) << e.error;
      for (const auto& c : connections_to(e.doc, server_.port())) n += static_cast<int>(targets(c).size());
    }
    return n;
  }
};

TEST_F(RecorderExec, FexecveChildIsTraced) {
  const std::vector<std::string> argv = {exec_client(), "fexecve", server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, unpreloaded(argv).out);  // the child sees only the environment it was given
  EXPECT_NE(r.out.find("env PATH=/usr/bin:/bin\nfexecve child: 0\n"), std::string::npos) << r.out;
  EXPECT_EQ(traces().size(), 1u) << "the child's; the parent made no network call";
  EXPECT_EQ(requests_recorded(), 1);
}

TEST_F(RecorderExec, ExecveatChildrenAreTraced) {
  const std::vector<std::string> argv = {exec_client(), "execveat", server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, unpreloaded(argv).out);
  EXPECT_NE(r.out.find("env A=b\nexecveat child: 0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("env B=c\nexecveat empty path child: 0\n"), std::string::npos) << r.out;
  EXPECT_EQ(traces().size(), 2u);
  EXPECT_EQ(requests_recorded(), 2);
}

// system() and popen() spawn /bin/sh inside glibc with environ as the program left it: after
// unsetenv("LD_PRELOAD") or clearenv() their children are traced all the same (as execv()'s are),
// and see the environment the program gave them.
TEST_F(RecorderExec, SystemAndPopenChildrenAreTracedAfterTheProgramDroppedLdPreload) {
  const std::vector<std::string> argv = {exec_client(), "system", server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, unpreloaded(argv).out);
  EXPECT_NE(r.out.find("system: 0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("env C=d"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("popen: 0\n"), std::string::npos) << r.out;
  EXPECT_EQ(traces().size(), 2u) << "one per exec_client get; sh made no network call";
  EXPECT_EQ(requests_recorded(), 2);
}

// Our system() (taken when the program dropped LD_PRELOAD) waits in waitpid, a cancellation
// point: a thread cancelled there must leave what glibc's leaves, no shell and no signal ignored.
TEST_F(RecorderExec, SystemOfACancelledThreadKillsItsShellAndRestoresSignals) {
  TempDir fifo_dir;
  const std::vector<std::string> argv = {exec_client(), "system-cancel", fifo_dir.path().string()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "cancelled: yes\nSIGINT: default\nSIGQUIT: default\nshell: gone\n");
  fs::remove(fifo_dir.path() / "up");
  EXPECT_EQ(unpreloaded(argv).out, r.out);
}

TEST_F(RecorderExec, FollowZeroLeavesThemUntraced) {
  for (const char* how : {"fexecve", "execveat", "system"}) {
    const std::vector<std::string> argv = {exec_client(), how, server_.port_str()};
    RunResult r = traced(argv, {{"HTTPTRACE_FOLLOW", "0"}});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out, unpreloaded(argv, {{"HTTPTRACE_FOLLOW", "0"}}).out);
  }
  EXPECT_EQ(traces().size(), 0u);
}

}  // namespace
}  // namespace httptrace::itest
