// HTTP/2 over TLS and h2c (prior knowledge): curl and h2load against nginx (Debian's nginx-light
// has http_v2 and ssl), started in the test with its own prefix and configuration in a temp dir.
//
// Every stream is a request with method, target and status decoded from HPACK inside the traced
// process; the header values that are not allow-listed (a cookie, an authorization header) must
// never be in the trace file's bytes. How many requests went over the connection is also read
// straight from the trace file's h2 frame-header captures (CaptureKind::kH2Frames), with the
// format header alone, independently of the analyzer.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <iterator>
#include <map>

#include "common/trace_format.h"
#include "tests/integration/chrome_trace_check.h"
#include "tests/integration/export_util.h"
#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

namespace tf = httptrace::format;

// nginx as a daemon: the `nginx` command exits only after its listening socket is bound, so its
// exit is the readiness signal (no polling). Stopped through its pid file.
class Nginx {
 public:
  Nginx(const fs::path& dir, const TlsFiles& tls) : dir_(dir) {
    port_ = free_port();
    h2c_port_ = free_port();
    const fs::path conf = dir / "nginx.conf";
    const std::string d = dir.string();
    std::ofstream(conf) << "pid " << d << "/nginx.pid;\n"
                        << "error_log " << d << "/error.log;\n"
                        << "worker_processes 1;\n"
                        << "events { worker_connections 64; }\n"
                        << "http {\n  access_log off;\n"
                        << "  client_body_temp_path " << d << "/body;\n"
                        << "  proxy_temp_path " << d << "/proxy;\n"
                        << "  fastcgi_temp_path " << d << "/fastcgi;\n"
                        << "  uwsgi_temp_path " << d << "/uwsgi;\n"
                        << "  scgi_temp_path " << d << "/scgi;\n"
                        << "  server {\n    listen 127.0.0.1:" << port_ << " ssl http2;\n"
                        << "    ssl_certificate " << tls.cert.string() << ";\n"
                        << "    ssl_certificate_key " << tls.key.string() << ";\n"
                        << "    location / { return 200 \"h2 ok\\n\"; }\n  }\n"
                        << "  server {\n    listen 127.0.0.1:" << h2c_port_ << " http2;\n"
                        << "    location / { return 200 \"h2c ok\\n\"; }\n  }\n}\n";
    RunResult r = run({"nginx", "-e", (dir / "error.log").string(), "-p", d, "-c", conf.string()});
    if (r.exit_code != 0) {
      error_ = "nginx did not start: " + r.describe() + read_file(dir / "error.log");
      port_ = 0;
    }
  }
  ~Nginx() {
    std::ifstream in(dir_ / "nginx.pid");
    long pid = 0;
    if (in >> pid && pid > 1) kill(static_cast<pid_t>(pid), SIGTERM);
  }
  int port() const { return port_; }
  int h2c_port() const { return h2c_port_; }
  std::string h2c_url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(h2c_port_) + path;
  }
  const std::string& error() const { return error_; }
  std::string url(const std::string& path) const {
    return "https://localhost:" + std::to_string(port_) + path;
  }

  static std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  // A port the kernel just gave out and nobody holds; nginx binds it a moment later.
  static int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
  }

  fs::path dir_;
  int port_ = 0, h2c_port_ = 0;
  std::string error_;
};

// HEADERS frames seen in h2 captures of one trace file, per direction, as stream ids.
struct H2Headers {
  std::vector<uint32_t> sent, received;
};

H2Headers h2_headers_in(const std::string& file) {
  H2Headers out;
  if (file.size() < tf::kHeaderSize) return out;
  tf::FileHeader fh;
  std::memcpy(&fh, file.data(), sizeof fh);
  for (uint64_t s = 0; s < fh.segments_claimed; ++s) {
    const size_t base = tf::kHeaderSize + s * tf::kSegmentSize;
    if (base + tf::kSegmentSize > file.size()) break;
    tf::SegmentHeader sh;
    std::memcpy(&sh, file.data() + base, sizeof sh);
    if (sh.magic != tf::kSegmentMagic || sh.committed > tf::kSegmentPayload) continue;
    size_t off = base + sizeof sh;
    const size_t end = off + sh.committed;
    while (off + sizeof(tf::EventHeader) <= end) {
      tf::EventHeader h;
      std::memcpy(&h, file.data() + off, sizeof h);
      if (h.size < sizeof h || off + h.size > end) break;
      if (h.kind == static_cast<uint16_t>(tf::EventKind::kData) && h.size >= sizeof(tf::DataEvent)) {
        tf::DataEvent d;
        std::memcpy(&d, file.data() + off, sizeof d);
        if (d.capture_kind == static_cast<uint8_t>(tf::CaptureKind::kH2Frames) &&
            sizeof d + d.cap_len <= h.size) {
          const auto* cap = reinterpret_cast<const uint8_t*>(file.data() + off + sizeof d);
          for (size_t i = 0; i + 9 <= d.cap_len; i += 9) {
            if (cap[i + 3] != 0x1) continue;  // HEADERS
            const uint32_t stream = (uint32_t{cap[i + 5]} & 0x7f) << 24 | uint32_t{cap[i + 6]} << 16 |
                                    uint32_t{cap[i + 7]} << 8 | cap[i + 8];
            (d.dir == static_cast<uint8_t>(tf::Direction::kSend) ? out.sent : out.received).push_back(stream);
          }
        }
      }
      off += h.size;
    }
  }
  return out;
}

