// The trace against a packet capture of the same run (tcpdump -i lo, tests/integration/
// packet_capture.h), for clients in seven languages and our threaded C++ client, over HTTP and HTTPS: the same
// connections (one SYN each, matched by the client's port), the same bytes each way per connection
// and per request, one request per request/response turn on the wire, and every time we report
// consistent with when the kernel saw the packets: a connect's SYN inside the connect call, a
// request's first packet after its start and its last before its last write returned, a
// response's first packet before the read that we say returned its first byte and its last before
// the request's end, the client's FIN at or after its close.
#include <fstream>
#include <map>
#include <set>

#include "tests/integration/fixture.h"
#include "tests/integration/client_programs.h"
#include "tests/integration/packet_capture.h"
#include "tests/integration/script_server.h"
#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

// Our wall clock is the trace's (CLOCK_MONOTONIC mapped through a CLOCK_REALTIME reading taken
// beside it); tcpdump's is the kernel's CLOCK_REALTIME. NTP slews both clocks alike, so they
// differ by the time between the two readings of the anchor: well under this. (Measured margins
// here: a packet 9-80 us after the call's start, 8-300 us before its end.)
constexpr int64_t kSlackNs = 20'000;

struct Client {
  const char* name;
  // `work` is an empty directory of the test's own, for a client that runs from a source file.
  std::vector<std::string> (*argv)(const TestServer& s, const fs::path& work);
  size_t connections;  // 0: as many as the wire shows (the client's pool decides)
  size_t requests;
  std::vector<std::string> probe = {};  // exits 0 when the client is installed (else the test skips)
};

std::string url(const TestServer& s, const std::string& path) { return s.url(path, "127.0.0.1"); }

// java.net.http through the source launcher: two requests on one keep-alive connection, on an
// AF_INET6 socket connected to ::ffff:127.0.0.1.
constexpr char kJavaGet[] = R"(
import java.net.URI;
import java.net.http.*;
public class Get {
  public static void main(String[] a) throws Exception {
    HttpClient c = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    for (String p : new String[] {"/j1", "/j2"})
      c.send(HttpRequest.newBuilder(URI.create(a[0] + p)).build(), HttpResponse.BodyHandlers.ofString());
  }
}
)";

const Client kClients[] = {
    {"curl",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                                       url(s, "/a"), url(s, "/status/404"), url(s, "/c")};
     },
     1, 3},
    {"python",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{
           paths().python.string(), "-c",
           "import http.client, sys\n"
           "for n in range(2):\n"
           "    c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n"
           "    for p in ('/p%d' % n, '/q%d' % n):\n"
           "        c.request('GET', p); c.getresponse().read()\n"
           "    c.close()\n",
           s.port_str()};
     },
     2, 4},
    {"node",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{
           "node", "-e",
           "const http = require('http');\n"
           "const agent = new http.Agent({keepAlive: true, maxSockets: 1});\n"
           "const get = (path) => new Promise((done) => http.get(\n"
           "    {host: '127.0.0.1', port: Number(process.argv[1]), path, agent},\n"
           "    (res) => { res.resume(); res.on('end', done); }));\n"
           "(async () => { await get('/n1'); await get('/n2'); agent.destroy(); })();\n",
           s.port_str()};
     },
     1, 2},
    // node's fetch (undici): node 20's pool opened a second connection while the first was idle.
    {"node_fetch",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{
           "node", "-e",
           "(async () => { for (const p of ['/f1', '/f2']) await (await fetch(process.argv[1] + p)).text(); })();\n",
           url(s, "")};
     },
     0, 2, {"node", "-e", "process.exit(typeof fetch === 'function' ? 0 : 1)"}},
    {"wget",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{"wget", "-q", "-O", "/dev/null", url(s, "/w1"), url(s, "/w2")};
     },
     1, 2},
    {"ruby",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{
           "ruby", "-rnet/http", "-e",
           "Net::HTTP.start('127.0.0.1', ARGV[0].to_i) { |h| %w[/r1 /r2].each { |p| h.get(p) } }",
           s.port_str()};
     },
     1, 2, {"ruby", "-rnet/http", "-e", ""}},
    {"perl",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{
           "perl", "-MHTTP::Tiny", "-e",
           "my $h = HTTP::Tiny->new(keep_alive => 1); $h->get(\"$ARGV[0]$_\") for qw(/l1 /l2);", url(s, "")};
     },
     1, 2, {"perl", "-MHTTP::Tiny", "-e", ""}},
    {"php_curl",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{
           "php", "-r",
           "$h = curl_init(); curl_setopt($h, CURLOPT_RETURNTRANSFER, true);\n"
           "foreach (['/h1', '/h2'] as $p) { curl_setopt($h, CURLOPT_URL, $argv[1] . $p); curl_exec($h); }\n"
           "curl_close($h);\n",
           url(s, "")};
     },
     1, 2, {"php", "-r", "exit(function_exists('curl_init') ? 0 : 1);"}},
    {"python_requests",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{paths().python.string(), "-c",
                                       "import requests, sys\n"
                                       "with requests.Session() as s:\n"
                                       "    for p in ('/s1', '/s2', '/s3'): s.get(sys.argv[1] + p).content\n",
                                       url(s, "")};
     },
     1, 3, {"python3", "-c", "import requests"}},
    {"java",
     [](const TestServer& s, const fs::path& work) {
       std::ofstream(work / "Get.java") << kJavaGet;
       return std::vector<std::string>{"java", (work / "Get.java").string(), url(s, "")};
     },
     1, 2, {"java", "-version"}},
    // Four threads, each its own keep-alive connection, three requests each, all at once.
    {"threads",
     [](const TestServer& s, const fs::path&) {
       return std::vector<std::string>{paths().client.string(), "threads", "127.0.0.1", s.port_str(), "4", "3"};
     },
     4, 12},
};

