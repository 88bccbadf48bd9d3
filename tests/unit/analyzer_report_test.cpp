// Reports: JSON export validity and keys, timeline and reuse content, golden files, and the CLI's
// exit statuses and messages.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <netdb.h>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/report/printable.h"
#include "analyzer/report/row_spool.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"
#include "tests/unit/analyzer_tls_bytes.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000, ms = 1000 * us;
using D = tf::Direction;
using C = tf::CaptureKind;

// A small but complete session: DNS on a resolver thread, a keep-alive connection with three
// requests, a second connection opened while the first sat idle, a refused connect, and a TLS
// connection (library hooks) with two requests.
TraceBuilder session() {
  TraceBuilder b(4321, 1);
  b.set_segment_size(4096);
  b.set_exe("/usr/bin/curl", {"curl", "-s", "http://localhost:8080/"});
  const tf::Addr web = ipv4("127.0.0.1", 8080), tls = ipv4("127.0.0.1", 8443);
  b.dns(2, 1 * ms, "localhost", 300 * us, {ipv6("::1"), ipv4("127.0.0.1")});
  b.dns(2, 1 * ms + 400 * us, "no-such-host.invalid", 900 * us, {}, EAI_NONAME);
  b.socket(1, 2 * ms, 1, 3);
  b.connect(1, 2 * ms + 10 * us, 1, 3, web, 120 * us);
  b.send(1, 3 * ms, 1, 78, 20 * us, "GET /index.html HTTP/1.1\r\nHost: localhost:8080");
  b.recv(1, 3 * ms + 30 * us, 1, 1200, 1 * ms, "HTTP/1.1 200 OK");
  b.recv(1, 4 * ms + 100 * us, 1, -EAGAIN, 1 * us);
  b.recv(1, 4 * ms + 500 * us, 1, 30000, 600 * us);
  b.send(1, 6 * ms, 1, 76, 20 * us, "GET /delay/150 HTTP/1.1\r\nHost: localhost:8080");
  b.recv(1, 6 * ms + 30 * us, 1, 300, 150 * ms, "HTTP/1.1 200 OK");
  b.socket(1, 160 * ms, 2, 4);
  b.connect(1, 160 * ms + 10 * us, 2, 4, web, 100 * us);
  b.send(1, 161 * ms, 2, 70, 20 * us, "GET /other HTTP/1.1\r\nHost: localhost:8080");
  b.recv(1, 161 * ms + 30 * us, 2, 90, 2 * ms, "HTTP/1.1 404 Not Found");
  b.close(1, 164 * ms, 2, 4);
  b.send(1, 170 * ms, 1, 80, 20 * us, "GET /chunked/4 HTTP/1.1\r\nHost: localhost:8080");
  b.recv(1, 170 * ms + 30 * us, 1, 4000, 5 * ms, "HTTP/1.1 200 OK");
  b.close(1, 180 * ms, 1, 3);
  b.socket(1, 181 * ms, 3, 3);
  b.connect(1, 181 * ms + 10 * us, 3, 3, ipv4("127.0.0.1", 9), 50 * us, ECONNREFUSED);
  b.close(1, 182 * ms, 3, 3);
  b.socket(1, 190 * ms, 4, 3);
  b.connect(1, 190 * ms + 10 * us, 4, 3, tls, 100 * us);
  b.data(1, 191 * ms, 4, 3, D::kSend, 517, 10 * us, C::kTls, client_hello("localhost", {"http/1.1"}));
  b.data(1, 191 * ms + 20 * us, 4, 3, D::kRecv, 2400, 2 * ms, C::kTls, server_hello(true) + ccs());
  b.data(1, 193 * ms + 100 * us, 4, 3, D::kSend, 80, 10 * us, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.tls_handshake(1, 191 * ms, 4, 3, 2 * ms + 120 * us, "http/1.1", "localhost");
  b.data(1, 194 * ms, 4, 3, D::kSend, 110, 20 * us);
  b.data(1, 194 * ms, 4, 3, D::kSend, 88, 30 * us, C::kHttpReq, "GET /secure/a HTTP/1.1\r\nHost: localhost:8443",
         tf::kDataTlsPlaintext);
  b.data(1, 194 * ms + 40 * us, 4, 3, D::kRecv, 500, 1 * ms);
  b.data(1, 194 * ms + 40 * us, 4, 3, D::kRecv, 478, 1 * ms, C::kHttpResp, "HTTP/1.1 200 OK", tf::kDataTlsPlaintext);
  b.data(1, 197 * ms, 4, 3, D::kSend, 110, 20 * us);
  b.data(1, 197 * ms, 4, 3, D::kSend, 88, 30 * us, C::kHttpReq, "GET /secure/b HTTP/1.1\r\nHost: localhost:8443",
         tf::kDataTlsPlaintext);
  b.data(1, 197 * ms + 40 * us, 4, 3, D::kRecv, 500, 1 * ms);
  b.data(1, 197 * ms + 40 * us, 4, 3, D::kRecv, 478, 1 * ms, C::kHttpResp, "HTTP/1.1 200 OK", tf::kDataTlsPlaintext);
  b.close(1, 199 * ms, 4, 3);
  return b;
}

struct Loaded {
  TempDir dir;
  TraceSet ts;
  explicit Loaded(const std::vector<const TraceBuilder*>& bs) { EXPECT_TRUE(open_built(ts, dir, bs)); }
};

TEST(ExportJson, ValidAndHasEverySpecKey) {
  TraceBuilder b = session();
  Loaded l({&b});
  std::string text = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_json(l.ts, f)); });
  nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["format"], "httptrace");
  EXPECT_EQ(j["version"], 1);
  // The first event (mono 1 ms) is 999 ms before the header's anchor pair (mono 1 s).
  EXPECT_EQ(j["t0_unix_ns"], 1'700'000'000'000'000'000ull - 999'000'000);
  ASSERT_EQ(j["processes"].size(), 1u);
  for (const char* k : {"pid", "ppid", "exe", "argv"}) EXPECT_TRUE(j["processes"][0].contains(k)) << k;
  EXPECT_EQ(j["processes"][0]["argv"][0], "curl");
  ASSERT_EQ(j["dns"].size(), 2u);
  EXPECT_EQ(j["dns"][0]["error"], nullptr);
  EXPECT_EQ(j["dns"][1]["error"], "EAI_NONAME");
  EXPECT_EQ(j["dns"][1]["addresses"].size(), 0u);
  for (const char* k : {"pid", "tid", "host", "start_ns", "duration_ns", "addresses", "error"})
    EXPECT_TRUE(j["dns"][0].contains(k)) << k;
  EXPECT_EQ(j["dns"][0]["addresses"], (nlohmann::json{"::1", "127.0.0.1"}));
  EXPECT_EQ(j["dns"][0]["start_ns"], 0);
  ASSERT_EQ(j["connections"].size(), 4u);
  for (const auto& c : j["connections"]) {
    for (const char* k : {"id", "pid", "fd", "host", "peer", "local", "start_ns", "close_ns", "bytes_sent",
                          "bytes_received", "dns", "connect", "tls", "requests"})
      EXPECT_TRUE(c.contains(k)) << k;
    for (const char* k : {"start_ns", "duration_ns", "error"}) EXPECT_TRUE(c["connect"].contains(k)) << k;
    for (const auto& r : c["requests"])
      for (const char* k : {"index", "reused", "idle_ns", "start_ns", "sent_ns", "first_byte_ns", "end_ns",
                            "bytes_sent", "bytes_received", "method", "target", "status"})
        EXPECT_TRUE(r.contains(k)) << k;
  }
  // Connections stream out in close order: conn 2 closes first.
  const auto& c2 = j["connections"][0];
  EXPECT_EQ(c2["id"], "4321:2");
  EXPECT_EQ(c2["peer"], "127.0.0.1:8080");
  EXPECT_EQ(c2["host"], "localhost");
  EXPECT_EQ(c2["pool_miss"], true);
  EXPECT_EQ(c2["requests"][0]["status"], 404);
  const auto& c1 = j["connections"][1];
  ASSERT_EQ(c1["requests"].size(), 3u);
  EXPECT_EQ(c1["requests"][1]["reused"], true);
  EXPECT_EQ(c1["requests"][0]["idle_ns"], nullptr);
  EXPECT_EQ(c1["requests"][0]["start_ns"], 2 * ms);
  EXPECT_EQ(c1["dns"]["duration_ns"], 300 * us);
  // The refused connect is held as a possible attempt of a later connect, so it comes out last.
  const auto& refused = j["connections"][3];
  EXPECT_EQ(refused["connect"]["error"], "ECONNREFUSED");
  EXPECT_EQ(refused["tls"], nullptr);
  EXPECT_EQ(refused["attempts"], nlohmann::json::array());
  const auto& t = j["connections"][2];
  EXPECT_EQ(t["tls"]["library"], "openssl");
  EXPECT_EQ(t["tls"]["sni"], "localhost");
  EXPECT_EQ(t["requests"].size(), 2u);
  EXPECT_EQ(t["bytes_sent"], 517 + 80 + 110 + 110);
  const auto& s = j["summary"];
  EXPECT_EQ(s["processes"], 1);
  EXPECT_EQ(s["connections"], 4);
  EXPECT_EQ(s["failed_connects"], 1);
  EXPECT_EQ(s["requests"], 6);
  EXPECT_EQ(s["reused_requests"], 3);
  EXPECT_EQ(s["dropped_events"], 0);
}

