// Why each new connection was opened (issue 10 §1-§3), from real clients against the test server's
// /idle-close (drops an idle keep-alive connection after a timeout it announces), /close
// (Connection: close) and /bytes (a long body to keep a connection busy). Every reason is asserted
// from the JSON export. Synchronisation is the server's own signal: its FIN on the idle socket
// (the client waits for the socket to turn readable, or for node's 'close' event), never a sleep.
#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

class Why : public TracedTest {
 protected:
  // The connection that carried a request for target, or null.
  static const json* carrying(const std::vector<json>& conns, const std::string& target) {
    for (const auto& c : conns)
      for (const auto& t : targets(c))
        if (t == target) return &c;
    return nullptr;
  }
  std::string why_output() {
    RunResult r = run({paths().cli.string(), "why", dir_.path().string()});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return r.out;
  }
};

// http.client with the usual retry on a dropped keep-alive connection. Each step is one reason.
constexpr char kHttpClient[] = R"(
import http.client, select, sys
port = int(sys.argv[1])
def get(conn, path):
    for attempt in range(2):
        try:
            conn.request("GET", path)
            r = conn.getresponse(); r.read(); return r.status
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            print("retry", flush=True)
            conn.close()
    raise SystemExit("failed twice")
c = http.client.HTTPConnection("127.0.0.1", port)
print(get(c, "/idle-close/200"))
# The server's FIN: it dropped the idle connection. http.client does not look before reusing.
assert select.select([c.sock], [], [], 10)[0], "the server did not close"
print(get(c, "/stale"))   # fails (EOF/RST), retried on a new connection: reset_on_reuse
print(get(c, "/close"))   # Connection: close
print(get(c, "/after-close"))  # http.client reconnects: closed_by_peer
d = http.client.HTTPConnection("127.0.0.1", port)
print(get(d, "/second"))  # c sits idle: pool_miss
c.close(); d.close()
e = http.client.HTTPConnection("127.0.0.1", port)
print(get(e, "/after-client-close"))  # closed_by_client
)";

