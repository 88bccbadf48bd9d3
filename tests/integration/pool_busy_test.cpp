// Busy is not idle (issue 8.4): requests with a pool of one shared by two threads. Thread A has
// its response's headers but not yet its body when thread B asks: the pool is empty, B opens a
// second connection. A's connection was busy, so B's is no pool miss.
#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

constexpr char kTwoThreadsPoolOfOne[] = R"(
import sys, threading, requests
from requests.adapters import HTTPAdapter
base = "http://localhost:" + sys.argv[1]
s = requests.Session()
s.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
headers_in, b_done = threading.Event(), threading.Event()
def a():
    r = s.get(base + "/bytes/2000000", stream=True)
    headers_in.set()
    b_done.wait(10)
    print("a", r.status_code, len(r.content), flush=True)
def b():
    headers_in.wait(10)
    print("b", s.get(base + "/b").status_code, flush=True)
    b_done.set()
ta, tb = threading.Thread(target=a), threading.Thread(target=b)
ta.start(); tb.start(); ta.join(); tb.join()
)";

class PoolBusy : public TracedTest {};

TEST_F(PoolBusy, ConnectionStillReadingItsBodyMakesNoPoolMiss) {
  RunResult probe = untraced({paths().python.string(), "-c", "import requests"});
  if (probe.exit_code != 0) GTEST_SKIP() << "python3-requests is not installed";
  RunResult r = traced({paths().python.string(), "-c", kTwoThreadsPoolOfOne, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "b 200\na 200 2000000\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  for (const auto& c : conns) EXPECT_EQ(c["pool_miss"], false) << describe(c);
}

}  // namespace
}  // namespace httptrace::itest