// Secret header values a client sends: never to be found in any trace file.
constexpr const char* kCookie = "Cookie: session=h2-secret-cookie-7a3f";
constexpr const char* kAuth = "Authorization: Bearer h2-secret-token-91c2";

void expect_no_secrets(const fs::path& dir) {
  for (const auto& f : files_in(dir)) {
    const std::string bytes = Nginx::read_file(f);
    EXPECT_EQ(bytes.find("h2-secret-cookie"), std::string::npos) << f;
    EXPECT_EQ(bytes.find("h2-secret-token"), std::string::npos) << f;
    EXPECT_EQ(bytes.find("session="), std::string::npos) << f;
  }
}

// Per-stream times in order, and the request's fields as decoded.
void expect_stream_request(const json& r, const std::string& target) {
  SCOPED_TRACE(r.dump());
  EXPECT_EQ(r["method"], "GET");
  EXPECT_EQ(r["target"], target);
  EXPECT_EQ(r["status"], 200);
  ASSERT_TRUE(r["protocol_stream"].is_number());
  EXPECT_EQ(r["protocol_stream"].get<int>() % 2, 1) << "client streams are odd";
  ASSERT_TRUE(r["first_byte_ns"].is_number());
  EXPECT_LE(r["start_ns"].get<int64_t>(), r["sent_ns"].get<int64_t>());
  EXPECT_LE(r["sent_ns"].get<int64_t>(), r["first_byte_ns"].get<int64_t>());
  EXPECT_LE(r["first_byte_ns"].get<int64_t>(), r["end_ns"].get<int64_t>());
  EXPECT_GT(r["bytes_sent"].get<int64_t>(), 9) << "at least one frame";
  EXPECT_GT(r["bytes_received"].get<int64_t>(), 9);
}

using TlsH2 = TlsTest;