TEST_F(Why, PythonHttpClientThroughFirstResetPeerMissAndClientClose) {
  RunResult r = traced({paths().python.string(), "-c", kHttpClient, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "200\nretry\n200\n200\n200\n200\n200\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 5u) << doc.dump(1);
  const json *stale = carrying(conns, "/idle-close/200"), *retried = carrying(conns, "/close"),
             *after = carrying(conns, "/after-close"), *second = carrying(conns, "/second"),
             *last = carrying(conns, "/after-client-close");
  ASSERT_TRUE(stale && retried && after && second && last) << doc.dump(1);

  EXPECT_EQ((*stale)["new_reason"], "first");
  EXPECT_TRUE((*stale)["replaced"].is_null());
  // The failed reuse: written on the stale connection, EOF or a reset before any response.
  const json& failed = (*stale)["requests"].back();
  EXPECT_EQ(failed["target"], "/stale");
  EXPECT_EQ(failed["reused"], true);
  EXPECT_TRUE(failed["first_byte_ns"].is_null());
  EXPECT_TRUE(failed["error"] == "EOF" || failed["error"] == "ECONNRESET" || failed["error"] == "EPIPE") << failed;
  EXPECT_EQ((*stale)["requests"][0]["keep_alive_timeout_s"], 1);

  EXPECT_EQ((*retried)["new_reason"], "reset_on_reuse") << describe(*retried);
  EXPECT_EQ((*retried)["replaced"], (*stale)["id"]);
  EXPECT_EQ(targets(*retried), (std::vector<std::string>{"/stale", "/close"}));
  EXPECT_EQ((*after)["new_reason"], "closed_by_peer");
  EXPECT_EQ((*after)["replaced"], (*retried)["id"]);
  EXPECT_EQ((*second)["new_reason"], "pool_miss");
  EXPECT_EQ((*second)["pool_miss"], true);
  EXPECT_EQ((*second)["replaced"], (*after)["id"]);
  EXPECT_EQ((*last)["new_reason"], "closed_by_client");
  EXPECT_EQ((*last)["replaced"], (*second)["id"]);  // the newest close it follows
  for (const json* c : {stale, retried, after, last}) EXPECT_EQ((*c)["pool_miss"], false);

  const std::string why = why_output();
  for (const char* want : {"new connections: 5  first 1  pool_miss 1  closed_by_peer 1  reset_on_reuse 1  closed_by_client 1",
                           "failed reuses: 1 (", "the server announced Keep-Alive: timeout=1", "churn: 5 connections",
                           "phase      count"})
    EXPECT_NE(why.find(want), std::string::npos) << want << "\n" << why;
}

// requests with a pool of one shared by two threads: B asks while A still reads its body, so B's
// connection is concurrency (busy), not a miss.
constexpr char kRequestsBusy[] = R"(
import sys, threading, requests
from requests.adapters import HTTPAdapter
base = "http://127.0.0.1:" + sys.argv[1]
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

TEST_F(Why, RequestsPoolOfOneWithTwoThreadsIsBusy) {
  RunResult probe = untraced({paths().python.string(), "-c", "import requests"});
  if (probe.exit_code != 0) GTEST_SKIP() << "python3-requests is not installed";
  RunResult r = traced({paths().python.string(), "-c", kRequestsBusy, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  const json *a = carrying(conns, "/bytes/2000000"), *b = carrying(conns, "/b");
  ASSERT_TRUE(a && b && a != b) << doc.dump(1);
  EXPECT_EQ((*a)["new_reason"], "first");
  EXPECT_EQ((*b)["new_reason"], "busy");
  EXPECT_TRUE((*b)["replaced"].is_null());
  EXPECT_EQ((*b)["pool_miss"], false);
}

// urllib3 looks at a pooled socket before reusing it (readable = dropped) and closes it without a
// read we could see: idle past the Keep-Alive timeout the server announced, it was the server's.
constexpr char kRequestsIdleTimeout[] = R"(
import select, sys, requests
base = "http://127.0.0.1:" + sys.argv[1]
s = requests.Session()
print(s.get(base + "/idle-close/1000").status_code)
pool = s.get_adapter(base).poolmanager.connection_from_url(base)
sock = pool.pool.queue[-1].sock
assert select.select([sock], [], [], 10)[0], "the server did not close"
print(s.get(base + "/after").status_code)
)";

TEST_F(Why, RequestsReconnectsAfterTheServersIdleTimeout) {
  RunResult probe = untraced({paths().python.string(), "-c", "import requests"});
  if (probe.exit_code != 0) GTEST_SKIP() << "python3-requests is not installed";
  RunResult r = traced({paths().python.string(), "-c", kRequestsIdleTimeout, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "200\n200\n");
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  const json *first = carrying(conns, "/idle-close/1000"), *after = carrying(conns, "/after");
  ASSERT_TRUE(first && after && first != after) << doc.dump(1);
  EXPECT_EQ((*after)["new_reason"], "closed_by_peer") << doc.dump(1);
  EXPECT_EQ((*after)["replaced"], (*first)["id"]);
  EXPECT_GE((*after)["replaced_idle_ns"].get<uint64_t>(), 950'000'000u);  // about the announced 1 s
}

TEST_F(Why, CurlKeepAliveThenConnectionClose) {
  const std::string base = "http://127.0.0.1:" + server_.port_str();
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", base + "/a",
                        base + "/close", base + "/after-close"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  const json *kept = carrying(conns, "/a"), *after = carrying(conns, "/after-close");
  ASSERT_TRUE(kept && after) << doc.dump(1);
  EXPECT_EQ(targets(*kept), (std::vector<std::string>{"/a", "/close"}));  // keep-alive reuse
  EXPECT_EQ((*kept)["new_reason"], "first");
  EXPECT_EQ((*kept)["requests"][1]["connection_close"], true);
  EXPECT_EQ((*after)["new_reason"], "closed_by_peer");
  EXPECT_EQ((*after)["replaced"], (*kept)["id"]);
}

// node's keep-alive agent: the server drops the idle socket, node reads the EOF and forgets it; the
// next request opens a new connection, which then serves the one after by reuse. (The drop is not
// announced: node 20 closes a pooled socket itself 1 s before an announced Keep-Alive timeout, so
// with timeout=1 it closes at once -- that is closed_by_client, the next test.)
constexpr char kNodeAgent[] = R"(
const http = require('http');
const port = +process.argv[1];
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
const get = (path) => new Promise((resolve, reject) => {
  http.get({host: '127.0.0.1', port, path, agent}, (r) => {
    // The agent detaches the socket once the response ends: watch it from here.
    const closed = new Promise((done) => r.socket.once('close', done));
    r.resume();
    r.on('end', () => resolve({statusCode: r.statusCode, closed}));
  }).on('error', reject);
});
// A pooled socket is unref'd: without this handle node would exit while waiting for the drop.
const alive = setInterval(() => {}, 60000);
(async () => {
  const r1 = await get('/idle-drop/100');
  await r1.closed;
  console.log('dropped');
  console.log((await get('/after')).statusCode);
  console.log((await get('/again')).statusCode);
  agent.destroy();
  clearInterval(alive);
})().catch((e) => { console.error(e); process.exit(1); });
)";

TEST_F(Why, NodeKeepAliveAgentAfterTheServerDropsItsSocket) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  RunResult r = traced({"/usr/bin/node", "-e", kNodeAgent, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "dropped\n200\n200\n");
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  const json *dropped = carrying(conns, "/idle-drop/100"), *after = carrying(conns, "/after");
  ASSERT_TRUE(dropped && after) << doc.dump(1);
  EXPECT_EQ((*dropped)["new_reason"], "first");
  EXPECT_EQ((*after)["new_reason"], "closed_by_peer");
  EXPECT_EQ((*after)["replaced"], (*dropped)["id"]);
  EXPECT_EQ(reuse_flags(*after), (std::vector<bool>{false, true}));
}

TEST_F(Why, NodeClosesItselfBeforeAnAnnouncedTimeout) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  std::string script = kNodeAgent;
  script.replace(script.find("/idle-drop/100"), 14, "/idle-close/99");
  RunResult r = traced({"/usr/bin/node", "-e", script, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  const json *first = carrying(conns, "/idle-close/99"), *after = carrying(conns, "/after");
  ASSERT_TRUE(first && after && first != after) << doc.dump(1);
  EXPECT_EQ((*after)["new_reason"], "closed_by_client");
  EXPECT_EQ((*after)["replaced"], (*first)["id"]);
  EXPECT_LT((*after)["replaced_idle_ns"].get<uint64_t>(), 99'000'000u);  // before the server's 99 ms
}

// curl tries 127.0.0.1 before ::1 for localhost: with the server on ::1 only, `why` shows the
// race: the loser, how long it took, and which address won.
TEST_F(Why, HappyEyeballsRaceIsShownTogether) {
  TestServer server6({.ipv6 = true});
  ASSERT_TRUE(server6.ok()) << server6.error();
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "http://localhost:" + server6.port_str() + "/a"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string why = why_output();
  for (const std::string& want :
       {std::string("happy eyeballs: 1 connections raced"), "[::1]:" + server6.port_str() + " won",
        "lost 127.0.0.1:" + server6.port_str() + " after", std::string("(ECONNREFUSED)")})
    EXPECT_NE(why.find(want), std::string::npos) << want << "\n" << why;
}

}  // namespace
}  // namespace httptrace::itest
