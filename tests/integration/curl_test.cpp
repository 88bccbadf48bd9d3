// curl (libcurl + OpenSSL build, Debian) traced against the loopback server.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

constexpr char kBody[] = "hello from httptrace-test\n";

class Curl : public TracedTest {};

// Request timestamps must be ordered within a request and requests must not overlap on one
// HTTP/1.1 connection.
void expect_ordered(const json& conn) {
  uint64_t previous_end = 0;
  for (const auto& r : conn["requests"]) {
    SCOPED_TRACE(r.dump());
    auto start = r["start_ns"].get<uint64_t>();
    auto sent = r["sent_ns"].get<uint64_t>();
    ASSERT_TRUE(r["first_byte_ns"].is_number());
    auto first = r["first_byte_ns"].get<uint64_t>();
    auto end = r["end_ns"].get<uint64_t>();
    EXPECT_LE(previous_end, start);
    EXPECT_LE(start, sent);
    EXPECT_LE(sent, first);
    EXPECT_LE(first, end);
    previous_end = end;
  }
}

TEST_F(Curl, ThreeRequestsReuseOneConnection) {
  RunResult r = traced({"curl", "-s", server_.url("/a"), server_.url("/b"), server_.url("/c")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, std::string(kBody) + kBody + kBody);

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/b", "/c"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 200, 200}));
  EXPECT_EQ(methods(c), (std::vector<std::string>{"GET", "GET", "GET"}));
  EXPECT_EQ(c["host"], "localhost");
  EXPECT_EQ(c["peer"], "127.0.0.1:" + server_.port_str());
  EXPECT_TRUE(c["connect"]["error"].is_null());
  EXPECT_TRUE(c["tls"].is_null());
  EXPECT_TRUE(c["close_ns"].is_number()) << "curl closes its connections at exit";
  EXPECT_TRUE(c["requests"][0]["idle_ns"].is_null());
  EXPECT_TRUE(c["requests"][1]["idle_ns"].is_number());
  expect_ordered(c);

  // curl >= 7.78 answers "localhost" itself (RFC 6761) without calling getaddrinfo, so whether
  // there is a lookup depends on the curl build; when there is one, it must be tied to the
  // connection.
  bool looked_up = std::any_of(doc["dns"].begin(), doc["dns"].end(),
                               [](const json& d) { return d["host"] == "localhost"; });
  EXPECT_EQ(c["dns"].is_object(), looked_up) << doc["dns"].dump();

  EXPECT_EQ(doc["summary"]["connections"], 1);
  EXPECT_EQ(doc["summary"]["requests"], 3);
  EXPECT_EQ(doc["summary"]["reused_requests"], 2);
  EXPECT_EQ(doc["summary"]["failed_connects"], 0);
  EXPECT_EQ(doc["summary"]["processes"], 1);
}

// curl resolves "localhost" itself, so a DNS phase needs a name that only the resolver knows. We
// give curl a private /etc/hosts in its own mount namespace (needs root, as CI runs) naming
// kTestHost; elsewhere the test is skipped rather than depending on the machine's host name.
constexpr char kTestHost[] = "api.httptrace.test";

bool can_use_private_hosts() {
  RunResult r = run({"unshare", "-m", "true"});
  return r.exit_code == 0;
}

std::vector<std::string> with_private_hosts(const fs::path& hosts, std::vector<std::string> argv) {
  std::string cmd = "mount --bind \"$0\" /etc/hosts && exec \"$@\"";
  std::vector<std::string> full = {"unshare", "-m", "sh", "-c", cmd, hosts.string()};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

TEST_F(Curl, LookupIsTiedToTheConnection) {
  if (!can_use_private_hosts()) GTEST_SKIP() << "unshare -m is not permitted here (not root?)";
  const fs::path hosts = dir_ / "hosts";
  {
    std::ofstream f(hosts);
    f << "127.0.0.1 localhost\n127.0.0.1 " << kTestHost << "\n";
  }
  const std::string host = kTestHost;
  RunResult r = traced(with_private_hosts(hosts, {"curl", "-s", server_.url("/a", host),
                                                  server_.url("/b", host)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  EXPECT_EQ(c["host"], host);
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));

  std::vector<json> lookups;
  for (const auto& d : doc["dns"]) {
    if (d["host"] == host) lookups.push_back(d);
  }
  ASSERT_EQ(lookups.size(), 1u) << doc["dns"].dump(1);
  const json& d = lookups[0];
  EXPECT_TRUE(d["error"].is_null());
  EXPECT_NE(std::find(d["addresses"].begin(), d["addresses"].end(), "127.0.0.1"),
            d["addresses"].end());
  ASSERT_TRUE(c["dns"].is_object()) << describe(c);
  EXPECT_EQ(c["dns"]["start_ns"], d["start_ns"]);
  EXPECT_EQ(c["dns"]["duration_ns"], d["duration_ns"]);
  EXPECT_LE(d["start_ns"].get<uint64_t>() + d["duration_ns"].get<uint64_t>(),
            c["connect"]["start_ns"].get<uint64_t>());
}

TEST_F(Curl, WaitMatchesCurlsOwnTiming) {
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-w",
                        "%{time_starttransfer} %{time_pretransfer}", server_.url("/delay/200")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  double starttransfer = 0, pretransfer = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "%lf %lf", &starttransfer, &pretransfer), 2) << r.out;
  const double curl_wait_ms = (starttransfer - pretransfer) * 1e3;

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  ASSERT_EQ(conns[0]["requests"].size(), 1u) << describe(conns[0]);
  const json& req = conns[0]["requests"][0];
  EXPECT_EQ(req["target"], "/delay/200");
  ASSERT_TRUE(req["first_byte_ns"].is_number());
  const double our_wait_ms =
      static_cast<double>(req["first_byte_ns"].get<uint64_t>() - req["sent_ns"].get<uint64_t>()) /
      1e6;
  EXPECT_GE(our_wait_ms, 200.0);
  EXPECT_LE(std::fabs(our_wait_ms - curl_wait_ms), 5.0)
      << "ours " << our_wait_ms << " ms, curl's " << curl_wait_ms << " ms";
}

// curl sends a body over 1 MiB after "Expect: 100-continue": head, the server's 100, body, final
// response are one request with the final status. (curl's own time_starttransfer stops at the
// 100; our first byte is the final response's, so the upload is in the send phase.)
TEST_F(Curl, ExpectContinueUploadIsOneRequest) {
  TempDir work;
  const fs::path body = work.path() / "body.bin";
  std::ofstream(body, std::ios::binary) << std::string(2'000'000, 'b');
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_upload} %{num_connects}",
                        "--data-binary", "@" + body.string(), server_.url("/upload")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  int code = 0, connects = 0;
  uint64_t uploaded = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "%d %" SCNu64 " %d", &code, &uploaded, &connects), 3) << r.out;
  ASSERT_EQ(uploaded, 2'000'000u);

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), static_cast<size_t>(connects)) << doc.dump(1);
  ASSERT_EQ(conns[0]["requests"].size(), 1u) << describe(conns[0]);
  const json& q = conns[0]["requests"][0];
  EXPECT_EQ(q["method"], "POST");
  EXPECT_EQ(q["status"], code);
  EXPECT_GT(q["bytes_sent"].get<uint64_t>(), uploaded);
  EXPECT_EQ(q["bytes_sent"], conns[0]["bytes_sent"]);
  EXPECT_EQ(q["bytes_received"], conns[0]["bytes_received"]);
  ASSERT_TRUE(q["first_byte_ns"].is_number());
  EXPECT_GE(q["first_byte_ns"].get<uint64_t>(), q["sent_ns"].get<uint64_t>());
}

