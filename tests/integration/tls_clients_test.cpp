// HTTPS through real TLS stacks: curl and python3 (OpenSSL, python's through an RTLD_LOCAL
// module), wget (GnuTLS), our own client whose TLS calls bypass the hooks (read from the wire),
// a resumed session, and handshakes that fail.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/chrome_trace_check.h"
#include "tests/integration/export_util.h"
#include "tests/integration/client_programs.h"
#include "tests/integration/script_server.h"
#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

constexpr int64_t kMs = 1000000;

uint64_t u(const json& v) { return v.get<uint64_t>(); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void expect_tls(const json& c, const std::string& library) {
  ASSERT_TRUE(c["tls"].is_object()) << c.dump(1);
  const json& t = c["tls"];
  EXPECT_EQ(t["library"], library);
  EXPECT_EQ(t["version"], "TLSv1.3");
  EXPECT_TRUE(t["cipher"].is_string() && !t["cipher"].get<std::string>().empty()) << t;
  EXPECT_FALSE(t.contains("error") && !t["error"].is_null()) << t;
  EXPECT_GT(u(t["duration_ns"]), 0u);
  // The handshake runs after the TCP connect and before the first request.
  EXPECT_GE(u(t["start_ns"]), u(c["connect"]["start_ns"]) + u(c["connect"]["duration_ns"]));
  if (!c["requests"].empty()) {
    EXPECT_LE(u(t["start_ns"]) + u(t["duration_ns"]), u(c["requests"][0]["start_ns"]));
  }
}

using TlsClients = TlsTest;

TEST_F(TlsClients, CurlTwoUrlsOneHandshakeAndNoSecretInTheTrace) {
  // The header comes from a file: on the command line it would be in the trace's argv, which is
  // recorded on purpose.
  const fs::path headers = work_ / "headers.txt";
  std::ofstream(headers) << "Authorization: Bearer SECRET-TOKEN-123\n";
  RunResult r = traced({"curl", "-s", "--cacert", tls_.cert.string(), "-H", "@" + headers.string(),
                        "-o", "/dev/null", "-o", "/dev/null", "-w",
                        "%{time_connect} %{time_appconnect}\\n",
                        server_.url("/a"), server_.url("/status/201")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  expect_tls(c, "openssl");
  EXPECT_EQ(c["tls"]["sni"], "localhost");
  EXPECT_EQ(c["tls"]["alpn"], "http/1.1");
  EXPECT_EQ(c["tls"]["resumed"], false);
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/status/201"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 201}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  // Wire totals, not plaintext: records, the handshake and the tickets are all on the wire.
  EXPECT_GT(u(c["bytes_received"]), u(c["requests"][0]["bytes_received"]) +
                                        u(c["requests"][1]["bytes_received"]));

  // curl's own clock. Its time_appconnect - time_connect also covers its TLS set-up before the
  // first SSL_connect (SSL_CTX creation, CA loading: several ms here), which no TLS call shows.
  // So: our handshake lies within curl's window, and the time from the end of the TCP connect
  // (the SO_ERROR check, where curl stamps time_connect) to the end of our handshake is curl's.
  double connect = 0, appconnect = 0;
  std::istringstream(r.out) >> connect >> appconnect;
  ASSERT_GT(appconnect, 0) << r.out;
  const json& t = c["tls"];
  const int64_t curl_hs = static_cast<int64_t>((appconnect - connect) * 1e9);
  EXPECT_LE(u(t["duration_ns"]), curl_hs + 1 * kMs);
  const int64_t connected = u(c["connect"]["start_ns"]) + u(c["connect"]["duration_ns"]);
  const int64_t ours = u(t["start_ns"]) + u(t["duration_ns"]) - connected;
  EXPECT_NEAR(ours, curl_hs, 5 * kMs) << "curl: " << r.out;

  // Only the request line and Host are ever kept: the header value must not be anywhere.
  auto files = files_in(dir_.path());
  ASSERT_FALSE(files.empty());
  for (const auto& f : files)
    EXPECT_EQ(slurp(f).find("SECRET-TOKEN-123"), std::string::npos) << f;
}

// python3's _ssl is dlopen()ed RTLD_LOCAL: its libssl is invisible to dlsym(RTLD_NEXT).
TEST_F(TlsClients, PythonReusedConnectionThenResumedSession) {
  const std::string script =
      "import http.client, socket, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "port = int(sys.argv[1])\n"
      "c = http.client.HTTPSConnection('localhost', port, context=ctx)\n"
      "for p in ('/p1', '/status/404'):\n"
      "    c.request('GET', p); r = c.getresponse(); r.read(); print(r.status)\n"
      "session = c.sock.session\n"
      "c.close()\n"
      "s = ctx.wrap_socket(socket.create_connection(('localhost', port)),\n"
      "                    server_hostname='localhost', session=session)\n"
      "c2 = http.client.HTTPSConnection('localhost', port, context=ctx)\n"
      "c2.sock = s\n"
      "c2.request('GET', '/p3'); r = c2.getresponse(); r.read()\n"
      "print(r.status, s.session_reused)\n"
      "c2.close()\n";
  RunResult r = traced({paths().python.string(), "-c", script, server_.port_str(), tls_.cert.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.out, "200\n404\n200 True\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  std::sort(conns.begin(), conns.end(),
            [](const json& a, const json& b) { return u(a["start_ns"]) < u(b["start_ns"]); });
  {
    const json& c = conns[0];
    SCOPED_TRACE(describe(c));
    expect_tls(c, "openssl");
    EXPECT_EQ(c["tls"]["sni"], "localhost");
    EXPECT_EQ(c["tls"]["resumed"], false);
    EXPECT_EQ(targets(c), (std::vector<std::string>{"/p1", "/status/404"}));
    EXPECT_EQ(statuses(c), (std::vector<int>{200, 404}));
    EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  }
  {
    const json& c = conns[1];
    SCOPED_TRACE(describe(c));
    expect_tls(c, "openssl");
    EXPECT_EQ(c["tls"]["resumed"], true);
    EXPECT_EQ(targets(c), (std::vector<std::string>{"/p3"}));
    EXPECT_EQ(statuses(c), (std::vector<int>{200}));
  }
}

TEST_F(TlsClients, WgetThroughGnutls) {
  RunResult r = traced({"wget", "-q", "--no-check-certificate", "-O", "/dev/null",
                        server_.url("/w1"), server_.url("/status/202")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  expect_tls(c, "gnutls");
  EXPECT_EQ(c["tls"]["resumed"], false);
  EXPECT_EQ(c["tls"]["sni"], "localhost") << "GnuTLS does not report it: taken from the ClientHello";
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/w1", "/status/202"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 202}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
}

// tls_static_client calls libssl only through pointers from dlsym(handle): our hooks never see
// those calls, so everything TLS comes from the ClientHello bytes on the wire.
TEST_F(TlsClients, OwnTlsStackIsReadFromTheWire) {
  const fs::path client = paths().build / "tests" / "tls_static_client";
  ASSERT_TRUE(fs::exists(client)) << client << " missing: run make integration";
  RunResult r = traced({client.string(), "localhost", server_.port_str(), "localhost", "/s1", "/s2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.out, "/s1 200 26\n/s2 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["tls"].is_object()) << c.dump(1);
  EXPECT_EQ(c["tls"]["library"], "wire") << "a library hook saw calls it should not have";
  EXPECT_EQ(c["tls"]["sni"], "localhost");
  EXPECT_EQ(c["tls"]["alpn"], "http/1.1");
  EXPECT_EQ(c["tls"]["version"], "TLSv1.3") << "from the ServerHello body read after its header";
  // Encrypted requests have no visible request line, but the two round trips are there (plus,
  // at most, the close_notify the client sends at the end).
  ASSERT_GE(c["requests"].size(), 2u);
  EXPECT_EQ(c["requests"][0]["reused"], false);
  EXPECT_EQ(c["requests"][1]["reused"], true);
}

// SSL_set_connect_state, then SSL_write_ex with no handshake call: the handshake runs inside the
// first write, and must still be recorded as its own phase before the first request.
TEST_F(TlsClients, ImplicitHandshakeInsideTheFirstWrite) {
  const fs::path client = paths().build / "tests" / "tls_static_client";
  ASSERT_TRUE(fs::exists(client)) << client << " missing: run make integration";
  RunResult r = traced({client.string(), "--implicit", "localhost", server_.port_str(), "localhost",
                        "/i1", "/status/203"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.out, "/i1 200 26\n/status/203 203 11\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  expect_tls(c, "openssl");
  EXPECT_EQ(c["tls"]["sni"], "localhost");
  EXPECT_EQ(c["tls"]["alpn"], "http/1.1");
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/i1", "/status/203"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 203}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
}

// SSL_write_ex and SSL_read_ex single-stepped through our hooks into libssl, with a signal
// handler sending one byte on another socket at every instruction: the session stays bound to
// its own socket (the handler's bytes do not look like TLS records), every request is there, and
// every one of the handler's bytes is recorded or counted.
TEST_F(TlsClients, AHandlerSendingAtEveryInstructionOfSslWriteAndReadChangesNothing) {
  const fs::path client = paths().build / "tests" / "tls_static_client";
  ASSERT_TRUE(fs::exists(client)) << client << " missing: run make integration";
  RunResult r = traced({client.string(), "--stepped", "localhost", server_.port_str(), "localhost",
                        "/t1", "/status/203", "/t3"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  if (r.out.find("x86-64 only") != std::string::npos) GTEST_SKIP() << "single-stepping is x86-64 only";
  EXPECT_EQ(r.err, "");
  int step_port = 0;
  long sent = -1, received = -1;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "/t1 200 26\n/status/203 203 11\n/t3 200 26\nport %d\nhandler sent %ld, received %ld",
                        &step_port, &sent, &received),
            3)
      << r.out;
  EXPECT_EQ(sent, received);
  EXPECT_GT(sent, 3 * 1000) << "thousands of instructions in each TLS call";

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  expect_tls(c, "openssl");
  EXPECT_EQ(c["tls"]["sni"], "localhost");
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/t1", "/status/203", "/t3"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 203, 200}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true, true}));
  auto handler = connections_to(doc, step_port);
  ASSERT_EQ(handler.size(), 1u) << doc.dump(1);
  EXPECT_TRUE(handler[0]["tls"].is_null()) << handler[0].dump(1);
  // Its bytes are one unknown-protocol exchange, never a request of the TLS connection's.
  ASSERT_EQ(handler[0]["requests"].size(), 1u) << handler[0].dump(1);
  EXPECT_TRUE(handler[0]["requests"][0]["method"].is_null()) << handler[0].dump(1);
  const int64_t nested = doc["summary"]["dropped_by_cause"]["nested"].get<int64_t>();
  EXPECT_EQ(doc["summary"]["dropped_events"].get<int64_t>(), nested);
  EXPECT_EQ(handler[0]["bytes_sent"].get<int64_t>() + nested, sent);
  EXPECT_LT(nested, sent / 10);
}

// A loopback listener that accepts, reads the ClientHello, and closes: every handshake fails.
class ClosingListener {
 public:
  ClosingListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ClosingListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  std::string url() const { return "https://localhost:" + std::to_string(port_) + "/"; }

 private:
  void serve() {
    // Bounded: each poll waits at most 100 ms, and the destructor ends the loop.
    for (int round = 0; round < 600 && !stop_; ++round) {
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      pollfd q = {c, POLLIN, 0};
      char buf[4096];
      if (poll(&q, 1, 5000) > 0) (void)!read(c, buf, sizeof buf);
      close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void expect_failed_handshake(const json& doc, int port, const std::string& library) {
  auto conns = connections_to(doc, port);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(c.dump(1));
  ASSERT_TRUE(c["tls"].is_object());
  const json& t = c["tls"];
  EXPECT_EQ(t["library"], library);
  ASSERT_TRUE(t.contains("error") && t["error"].is_number()) << "a failed handshake carries its error";
  EXPECT_NE(t["error"].get<int64_t>(), 0);
  ASSERT_TRUE(t["error_text"].is_string());
  EXPECT_FALSE(t["error_text"].get<std::string>().empty());
  EXPECT_TRUE(t["version"].is_null()) << "nothing was negotiated";
  EXPECT_TRUE(c["requests"].empty());
}

// Through an HTTP proxy that tunnels (tests/servers/connect_proxy.py).
class ProxyTunnel : public TlsClients {
 protected:
  void SetUp() override {
    TlsClients::SetUp();
    ASSERT_TRUE(proxy_.ok()) << proxy_.error();
  }
  std::string proxy_url() const { return "http://127.0.0.1:" + std::to_string(proxy_.port()); }
  // The connections the traced program made to the proxy, from the export of its traces.
  std::vector<json> to_proxy(const json& doc) { return connections_to(doc, proxy_.port()); }
  ScriptServer proxy_{"connect_proxy.py", RunOptions{}};
};

// HTTPS through an HTTP proxy (tests/servers/connect_proxy.py): curl reads the proxy's answer to
// CONNECT a byte at a time, and its status still comes through (kDataStatusLineMore). The
// CONNECT sets the connection up (its tunnel), as curl's own -w counts it: the first request
// through it is a new connection's, and the exports name the server behind the proxy.
TEST_F(ProxyTunnel, CurlThroughAProxyTunnel) {
  RunResult r = traced({"curl", "-sk", "-x", proxy_url(), "-o", "/dev/null", "-o", "/dev/null", "-w",
                        "%{http_connect} %{http_code} %{num_connects}\n", server_.url("/t1"), server_.url("/t2")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "200 200 1\n000 200 0\n") << "curl: the tunnel, then a reuse of it";
  HT_EXPORT(doc, dir_.path());
  auto conns = to_proxy(doc);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["tls"].is_object());
  EXPECT_EQ(c["tls"]["library"], "openssl");
  const std::string target = "localhost:" + std::to_string(server_.port());
  ASSERT_TRUE(c["tunnel"].is_object());
  EXPECT_EQ(c["tunnel"]["target"], target);
  EXPECT_EQ(c["tunnel"]["status"], 200);
  EXPECT_EQ(c["tunnel"]["round_trips"], 1);
  // Connect, then the tunnel, then the handshake inside it, then the first request.
  EXPECT_GE(u(c["tunnel"]["start_ns"]), u(c["connect"]["start_ns"]) + u(c["connect"]["duration_ns"]));
  EXPECT_LE(u(c["tunnel"]["start_ns"]) + u(c["tunnel"]["duration_ns"]), u(c["tls"]["start_ns"]));
  ASSERT_EQ(c["requests"].size(), 2u);
  EXPECT_LE(u(c["tls"]["start_ns"]) + u(c["tls"]["duration_ns"]), u(c["requests"][0]["start_ns"]));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/t1", "/t2"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 200}));
  EXPECT_FALSE(c["requests"][0]["reused"]);
  EXPECT_TRUE(c["requests"][1]["reused"]);
  EXPECT_EQ(doc["summary"]["requests"], 2);
  EXPECT_EQ(doc["summary"]["reused_requests"], 1);

  // HAR and OTLP name the server behind the proxy; the tunnel is part of setting up.
  const fs::path out = work_.path() / "exports";
  fs::create_directories(out);
  const Export har = export_as("har", dir_.path(), out / "t.har");
  ASSERT_TRUE(har.ok) << har.error;
  std::vector<std::string> urls;
  for (const json& e : har.doc["log"]["entries"]) {
    if (e["connection"] != c["id"]) continue;
    urls.push_back(e["request"]["url"].get<std::string>());
    if (!e["_reused"].get<bool>()) {
      EXPECT_GE(e["timings"]["connect"].get<double>() * 1e6,
                static_cast<double>(u(c["tunnel"]["duration_ns"]) + u(c["tls"]["duration_ns"])) - 2000);
    }
    EXPECT_EQ(e["_tunnel"]["target"], target);
  }
  EXPECT_EQ(urls, (std::vector<std::string>{"https://" + target + "/t1", "https://" + target + "/t2"}));
  EXPECT_EQ(validate_har(out / "t.har"), "ok " + std::to_string(har.doc["log"]["entries"].size()));
  const Export chrome = export_as("chrome", dir_.path(), out / "chrome.json");
  ASSERT_TRUE(chrome.ok) << chrome.error;
  EXPECT_EQ(testcheck::check_chrome_trace(chrome.doc), std::vector<std::string>{}) << "the tunnel slice fits the track";
  int tunnel_slices = 0;
  for (const json& e : chrome.doc["traceEvents"]) tunnel_slices += e["ph"] == "X" && e["name"] == "tunnel";
  EXPECT_EQ(tunnel_slices, 1);
  const Export otlp = export_as("otlp", dir_.path(), out / "otlp.json");
  ASSERT_TRUE(otlp.ok) << otlp.error;
  int connects = 0, gets = 0;
  for (const json& rs : otlp.doc["resourceSpans"]) {
    for (const json& ss : rs["scopeSpans"]) {
      for (const json& sp : ss["spans"]) {
        std::map<std::string, json> attrs;
        for (const json& a : sp["attributes"]) attrs[a["key"]] = a["value"];
        if (sp["name"] == "CONNECT") {
          ++connects;
          EXPECT_EQ(attrs["server.address"]["stringValue"], "localhost");
          EXPECT_EQ(attrs["network.peer.port"]["intValue"], std::to_string(proxy_.port()));
        } else if (sp["name"] == "GET") {
          ++gets;
          EXPECT_EQ(attrs["server.port"]["intValue"], std::to_string(server_.port()));
          EXPECT_TRUE(attrs["url.full"]["stringValue"].get<std::string>().starts_with("https://" + target + "/t"));
        }
      }
    }
  }
  EXPECT_EQ(connects, 1);
  EXPECT_EQ(gets, 2);
}

// java.net.http through the tunnel, its TLS seen only on the wire: the CONNECT, the handshake
// and the requests share one byte stream, and the handshake is still no exchange.

TEST_F(ProxyTunnel, JavaThroughAProxyTunnel) {
  if (run({"java", "-version"}).exit_code != 0) GTEST_SKIP() << "java is not installed";
  std::ofstream(work_.path() / "Get.java") << kJavaHttpsGet;
  RunResult r = traced({"java", (work_.path() / "Get.java").string(), server_.url(""), std::to_string(proxy_.port())});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = to_proxy(doc);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["tunnel"].is_object());
  EXPECT_EQ(c["tunnel"]["status"], 200);
  EXPECT_EQ(c["tunnel"]["target"], "localhost:" + std::to_string(server_.port()));
  ASSERT_TRUE(c["tls"].is_object());
  EXPECT_EQ(c["tls"]["library"], "wire");
  EXPECT_EQ(c["tls"]["version"], "TLSv1.3");
  EXPECT_LE(u(c["tunnel"]["start_ns"]) + u(c["tunnel"]["duration_ns"]), u(c["tls"]["start_ns"]));
  ASSERT_EQ(c["requests"].size(), 2u);
  EXPECT_EQ(c["requests"][0]["index"], 0);
  EXPECT_FALSE(c["requests"][0]["reused"]);
  EXPECT_TRUE(c["requests"][1]["reused"]);
  EXPECT_GE(u(c["requests"][0]["start_ns"]), u(c["tls"]["start_ns"]) + u(c["tls"]["duration_ns"]));
  EXPECT_EQ(c["requests"][0]["bytes_sent"], c["requests"][1]["bytes_sent"]) << "java's Finished is no request byte";
}

// A proxy that refuses the tunnel: its answer is the tunnel's status, and there is no request.
TEST_F(ProxyTunnel, CurlSeesTheProxysRefusal) {
  RunResult r = traced({"curl", "-sk", "-x", proxy_url(), "-o", "/dev/null",
                        "-w", "%{http_connect}", "https://denied.example/"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "407");
  HT_EXPORT(doc, dir_.path());
  auto conns = to_proxy(doc);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  SCOPED_TRACE(describe(conns[0]));
  EXPECT_TRUE(conns[0]["requests"].empty());
  ASSERT_TRUE(conns[0]["tunnel"].is_object());
  EXPECT_EQ(conns[0]["tunnel"]["status"], 407);
  EXPECT_EQ(conns[0]["tunnel"]["target"], "denied.example:443");
  EXPECT_TRUE(conns[0]["tls"].is_null());
  const RunResult timeline = run({paths().cli.string(), "timeline", "--color=never", dir_.path().string()});
  EXPECT_NE(timeline.out.find("tunnel denied.example:443 407"), std::string::npos) << timeline.out;
}

// wget (GnuTLS) through the tunnel: GnuTLS writes its TLS 1.3 CCS before reading the server's
// flight and reads a session ticket before its request; none of those reads is the tunnel's.
TEST_F(ProxyTunnel, WgetThroughAProxyTunnel) {
  RunResult r = traced({"env", "https_proxy=" + proxy_url(), "wget", "-q",
                        "--no-check-certificate", "-O", "/dev/null", server_.url("/w1"), server_.url("/w2")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = to_proxy(doc);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["tunnel"].is_object());
  ASSERT_TRUE(c["tls"].is_object());
  EXPECT_EQ(c["tls"]["library"], "gnutls");
  EXPECT_LE(u(c["tunnel"]["start_ns"]) + u(c["tunnel"]["duration_ns"]), u(c["tls"]["start_ns"]));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/w1", "/w2"}));
  EXPECT_FALSE(c["requests"][0]["reused"]);
}

// curl through one proxy to two names of the server: two tunnels, two endpoints. The second is
// no pool miss though the first sat idle beside it (curl keys its pool by target too).
TEST_F(ProxyTunnel, CurlThroughAProxyToTwoTargets) {
  const std::string port = std::to_string(server_.port());
  RunResult r = traced({"curl", "-sk", "-x", proxy_url(), "-o", "/dev/null",
                        "-o", "/dev/null", "-w", "%{num_connects}\n", "https://localhost:" + port + "/a",
                        "https://127.0.0.1:" + port + "/b"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "1\n1\n");
  HT_EXPORT(doc, dir_.path());
  auto conns = to_proxy(doc);
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  std::set<std::string> tunnels;
  for (const json& c : conns) {
    SCOPED_TRACE(describe(c));
    ASSERT_TRUE(c["tunnel"].is_object());
    tunnels.insert(c["tunnel"]["target"].get<std::string>());
    EXPECT_EQ(c["new_reason"], "first");
  }
  EXPECT_EQ(tunnels, (std::set<std::string>{"localhost:" + port, "127.0.0.1:" + port}));
  const RunResult reuse = run({paths().cli.string(), "reuse", dir_.path().string()});
  EXPECT_NE(reuse.out.find("localhost:" + port), std::string::npos) << reuse.out;
  EXPECT_NE(reuse.out.find("127.0.0.1:" + port), std::string::npos) << reuse.out;
}

// Plain HTTP through the tunnel (curl -p): the CONNECT and the requests share one byte stream.
TEST_F(ProxyTunnel, CurlThroughAPlainTunnel) {
  TestServer plain;
  ASSERT_TRUE(plain.ok()) << plain.error();
  RunResult r = traced({"curl", "-s", "-p", "-x", proxy_url(), "-o",
                        "/dev/null", "-o", "/dev/null", plain.url("/p1"), plain.url("/p2")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = to_proxy(doc);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["tunnel"].is_object());
  EXPECT_EQ(c["tunnel"]["status"], 200);
  EXPECT_TRUE(c["tls"].is_null());
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/p1", "/p2"}));
  ASSERT_EQ(c["requests"].size(), 2u);
  EXPECT_EQ(c["requests"][0]["index"], 0);
  EXPECT_FALSE(c["requests"][0]["reused"]);
  EXPECT_TRUE(c["requests"][0]["idle_ns"].is_null());
  EXPECT_GE(u(c["requests"][0]["start_ns"]), u(c["tunnel"]["start_ns"]) + u(c["tunnel"]["duration_ns"]));
}

// The proxy traced too: its side of each connection from curl opens with the CONNECT it served
// (its tunnel, as on curl's side), so the requests it relays pair with curl's in order, and the
// connection it opened to the server serves them: curl -> proxy -> server is one chain. HTTPS
// (the proxy relays ciphertext: TLS seen on its wire) and a plain tunnel.
class TracedProxyTunnel : public TlsClients {
 protected:
  static RunOptions traced_into(const fs::path& dir) {
    RunOptions o;
    o.preload = true;
    o.env = trace_env(dir);
    return o;
  }
  ScriptServer proxy_{"connect_proxy.py", traced_into(dir_.path())};
};

TEST_F(TracedProxyTunnel, TheRelayedRequestsPairWithTheClientsAndTheirCalls) {
  ASSERT_TRUE(proxy_.ok()) << proxy_.error();
  TestServer plain;
  ASSERT_TRUE(plain.ok()) << plain.error();
  const std::string proxy = "http://127.0.0.1:" + std::to_string(proxy_.port());
  for (const bool tls : {true, false}) {
    SCOPED_TRACE(tls ? "HTTPS" : "plain tunnel");
    std::vector<std::string> argv = {"curl", "-s", "-x", proxy, "-o", "/dev/null", "-o", "/dev/null"};
    if (tls) {
      argv.insert(argv.end(), {"--cacert", tls_.cert.string(), server_.url("/t1"), server_.url("/t2")});
    } else {
      argv.insert(argv.end(), {"-p", plain.url("/p1"), plain.url("/p2")});
    }
    RunResult r = traced(argv);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  HT_EXPORT(doc, dir_.path());
  std::map<std::string, json> by_id;
  for (const json& c : doc["connections"]) by_id[c["id"].get<std::string>()] = c;
  const std::string port = ":" + std::to_string(proxy_.port());
  int clients = 0;
  for (const json& c : doc["connections"]) {
    if (c["direction"] != "outbound" || !c["peer"].get<std::string>().ends_with(port)) continue;
    ++clients;
    SCOPED_TRACE(describe(c));
    ASSERT_TRUE(c["tunnel"].is_object());
    ASSERT_EQ(c["requests"].size(), 2u);
    for (int i = 0; i < 2; ++i) {
      const json& q = c["requests"][i];
      ASSERT_TRUE(q["linked"].is_string()) << "not paired with the proxy's side: " << q.dump();
      const std::string linked = q["linked"].get<std::string>();
      const std::string in_id = linked.substr(0, linked.find('#'));
      EXPECT_EQ(linked, in_id + "#" + std::to_string(i));
      ASSERT_TRUE(by_id.count(in_id));
      const json& in = by_id[in_id];
      EXPECT_EQ(in["direction"], "inbound");
      ASSERT_TRUE(in["tunnel"].is_object()) << "the CONNECT is the proxy's tunnel too";
      EXPECT_EQ(in["tunnel"]["target"], c["tunnel"]["target"]);
      EXPECT_EQ(in["tunnel"]["status"], 200);
      EXPECT_EQ(in["requests"].size(), 2u);
    }
    // The proxy's own connection to the server carries the relayed requests, each the child of
    // the inbound one it was relayed for.
    const std::string in_id = c["requests"][0]["linked"].get<std::string>().substr(0, c["requests"][0]["linked"].get<std::string>().find('#'));
    int children = 0;
    for (const json& o : doc["connections"]) {
      if (o["direction"] != "outbound" || o["pid"] != by_id[in_id]["pid"]) continue;
      for (const json& q : o["requests"])
        if (q["parent"].is_string() && q["parent"].get<std::string>().starts_with(in_id + "#")) ++children;
    }
    EXPECT_EQ(children, 2);
  }
  EXPECT_EQ(clients, 2);
}

TEST_F(TlsClients, FailedHandshakeCurl) {
  ClosingListener l;
  ASSERT_GT(l.port(), 0);
  RunResult r = traced({"curl", "-s", "--cacert", tls_.cert.string(), l.url()});
  EXPECT_EQ(r.exit_code, 35) << r.describe();  // CURLE_SSL_CONNECT_ERROR
  HT_EXPORT(doc, dir_.path());
  expect_failed_handshake(doc, l.port(), "openssl");
  EXPECT_EQ(connections_to(doc, l.port())[0]["tls"]["sni"], "localhost");
}

TEST_F(TlsClients, FailedHandshakeWget) {
  ClosingListener l;
  ASSERT_GT(l.port(), 0);
  RunResult r = traced({"wget", "-q", "--tries=1", "--no-check-certificate", "-O", "/dev/null", l.url()});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  expect_failed_handshake(doc, l.port(), "gnutls");
}

// What a program sees through the hooks -- data, return values, the error a failed handshake
// raises (its errno and OpenSSL reason) -- is what it sees without them.
TEST_F(TlsClients, PythonSeesTheSameResultsAndErrorsWithAndWithoutUs) {
  ClosingListener l;
  ASSERT_GT(l.port(), 0);
  const std::string script =
      "import http.client, socket, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "c = http.client.HTTPSConnection('localhost', int(sys.argv[1]), context=ctx)\n"
      "c.request('GET', '/bytes/70000'); r = c.getresponse(); b = r.read()\n"
      "print(r.status, len(b), c.sock.version(), c.sock.selected_alpn_protocol())\n"
      "c.close()\n"
      "try:\n"
      "    ctx.wrap_socket(socket.create_connection(('localhost', int(sys.argv[3]))),\n"
      "                    server_hostname='localhost')\n"
      "except (OSError, ssl.SSLError) as e:\n"
      "    print(type(e).__name__, e.errno, getattr(e, 'reason', None))\n";
  const std::vector<std::string> argv = {paths().python.string(), "-c", script, server_.port_str(),
                                         tls_.cert.string(), std::to_string(l.port())};
  RunResult plain = run(argv);
  RunResult ours = traced(argv);
  ASSERT_EQ(plain.exit_code, 0) << plain.describe();
  EXPECT_EQ(ours.exit_code, plain.exit_code) << ours.describe();
  EXPECT_EQ(ours.out, plain.out);
  EXPECT_EQ(ours.err, plain.err);
  // python offers no ALPN unless asked, hence None.
  EXPECT_EQ(plain.out.rfind("200 70000 TLSv1.3 None\n", 0), 0u) << plain.out;
}

}  // namespace
}  // namespace httptrace::itest
