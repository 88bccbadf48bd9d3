// HTTP/2 over cleartext by Upgrade (RFC 7540 §3.2): `curl --http2 http://...` sends its first
// request as HTTP/1.1 offering h2c, the server answers 101 and both speak h2 on the connection,
// the upgraded request being stream 1. tests/servers/h2c_upgrade_server.py is the server (no
// Debian server does the upgrade); each side is traced in turn, and what the trace says of every
// request is checked against curl's own -w report of it.
#include <sstream>

#include "tests/integration/fixture.h"
#include "tests/integration/script_server.h"

namespace httptrace::itest {
namespace {

// The server's 101, as it writes it, and its SETTINGS (9 bytes, no parameters) in the same write.
constexpr size_t k101Bytes = sizeof("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n") - 1;
constexpr size_t kSettingsBytes = 9;
// Its response frames around a body: HEADERS (9 + ':status 200' + a content-length literal of
// 3 digits: 1 + 2 + 1 + 3) and the DATA frame's header.
constexpr size_t kResponseOverhead = 9 + 7 + 9;

// One line per URL of `curl -w`: http_version, response_code, size_download.
struct CurlSays {
  std::string version;
  int status = 0;
  uint64_t size = 0;
};

std::vector<CurlSays> curl_says(const std::string& out) {
  std::vector<CurlSays> v;
  std::istringstream in(out);
  CurlSays s;
  while (in >> s.version >> s.status >> s.size) v.push_back(s);
  return v;
}

std::vector<std::string> curl_h2(const ScriptServer& server, const std::vector<std::string>& paths) {
  std::vector<std::string> argv = {"curl", "-sS", "--http2", "-w", "%{http_version} %{response_code} %{size_download}\\n"};
  for (const auto& p : paths) {
    argv.push_back("-o");
    argv.push_back("/dev/null");
    argv.push_back(server.url(p));
  }
  return argv;
}

const std::vector<std::string> kPaths = {"/a", "/b", "/c"};

// What both sides' checks share: one h2 connection whose requests are curl's, in order.
void expect_requests(const json& c, const std::vector<CurlSays>& said, const char* response_bytes) {
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(c["protocol"], "h2");
  ASSERT_EQ(c["requests"].size(), said.size());
  for (size_t i = 0; i < said.size(); ++i) {
    const json& r = c["requests"][i];
    SCOPED_TRACE(r.dump());
    EXPECT_EQ(said[i].version, "2");
    EXPECT_EQ(r["protocol_stream"], 2 * i + 1) << "the upgraded request is stream 1";
    EXPECT_EQ(r["method"], "GET");
    EXPECT_EQ(r["target"], kPaths[i]);
    EXPECT_EQ(r["status"], said[i].status);
    EXPECT_EQ(r["reused"], i > 0);
    // The upgraded request's response began with the 101 (and the server's SETTINGS with it).
    const uint64_t upgrade = i == 0 ? k101Bytes + kSettingsBytes : 0;
    EXPECT_EQ(r[response_bytes].get<uint64_t>(), said[i].size + kResponseOverhead + upgrade);
    ASSERT_TRUE(r["first_byte_ns"].is_number());
    EXPECT_LE(r["start_ns"].get<uint64_t>(), r["first_byte_ns"].get<uint64_t>());
    EXPECT_LE(r["first_byte_ns"].get<uint64_t>(), r["end_ns"].get<uint64_t>());
  }
}

TEST(H2cUpgrade, TracedCurlSeesTheUpgradedRequestAsStream1) {
  TempDir dir;
  ScriptServer server("h2c_upgrade_server.py", RunOptions{});
  ASSERT_TRUE(server.ok()) << server.error();
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir.path());
  RunResult r = run(curl_h2(server, kPaths), o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::vector<CurlSays> said = curl_says(r.out);
  ASSERT_EQ(said.size(), kPaths.size()) << r.out;
  for (size_t i = 0; i < said.size(); ++i) EXPECT_EQ(said[i].size, 100 * (2 * i + 1) + 7) << "the server's signature";

  Export e = export_json(dir.path());
  ASSERT_TRUE(e.ok) << e.error << r.describe();
  auto conns = connections_to(e.doc, server.port());
  ASSERT_EQ(conns.size(), 1u) << e.doc.dump(1);
  expect_requests(conns[0], said, "bytes_received");
  EXPECT_EQ(conns[0]["h2_streams"], kPaths.size());
  EXPECT_EQ(conns[0]["h2_responses"], kPaths.size()) << "stream 1's came in the 101's read";
}

TEST(H2cUpgrade, TracedServerSeesTheUpgradedRequestAsStream1) {
  TempDir dir;
  RunOptions so;
  so.preload = true;
  so.env = trace_env(dir.path());
  ScriptServer server("h2c_upgrade_server.py", so);
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run(curl_h2(server, kPaths));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::vector<CurlSays> said = curl_says(r.out);
  ASSERT_EQ(said.size(), kPaths.size()) << r.out;
  RunResult stopped = server.stop();

  Export e = export_json(dir.path());
  ASSERT_TRUE(e.ok) << e.error << stopped.describe();
  std::vector<json> inbound;
  for (const json& c : e.doc["connections"])
    if (c["direction"] == "inbound" && c["local"] == "127.0.0.1:" + std::to_string(server.port())) inbound.push_back(c);
  ASSERT_EQ(inbound.size(), 1u) << e.doc.dump(1);
  // On the server's side the response is what it sent.
  expect_requests(inbound[0], said, "bytes_sent");
}

// Both ends traced: each of the server's streams is the same call as the client's stream of that
// id (the upgraded request too), and a child of it in one trace.
TEST(H2cUpgrade, BothEndsTracedLinkEveryStream) {
  TempDir dir;
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir.path());
  ScriptServer server("h2c_upgrade_server.py", o);
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run(curl_h2(server, kPaths), o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  RunResult stopped = server.stop();

  Export e = export_json(dir.path());
  ASSERT_TRUE(e.ok) << e.error << stopped.describe();
  const json* client = nullptr;
  const json* inbound = nullptr;
  for (const json& c : e.doc["connections"]) {
    if (c["direction"] == "inbound" && c["local"] == "127.0.0.1:" + std::to_string(server.port())) inbound = &c;
    if (c["direction"] == "outbound" && c["peer"] == "127.0.0.1:" + std::to_string(server.port())) client = &c;
  }
  ASSERT_TRUE(client && inbound) << e.doc.dump(1).substr(0, 4000);
  ASSERT_EQ((*client)["requests"].size(), kPaths.size());
  ASSERT_EQ((*inbound)["requests"].size(), kPaths.size());
  for (size_t i = 0; i < kPaths.size(); ++i) {
    const json& a = (*client)["requests"][i];
    const json& s = (*inbound)["requests"][i];
    SCOPED_TRACE(a.dump() + "\n" + s.dump());
    EXPECT_EQ(a["protocol_stream"], s["protocol_stream"]);
    EXPECT_EQ(s["linked"], (*client)["id"].get<std::string>() + "#" + std::to_string(i));
    EXPECT_EQ(a["linked"], (*inbound)["id"].get<std::string>() + "#" + std::to_string(i));
    EXPECT_EQ(s["trace_id"], a["trace_id"]);
    EXPECT_EQ(s["parent_span_id"], a["span_id"]);
  }
}

}  // namespace
}  // namespace httptrace::itest
