// A worker that switches to a user who cannot write the trace directory (nginx as root with
// `user nobody;`) cannot create its trace file. The program is not harmed, and the failure is
// not silent: the worker counts it in its parent's file header (the only place it can write),
// and the analyzer warns when it reads the parent's trace (tests/clients/drop_client.cpp).
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

class RecorderWorkers : public TracedTest {
 protected:
  std::string drop_client() const { return (paths().build / "tests" / "drop_client").string(); }
  void SetUp() override {
    TracedTest::SetUp();
    ASSERT_TRUE(fs::exists(drop_client())) << "run make integration";
    if (geteuid() != 0) GTEST_SKIP() << "needs root: the worker drops to uid 65534";
  }
};

TEST_F(RecorderWorkers, WorkerThatCannotWriteTheDirectoryIsReportedInTheParentsTrace) {
  // mkdtemp's 0700 root-owned directory: uid 65534 cannot create anything in it.
  const std::vector<std::string> argv = {drop_client(), server_.port_str()};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find(" 200 OK\nworker: HTTP/1.1 200 OK\nworker exit: 0\n"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out, untraced(argv).out);
  // The worker's stderr is still the one the tree started with: the recorder may say it there
  // too (a server's workers have their error log there, and then it does not).
  EXPECT_EQ(r.err.rfind("httptrace: cannot create trace file ", 0), 0u) << r.err;
  std::vector<fs::path> files;
  for (const auto& f : files_in(dir_.path())) {
    if (f.filename().string().find(".trace") != std::string::npos) files.push_back(f);
  }
  ASSERT_EQ(files.size(), 1u) << "the master's only";
  RunResult a = run({paths().cli.string(), "export", "--format", "json", files[0].string()});
  EXPECT_EQ(a.exit_code, 0) << a.describe();
  EXPECT_NE(a.err.find("1 process(es) forked by pid"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("Permission denied"), std::string::npos) << a.err;
}

// The parent's trace truncated under it (copytruncate) before the worker fails: the worker's
// write into the parent's header page must not SIGBUS it.
TEST_F(RecorderWorkers, ParentsTraceTruncatedDoesNotHarmTheWorker) {
  const std::vector<std::string> argv = {drop_client(), server_.port_str(), "truncate"};
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("worker exit: 0\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out, untraced(argv).out);
}

TEST_F(RecorderWorkers, NoWarningWhenTheWorkerCanWrite) {
  ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  RunResult r = traced({drop_client(), server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::vector<fs::path> files;
  for (const auto& f : files_in(dir_.path())) {
    if (f.filename().string().find(".trace") != std::string::npos) files.push_back(f);
  }
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    RunResult a = run({paths().cli.string(), "export", "--format", "json", f.string()});
    EXPECT_EQ(a.exit_code, 0) << a.describe();
    EXPECT_EQ(a.err.find("could not create"), std::string::npos) << a.err;
  }
}

}  // namespace
}  // namespace httptrace::itest