class WireTruth : public TracedTest, public ::testing::WithParamInterface<Client> {};

INSTANTIATE_TEST_SUITE_P(Clients, WireTruth, ::testing::ValuesIn(kClients),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_P(WireTruth, TheTraceSaysWhatTheWireSaw) {
  const Client& client = GetParam();
  if (!client.probe.empty() && untraced(client.probe).exit_code != 0) GTEST_SKIP() << client.name << " is not installed";
  PacketCapture wire(server_.port());
  if (!wire.ready()) GTEST_SKIP() << wire.reason();
  TempDir work;
  const RunResult r = traced(client.argv(server_, work.path()));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::map<int, WireConnection> seen;
  ASSERT_TRUE(wire.finish(&seen)) << wire.reason();

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  const int64_t t0 = doc["t0_unix_ns"].get<int64_t>();
  auto wall = [&](const json& rel) { return t0 + rel.get<int64_t>(); };
  const auto conns = connections_to(doc, server_.port());
  if (client.connections != 0) {
    ASSERT_EQ(seen.size(), client.connections) << "connections on the wire";
  }
  ASSERT_EQ(conns.size(), seen.size()) << doc.dump(1);

  size_t requests = 0;
  for (const json& c : conns) {
    SCOPED_TRACE(describe(c));
    const std::string local = c["local"].get<std::string>();
    const int port = std::stoi(local.substr(local.rfind(':') + 1));
    ASSERT_EQ(seen.count(port), 1u) << "no connection from port " << port << " on the wire";
    const WireConnection& w = seen[port];
    EXPECT_EQ(c["bytes_sent"].get<uint64_t>(), w.bytes_to_server);
    EXPECT_EQ(c["bytes_received"].get<uint64_t>(), w.bytes_to_client);

    // The SYN goes out, and the SYN-ACK comes back, inside the connect call.
    const int64_t connect_start = wall(c["connect"]["start_ns"]);
    const int64_t connect_end = connect_start + c["connect"]["duration_ns"].get<int64_t>();
    EXPECT_GE(static_cast<int64_t>(w.syn_ns), connect_start - kSlackNs);
    EXPECT_LE(static_cast<int64_t>(w.syn_ack_ns), connect_end + kSlackNs);

    const auto turns = w.turns();
    ASSERT_EQ(c["requests"].size(), turns.size()) << "one request per turn on the wire";
    for (size_t i = 0; i < turns.size(); ++i) {
      const json& q = c["requests"][i];
      const auto& t = turns[i];
      SCOPED_TRACE("request " + std::to_string(i));
      EXPECT_EQ(q["reused"].get<bool>(), i > 0);
      EXPECT_EQ(q["bytes_sent"].get<uint64_t>(), t.request_bytes);
      EXPECT_EQ(q["bytes_received"].get<uint64_t>(), t.response_bytes);
      EXPECT_GE(static_cast<int64_t>(t.first_request_ns), wall(q["start_ns"]) - kSlackNs);
      EXPECT_LE(static_cast<int64_t>(t.last_request_ns), wall(q["sent_ns"]) + kSlackNs);  // the last write's end
      ASSERT_TRUE(q["first_byte_ns"].is_number()) << q.dump();
      EXPECT_LE(static_cast<int64_t>(t.first_response_ns), wall(q["first_byte_ns"]) + kSlackNs);
      EXPECT_LE(static_cast<int64_t>(t.last_response_ns), wall(q["end_ns"]) + kSlackNs);
    }
    requests += turns.size();
    // wget leaves its socket to exit(): no close call, so no close time (null, not a guess).
    if (c["close_ns"].is_number()) {
      EXPECT_NE(w.client_fin_ns, 0u);
      EXPECT_GE(static_cast<int64_t>(w.client_fin_ns), wall(c["close_ns"]) - kSlackNs);
    }
  }
  EXPECT_EQ(requests, client.requests);
}

// HTTPS through each client's own TLS stack: OpenSSL through our hooks (curl, python, ruby, php's
// curl), GnuTLS (wget), or read from the wire (java's JSSE, node when its OpenSSL is its own). The
// connection's bytes are the wire's, the handshake we report spans the ClientHello and the
// server's first flight, and each request's first record goes out after the handshake (or, when
// the client's Finished shares the request's first write, in it), inside the request. Every client skips certificate checks (the server's certificate is made per test).
struct TlsClient {
  const char* name;
  std::vector<std::string> (*argv)(const std::string& base_url, const fs::path& work);
  const char* library;               // "openssl", "gnutls", "wire"; nullptr: whichever it uses
  std::vector<std::string> targets;  // also the number of requests; not checked for "wire"
  std::vector<std::string> probe = {};
};

// java.net.http with a trust-everything context: two requests on one connection.

const TlsClient kTlsClients[] = {
    {"curl",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{"curl", "-sk", "-o", "/dev/null", "-o", "/dev/null", u + "/a", u + "/b"};
     },
     "openssl", {"/a", "/b"}},
    {"python",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{paths().python.string(), "-c",
                                       "import http.client, ssl, sys, urllib.parse\n"
                                       "u = urllib.parse.urlsplit(sys.argv[1])\n"
                                       "c = http.client.HTTPSConnection(u.hostname, u.port,\n"
                                       "    context=ssl._create_unverified_context())\n"
                                       "for p in ('/p1', '/p2'):\n"
                                       "    c.request('GET', p); c.getresponse().read()\n"
                                       "c.close()\n",
                                       u};
     },
     "openssl", {"/p1", "/p2"}},
    {"python_requests",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{paths().python.string(), "-W", "ignore", "-c",
                                       "import requests, sys\n"
                                       "with requests.Session() as s:\n"
                                       "    for p in ('/s1', '/s2'): s.get(sys.argv[1] + p, verify=False).content\n",
                                       u};
     },
     "openssl", {"/s1", "/s2"}, {"python3", "-c", "import requests"}},
    // asyncio's TLS runs on memory BIOs, so it is read from the wire; it sends its close_notify
    // and reads to EOF, which must not make a third request.
    {"python_asyncio",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{paths().python.string(), "-c", kAsyncioHttpsGets, u, "/a1", "/a2"};
     },
     "wire", {"/a1", "/a2"}},
    {"wget",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{"wget", "-q", "--no-check-certificate", "-O", "/dev/null", u + "/w1",
                                       u + "/w2"};
     },
     "gnutls", {"/w1", "/w2"}},
    {"ruby",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{
           "ruby", "-rnet/http", "-ropenssl", "-e",
           "u = URI(ARGV[0])\n"
           "Net::HTTP.start(u.host, u.port, use_ssl: true, verify_mode: OpenSSL::SSL::VERIFY_NONE) { |h|\n"
           "  %w[/r1 /r2].each { |p| h.get(p) } }\n",
           u};
     },
     "openssl", {"/r1", "/r2"}, {"ruby", "-rnet/http", "-ropenssl", "-e", ""}},
    {"php_curl",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{
           "php", "-r",
           "$h = curl_init(); curl_setopt($h, CURLOPT_RETURNTRANSFER, true);\n"
           "curl_setopt($h, CURLOPT_SSL_VERIFYPEER, false); curl_setopt($h, CURLOPT_SSL_VERIFYHOST, 0);\n"
           "foreach (['/h1', '/h2'] as $p) { curl_setopt($h, CURLOPT_URL, $argv[1] . $p); curl_exec($h); }\n",
           u};
     },
     "openssl", {"/h1", "/h2"}, {"php", "-r", "exit(function_exists('curl_init') ? 0 : 1);"}},
    {"node",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{"node", "-e", kNodeHttpsGets, u, "/n1", "/n2"};
     },
     nullptr, {"/n1", "/n2"}, {"node", "-e", ""}},
    {"java",
     [](const std::string& u, const fs::path& work) {
       std::ofstream(work / "Get.java") << kJavaHttpsGet;
       return std::vector<std::string>{"java", (work / "Get.java").string(), u};
     },
     "wire", {"/j1", "/j2"}, {"java", "-version"}},
};

