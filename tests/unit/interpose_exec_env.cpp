// The environment an exec hook passes on (exec_env.h): the trace variables merged back into a
// program's own environment, LD_PRELOAD extended rather than replaced, the hand-over of sockets.
#include "interpose/record/exec_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace httptrace {
namespace {

// Runs save_trace_env() as if the process had started with `start`.
void start_with(std::vector<std::string> start) {
  static std::vector<std::string> storage;
  static std::vector<char*> env;
  storage = std::move(start);
  env.clear();
  for (auto& s : storage) env.push_back(s.data());
  env.push_back(nullptr);
  char** saved = environ;
  environ = env.data();
  save_trace_env();
  environ = saved;
}

std::vector<std::string> merged(std::vector<std::string> envp, const char* fds = nullptr) {
  std::vector<char*> in;
  for (auto& s : envp) in.push_back(s.data());
  in.push_back(nullptr);
  std::vector<char*> out(in.size() + kSavedVarsMax + 3);
  char preload[kPreloadMax];
  char added[kAddedMax];
  char* const* r = merge_env(in.data(), fds, out.data(), preload, added);
  std::vector<std::string> result;
  for (size_t i = 0; r[i] != nullptr; ++i) result.push_back(r[i]);
  return result;
}

const std::vector<std::string> kStart = {"HOME=/root", "LD_PRELOAD=/opt/libhttptrace.so",
                                         "HTTPTRACE_OUTPUT=/tmp/t.%p", "HTTPTRACE_MAX_MB=5"};

TEST(ExecEnv, TraceVariablesAreAddedToACustomEnvironment) {
  start_with(kStart);
  EXPECT_EQ(merged({"PATH=/bin"}),
            (std::vector<std::string>{"PATH=/bin", "LD_PRELOAD=/opt/libhttptrace.so",
                                      "HTTPTRACE_OUTPUT=/tmp/t.%p", "HTTPTRACE_MAX_MB=5",
                                      "HTTPTRACE_ADDED=LD_PRELOAD,HTTPTRACE_OUTPUT,"
                                      "HTTPTRACE_MAX_MB"}));
  EXPECT_EQ(merged({}).size(), 4u) << "an empty environment (envp = {NULL})";
}

TEST(ExecEnv, TheProgramsOwnValuesWin) {
  start_with(kStart);
  EXPECT_EQ(merged({"HTTPTRACE_MAX_MB=9", "LD_PRELOAD=/opt/libhttptrace.so"}),
            (std::vector<std::string>{"HTTPTRACE_MAX_MB=9", "LD_PRELOAD=/opt/libhttptrace.so",
                                      "HTTPTRACE_OUTPUT=/tmp/t.%p",
                                      "HTTPTRACE_ADDED=HTTPTRACE_OUTPUT"}));
  // Nothing missing: the program's own array goes through untouched.
  EXPECT_EQ(merged({"HTTPTRACE_MAX_MB=9", "LD_PRELOAD=/opt/libhttptrace.so",
                    "HTTPTRACE_OUTPUT=o"}).size(), 3u);
}

TEST(ExecEnv, AnotherPreloadKeepsItsLibraryAfterOurs) {
  start_with(kStart);
  const auto m = merged({"LD_PRELOAD=/usr/lib/libjemalloc.so"});
  EXPECT_EQ(m[0], "LD_PRELOAD=/opt/libhttptrace.so:/usr/lib/libjemalloc.so");
  EXPECT_EQ(m.back(), "HTTPTRACE_ADDED=LD_PRELOAD=20,HTTPTRACE_OUTPUT,HTTPTRACE_MAX_MB");
}

TEST(ExecEnv, SocketsAreHandedOverOnlyToAnImageThatLoadsUs) {
  start_with(kStart);
  const char* fds = "HTTPTRACE_EXEC_FDS=42:3=1";
  EXPECT_EQ(merged({}, fds).back(), fds);
  // A stale hand-over in the program's environment is never passed on.
  EXPECT_EQ(merged({"HTTPTRACE_EXEC_FDS=1:4=4", "A=b", "HTTPTRACE_ADDED=X"}),
            (std::vector<std::string>{"A=b", "LD_PRELOAD=/opt/libhttptrace.so",
                                      "HTTPTRACE_OUTPUT=/tmp/t.%p", "HTTPTRACE_MAX_MB=5",
                                      "HTTPTRACE_ADDED=LD_PRELOAD,HTTPTRACE_OUTPUT,"
                                      "HTTPTRACE_MAX_MB"}));
  start_with({"LD_PRELOAD=/opt/libhttptrace.so", "HTTPTRACE_FOLLOW=0"});
  EXPECT_EQ(merged({"A=b"}, fds), (std::vector<std::string>{"A=b"})) << "FOLLOW=0: not preloaded";
  EXPECT_EQ(merged({"LD_PRELOAD=/opt/libhttptrace.so"}, fds).back(), fds);
}

TEST(ExecEnv, FollowZeroLeavesTheEnvironmentAlone) {
  start_with({"LD_PRELOAD=/opt/libhttptrace.so", "HTTPTRACE_FOLLOW=0", "HTTPTRACE_OUTPUT=x"});
  EXPECT_EQ(merged({"PATH=/bin"}), (std::vector<std::string>{"PATH=/bin"}));
  EXPECT_EQ(merged({"LD_PRELOAD=/other.so"}), (std::vector<std::string>{"LD_PRELOAD=/other.so"}));
}

std::vector<std::string> environment() {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) out.push_back(*e);
  return out;
}