TEST_F(TlsH2, CurlHttp2AgainstNginx) {
  if (run({"sh", "-c", "command -v nginx"}).exit_code != 0) GTEST_SKIP() << "nginx not installed";
  TempDir nginx_dir;
  Nginx nginx(nginx_dir.path(), tls_);
  ASSERT_GT(nginx.port(), 0) << nginx.error();

  const std::string long_path = "/long/" + std::string(300, 'x');
  RunResult r = traced({"curl", "-s", "--http2", "--cacert", tls_.cert.string(), "-H", kCookie, "-H", kAuth,
                        "-w", "%{http_version}\\n", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        nginx.url("/one"), nginx.url("/two?q=1"), nginx.url(long_path)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.out, "2\n2\n2\n");

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["requests"], 3);
  EXPECT_EQ(doc["summary"]["reused_requests"], 2);
  auto conns = connections_to(doc, nginx.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(c.dump(1));
  ASSERT_TRUE(c["tls"].is_object());
  EXPECT_EQ(c["tls"]["library"], "openssl");
  EXPECT_EQ(c["tls"]["alpn"], "h2");
  EXPECT_EQ(c["tls"]["sni"], "localhost");
  EXPECT_EQ(c["protocol"], "h2");
  EXPECT_EQ(c["host"], "localhost");
  EXPECT_EQ(c.value("h2_streams", -1), 3) << "the analyzer's count of requests (HEADERS sent)";
  EXPECT_EQ(c.value("h2_responses", -1), 3) << "streams the server answered (its HEADERS)";
  const json& rq = c["requests"];
  ASSERT_EQ(rq.size(), 3u);
  expect_stream_request(rq[0], "/one");
  expect_stream_request(rq[1], "/two?q=1");
  expect_stream_request(rq[2], long_path.substr(0, 256));
  EXPECT_EQ(rq[2].value("target_cut", false), true);
  EXPECT_EQ(rq[0]["protocol_stream"], 1);
  EXPECT_EQ(rq[1]["protocol_stream"], 3);
  EXPECT_EQ(rq[0]["reused"], false);
  EXPECT_EQ(rq[1]["reused"], true);
  // curl runs the transfers one after another: each stream starts after the previous ended.
  ASSERT_TRUE(rq[1]["idle_ns"].is_number());
  EXPECT_GE(rq[1]["start_ns"].get<int64_t>(), rq[0]["end_ns"].get<int64_t>());

  // A HEADERS frame each way per stream, on streams 1, 3 and 5.
  H2Headers all;
  for (const auto& f : files_in(dir_.path())) {
    H2Headers h = h2_headers_in(Nginx::read_file(f));
    all.sent.insert(all.sent.end(), h.sent.begin(), h.sent.end());
    all.received.insert(all.received.end(), h.received.begin(), h.received.end());
  }
  EXPECT_EQ(all.sent, (std::vector<uint32_t>{1, 3, 5}));
  EXPECT_EQ(all.received, (std::vector<uint32_t>{1, 3, 5}));
  expect_no_secrets(dir_.path());
}

TEST_F(TlsH2, CurlH2cPriorKnowledgeAgainstNginx) {
  if (run({"sh", "-c", "command -v nginx"}).exit_code != 0) GTEST_SKIP() << "nginx not installed";
  TempDir nginx_dir;
  Nginx nginx(nginx_dir.path(), tls_);
  ASSERT_GT(nginx.port(), 0) << nginx.error();
  // One URL: curl 7.88 fails (exit 16) a second transfer reusing an h2c connection.
  RunResult r = traced({"curl", "-s", "--http2-prior-knowledge", "-H", kCookie, "-H", kAuth, "-w",
                        "%{http_version}\\n", "-o", "/dev/null", nginx.h2c_url("/plain/h2c")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.out, "2\n");

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["summary"]["requests"], 1);
  auto conns = connections_to(doc, nginx.h2c_port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(c.dump(1));
  EXPECT_TRUE(c["tls"].is_null());
  EXPECT_EQ(c["protocol"], "h2");
  EXPECT_EQ(c.value("h2_streams", -1), 1);
  ASSERT_EQ(c["requests"].size(), 1u);
  expect_stream_request(c["requests"][0], "/plain/h2c");
  EXPECT_EQ(c["requests"][0]["protocol_stream"], 1);
  expect_no_secrets(dir_.path());
}

// h2load: 60 requests over 2 connections, 10 streams in flight on each.
void h2load_case(const fs::path& dir, int port, const std::string& url,
                 const std::function<RunResult(const std::vector<std::string>&)>& traced) {
  RunResult r = traced({"h2load", "-n", "60", "-c", "2", "-m", "10", "-H", kCookie, url});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_NE(r.out.find("60 succeeded"), std::string::npos) << r.out;

  const Export doc_export = export_json(dir);
  ASSERT_TRUE(doc_export.ok) << doc_export.error;
  const json& doc = doc_export.doc;
  EXPECT_EQ(doc["summary"]["requests"], 60);
  auto conns = connections_to(doc, port);
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  size_t overlapping = 0;
  for (const json& c : conns) {
    SCOPED_TRACE(c["id"].dump());
    EXPECT_EQ(c["protocol"], "h2");
    const json& rq = c["requests"];
    ASSERT_EQ(rq.size(), 30u);
    int64_t open_until = 0;
    for (size_t i = 0; i < rq.size(); ++i) {
      expect_stream_request(rq[i], "/load");
      EXPECT_EQ(rq[i]["protocol_stream"], 1 + 2 * static_cast<int>(i));
      if (i > 0 && rq[i]["start_ns"].get<int64_t>() < open_until) {
        ++overlapping;
        EXPECT_TRUE(rq[i]["idle_ns"].is_null()) << "no idle time while another stream is open";
      }
      open_until = std::max(open_until, rq[i]["end_ns"].get<int64_t>());
    }
  }
  EXPECT_GE(overlapping, 2u * 9) << "-m 10: at least the first batch of each connection overlaps";
  expect_no_secrets(dir);

  // Overlapping streams in the other exports: Perfetto's rules (no two open slices of one async
  // id out of order) hold, and HAR names the protocol as browsers do.
  TempDir out;
  Export chrome = export_as("chrome", dir, out.path() / "trace.json");
  ASSERT_TRUE(chrome.ok) << chrome.error;
  testcheck::ChromeStats st;
  const auto problems = testcheck::check_chrome_trace(chrome.doc, &st);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  EXPECT_EQ(st.requests, 60u);
  Export har = export_as("har", dir, out.path() / "trace.har");
  ASSERT_TRUE(har.ok) << har.error;
  const json& entries = har.doc["log"]["entries"];
  ASSERT_EQ(entries.size(), 60u);
  for (const json& e : entries) {
    EXPECT_EQ(e["request"]["httpVersion"], "HTTP/2.0");
    EXPECT_EQ(e["response"]["status"], 200);
  }
}

// node's http2 client over its own TLS: HTTP/2 inside TLS seen only on the wire. Its frames are
// ciphertext, so its requests cannot be counted: every report says so instead of "0 requests".
TEST_F(TlsH2, Http2InsideTlsSeenOnlyOnTheWireHasItsRequestsUnseenNotZero) {
  if (run({"sh", "-c", "command -v nginx && command -v node"}).exit_code != 0)
    GTEST_SKIP() << "nginx or node not installed";
  TempDir nginx_dir;
  Nginx nginx(nginx_dir.path(), tls_);
  ASSERT_GT(nginx.port(), 0) << nginx.error();
  RunResult r = traced({"node", "-e",
                        "const c = require('http2').connect(process.argv[1], {rejectUnauthorized: false});\n"
                        "let left = 3;\n"
                        "for (const p of ['/a', '/b', '/c']) {\n"
                        "  const s = c.request({':path': p}); s.resume();\n"
                        "  s.on('end', () => { if (--left === 0) c.close(); }); s.end();\n"
                        "}\n",
                        "https://127.0.0.1:" + std::to_string(nginx.port())});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, nginx.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  if (c["tls"]["library"] != "wire") GTEST_SKIP() << "this node's TLS went through the hooks";
  EXPECT_EQ(c["protocol"], "h2");
  EXPECT_TRUE(c["h2_streams"].is_null()) << c.dump(1);
  EXPECT_TRUE(c["h2_responses"].is_null());
  EXPECT_TRUE(c["requests"].empty());
  EXPECT_EQ(doc["summary"]["connections_requests_unseen"], 1);

  RunResult tl = run({paths().cli.string(), "timeline", "--color=never", dir_.path().string()});
  ASSERT_EQ(tl.exit_code, 0) << tl.describe();
  EXPECT_NE(tl.out.find("requests unseen"), std::string::npos) << tl.out;
  EXPECT_NE(tl.out.find("and the unseen ones of 1 HTTP/2 connection"), std::string::npos) << tl.out;
  RunResult reuse = run({paths().cli.string(), "reuse", dir_.path().string()});
  ASSERT_EQ(reuse.exit_code, 0) << reuse.describe();
  EXPECT_NE(reuse.out.find("0+?"), std::string::npos) << reuse.out;
  RunResult why = run({paths().cli.string(), "why", dir_.path().string()});
  EXPECT_NE(why.out.find("the requests of 1 cannot be seen"), std::string::npos) << why.out;
}

TEST_F(TlsH2, H2loadConcurrentStreamsOverTls) {
  if (run({"sh", "-c", "command -v nginx && command -v h2load"}).exit_code != 0)
    GTEST_SKIP() << "nginx or h2load (nghttp2-client) not installed";
  TempDir nginx_dir;
  Nginx nginx(nginx_dir.path(), tls_);
  ASSERT_GT(nginx.port(), 0) << nginx.error();
  h2load_case(dir_.path(), nginx.port(), nginx.url("/load"),
              [this](const std::vector<std::string>& a) { return traced(a); });
}

TEST_F(TlsH2, H2loadConcurrentStreamsOverH2c) {
  if (run({"sh", "-c", "command -v nginx && command -v h2load"}).exit_code != 0)
    GTEST_SKIP() << "nginx or h2load (nghttp2-client) not installed";
  TempDir nginx_dir;
  Nginx nginx(nginx_dir.path(), tls_);
  ASSERT_GT(nginx.port(), 0) << nginx.error();
  h2load_case(dir_.path(), nginx.h2c_port(), nginx.h2c_url("/load"),
              [this](const std::vector<std::string>& a) { return traced(a); });
}

}  // namespace
}  // namespace httptrace::itest