class WireTruthTls : public TlsTest, public ::testing::WithParamInterface<TlsClient> {};

INSTANTIATE_TEST_SUITE_P(Clients, WireTruthTls, ::testing::ValuesIn(kTlsClients),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_P(WireTruthTls, TheHandshakeAndTheBytesAreTheWires) {
  const TlsClient& client = GetParam();
  if (!client.probe.empty() && run(client.probe).exit_code != 0) GTEST_SKIP() << client.name << " is not installed";
  PacketCapture wire(server_.port());
  if (!wire.ready()) GTEST_SKIP() << wire.reason();
  TempDir work;
  const std::string base = server_.url("", "127.0.0.1");
  const RunResult r = traced(client.argv(base, work.path()));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::map<int, WireConnection> seen;
  ASSERT_TRUE(wire.finish(&seen)) << wire.reason();

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  const int64_t t0 = doc["t0_unix_ns"].get<int64_t>();
  auto wall = [&](const json& rel) { return t0 + rel.get<int64_t>(); };
  const auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  ASSERT_EQ(seen.size(), 1u) << "connections on the wire";
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  const std::string local = c["local"].get<std::string>();
  const WireConnection& w = seen.begin()->second;
  EXPECT_EQ(w.client_port, std::stoi(local.substr(local.rfind(':') + 1)));
  EXPECT_EQ(c["bytes_sent"].get<uint64_t>(), w.bytes_to_server);
  // We count what the client read. A TLS 1.3 server sends session tickets of its own accord, and
  // a client that stops reading after its last response (ruby, now and then) leaves the last of
  // them in its socket: the bytes we did not count are whole packets at the end of the stream.
  const uint64_t received = c["bytes_received"].get<uint64_t>();
  ASSERT_LE(received, w.bytes_to_client);
  uint64_t unread = 0;
  for (auto p = w.payload.rbegin(); p != w.payload.rend() && unread < w.bytes_to_client - received; ++p) {
    if (!p->first) unread += p->second.length;
  }
  EXPECT_EQ(unread, w.bytes_to_client - received) << "not a tail of whole packets";
  ASSERT_TRUE(c["tls"].is_object());
  const std::string library = c["tls"]["library"].get<std::string>();
  if (client.library) {
    EXPECT_EQ(library, client.library);
  }
  EXPECT_EQ(c["tls"]["version"], "TLSv1.3");
  const int64_t tls_start = wall(c["tls"]["start_ns"]);
  const int64_t tls_end = tls_start + c["tls"]["duration_ns"].get<int64_t>();
  ASSERT_GE(w.payload.size(), 2u);
  ASSERT_TRUE(w.payload[0].first) << "the ClientHello comes first";
  const uint64_t client_hello = w.payload[0].second.unix_ns;
  uint64_t server_hello = 0;
  for (const auto& [to_server, p] : w.payload) {
    if (!to_server) {
      server_hello = p.unix_ns;
      break;
    }
  }
  EXPECT_GE(static_cast<int64_t>(client_hello), tls_start - kSlackNs);
  EXPECT_LE(static_cast<int64_t>(client_hello), tls_end + kSlackNs);
  EXPECT_LE(static_cast<int64_t>(server_hello), tls_end + kSlackNs);
  EXPECT_GE(tls_start, wall(c["connect"]["start_ns"]) + c["connect"]["duration_ns"].get<int64_t>() - kSlackNs);
  ASSERT_EQ(c["requests"].size(), client.targets.size());
  if (library != "wire") {
    EXPECT_EQ(targets(c), client.targets);
  }
  // The two requests differ only in a path of the same length: the handshake's last record
  // (java writes its Finished apart from its CCS) is no part of the first one.
  EXPECT_EQ(c["requests"][0]["bytes_sent"], c["requests"][1]["bytes_sent"]);
  // Each request's first record goes out after it starts, and after the handshake.
  for (const json& q : c["requests"]) {
    SCOPED_TRACE("request " + q["index"].dump());
    uint64_t first = 0, first_len = 0;
    for (const auto& [to_server, p] : w.payload) {
      if (to_server && static_cast<int64_t>(p.unix_ns) >= wall(q["start_ns"]) - kSlackNs) {
        first = p.unix_ns;
        first_len = p.length;
        break;
      }
    }
    EXPECT_NE(first, 0u) << "no packet of the request";
    EXPECT_LE(static_cast<int64_t>(first), wall(q["sent_ns"]) + kSlackNs);
    if (library == "wire" && first_len > q["bytes_sent"].get<uint64_t>()) {
      // The client's Finished went out in the request's first write (node): that one call ends
      // the handshake and starts the request, so the two overlap by it, and no more. (Through a
      // TLS library a request's bytes are its plaintext, always fewer than its records'.)
      EXPECT_EQ(q["index"], 0);
      EXPECT_GT(first, server_hello);
      EXPECT_LE(tls_end, wall(q["sent_ns"]));
    } else {
      EXPECT_GE(static_cast<int64_t>(first), tls_end - kSlackNs);
    }
    ASSERT_TRUE(q["first_byte_ns"].is_number()) << q.dump();
    EXPECT_LE(wall(q["first_byte_ns"]), wall(q["end_ns"]));
  }
}

// The server side: tests/servers/http_server.py traced (accepted connections, inbound requests),
// curl untraced.
TEST(WireTruthServer, TheInboundRequestsAreTheWires) {
  TempDir dir;
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir.path());
  ScriptServer server("http_server.py", o);
  ASSERT_TRUE(server.ok()) << server.error();
  PacketCapture wire(server.port());
  if (!wire.ready()) GTEST_SKIP() << wire.reason();
  const RunResult r = run({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                           server.url("/a"), server.url("/bytes/100000"), server.url("/c")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::map<int, WireConnection> seen;
  ASSERT_TRUE(wire.finish(&seen)) << wire.reason();
  server.stop();
  const Export e = export_json(dir.path());
  ASSERT_TRUE(e.ok) << e.error;
  const json& doc = e.doc;
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  const int64_t t0 = doc["t0_unix_ns"].get<int64_t>();
  auto wall = [&](const json& rel) { return t0 + rel.get<int64_t>(); };
  ASSERT_EQ(seen.size(), 1u);
  const WireConnection& w = seen.begin()->second;
  // The inbound end of curl's connection (the capture's own connections are there too: accepted,
  // read to EOF, closed, with nothing in them).
  const json* in = nullptr;
  for (const json& c : doc["connections"]) {
    if (c["direction"] == "inbound" && c["peer"] == "127.0.0.1:" + std::to_string(w.client_port)) in = &c;
  }
  ASSERT_NE(in, nullptr) << doc.dump(1);
  const json& c = *in;
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(c["bytes_received"].get<uint64_t>(), w.bytes_to_server);
  EXPECT_EQ(c["bytes_sent"].get<uint64_t>(), w.bytes_to_client);
  const auto turns = w.turns();
  ASSERT_EQ(turns.size(), 3u);
  ASSERT_EQ(c["requests"].size(), turns.size());
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/bytes/100000", "/c"}));
  for (size_t i = 0; i < turns.size(); ++i) {
    const json& q = c["requests"][i];
    const auto& t = turns[i];
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(q["bytes_received"].get<uint64_t>(), t.request_bytes);
    EXPECT_EQ(q["bytes_sent"].get<uint64_t>(), t.response_bytes);
    // Inbound: the request is on the wire before the read that we say got it returned; the
    // response starts leaving inside the writes from first_byte_ns (the first write's start) to
    // end_ns (the last write's end). Its last packet may follow end_ns: a write returns once
    // the socket buffer holds the bytes, and the kernel sends the 100 KB body's later segments
    // as curl's ACKs open the window (seen: 150-220 us after the write returned). end_ns is
    // when the server was done, as a server's own log counts it ($request_time in nginx).
    EXPECT_LE(static_cast<int64_t>(t.last_request_ns), wall(q["start_ns"]) + kSlackNs);
    EXPECT_GE(static_cast<int64_t>(t.first_response_ns), wall(q["first_byte_ns"]) - kSlackNs);
    EXPECT_LE(static_cast<int64_t>(t.first_response_ns), wall(q["end_ns"]) + kSlackNs);
    if (i + 1 < turns.size()) {
      EXPECT_LE(t.last_response_ns, turns[i + 1].first_request_ns);
    }
  }
}

}  // namespace
}  // namespace httptrace::itest