TEST(ExportJson, HostileStringsAreEscaped) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 1, 1, 3, ipv4("10.0.0.1", 80), 1);
  b.send(1, 2, 1, 10, 1, "GET /\"\\\x01\xff\xc3\xa9 HTTP/1.1");
  b.recv(1, 3, 1, 10, 1);
  Loaded l({&b});
  std::string text = capture_output([&](std::FILE* f) { write_json(l.ts, f); });
  nlohmann::json j = nlohmann::json::parse(text);  // throws on invalid JSON or UTF-8
  EXPECT_EQ(j["connections"][0]["requests"][0]["target"], "/\"\\\x01\xef\xbf\xbd\xc3\xa9");
}

TEST(Timeline, ShowsPhasesRequestsReuseAndIdle) {
  TraceBuilder b = session();
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_timeline(l.ts, f, {false, 100}); });
  for (const char* want : {"localhost (127.0.0.1:8080)", "dns", "connect ECONNREFUSED", "tls", "TLS TLSv1.3 via openssl",
                           "#0 GET /index.html 200", "#1 GET /delay/150 200", "reused after", "send ", "wait ",
                           "receive ", "pool miss: opened while 4321:1 to it was idle"})
    EXPECT_NE(out.find(want), std::string::npos) << want << "\n" << out;
  EXPECT_EQ(out.find("\x1b["), std::string::npos);  // no colour unless asked
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (line.find('|') != std::string::npos) {
      size_t columns = 0;  // code points: "µs" is two bytes, one column
      for (unsigned char ch : line) columns += (ch & 0xC0) != 0x80;
      EXPECT_EQ(columns, 100u) << line;
    }
  std::string colored = capture_output([&](std::FILE* f) {
    l.ts.start();
    write_timeline(l.ts, f, {true, 100});
  });
  EXPECT_NE(colored.find("\x1b["), std::string::npos);
}

