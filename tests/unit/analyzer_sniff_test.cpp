// HTTP/1.x sniffing and TLS wire parsing on captured bytes.
#include <gtest/gtest.h>

#include "analyzer/model/http_sniff.h"
#include "analyzer/model/tls_wire.h"
#include "tests/unit/analyzer_tls_bytes.h"

namespace httptrace::testing {
namespace {

using namespace httptrace::analyzer;

TEST(HttpSniff, RequestLineAndHost) {
  HttpRequestLine r;
  ASSERT_TRUE(sniff_request("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com:8080", r));
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/index.html?q=1");
  EXPECT_EQ(r.host, "example.com:8080");
  ASSERT_TRUE(sniff_request("POST http://proxy.example/x HTTP/1.0\r\nhost:  h  ", r));
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.host, "h");
  ASSERT_TRUE(sniff_request("OPTIONS * HTTP/1.1", r));
  EXPECT_EQ(r.target, "*");
  EXPECT_EQ(r.host, "");
}

TEST(HttpSniff, RejectsWhatIsNotHttp1) {
  HttpRequestLine r;
  EXPECT_FALSE(sniff_request("", r));
  EXPECT_FALSE(sniff_request("GET / HTTP/2.0", r));
  EXPECT_FALSE(sniff_request("GET /", r));              // cut before the version
  EXPECT_FALSE(sniff_request("G\x01T / HTTP/1.1", r));
  EXPECT_FALSE(sniff_request("*3\r\n$3\r\nSET\r\n", r));  // Redis
  EXPECT_FALSE(sniff_request(" / HTTP/1.1", r));
}

TEST(HttpSniff, StatusLine) {
  EXPECT_EQ(sniff_status("HTTP/1.1 200 OK"), 200);
  EXPECT_EQ(sniff_status("HTTP/1.0 404 Not Found"), 404);
  EXPECT_EQ(sniff_status("HTTP/1.1 204\r\n"), 204);
  EXPECT_EQ(sniff_status("HTTP/1.1 2000 OK"), 0);
  EXPECT_EQ(sniff_status("HTTP/1.1 20"), 0);
  EXPECT_EQ(sniff_status("HTTP/2 200"), 0);
  EXPECT_EQ(sniff_status("+OK\r\n"), 0);
}

TEST(HttpSniff, H2PrefaceAndHostPort) {
  EXPECT_TRUE(sniff_h2_preface("PRI * HT"));
  EXPECT_TRUE(sniff_h2_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  EXPECT_FALSE(sniff_h2_preface("PRI * H"));
  EXPECT_FALSE(sniff_h2_preface("GET / HTTP/1.1"));
  EXPECT_EQ(host_without_port("example.com:8080"), "example.com");
  EXPECT_EQ(host_without_port("example.com"), "example.com");
  EXPECT_EQ(host_without_port("[::1]:443"), "::1");
  EXPECT_EQ(port_of_authority("example.com:8080"), 8080);
  EXPECT_EQ(port_of_authority("[::1]:443"), 443);
  EXPECT_EQ(port_of_authority("example.com"), 0);
  EXPECT_EQ(port_of_authority("::1"), 0) << "a bare IPv6 address names no port";
  EXPECT_EQ(port_of_authority("a:99999"), 0);
  EXPECT_EQ(port_of_authority("a:80x"), 0);
}

TEST(HttpSniff, AllowListedRequestHeaders) {
  HttpRequestLine r;
  ASSERT_TRUE(sniff_request("GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n"
                            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                            r));
  EXPECT_EQ(r.host, "a.example");
  EXPECT_EQ(r.connection, "close");
  EXPECT_EQ(r.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(sniff_request("GET /x HTTP/1.1\r\nTRACEPARENT: 00-ab-cd-01", r));
  EXPECT_EQ(r.traceparent, "00-ab-cd-01");
  EXPECT_EQ(r.host, "");
}

TEST(HttpSniff, CutTargetNeedsTheFlag) {
  const std::string cut = "GET /" + std::string(255, 'a');  // no version: the recorder cut it
  HttpRequestLine r;
  EXPECT_FALSE(sniff_request(cut, r));
  ASSERT_TRUE(sniff_request(cut, r, true));
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/" + std::string(255, 'a'));
  ASSERT_TRUE(sniff_request(cut + "\r\nHost: h.example", r, true));
  EXPECT_EQ(r.host, "h.example");
  EXPECT_FALSE(sniff_request("GET /a b", r, true));  // a space in a target: not HTTP/1.x
  ASSERT_TRUE(sniff_request("GET /a HTTP/1.1", r, true));  // the flag does not hurt a whole line
  EXPECT_EQ(r.target, "/a");
}

TEST(HttpSniff, H2cUpgradeOfferIsTheHttp2SettingsToken) {
  HttpRequestView r;
  ASSERT_TRUE(sniff_request("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings", r));
  EXPECT_TRUE(offers_h2c_upgrade(r.connection));
  EXPECT_TRUE(offers_h2c_upgrade("http2-settings,upgrade"));
  EXPECT_FALSE(offers_h2c_upgrade("Upgrade")) << "a WebSocket upgrade";
  EXPECT_FALSE(offers_h2c_upgrade("Upgrade, HTTP2-Settings-Extra"));
  EXPECT_FALSE(offers_h2c_upgrade(""));
  EXPECT_TRUE(connection_has_token(" keep-alive , Upgrade ", "upgrade"));
}

TEST(HttpSniff, ResponseConnectionAndKeepAlive) {
  HttpResponseView v;
  ASSERT_TRUE(sniff_response("HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5, max=100", v));
  EXPECT_EQ(v.status, 200);
  EXPECT_EQ(v.connection, "Keep-Alive");
  EXPECT_EQ(keep_alive_timeout_s(v.keep_alive), 5);
  EXPECT_FALSE(connection_says_close(v.connection));
  ASSERT_TRUE(sniff_response("HTTP/1.0 404 Not Found\r\nconnection: upgrade, Close", v));
  EXPECT_TRUE(connection_says_close(v.connection));
  EXPECT_EQ(v.keep_alive, "");
  EXPECT_FALSE(sniff_response("+OK", v));
  EXPECT_EQ(keep_alive_timeout_s("max=100"), -1);
  EXPECT_EQ(keep_alive_timeout_s("timeout=abc"), -1);
  EXPECT_EQ(keep_alive_timeout_s("timeout = 15"), 15);
  EXPECT_EQ(keep_alive_timeout_s("timeout=99999999999"), -1);
}

TEST(TlsWire, ClientHelloSniAndAlpn) {
  ClientHello ch;
  ASSERT_TRUE(parse_client_hello(client_hello("api.example.com", {"h2", "http/1.1"}), ch));
  EXPECT_EQ(ch.sni, "api.example.com");
  EXPECT_EQ(ch.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(ch.max_version, 0x0304);
}

TEST(TlsWire, ClientHelloCutAnywhereNeverReadsOutOfBounds) {
  const std::string full = client_hello("api.example.com", {"h2", "http/1.1"});
  for (size_t n = 0; n <= full.size(); ++n) {
    // A copy of exactly n bytes, so ASan/valgrind would see any over-read.
    std::string cut = full.substr(0, n);
    ClientHello ch;
    bool ok = parse_client_hello(cut, ch);
    if (n < 9) {
      EXPECT_FALSE(ok) << n;  // record header + handshake type + length
    }
    if (!ch.sni.empty()) {
      EXPECT_EQ(ch.sni, "api.example.com");
    }
    for (const auto& p : ch.alpn) EXPECT_TRUE(p == "h2" || p == "http/1.1") << n;
  }
}

TEST(TlsWire, LyingLengthsAreContained) {
  std::string ch = client_hello("a.example", {"h2"});
  for (size_t i = 5; i < ch.size(); ++i) {
    std::string bad = ch;
    bad[i] = char(0xff);
    ClientHello out;
    parse_client_hello(bad, out);  // must not crash or over-read
    ServerHello sh;
    parse_server_hello(bad, sh);
  }
  ClientHello out;
  EXPECT_FALSE(parse_client_hello(tls_record(0x17, "xxxx"), out));
  EXPECT_FALSE(parse_client_hello("GET / HTTP/1.1\r\n", out));
}

TEST(TlsWire, ServerHelloVersionAlpnAndCcs) {
  ServerHello sh;
  ASSERT_TRUE(parse_server_hello(server_hello(true) + ccs(), sh));
  EXPECT_EQ(sh.version, 0x0304);
  EXPECT_TRUE(sh.change_cipher_spec);
  ServerHello sh12;
  ASSERT_TRUE(parse_server_hello(server_hello(false, "http/1.1"), sh12));
  EXPECT_EQ(sh12.version, 0x0303);
  EXPECT_EQ(sh12.alpn, "http/1.1");
  EXPECT_FALSE(sh12.change_cipher_spec);
}

TEST(TlsWire, RecordWalk) {
  EXPECT_EQ(first_record_type(ccs()), 0x14);
  EXPECT_EQ(first_record_type("GET"), 0);
  const std::string finished = tls_record(0x17, std::string(53, 'f'));
  const std::string flight = ccs() + finished;
  EXPECT_EQ(bytes_after_finished(flight, flight.size()), 0u);
  // Application data coalesced after the Finished: 100 more bytes written in the same call.
  EXPECT_EQ(bytes_after_finished(flight + tls_record(0x17, std::string(95, 'a')), flight.size() + 100), 100u);
  EXPECT_EQ(bytes_after_finished(ccs().substr(0, 3), 500), 0u);  // headers not captured: unknown
  EXPECT_EQ(tls_version_name(0x0303), "TLSv1.2");
}

}  // namespace
}  // namespace httptrace::testing