// 103 Early Hints, then the response 60 ms later: two heads in two reads with no write between.
// The request's status is the final one, its first byte the final head's (the recorder captures
// the read after an interim head though it is no turn of the conversation), and it is one
// request; curl names the same status.
TEST_F(Curl, EarlyHintsThenTheResponseIsOneRequest) {
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", server_.url("/early-hints/60")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "200");
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  ASSERT_EQ(conns[0]["requests"].size(), 1u) << describe(conns[0]);
  const json& q = conns[0]["requests"][0];
  EXPECT_EQ(q["status"], 200);
  ASSERT_TRUE(q["first_byte_ns"].is_number());
  EXPECT_GE(q["first_byte_ns"].get<uint64_t>(), q["sent_ns"].get<uint64_t>() + 60'000'000u)
      << "the final head came 60 ms after the 103";
  EXPECT_EQ(q["bytes_received"], conns[0]["bytes_received"]);
}

class CurlIpv6 : public TracedTest {
 protected:
  CurlIpv6() : server6_({.ipv6 = true}) {}
  TestServer server6_;
};

TEST_F(CurlIpv6, PeerIsBracketed) {
  ASSERT_TRUE(server6_.ok()) << server6_.error();
  const std::string base = "http://[::1]:" + server6_.port_str();
  RunResult r = traced({"curl", "-s", base + "/a", base + "/b"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server6_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  EXPECT_EQ(conns[0]["peer"], "[::1]:" + server6_.port_str());
  EXPECT_EQ(reuse_flags(conns[0]), (std::vector<bool>{false, true}));
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_TRUE(conns[0]["dns"].is_null()) << "an address literal needs no lookup";
}

TEST_F(Curl, ChunkedResponseIsOneRequest) {
  RunResult r = traced({"curl", "-s", server_.url("/chunked/5"), server_.url("/a")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, std::string("chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n") + kBody);

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/chunked/5", "/a"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 200}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  // 5 chunks of 8 bytes plus their framing ("8\r\n" + "\r\n") and the last-chunk marker.
  EXPECT_GT(c["requests"][0]["bytes_received"].get<uint64_t>(), 5u * (8 + 5) + 5);
  EXPECT_EQ(c["bytes_received"].get<uint64_t>(),
            c["requests"][0]["bytes_received"].get<uint64_t>() +
                c["requests"][1]["bytes_received"].get<uint64_t>());
  expect_ordered(c);
}

TEST_F(Curl, ConnectionCloseMeansANewConnection) {
  RunResult r = traced({"curl", "-s", server_.url("/close"), server_.url("/a")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, std::string("closing\n") + kBody);

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  std::sort(conns.begin(), conns.end(), [](const json& a, const json& b) {
    return a["start_ns"].get<uint64_t>() < b["start_ns"].get<uint64_t>();
  });
  EXPECT_NE(conns[0]["id"], conns[1]["id"]);
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/close"}));
  EXPECT_EQ(targets(conns[1]), (std::vector<std::string>{"/a"}));
  EXPECT_EQ(reuse_flags(conns[0]), (std::vector<bool>{false}));
  EXPECT_EQ(reuse_flags(conns[1]), (std::vector<bool>{false}));
  ASSERT_TRUE(conns[0]["close_ns"].is_number());
  EXPECT_LE(conns[0]["close_ns"].get<uint64_t>(), conns[1]["start_ns"].get<uint64_t>());
  EXPECT_EQ(doc["summary"]["reused_requests"], 0);
}

}  // namespace
}  // namespace httptrace::itest