// The child's side: what its parent's exec added is taken out again before main, so the program
// sees exactly the environment it was given; the child still passes it on to its own children.
TEST(ExecEnv, TheChildSeesOnlyTheEnvironmentItWasGiven) {
  std::vector<std::string> storage = {"LD_PRELOAD=/opt/libhttptrace.so:/usr/lib/libjemalloc.so",
                                      "HTTPTRACE_OUTPUT=x", "A=b",
                                      "HTTPTRACE_ADDED=LD_PRELOAD=20,HTTPTRACE_OUTPUT"};
  std::vector<char*> env;
  for (auto& s : storage) env.push_back(s.data());
  env.push_back(nullptr);
  char** saved = environ;
  environ = env.data();
  save_trace_env();
  hide_added_env();
  const std::vector<std::string> seen = environment();
  environ = saved;
  EXPECT_EQ(seen, (std::vector<std::string>{"LD_PRELOAD=/usr/lib/libjemalloc.so", "A=b"}));
  EXPECT_EQ(merged({"A=b"}), (std::vector<std::string>{
                                 "A=b", "LD_PRELOAD=/opt/libhttptrace.so", "HTTPTRACE_OUTPUT=x",
                                 "HTTPTRACE_ADDED=LD_PRELOAD,HTTPTRACE_OUTPUT"}));
}

int g_adopted_fd = -1;
unsigned g_adopted_conn = 0;

TEST(ExecEnv, HandOverIsReadForThisPidOnlyAndRemovedFromTheEnvironment) {
  const std::string mine = "HTTPTRACE_EXEC_FDS=" + std::to_string(getpid()) + ":7=3";
  setenv("HTTPTRACE_EXEC_FDS", mine.c_str() + sizeof("HTTPTRACE_EXEC_FDS"), 1);
  save_trace_env();
  EXPECT_EQ(getenv("HTTPTRACE_EXEC_FDS"), nullptr);
  for_each_exec_fd([](int fd, unsigned conn) {
    g_adopted_fd = fd;
    g_adopted_conn = conn;
  });
  EXPECT_EQ(g_adopted_fd, 7);
  EXPECT_EQ(g_adopted_conn, 3u);
  g_adopted_fd = -1;
  setenv("HTTPTRACE_EXEC_FDS", "1:7=3", 1);  // another process's
  save_trace_env();
  for_each_exec_fd([](int fd, unsigned) { g_adopted_fd = fd; });
  EXPECT_EQ(g_adopted_fd, -1);
}

}  // namespace
}  // namespace httptrace
