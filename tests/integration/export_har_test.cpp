// `export --format har` from real client traces (curl keep-alive and HTTPS, python http.client,
// node), each accepted by npm har-validator and checked against the JSON export of the same trace.
#include <algorithm>
#include <map>

#include "tests/integration/export_util.h"
#include "tests/integration/fixture.h"
#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

double non_negative_sum(const json& t) {
  double sum = 0;
  for (const char* k : {"blocked", "dns", "connect", "send", "wait", "receive"})
    if (t[k].get<double>() >= 0) sum += t[k].get<double>();
  return sum;
}

// What holds for every entry of every trace: the SPEC §7 rules, and agreement with the JSON
// export (same requests, same reuse, the first request's setup phases from its connection).
void expect_har_matches(const json& har, const json& doc) {
  std::map<std::string, const json*> conns;
  size_t http_requests = 0;
  for (const json& c : doc["connections"]) {
    conns[c["id"]] = &c;
    for (const json& r : c["requests"]) http_requests += r["method"].is_string();
  }
  const json& entries = har["log"]["entries"];
  EXPECT_EQ(entries.size(), http_requests);
  for (const json& e : entries) {
    SCOPED_TRACE(e.dump());
    const json& t = e["timings"];
    EXPECT_NEAR(e["time"].get<double>(), non_negative_sum(t), 1e-9);
    EXPECT_EQ(t["blocked"], -1);
    for (const char* k : {"send", "wait", "receive"}) EXPECT_GE(t[k].get<double>(), 0) << k;
    EXPECT_EQ(e["cache"], json::object());
    const std::string when = e["startedDateTime"];
    EXPECT_TRUE(when.ends_with("Z")) << when;
    ASSERT_TRUE(conns.count(e["connection"])) << "connection is our id";
    const json& c = *conns[e["connection"]];
    // Find the request by start time (the ms in startedDateTime are too coarse): the entry's
    // reuse flag must be the JSON export's for a request of that method on that connection.
    bool reused = e["_reused"];
    EXPECT_TRUE(std::any_of(c["requests"].begin(), c["requests"].end(), [&](const json& r) {
      return r["method"] == e["request"]["method"] && r["reused"] == reused;
    }));
    if (reused) {
      for (const char* k : {"dns", "connect", "ssl"}) EXPECT_EQ(t[k], -1) << k << " on a reused connection";
      EXPECT_TRUE(e["_idleMs"].is_number());
    } else {
      EXPECT_NEAR(t["connect"].get<double>(),
                  (c["connect"]["duration_ns"].get<double>() +
                   (c["tls"].is_object() ? c["tls"]["duration_ns"].get<double>() : 0)) / 1e6,
                  0.0011);
      EXPECT_EQ(t["ssl"].get<double>() >= 0, c["tls"].is_object());
      EXPECT_EQ(t["dns"].get<double>() >= 0, c["dns"].is_object());
    }
    EXPECT_EQ(e["_newReason"], c["new_reason"]);
    EXPECT_EQ(c["new_reason"] == "pool_miss", c["pool_miss"].get<bool>());
    EXPECT_EQ(e["_pid"], c["pid"]);
    const std::string peer = c["peer"];
    EXPECT_EQ(e["serverIPAddress"], peer.substr(0, peer.rfind(':')));
  }
}

class ExportHar : public TracedTest {
 protected:
  // The HAR of the traced run: written, validated by har-validator, compared with the JSON.
  json har_checked(const json& doc) {
    const fs::path out = work_ / "out.har";
    Export h = export_as("har", dir_.path(), out);
    EXPECT_TRUE(h.ok) << h.error;
    EXPECT_EQ(validate_har(out), "ok " + std::to_string(h.doc["log"]["entries"].size()));
    expect_har_matches(h.doc, doc);
    return h.doc;
  }
  TempDir work_;
};

std::vector<json> entries_by_url(const json& har) {
  std::vector<json> v(har["log"]["entries"].begin(), har["log"]["entries"].end());
  std::sort(v.begin(), v.end(), [](const json& a, const json& b) {
    return a["request"]["url"].get<std::string>() < b["request"]["url"].get<std::string>();
  });
  return v;
}

