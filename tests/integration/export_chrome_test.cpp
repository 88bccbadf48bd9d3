// `export --format chrome` from real client traces, checked by the independent structural
// checker (nesting, no overlaps per track, flows, names) and against the JSON export of the same
// trace for units (µs since the same t0) and content.
#include <algorithm>
#include <map>
#include <set>

#include "tests/integration/chrome_trace_check.h"
#include "tests/integration/export_util.h"
#include "tests/integration/fixture.h"
#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

std::vector<json> events(const json& doc, const std::string& ph, const std::string& name = "") {
  std::vector<json> out;
  for (const json& e : doc["traceEvents"])
    if (e["ph"] == ph && (name.empty() || e["name"] == name)) out.push_back(e);
  return out;
}

// The Trace Event document agrees with the JSON export: a named track per connection with its
// setup slices at the same times (µs vs ns), one slice per request.
void expect_chrome_matches(const json& trace, const json& doc) {
  testcheck::ChromeStats st;
  auto problems = testcheck::check_chrome_trace(trace, &st);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  size_t requests = 0, with_dns = 0;
  std::map<std::string, const json*> by_id;
  for (const json& c : doc["connections"]) {
    requests += c["requests"].size();
    with_dns += c["dns"].is_object() && c["connect"].is_object();
    by_id[c["id"]] = &c;
  }
  EXPECT_EQ(st.requests, requests);
  EXPECT_EQ(std::count_if(st.bound.begin(), st.bound.end(), [](const auto& f) { return f.cat == "net"; }), long(with_dns))
      << "a flow from each connection's lookup to its connect";
  std::map<long, std::string> track_conn;  // tid -> connection id
  for (const json& m : events(trace, "M", "thread_name")) track_conn[m["tid"]] = m["args"]["connection"];
  for (const json& x : events(trace, "X", "connect")) {
    SCOPED_TRACE(x.dump());
    ASSERT_TRUE(track_conn.count(x["tid"]));
    const json& c = *by_id.at(track_conn[x["tid"]]);
    EXPECT_NEAR(x["ts"].get<double>() * 1000, c["connect"]["start_ns"].get<double>(), 1.0);
    EXPECT_NEAR(x["dur"].get<double>() * 1000, c["connect"]["duration_ns"].get<double>(), 1.0);
  }
  std::set<long> pids;
  for (const json& p : doc["processes"]) pids.insert(p["pid"].get<long>());
  for (const json& m : events(trace, "M", "process_name")) {
    EXPECT_TRUE(pids.count(m["pid"].get<long>()));
    EXPECT_FALSE(m["args"]["name"].get<std::string>().empty());
  }
}

class ExportChrome : public TracedTest {
 protected:
  json chrome_checked(const json& doc) {
    Export t = export_as("chrome", dir_.path(), work_ / "out.json");
    EXPECT_TRUE(t.ok) << t.error;
    expect_chrome_matches(t.doc, doc);
    return t.doc;
  }
  TempDir work_;
};

TEST_F(ExportChrome, CurlKeepAliveOneTrackThreeRequests) {
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        server_.url("/a"), server_.url("/b"), server_.url("/c")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  json trace = chrome_checked(doc);
  auto names = events(trace, "M", "thread_name");
  ASSERT_EQ(names.size(), 1u) << trace.dump(1);
  EXPECT_EQ(names[0]["args"]["name"], "localhost 127.0.0.1:" + server_.port_str() + " http/1.1");
  std::vector<std::string> requests;
  for (const json& b : events(trace, "X"))
    if (b["cat"] == "http" && b["name"] != "send" && b["name"] != "wait" && b["name"] != "receive") requests.push_back(b["name"]);
  EXPECT_EQ(requests, (std::vector<std::string>{"GET /a", "GET /b", "GET /c"}));
  auto procs = events(trace, "M", "process_name");
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_TRUE(procs[0]["args"]["name"].get<std::string>().ends_with("curl")) << procs[0];
}

// Two threads, each with its own connection, requests in flight at once: their tracks differ,
// and nothing overlaps on either.
TEST_F(ExportChrome, PythonConcurrentConnectionsGetTheirOwnTracks) {
  constexpr char kScript[] = R"(
import http.client, sys, threading
port = int(sys.argv[1])
ready = threading.Barrier(2)
def worker():
    c = http.client.HTTPConnection("localhost", port)
    c.connect()
    ready.wait()
    c.request("GET", "/delay/150")
    c.getresponse().read()
    c.request("GET", "/a")
    c.getresponse().read()
    c.close()
ts = [threading.Thread(target=worker) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
)";
  RunResult r = traced({paths().python.string(), "-c", kScript, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  json trace = chrome_checked(doc);
  std::map<long, std::vector<std::pair<double, double>>> delays;  // tid -> [begin, end]
  for (const json& e : trace["traceEvents"]) {
    if (e["name"] != "GET /delay/150") continue;
    if (e["ph"] == "X")
      delays[e["tid"]].push_back({e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>()});
  }
  ASSERT_EQ(delays.size(), 2u) << "one track per connection";
  auto a = delays.begin()->second.at(0), b = std::next(delays.begin())->second.at(0);
  EXPECT_LT(std::max(a.first, b.first), std::min(a.second, b.second)) << "the requests overlapped in time";
  EXPECT_GE(a.second - a.first, 150000.0) << "µs";
}

TEST_F(ExportChrome, NodeKeepAlive) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  constexpr char kScript[] = R"(
const http = require('http');
const port = Number(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(path, next) {
  http.get({ host: 'localhost', port, path, agent }, (res) => { res.resume(); res.on('end', next); })
    .on('error', (e) => { console.error(e.message); process.exitCode = 1; agent.destroy(); });
}
get('/a', () => get('/b', () => agent.destroy()));
)";
  RunResult r = traced({"/usr/bin/node", "-e", kScript, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  json trace = chrome_checked(doc);
  EXPECT_EQ(events(trace, "X", "dns").size(), 1u) << "node resolves localhost with getaddrinfo";
  EXPECT_EQ(events(trace, "s").size(), 1u);
}

class ExportChromeTls : public TlsTest {};

TEST_F(ExportChromeTls, CurlHttpsHandshakeSlice) {
  RunResult r = traced({"curl", "-s", "--cacert", tls_.cert.string(), "-o", "/dev/null", "-o", "/dev/null",
                        server_.url("/a"), server_.url("/b")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  Export t = export_as("chrome", dir_.path(), work_ / "out.json");
  ASSERT_TRUE(t.ok) << t.error;
  expect_chrome_matches(t.doc, doc);
  auto tls = events(t.doc, "X", "tls");
  ASSERT_EQ(tls.size(), 1u) << t.doc.dump(1);
  EXPECT_EQ(tls[0]["args"]["version"], "TLSv1.3");
  EXPECT_GT(tls[0]["dur"].get<double>(), 0);
  auto connect = events(t.doc, "X", "connect");
  ASSERT_EQ(connect.size(), 1u);
  EXPECT_GE(tls[0]["ts"].get<double>(), connect[0]["ts"].get<double>() + connect[0]["dur"].get<double>());
  EXPECT_EQ(tls[0]["tid"], connect[0]["tid"]);
}

}  // namespace
}  // namespace httptrace::itest