std::vector<std::string> lines_of(const std::string& out) {
  std::vector<std::string> v;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) v.push_back(line);
  return v;
}

std::string line_starting(const std::string& out, const std::string& prefix) {
  for (const auto& l : lines_of(out))
    if (l.rfind(prefix, 0) == 0) return l;
  ADD_FAILURE() << "no line starting with '" << prefix << "' in\n" << out;
  return "";
}

TEST(Timeline, AxisWithTicksAndLabelledTotals) {
  TraceBuilder b = session();
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_timeline(l.ts, f, {false, 100}); });
  // Totals close the report (they are known at the end of the stream).
  EXPECT_EQ(lines_of(out).back(), "total: 4 connections, 6 requests (3 reused) over 198.00ms") << out;
  // A ruler with a '+' per tick under labels in one unit: 0, 50ms, 100ms, 150ms for 198 ms.
  const auto lines = lines_of(out);
  size_t ruler = 0;
  while (ruler < lines.size() && lines[ruler].find("|+--") == std::string::npos) ++ruler;
  ASSERT_LT(ruler, lines.size()) << out;
  ASSERT_GT(ruler, 0u);
  const std::string& labels = lines[ruler - 1];
  EXPECT_NE(labels.find("duration"), std::string::npos) << labels;
  for (const char* tick : {" 0 ", "50ms", "100ms", "150ms"}) EXPECT_NE(labels.find(tick), std::string::npos) << labels;
  EXPECT_EQ(std::count(lines[ruler].begin(), lines[ruler].end(), '+'), 4) << lines[ruler];
  // Each label sits over its '+'.
  for (const char* tick : {"50ms", "100ms", "150ms"}) {
    const size_t at = labels.find(tick);
    EXPECT_EQ(lines[ruler][at], '+') << tick << "\n" << labels << "\n" << lines[ruler];
  }
  EXPECT_EQ(columns(lines[ruler]), 100u);
}

TEST(Timeline, SetupReceiveAndSendHaveTheirOwnGlyphs) {
  TraceBuilder b = session();
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_timeline(l.ts, f, {false, 100}); });
  auto bar_of = [](const std::string& line) { return line.substr(line.find('|')); };
  for (const char* setup : {"  dns ", "  connect ", "  tls "}) {
    const std::string bar = bar_of(line_starting(out, setup));
    EXPECT_NE(bar.find('#'), std::string::npos) << bar;
    EXPECT_EQ(bar.find('='), std::string::npos) << bar;
  }
  EXPECT_NE(out.find("legend: ### dns  ### connect  ### tls  --- send  ... wait  === receive"), std::string::npos) << out;
  // #0 read its response in several calls: its receive is a time. #1 got it in one read.
  EXPECT_NE(out.find("send 20.0µs + wait 1.01ms + receive 1.07ms"), std::string::npos) << out;
  EXPECT_NE(out.find("send 20.0µs + wait 150.01ms + receive in 1 read"), std::string::npos) << out;
  EXPECT_EQ(out.find("receive 0ns"), std::string::npos) << out;
}

TEST(Timeline, LegendColoursAreTheBarColours) {
  TraceBuilder b = session();
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_timeline(l.ts, f, {true, 100}); });
  const std::string legend = line_starting(out, "legend:");
  // The code in front of each legend sample, e.g. "\x1b[33m###\x1b[0m connect".
  auto legend_code = [&](const std::string& sample, const std::string& name) {
    const size_t at = legend.find(sample + "\x1b[0m " + name);
    EXPECT_NE(at, std::string::npos) << name << ": " << legend;
    if (at == std::string::npos) return std::string();
    const size_t esc = legend.rfind("\x1b[", at);
    return legend.substr(esc, at - esc);
  };
  auto bar_has = [&](const std::string& line_prefix, const std::string& code, char glyph) {
    const std::string line = line_starting(out, line_prefix);
    EXPECT_NE(line.find(code + glyph), std::string::npos) << line_prefix << " lacks " << code.substr(1) << glyph;
  };
  bar_has("  dns ", legend_code("###", "dns"), '#');
  bar_has("  connect  ", legend_code("###", "connect"), '#');
  bar_has("  tls ", legend_code("###", "tls"), '#');
  bar_has("  connect ECONNREFUSED", legend_code("###", "failed"), '#');
  bar_has("  #1 GET /delay/150", legend_code("---", "send"), '-');
  bar_has("  #1 GET /delay/150", legend_code("...", "wait"), '.');
  const std::string receive = legend_code("===", "receive");
  // A response read over most of the trace, so its receive shows.
  TraceBuilder slow;
  slow.socket(1, 1 * ms, 1, 3);
  slow.connect(1, 1 * ms + 10, 1, 3, ipv4("10.0.0.1", 80), 100 * us);
  slow.send(1, 2 * ms, 1, 30, 10 * us, "GET /big HTTP/1.1");
  slow.recv(1, 3 * ms, 1, 1000, 1 * ms, "HTTP/1.1 200 OK");
  slow.recv(1, 50 * ms, 1, 1000, 40 * ms);
  slow.close(1, 100 * ms, 1, 3);
  Loaded s2({&slow});
  out = capture_output([&](std::FILE* f) { write_timeline(s2.ts, f, {true, 100}); });
  bar_has("  #0 GET /big", receive, '=');
}

