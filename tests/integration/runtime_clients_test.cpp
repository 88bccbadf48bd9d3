// Clients built on other runtimes: CPython's http.client, GNU wget, node (libuv) and java.net.http.
#include <algorithm>
#include <fstream>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

// Connection 1 carries /a and /b (pooled), connection 2 is opened fresh for /c.
constexpr char kPythonPooled[] = R"(
import http.client, sys
port = int(sys.argv[1])
pooled = http.client.HTTPConnection("localhost", port)
for path in ("/a", "/b"):
    pooled.request("GET", path)
    r = pooled.getresponse()
    print(path, r.status, len(r.read()))
fresh = http.client.HTTPConnection("localhost", port)
fresh.request("GET", "/c")
r = fresh.getresponse()
print("/c", r.status, len(r.read()))
pooled.close()
fresh.close()
)";

// A keep-alive agent limited to one socket, so /b must reuse /a's connection.
constexpr char kNodeKeepAlive[] = R"(
const http = require('http');
const port = Number(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(path, next) {
  http.get({ host: 'localhost', port, path, agent }, (res) => {
    let n = 0;
    res.on('data', (d) => { n += d.length; });
    res.on('end', () => { console.log(path, res.statusCode, n); next(); });
  }).on('error', (e) => { console.error(e.message); process.exitCode = 1; agent.destroy(); });
}
get('/a', () => get('/b', () => agent.destroy()));
)";

class RuntimeClients : public TracedTest {};

TEST_F(RuntimeClients, PythonPooledAndFreshConnections) {
  RunResult r = traced({paths().python.string(), "-c", kPythonPooled, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200 26\n/b 200 26\n/c 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  std::sort(conns.begin(), conns.end(), [](const json& a, const json& b) {
    return a["start_ns"].get<uint64_t>() < b["start_ns"].get<uint64_t>();
  });
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(reuse_flags(conns[0]), (std::vector<bool>{false, true}));
  EXPECT_EQ(targets(conns[1]), (std::vector<std::string>{"/c"}));
  EXPECT_EQ(reuse_flags(conns[1]), (std::vector<bool>{false}));
  for (const auto& c : conns) {
    EXPECT_EQ(c["host"], "localhost") << describe(c);
    EXPECT_TRUE(c["dns"].is_object()) << "python resolves with getaddrinfo: " << describe(c);
    EXPECT_TRUE(c["close_ns"].is_number()) << describe(c);
  }
  EXPECT_EQ(doc["summary"]["connections"], 2);
  EXPECT_EQ(doc["summary"]["requests"], 3);
  EXPECT_EQ(doc["summary"]["reused_requests"], 1);
}

TEST_F(RuntimeClients, WgetOneRequest) {
  RunResult r = traced({"wget", "-q", "-O", "-", server_.url("/a")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from httptrace-test\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200}));
  EXPECT_EQ(methods(c), (std::vector<std::string>{"GET"}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false}));
  EXPECT_EQ(c["host"], "localhost");
  EXPECT_TRUE(c["dns"].is_object());
  EXPECT_TRUE(c["tls"].is_null());
  EXPECT_EQ(doc["summary"]["requests"], 1);
}

// node's libuv makes its socket calls (connect, getsockopt SO_ERROR, write, read) through the
// dynamic libc, and runs getaddrinfo on a thread-pool thread: both are visible to the recorder.
// java.net.http with expectContinue(true): head, the server's 100 Continue, 3 MB of body, 200.
// One request, with the status the client itself got.
constexpr char kJavaExpectContinue[] = R"(
import java.net.URI;
import java.net.http.*;
public class Post {
  public static void main(String[] a) throws Exception {
    HttpClient c = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    HttpRequest r = HttpRequest.newBuilder(URI.create(a[0])).expectContinue(true)
        .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[3_000_000])).build();
    System.out.println(c.send(r, HttpResponse.BodyHandlers.ofString()).statusCode());
  }
}
)";

TEST_F(RuntimeClients, JavaExpectContinueUploadIsOneRequest) {
  if (untraced({"java", "-version"}).exit_code != 0) GTEST_SKIP() << "java is not installed";
  TempDir work;
  std::ofstream(work.path() / "Post.java") << kJavaExpectContinue;
  RunResult r = traced({"java", (work.path() / "Post.java").string(), server_.url("/upload", "127.0.0.1")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  ASSERT_EQ(conns[0]["requests"].size(), 1u) << describe(conns[0]);
  const json& q = conns[0]["requests"][0];
  EXPECT_EQ(q["method"], "POST");
  EXPECT_EQ(std::to_string(q["status"].get<int>()) + "\n", r.out);
  EXPECT_GT(q["bytes_sent"].get<uint64_t>(), 3'000'000u);
  EXPECT_EQ(q["bytes_received"], conns[0]["bytes_received"]);
}

TEST_F(RuntimeClients, NodeKeepAliveAgent) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  RunResult r = traced({"/usr/bin/node", "-e", kNodeKeepAlive, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200 26\n/b 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 200}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  EXPECT_EQ(c["host"], "localhost");
  EXPECT_TRUE(c["connect"]["error"].is_null());
  EXPECT_TRUE(c["dns"].is_object());
  EXPECT_EQ(doc["summary"]["requests"], 2);
  EXPECT_EQ(doc["summary"]["reused_requests"], 1);
}

}  // namespace
}  // namespace httptrace::itest
