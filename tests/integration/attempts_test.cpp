// Attempts are not connections (issue 8.2, 8.3): real clients whose sockets never connect, or
// whose first address is refused, report one connection per connection on the wire.
#include <fstream>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

class Attempts : public TracedTest {};

// Every connection of the export, whatever its peer.
const json& all_connections(const json& doc) { return doc["connections"]; }

// curl 7.88 tries 127.0.0.1 before ::1 for `localhost`: with the server on ::1 only, the first
// attempt is refused and the second wins. That is one connection with one losing attempt.
TEST_F(Attempts, CurlRefusedOnIpv4ThenConnectedOnIpv6IsOneConnection) {
  TestServer server6({.ipv6 = true});
  ASSERT_TRUE(server6.ok()) << server6.error();
  RunResult r = traced({"curl", "-s", "http://localhost:" + server6.port_str() + "/a"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(all_connections(doc).size(), 1u) << doc.dump(1);
  const json& c = all_connections(doc)[0];
  EXPECT_EQ(c["peer"], "[::1]:" + server6.port_str());
  EXPECT_EQ(c["failed"], false);
  ASSERT_EQ(c["attempts"].size(), 1u) << c.dump(1);
  EXPECT_EQ(c["attempts"][0]["peer"], "127.0.0.1:" + server6.port_str());
  EXPECT_EQ(c["attempts"][0]["error"], "ECONNREFUSED");
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a"}));
  EXPECT_EQ(doc["summary"]["connections"], 1);
  EXPECT_EQ(doc["summary"]["failed_connects"], 0);
}

// Both addresses of `localhost` refused: one failed connection, not two.
TEST_F(Attempts, CurlRefusedOnBothFamiliesIsOneFailedConnection) {
  ClosedPort closed;
  RunResult r = traced({"curl", "-s", "http://localhost:" + closed.port_str() + "/"});
  ASSERT_NE(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(all_connections(doc).size(), 1u) << doc.dump(1);
  const json& c = all_connections(doc)[0];
  EXPECT_EQ(c["failed"], true);
  EXPECT_EQ(c["connect"]["error"], "ECONNREFUSED");
  ASSERT_EQ(c["attempts"].size(), 1u) << c.dump(1);
  EXPECT_EQ(c["attempts"][0]["error"], "ECONNREFUSED");
  EXPECT_NE(c["attempts"][0]["peer"], c["peer"]);
  EXPECT_EQ(doc["summary"]["connections"], 1);
  EXPECT_EQ(doc["summary"]["failed_connects"], 1);
}

// java.net.http opens sockets at start-up that never connect, and connects AF_INET6 sockets to
// ::ffff:127.0.0.1 after an IPv4 lookup. Two requests on one keep-alive connection.
constexpr char kJavaGet[] = R"(
import java.net.URI;
import java.net.http.*;
public class Get {
  public static void main(String[] a) throws Exception {
    HttpClient c = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    for (String p : new String[] {"/a", "/b"}) {
      HttpResponse<String> r = c.send(HttpRequest.newBuilder(URI.create(a[0] + p)).build(),
                                      HttpResponse.BodyHandlers.ofString());
      System.out.println(p + " " + r.statusCode());
    }
  }
}
)";

TEST_F(Attempts, JavaHttpClientCountsOnlyTheConnectionOnTheWire) {
  if (!fs::exists("/usr/bin/javac")) GTEST_SKIP() << "no javac";
  TempDir src;
  { std::ofstream(src.path() / "Get.java") << kJavaGet; }
  RunResult built = untraced({"/usr/bin/javac", "-d", src.path().string(), (src.path() / "Get.java").string()});
  ASSERT_EQ(built.exit_code, 0) << built.describe();
  RunResult r = traced({"/usr/bin/java", "-cp", src.path().string(), "Get",
                        "http://localhost:" + server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200\n/b 200\n");

  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(all_connections(doc).size(), 1u) << doc.dump(1);
  const json& c = all_connections(doc)[0];
  EXPECT_EQ(c["peer"], "[::ffff:127.0.0.1]:" + server_.port_str());
  EXPECT_EQ(c["host"], "localhost");
  EXPECT_TRUE(c["dns"].is_object()) << "the mapped peer is the lookup's 127.0.0.1: " << c.dump(1);
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  EXPECT_EQ(doc["summary"]["connections"], 1);
}

// urllib3 probes for IPv6 with a socket bound to ::1 that never connects.
constexpr char kRequests[] = R"(
import sys, requests
port = sys.argv[1]
s = requests.Session()
for p in ("/a", "/b"):
    print(p, s.get("http://localhost:%s%s" % (port, p)).status_code)
)";

TEST_F(Attempts, PythonRequestsCountsOnlyTheConnectionOnTheWire) {
  RunResult probe = untraced({paths().python.string(), "-c", "import requests"});
  if (probe.exit_code != 0) GTEST_SKIP() << "python3-requests is not installed";
  RunResult r = traced({paths().python.string(), "-c", kRequests, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200\n/b 200\n");

  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(all_connections(doc).size(), 1u) << doc.dump(1);
  const json& c = all_connections(doc)[0];
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  EXPECT_TRUE(c["peer"].is_string());
  EXPECT_EQ(doc["summary"]["connections"], 1);
}

}  // namespace
}  // namespace httptrace::itest