TEST(Timeline, StatusStaysWhenALongTargetIsCut) {
  TraceBuilder b;
  b.socket(1, 1 * ms, 1, 3);
  b.connect(1, 1 * ms + 10, 1, 3, ipv4("10.0.0.1", 80), 100 * us);
  b.send(1, 2 * ms, 1, 200, 10 * us, "GET /a/very/long/path/that/goes/on/and/on/and/on?q=1 HTTP/1.1");
  b.recv(1, 3 * ms, 1, 100, 10 * us, "HTTP/1.1 503 Service Unavailable");
  b.close(1, 4 * ms, 1, 3);
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_timeline(l.ts, f, {false, 100}); });
  const std::string line = line_starting(out, "  #0 GET /a/very");
  EXPECT_NE(line.find("~ 503 "), std::string::npos) << line;
  EXPECT_EQ(columns(line), 100u) << line;
  EXPECT_NE(out.find("total: 1 connection, 1 request (0 reused)"), std::string::npos) << out;
  // The host is the peer's address: said once.
  EXPECT_NE(out.find("conn 1000:1  10.0.0.1:80  1 request"), std::string::npos) << out;
}

// Connections that close in the opposite order to the one they opened in, and a first one open
// from the start to the end (it holds back every other).
TraceBuilder reverse_closing(uint32_t conns) {
  TraceBuilder b;
  for (uint32_t i = 1; i <= conns; ++i) {
    b.socket(1, i * ms, i, int32_t(i + 2));
    b.connect(1, i * ms + 10, i, int32_t(i + 2), ipv4("10.0.0.1", 80), 50 * us);
  }
  for (uint32_t i = conns; i >= 1; --i) {
    const uint64_t t = (2 * conns - i) * ms;
    b.data(1, t, i, int32_t(i + 2), tf::Direction::kSend, 30, 10 * us, tf::CaptureKind::kHttpReq,
           "GET /" + std::to_string(i) + " HTTP/1.1");
    b.data(1, t + 100 * us, i, int32_t(i + 2), tf::Direction::kRecv, 30, 10 * us, tf::CaptureKind::kHttpResp,
           "HTTP/1.1 200 OK");
    b.close(1, t + 200 * us, i, int32_t(i + 2));
  }
  return b;
}

void expect_start_order(const std::string& out, uint32_t conns) {
  size_t last = 0;
  for (uint32_t i = 1; i <= conns; ++i) {
    const size_t at = out.find("conn 1000:" + std::to_string(i) + " ");
    ASSERT_NE(at, std::string::npos) << i;
    EXPECT_GT(at, last) << "conn " << i << " out of start order";
    last = at;
  }
}

TEST(Timeline, PrintsInStartOrderWhateverTheCloseOrder) {
  constexpr uint32_t kConns = 300;
  TraceBuilder b = reverse_closing(kConns);
  Loaded l({&b});
  const std::string held = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_timeline(l.ts, f, {false, 100})); });
  expect_start_order(held, kConns);
  // Ordering gives up after 20 held connections' weight: the rest is sorted through the spool,
  // in runs of 4 KiB merged back from disk. Same report, byte for byte.
  l.ts.start();
  TimelineOptions small{false, 100};
  small.spool_budget = 4096;
  small.max_held_weight = 40;
  const std::string spooled = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_timeline(l.ts, f, small)); });
  EXPECT_EQ(held, spooled);
}

// Issue 8: a refused connect that no later connect claims is held by the model for a second
// (a winner may still come) and only then reported. It started first, so it prints first, not
// after the connections that closed while it was held.
TEST(Timeline, HeldFailedConnectPrintsInStartOrder) {
  TraceBuilder b(1000);
  b.socket(1, 1 * ms, 1, 3);
  b.connect(1, 1 * ms, 1, 3, ipv4("10.0.0.9", 81), 100 * us, ECONNREFUSED);
  b.close(1, 2 * ms, 1, 3);
  for (uint32_t i = 2; i <= 4; ++i) {
    const uint64_t t = i * 10 * ms;
    b.socket(1, t, i, int32_t(i + 2));
    b.connect(1, t, i, int32_t(i + 2), ipv4("10.0.0.1", 80), 100 * us);
    b.send(1, t + 1 * ms, i, 30, 10 * us, "GET /" + std::to_string(i) + " HTTP/1.1");
    b.recv(1, t + 2 * ms, i, 30, 1 * ms, "HTTP/1.1 200 OK");
    b.close(1, t + 4 * ms, i, int32_t(i + 2));
  }
  Loaded l({&b});
  const std::string out = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_timeline(l.ts, f, {false, 100})); });
  ASSERT_NE(out.find("connect ECONNREFUSED"), std::string::npos) << out;
  expect_start_order(out, 4);
}

