// HTTP/2 over TLS: curl --http2 against nginx (Debian's nginx-light has http_v2 and ssl), started
// in the test with its own prefix and configuration in a temp dir.
//
// The export reports protocol "h2"; how many requests went over the connection is read here
// straight from the trace file's h2 frame-header captures (CaptureKind::kH2Frames), with the
// format header alone, independently of the analyzer.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "common/trace_format.h"
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
                        << "    location / { return 200 \"h2 ok\\n\"; }\n  }\n}\n";
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
  int port_ = 0;
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

using TlsH2 = TlsTest;

TEST_F(TlsH2, CurlHttp2AgainstNginx) {
  if (run({"sh", "-c", "command -v nginx"}).exit_code != 0) GTEST_SKIP() << "nginx not installed";
  TempDir nginx_dir;
  Nginx nginx(nginx_dir.path(), tls_);
  ASSERT_GT(nginx.port(), 0) << nginx.error();

  RunResult r = traced({"curl", "-s", "--http2", "--cacert", tls_.cert.string(), "-w",
                        "%{http_version}\\n", "-o", "/dev/null", "-o", "/dev/null",
                        nginx.url("/one"), nginx.url("/two")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.out, "2\n2\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, nginx.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(c.dump(1));
  ASSERT_TRUE(c["tls"].is_object());
  EXPECT_EQ(c["tls"]["library"], "openssl");
  EXPECT_EQ(c["tls"]["alpn"], "h2");
  EXPECT_EQ(c["tls"]["sni"], "localhost");
  EXPECT_EQ(c["protocol"], "h2");
  EXPECT_EQ(c.value("h2_streams", -1), 2) << "the analyzer's count of requests (HEADERS sent)";
  EXPECT_EQ(c.value("h2_responses", -1), 2) << "streams the server answered (its HEADERS)";

  // Two requests on one connection: a HEADERS frame each way per stream, on streams 1 and 3.
  H2Headers all;
  for (const auto& f : files_in(dir_.path())) {
    H2Headers h = h2_headers_in(Nginx::read_file(f));
    all.sent.insert(all.sent.end(), h.sent.begin(), h.sent.end());
    all.received.insert(all.received.end(), h.received.begin(), h.received.end());
  }
  EXPECT_EQ(all.sent, (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(all.received, (std::vector<uint32_t>{1, 3}));
}

}  // namespace
}  // namespace httptrace::itest
