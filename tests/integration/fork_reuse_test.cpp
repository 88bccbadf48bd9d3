// A keep-alive connection inherited across fork (issue 8.6): the child's request on it is reused
// (SPEC §5), and the child's copy is the same connection on the wire, not another one.
#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

// The parent asks /before, forks; the child asks /child on the same connection and exits; the
// parent waits, then asks /after.
// With "_Fork" as its second argument it forks with glibc's _Fork(), which runs no atfork
// handlers: the recorder must still give the child its own file.
constexpr char kForkOnKeepAlive[] = R"(
import ctypes, http.client, os, sys
fork = os.fork
if sys.argv[2:] == ["_Fork"]:
    fork = ctypes.CDLL(None)._Fork
c = http.client.HTTPConnection("localhost", int(sys.argv[1]))
def get(path):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    print(path, r.status, flush=True)
get("/before")
pid = fork()
if pid == 0:
    get("/child")
    os._exit(0)
os.waitpid(pid, 0)
get("/after")
)";

class ForkReuse : public TracedTest, public ::testing::WithParamInterface<const char*> {};

INSTANTIATE_TEST_SUITE_P(ForkCalls, ForkReuse, ::testing::Values("fork", "_Fork"));

TEST_P(ForkReuse, ChildRequestOnTheInheritedConnectionIsReused) {
  RunResult r = traced({paths().python.string(), "-c", kForkOnKeepAlive, server_.port_str(), GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/before 200\n/child 200\n/after 200\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);  // the parent's record and the child's
  const json* parent = nullptr;
  const json* child = nullptr;
  for (const auto& c : conns) (c["inherited"] == true ? child : parent) = &c;
  ASSERT_TRUE(parent && child) << doc.dump(1);
  EXPECT_EQ((*child)["parent_id"], (*parent)["id"]);
  EXPECT_EQ(targets(*child), (std::vector<std::string>{"/child"}));
  EXPECT_EQ(reuse_flags(*child), (std::vector<bool>{true}));
  EXPECT_EQ((*child)["requests"][0]["index"], 1);
  EXPECT_TRUE((*child)["requests"][0]["idle_ns"].is_number());
  EXPECT_EQ((*child)["host"], "localhost");
  EXPECT_EQ(targets(*parent), (std::vector<std::string>{"/before", "/after"}));
  EXPECT_EQ(doc["summary"]["connections"], 1);
  EXPECT_EQ(doc["summary"]["requests"], 3);
  EXPECT_EQ(doc["summary"]["reused_requests"], 2);
}

}  // namespace
}  // namespace httptrace::itest