// A refused connect that the next one claims (a second address of the same name, as curl tries
// 127.0.0.1 then ::1): one connection, its lost attempt shown in its setup, before the connect.
TEST(Timeline, LostAttemptShowsInTheWinnersSetup) {
  TraceBuilder b(1000);
  b.socket(1, 1 * ms, 1, 3);
  b.connect(1, 1 * ms, 1, 3, ipv4("127.0.0.1", 8080), 100 * us, ECONNREFUSED);
  b.close(1, 2 * ms, 1, 3);
  b.socket(1, 3 * ms, 2, 3);
  b.connect(1, 3 * ms, 2, 3, ipv4("127.0.0.2", 8080), 100 * us);
  b.send(1, 4 * ms, 2, 30, 10 * us, "GET / HTTP/1.1");
  b.recv(1, 5 * ms, 2, 30, 1 * ms, "HTTP/1.1 200 OK");
  b.close(1, 7 * ms, 2, 3);
  Loaded l({&b});
  const std::string out = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_timeline(l.ts, f, {false, 100})); });
  EXPECT_EQ(out.find("conn 1000:1 "), std::string::npos) << "the attempt is not a connection of its own\n" << out;
  const size_t lost = out.find("  lost 127.0.0.1:8080 ECONNREFUSED");
  ASSERT_NE(lost, std::string::npos) << out;
  EXPECT_LT(out.find("conn 1000:2 "), lost);
  EXPECT_LT(lost, out.find("  connect "));
}

// A server's inbound request with the calls it made listed under it (indented, with their own
// bars), whatever order the connections closed in.
TEST(Timeline, CallsMadeForAnInboundRequestAreIndentedUnderIt) {
  TraceBuilder b(200);
  const tf::Addr client = ipv4("127.0.0.1", 40001);
  b.accept(1, 100 * us, 1, 5, 4, client, 10 * us);
  b.data(1, 110 * us, 1, 5, tf::Direction::kRecv, 100, 10 * us, tf::CaptureKind::kHttpReq, "GET /front HTTP/1.1");
  b.socket(1, 200 * us, 2, 6);
  b.connect(1, 210 * us, 2, 6, ipv4("127.0.0.1", 9090), 10 * us);
  b.send(1, 300 * us, 2, 80, 5 * us, "GET /back HTTP/1.1");
  b.recv(1, 310 * us, 2, 100, 90 * us, "HTTP/1.1 200 OK");
  b.close(1, 410 * us, 2, 6);
  b.data(1, 500 * us, 1, 5, tf::Direction::kSend, 200, 10 * us, tf::CaptureKind::kHttpResp, "HTTP/1.1 200 OK");
  b.close(1, 600 * us, 1, 5);
  // A later connection of its own, after the inbound one ended.
  b.socket(1, 700 * us, 3, 7);
  b.connect(1, 700 * us, 3, 7, ipv4("127.0.0.1", 9091), 10 * us);
  b.send(1, 720 * us, 3, 80, 5 * us, "GET /later HTTP/1.1");
  b.recv(1, 730 * us, 3, 100, 10 * us, "HTTP/1.1 200 OK");
  b.close(1, 750 * us, 3, 7);
  Loaded l({&b});
  const std::string out = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_timeline(l.ts, f, {false, 100})); });
  const size_t front = out.find("  #0 GET /front 200");
  const size_t call = out.find("\n    -> GET /back 200 ");
  const size_t detail = out.find("        call 200:2#0 to 127.0.0.1:9090");
  const size_t own_block = out.find("conn 200:2 ");
  ASSERT_NE(front, std::string::npos) << out;
  ASSERT_NE(call, std::string::npos) << out;
  ASSERT_NE(detail, std::string::npos) << out;
  EXPECT_LT(front, call);
  EXPECT_LT(call, detail);
  EXPECT_LT(detail, own_block) << "the inbound block (started first) comes first, with its call";
  EXPECT_LT(own_block, out.find("conn 200:3 ")) << out;
  // The call's bar: sent at 300 µs, waited for until its response came in one read at 400 µs.
  const std::string bar = line_starting(out, "    -> GET /back");
  EXPECT_NE(bar.find(" 100.0µs |"), std::string::npos) << bar;
  EXPECT_NE(bar.find("-......."), std::string::npos) << bar;
}