TEST_F(ExportHar, CurlKeepAliveThreeUrlsOneConnection) {
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        server_.url("/a"), server_.url("/b?q=1&r=two"), server_.url("/c")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  json har = har_checked(doc);
  auto e = entries_by_url(har);
  ASSERT_EQ(e.size(), 3u) << har.dump(1);
  EXPECT_EQ(e[0]["request"]["url"], server_.url("/a"));
  EXPECT_EQ(e[1]["request"]["url"], server_.url("/b?q=1&r=two"));
  EXPECT_EQ(e[1]["request"]["queryString"], json::parse(R"([{"name":"q","value":"1"},{"name":"r","value":"two"}])"));
  EXPECT_EQ(e[0]["_reused"], false);
  EXPECT_EQ(e[1]["_reused"], true);
  EXPECT_EQ(e[2]["_reused"], true);
  EXPECT_GE(e[0]["timings"]["connect"].get<double>(), 0);
  EXPECT_EQ(e[0]["connection"], e[2]["connection"]);
  EXPECT_EQ(e[0]["serverIPAddress"], "127.0.0.1");
  EXPECT_EQ(e[0]["request"]["headers"][0]["value"], "localhost:" + server_.port_str());
  for (const json& x : e) {
    EXPECT_EQ(x["response"]["status"], 200);
    EXPECT_EQ(x["request"]["httpVersion"], "HTTP/1.1");
    EXPECT_EQ(x["_tls"], nullptr);
  }
}

TEST_F(ExportHar, PythonPooledAndFresh) {
  constexpr char kScript[] = R"(
import http.client, sys
port = int(sys.argv[1])
pooled = http.client.HTTPConnection("localhost", port)
for path in ("/a", "/b"):
    pooled.request("GET", path)
    pooled.getresponse().read()
fresh = http.client.HTTPConnection("localhost", port)
fresh.request("GET", "/status/404")
fresh.getresponse().read()
pooled.close()
fresh.close()
)";
  RunResult r = traced({paths().python.string(), "-c", kScript, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  json har = har_checked(doc);
  auto e = entries_by_url(har);
  ASSERT_EQ(e.size(), 3u) << har.dump(1);
  EXPECT_EQ(e[0]["_reused"], false);  // /a
  EXPECT_EQ(e[1]["_reused"], true);   // /b
  EXPECT_EQ(e[2]["_reused"], false);  // /status/404, its own connection
  EXPECT_EQ(e[2]["response"]["status"], 404);
  EXPECT_NE(e[0]["connection"], e[2]["connection"]);
  EXPECT_GE(e[0]["timings"]["dns"].get<double>(), 0) << "python resolves with getaddrinfo";
  EXPECT_EQ(e[2]["_newReason"], "pool_miss") << "the pooled connection sat idle";
}

TEST_F(ExportHar, NodeKeepAliveAgent) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  constexpr char kScript[] = R"(
const http = require('http');
const port = Number(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(path, next) {
  http.get({ host: 'localhost', port, path, agent }, (res) => {
    res.resume();
    res.on('end', next);
  }).on('error', (e) => { console.error(e.message); process.exitCode = 1; agent.destroy(); });
}
get('/a', () => get('/b', () => agent.destroy()));
)";
  RunResult r = traced({"/usr/bin/node", "-e", kScript, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  json har = har_checked(doc);
  auto e = entries_by_url(har);
  ASSERT_EQ(e.size(), 2u) << har.dump(1);
  EXPECT_EQ(e[0]["_reused"], false);
  EXPECT_EQ(e[1]["_reused"], true);
  EXPECT_EQ(e[0]["connection"], e[1]["connection"]);
}

class ExportHarTls : public TlsTest {};

TEST_F(ExportHarTls, CurlHttpsTwoUrlsOneHandshake) {
  RunResult r = traced({"curl", "-s", "--cacert", tls_.cert.string(), "-o", "/dev/null", "-o", "/dev/null",
                        server_.url("/a"), server_.url("/status/201")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  const fs::path out = work_ / "out.har";
  Export h = export_as("har", dir_.path(), out);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(validate_har(out), "ok 2");
  expect_har_matches(h.doc, doc);
  auto e = entries_by_url(h.doc);
  ASSERT_EQ(e.size(), 2u) << h.doc.dump(1);
  EXPECT_EQ(e[0]["request"]["url"], server_.url("/a"));
  EXPECT_TRUE(e[0]["request"]["url"].get<std::string>().starts_with("https://"));
  EXPECT_EQ(e[0]["_reused"], false);
  EXPECT_GT(e[0]["timings"]["ssl"].get<double>(), 0);
  EXPECT_GE(e[0]["timings"]["connect"].get<double>(), e[0]["timings"]["ssl"].get<double>())
      << "connect includes ssl";
  EXPECT_EQ(e[1]["_reused"], true);
  EXPECT_EQ(e[1]["timings"]["ssl"], -1);
  EXPECT_EQ(e[1]["response"]["status"], 201);
  for (const json& x : e) {
    ASSERT_TRUE(x["_tls"].is_object()) << x.dump();
    EXPECT_EQ(x["_tls"]["version"], "TLSv1.3");
    EXPECT_TRUE(x["_tls"]["cipher"].is_string());
    EXPECT_EQ(x["_tls"]["resumed"], false);
    EXPECT_EQ(x["_tls"]["sni"], "localhost");
  }
}

}  // namespace
}  // namespace httptrace::itest
