// The trace file itself: private permissions, never clobbering or following what is already at
// the output path, and surviving the death of the traced program.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include <algorithm>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TraceFile : public TracedTest {};

TEST_F(TraceFile, CreatedPrivateEvenWithPermissiveUmask) {
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir_.path());
  o.umask = 0;
  RunResult r = run(client("fork", {}), o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto files = files_in(dir_.path());
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    struct stat st {};
    ASSERT_EQ(lstat(f.c_str(), &st), 0) << f;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << f;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << f;
  }
}

// Only processes that touch the network get a file: a shell running a script, and the tools it
// forks and execs, leave nothing; the one networking child leaves exactly its own.
TEST_F(TraceFile, OnlyProcessesThatUseTheNetworkGetAFile) {
  RunResult quiet = traced({"sh", "-c", "true; ls / >/dev/null; echo done"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.describe();
  EXPECT_EQ(quiet.out, "done\n");
  EXPECT_TRUE(files_in(dir_.path()).empty());

  RunResult r = traced({"sh", "-c", "ls / >/dev/null; curl -s -o /dev/null " + server_.url("/a") + "; true"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(files_in(dir_.path()).size(), 1u);
  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(doc["processes"].size(), 1u);
  EXPECT_NE(doc["processes"][0]["exe"].get<std::string>().find("curl"), std::string::npos);
  EXPECT_EQ(doc["summary"]["requests"], 1);
}

TEST_F(TraceFile, ExistingFileIsNotOverwritten) {
  const fs::path target = dir_ / "fixed.trace";
  std::ofstream(target) << "precious";
  auto argv = client("nonblock", {"/a"});
  RunResult plain = untraced(argv);
  RunResult r = traced(argv, {{"HTTPTRACE_OUTPUT", target.string()}});
  EXPECT_EQ(r.exit_code, plain.exit_code) << r.describe();
  EXPECT_EQ(r.out, plain.out);
  EXPECT_EQ(slurp(target), "precious");
}

TEST_F(TraceFile, SymlinkIsNotFollowed) {
  const fs::path victim = dir_ / "victim";
  const fs::path absent = dir_ / "absent";
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, dir_ / "to-victim.trace");
  fs::create_symlink(absent, dir_ / "to-absent.trace");

  for (const char* link : {"to-victim.trace", "to-absent.trace"}) {
    SCOPED_TRACE(link);
    auto argv = client("nonblock", {"/a"});
    RunResult plain = untraced(argv);
    RunResult r = traced(argv, {{"HTTPTRACE_OUTPUT", (dir_ / link).string()}});
    EXPECT_EQ(r.exit_code, plain.exit_code) << r.describe();
    EXPECT_EQ(r.out, plain.out);
    EXPECT_TRUE(fs::is_symlink(dir_ / link));
  }
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_FALSE(fs::exists(absent)) << "the dangling symlink was followed";
}

// Events live in a shared mapping of the file: whatever a call recorded before SIGKILL is there.
TEST_F(TraceFile, SurvivesKillDashNine) {
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir_.path());
  Child c;
  std::string error;
  ASSERT_TRUE(c.start(client("hang", {}), o, false, &error)) << error;
  std::string line;
  ASSERT_TRUE(c.read_line(&line, milliseconds{10000})) << c.wait(milliseconds{1000}).describe();
  EXPECT_EQ(line, "/hang 200 26");
  c.signal(SIGKILL);
  RunResult r = c.wait(milliseconds{5000});
  EXPECT_EQ(r.signal, SIGKILL) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& conn = conns[0];
  SCOPED_TRACE(describe(conn));
  EXPECT_EQ(targets(conn), (std::vector<std::string>{"/hang"}));
  EXPECT_EQ(statuses(conn), (std::vector<int>{200}));
  EXPECT_TRUE(conn["close_ns"].is_null()) << "it was never closed";
  EXPECT_GT(conn["bytes_received"].get<uint64_t>(), 26u);
  EXPECT_EQ(doc["summary"]["requests"], 1);
}

}  // namespace
}  // namespace httptrace::itest