TEST(Timeline, AxisStartsAtTheFirstConnectionNotAtStrayEvents) {
  // An event of a socket the model does not make a connection of (here a TLS close of an unknown
  // socket), long before the only connection: the bars must not be squeezed to the right.
  TraceBuilder b;
  tf::TlsCloseEvent stray{};
  stray.h = TraceBuilder::head(tf::EventKind::kTlsClose, 99, 1 * ms);
  stray.fd = 9;
  stray.library = uint8_t(tf::TlsLibrary::kOpenssl);
  stray.how = uint8_t(tf::TlsCloseHow::kFree);
  b.add(1, stray);
  b.socket(1, 500 * ms, 1, 3);
  b.connect(1, 500 * ms, 1, 3, ipv4("10.0.0.1", 80), 1 * ms);
  b.send(1, 502 * ms, 1, 30, 10 * us, "GET / HTTP/1.1");
  b.recv(1, 503 * ms, 1, 30, 5 * ms, "HTTP/1.1 200 OK");
  b.close(1, 510 * ms, 1, 3);
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_timeline(l.ts, f, {false, 100}); });
  const std::string connect = line_starting(out, "  connect ");
  EXPECT_NE(connect.find("|#"), std::string::npos) << out;
  EXPECT_NE(out.find("over 10.00ms, from 499.00ms after the first event"), std::string::npos) << out;
}

TEST(RowSpool, MergesRunsInKeyOrderStableForEqualKeys) {
  RowSpool spool(64);
  std::vector<std::pair<RowKey, std::string>> rows;
  for (uint32_t i = 0; i < 500; ++i) {
    RowKey k{uint64_t((i * 7919) % 101), int32_t(i % 3), 0};
    rows.push_back({k, "row " + std::to_string(i) + std::string(i % 50, 'x')});
    spool.add(k, rows.back().second);
  }
  EXPECT_GT(spool.runs(), 10u);
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> got;
  EXPECT_TRUE(spool.drain([&](std::string_view r) { got.emplace_back(r); }));
  ASSERT_EQ(got.size(), rows.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], rows[i].second) << i;
}

TEST(Reuse, Ipv6EndpointsInBrackets) {
  TraceBuilder b;
  b.dns(1, 1 * ms, "::1", 10 * us, {ipv6("::1")});
  b.socket(1, 2 * ms, 1, 3);
  b.connect(1, 2 * ms + 10, 1, 3, ipv6("::1", 8080), 50 * us);
  b.send(1, 3 * ms, 1, 30, 10 * us, "GET / HTTP/1.1");
  b.recv(1, 4 * ms, 1, 30, 10 * us, "HTTP/1.1 200 OK");
  b.close(1, 5 * ms, 1, 3);
  b.socket(1, 6 * ms, 2, 3);
  b.connect(1, 6 * ms + 10, 2, 3, ipv6("fe80::1", 443), 50 * us);
  b.close(1, 7 * ms, 2, 3);
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_reuse(l.ts, f); });
  EXPECT_NE(out.find("\n[::1]:8080 "), std::string::npos) << out;
  EXPECT_NE(out.find("\n[fe80::1]:443 "), std::string::npos) << out;
  EXPECT_NE(out.find("(concurrency) are not misses"), std::string::npos) << out;
}

TEST(Reuse, TablePerEndpoint) {
  TraceBuilder b = session();
  Loaded l({&b});
  std::string out = capture_output([&](std::FILE* f) { write_reuse(l.ts, f); });
  auto line_of = [&](const std::string& prefix) {
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind(prefix, 0) == 0) return line;
    ADD_FAILURE() << "no line for " << prefix << " in\n" << out;
    return std::string();
  };
  EXPECT_NE(out.find("reused"), std::string::npos);
  // Every connection's peer came from the one lookup of "localhost".
  const std::string web = line_of("localhost:8080 "), tls = line_of("localhost:8443 "),
                    refused = line_of("localhost:9 "), total = line_of("total ");
  // endpoint conns failed reqs reused ratio dns connect tls tls-saved misses
  auto cols = [](const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> v;
    for (std::string w; in >> w;) v.push_back(w);
    return v;
  };
  EXPECT_EQ(cols(web), (std::vector<std::string>{"localhost:8080", "2", "0", "4", "2", "50%", "300.0µs", "220.0µs",
                                                 "-", "0", "1"}));
  EXPECT_EQ(cols(refused)[2], "1");
  EXPECT_EQ(cols(tls)[9], "1");     // one handshake saved by reuse
  EXPECT_EQ(cols(total)[6], "300.0µs");  // one lookup, counted once
}

// Golden files: a checked-in trace and its expected reports, compared byte for byte. Regenerate
// with HTTPTRACE_UPDATE_GOLDEN=1 build/unit_analyzer --gtest_filter='Golden.*' after a deliberate
// change, and review the diff.
std::string golden_dir() {
  std::string f = __FILE__;
  return f.substr(0, f.rfind('/')) + "/../golden";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Golden, SessionReports) {
  const std::string dir = golden_dir();
  const std::string trace = dir + "/session.trace";
  const bool update = std::getenv("HTTPTRACE_UPDATE_GOLDEN") != nullptr;
  if (update) {
    ASSERT_TRUE(TraceBuilder::write_file(trace, session().compact_bytes()));
  }
  TraceSet ts;
  OpenError err;
  ASSERT_TRUE(ts.add(trace, err)) << err.message;
  ts.start();
  std::string timeline = capture_output([&](std::FILE* f) { write_timeline(ts, f, {false, 100}); });
  ts.start();
  std::string reuse = capture_output([&](std::FILE* f) { write_reuse(ts, f); });
  ts.start();
  std::string json = capture_output([&](std::FILE* f) { write_json(ts, f); });
  EXPECT_TRUE(ts.warnings().empty());
  const std::pair<const char*, std::string*> outputs[] = {
      {"session.timeline.txt", &timeline}, {"session.reuse.txt", &reuse}, {"session.json", &json}};
  for (const auto& [name, text] : outputs) {
    if (update) {
      ASSERT_TRUE(TraceBuilder::write_file(dir + "/" + name, *text));
      continue;
    }
    EXPECT_EQ(*text, slurp(dir + "/" + name)) << name << " differs from the golden file";
  }
}

// The CLI binary sits next to this test binary in build/.
std::string cli() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = 0;
  std::string s = self;
  return s.substr(0, s.rfind('/')) + "/httptrace";
}

struct RunResult {
  int status;
  std::string out, err;
};

RunResult run_cli(const std::vector<std::string>& args, const TempDir& dir, const std::string& env = "") {
  std::string cmd = env + " " + cli();
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >" + dir.file("stdout") + " 2>" + dir.file("stderr");
  int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(dir.file("stdout")), slurp(dir.file("stderr"))};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(cli().c_str(), X_OK) != 0) GTEST_SKIP() << "build/httptrace not built";
    trace_ = dir_.file("s.trace");
    ASSERT_TRUE(TraceBuilder::write_file(trace_, session().compact_bytes()));
  }
  TempDir dir_;
  std::string trace_;
};

TEST_F(Cli, UsageErrorsExit2) {
  EXPECT_EQ(run_cli({}, dir_).status, 2);
  EXPECT_EQ(run_cli({"frobnicate"}, dir_).status, 2);
  EXPECT_EQ(run_cli({"timeline"}, dir_).status, 2);
  EXPECT_EQ(run_cli({"timeline", "--color=sometimes", trace_}, dir_).status, 2);
  auto r = run_cli({"export", "--format", "yaml", trace_}, dir_);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown format 'yaml'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("usage:"), std::string::npos);
}

TEST_F(Cli, UnreadableTraceExits1NamingTheFile) {
  std::string junk = dir_.file("junk.trace");
  TraceBuilder::write_file(junk, "");
  auto r = run_cli({"timeline", junk}, dir_);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(junk + ": not an httptrace trace (bad magic)"), std::string::npos) << r.err;
  EXPECT_EQ(run_cli({"reuse", dir_.file("missing.trace")}, dir_).status, 1);
}

TEST_F(Cli, ExportWritesAtomicallyAndFailsCleanly) {
  std::string out = dir_.file("out.json");
  auto r = run_cli({"export", "--format", "json", "-o", out, trace_}, dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::accept(slurp(out)));
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);

  std::string bad = dir_.file("no-such-dir/out.json");
  r = run_cli({"export", "--format", "json", "-o", bad, trace_}, dir_);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
  // Nothing partial left behind next to the good output either.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path()))
    entries += e.path().filename().string().find(".tmp.") != std::string::npos;
  EXPECT_EQ(entries, 0u);
}

TEST_F(Cli, TimelineReuseDumpRunOnAFile) {
  auto t = run_cli({"timeline", trace_}, dir_);
  EXPECT_EQ(t.status, 0);
  EXPECT_NE(t.out.find("#2 GET /chunked/4 200"), std::string::npos);
  EXPECT_EQ(t.out.find("\x1b["), std::string::npos);  // not a tty
  EXPECT_NE(run_cli({"timeline", "--color=always", trace_}, dir_).out.find("\x1b["), std::string::npos);
  EXPECT_EQ(run_cli({"timeline", "--color=always", trace_}, dir_, "NO_COLOR=1").out.find("\x1b["), std::string::npos);
  EXPECT_NE(run_cli({"timeline", "--color=always", trace_}, dir_, "NO_COLOR=").out.find("\x1b["), std::string::npos);
  auto u = run_cli({"reuse", dir_.path()}, dir_);     // a directory works too
  EXPECT_EQ(u.status, 0);
  EXPECT_NE(u.out.find("localhost:8080"), std::string::npos);
  auto d = run_cli({"dump", trace_}, dir_);
  EXPECT_EQ(d.status, 0);
  EXPECT_NE(d.out.find("connect conn=3 fd=3"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("error=ECONNREFUSED"), std::string::npos);
}

TEST_F(Cli, TruncatedTraceWarnsAndStillReports) {
  std::string bytes = session().compact_bytes();
  std::string cut = dir_.file("cut.trace");
  TraceBuilder::write_file(cut, bytes.substr(0, bytes.size() - 100));
  auto r = run_cli({"timeline", cut}, dir_);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.err.find("warning: " + cut), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("GET /index.html"), std::string::npos);
}

}  // namespace
}  // namespace httptrace::testing

namespace httptrace::testing {
namespace {

class CliRun : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    std::string lib = cli().substr(0, cli().rfind('/')) + "/libhttptrace.so";
    if (access(lib.c_str(), R_OK) != 0) GTEST_SKIP() << "build/libhttptrace.so not built";
  }
};

TEST_F(CliRun, SetsTheEnvironmentAndExitsWithTheProgramsStatus) {
  const std::string out = dir_.file("run");
  auto r = run_cli({"run", "-o", out, "--stacks", "--", "sh", "-c",
                    "echo \"out=$HTTPTRACE_OUTPUT pre=$LD_PRELOAD st=$HTTPTRACE_STACKS\"; exit 3"},
                   dir_);
  EXPECT_EQ(r.status, 3) << r.err;
  std::string dir_real = std::filesystem::canonical(out).string();
  EXPECT_NE(r.out.find("out=" + dir_real + "/httptrace.%p.trace"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libhttptrace.so"), std::string::npos);
  EXPECT_NE(r.out.find("st=1"), std::string::npos);
  // The program's output comes first, the report after it.
  EXPECT_EQ(r.out.rfind("out=", 0), 0u);
}

TEST_F(CliRun, ExecFailureIs127AndSignalsAre128PlusN) {
  auto r = run_cli({"run", "-o", dir_.file("a"), "--", "/nonexistent/program"}, dir_);
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("cannot run /nonexistent/program: No such file or directory"), std::string::npos) << r.err;
  // Found but not executable: 126, as a shell says.
  const std::string plain = dir_.file("not-executable");
  ASSERT_TRUE(TraceBuilder::write_file(plain, "#!/bin/sh\necho hi\n"));
  chmod(plain.c_str(), 0644);
  r = run_cli({"run", "-o", dir_.file("a2"), "--", plain}, dir_);
  EXPECT_EQ(r.status, 126) << r.err;
  EXPECT_NE(r.err.find("cannot run " + plain + ": Permission denied"), std::string::npos) << r.err;
  r = run_cli({"run", "-o", dir_.file("a3"), "--", dir_.path()}, dir_);  // a directory
  EXPECT_EQ(r.status, 126) << r.err;
  // A program that itself exits 126 or 127 is not mistaken for one that could not be run.
  r = run_cli({"run", "-o", dir_.file("a4"), "--", "sh", "-c", "exit 127"}, dir_);
  EXPECT_EQ(r.status, 127);
  EXPECT_EQ(r.err.find("cannot run"), std::string::npos) << r.err;
  r = run_cli({"run", "-o", dir_.file("b"), "--", "sh", "-c", "kill -9 $$"}, dir_);
  EXPECT_EQ(r.status, 128 + 9);
  EXPECT_EQ(run_cli({"run"}, dir_).status, 2);
  EXPECT_EQ(run_cli({"run", "--bogus", "true"}, dir_).status, 2);
}

TEST_F(Cli, VersionNamesProgramAndTraceFormat) {
  auto r = run_cli({"--version"}, dir_);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("httptrace ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("trace format version " + std::to_string(tf::kVersion) + "\n"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(CliRun, TemporaryDirectoryRemovedWhenNoTraceWasWritten) {
  const std::string tmp = dir_.file("tmp");
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  auto empty_dir = [&] { return std::filesystem::is_empty(tmp); };
  auto r = run_cli({"run", "--", "true"}, dir_, "TMPDIR=" + tmp);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.err.find("no trace was written"), std::string::npos) << r.err;
  EXPECT_TRUE(empty_dir()) << "left behind in " << tmp;
  r = run_cli({"run", "--", "/nonexistent/program"}, dir_, "TMPDIR=" + tmp);
  EXPECT_EQ(r.status, 127);
  EXPECT_TRUE(empty_dir()) << "left behind in " << tmp;
  // A directory the user named stays, whatever happened.
  r = run_cli({"run", "-o", dir_.file("mine"), "--", "true"}, dir_);
  EXPECT_TRUE(std::filesystem::is_directory(dir_.file("mine")));
}

TEST_F(CliRun, SaysWhereTheTracesAreAfterTheProgramAndBeforeTheReport) {
  // A real connection attempt (refused, on loopback) makes a trace.
  const std::string tmp = dir_.file("tmp");
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  const std::string cmd = "TMPDIR=" + tmp + " " + cli() +
                          " run -- python3 -c \"import socket; print('program output', flush=True); "
                          "socket.socket().connect_ex(('127.0.0.1', 9))\" >" + dir_.file("all") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string all = slurp(dir_.file("all"));
  const size_t program = all.find("program output"), where = all.find("httptrace: 1 trace file in " + tmp + "/"),
               report = all.find("legend:");
  ASSERT_NE(program, std::string::npos) << all;
  ASSERT_NE(where, std::string::npos) << all;
  ASSERT_NE(report, std::string::npos) << all;
  EXPECT_LT(program, where) << all;
  EXPECT_LT(where, report) << all;
  EXPECT_FALSE(std::filesystem::is_empty(tmp));  // the trace is kept
}

TEST_F(CliRun, ForwardsSigtermSentToIt) {
  // httptrace runs a sleeping program; a SIGTERM to httptrace alone must reach the program.
  const std::string cmd = cli() + " run -o " + dir_.file("c") + " -- sleep 30 >/dev/null 2>&1 & pid=$!; " +
                          "for i in $(seq 100); do pgrep -P $pid sleep >/dev/null && break; sleep 0.05; done; " +
                          "kill -TERM $pid; wait $pid; echo $? >" + dir_.file("rc");
  ASSERT_EQ(std::system(("bash -c '" + cmd + "'").c_str()), 0);
  EXPECT_EQ(slurp(dir_.file("rc")), std::to_string(128 + SIGTERM) + "\n");
}

}  // namespace
}  // namespace httptrace::testing
