// HAR 1.2 export (SPEC §7) on built traces: which exchanges become entries, the timings mapping
// (setup phases only on a connection's first request, -1 otherwise, `time` the sum), URLs,
// addresses, custom fields, and the small writers it is built from (fixed(), ISO time).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/export/iso_time.h"
#include "analyzer/export/json_writer.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"
#include "tests/unit/analyzer_tls_bytes.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000, ms = 1000 * us;
using D = tf::Direction;
using C = tf::CaptureKind;
using nlohmann::json;

// Keep-alive HTTP with a lookup (2 requests), HTTPS through library hooks (1 request), an IPv6
// connection carrying a non-HTTP exchange then an HTTP request that got no response.
TraceBuilder mixed() {
  TraceBuilder b(777, 1);
  b.set_exe("/usr/bin/client", {"client"});
  const tf::Addr web = ipv4("127.0.0.1", 8080);
  b.dns(1, 1 * ms, "api.test", 400 * us, {ipv4("127.0.0.1")});
  b.socket(1, 2 * ms, 1, 3);
  b.connect(1, 2 * ms + 100 * us, 1, 3, web, 250 * us);
  b.send(1, 3 * ms, 1, 60, 20 * us, "GET /a HTTP/1.1\r\nHost: api.test:8080");
  b.recv(1, 3 * ms + 30 * us, 1, 100, 1 * ms, "HTTP/1.1 200 OK");
  b.recv(1, 4 * ms + 100 * us, 1, 900, 200 * us);
  b.send(1, 6 * ms, 1, 70, 10 * us, "GET /b?x=1&y=two%20words&flag HTTP/1.1\r\nHost: api.test:8080");
  b.recv(1, 6 * ms + 20 * us, 1, 100, 2 * ms, "HTTP/1.1 404 Not Found");
  b.close(1, 9 * ms, 1, 3);

  b.socket(1, 10 * ms, 2, 3);
  b.connect(1, 10 * ms + 10 * us, 2, 3, ipv4("127.0.0.2", 443), 100 * us);
  b.data(1, 11 * ms, 2, 3, D::kSend, 517, 10 * us, C::kTls, client_hello("secure.test", {"http/1.1"}));
  b.data(1, 11 * ms + 20 * us, 2, 3, D::kRecv, 2400, 2 * ms, C::kTls, server_hello(true) + ccs());
  b.data(1, 13 * ms + 100 * us, 2, 3, D::kSend, 80, 10 * us, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.tls_handshake(1, 11 * ms, 2, 3, 2 * ms + 120 * us, "http/1.1", "secure.test");
  b.data(1, 14 * ms, 2, 3, D::kSend, 110, 20 * us);
  b.data(1, 14 * ms, 2, 3, D::kSend, 88, 30 * us, C::kHttpReq, "GET /s HTTP/1.1\r\nHost: secure.test",
         tf::kDataTlsPlaintext);
  b.data(1, 14 * ms + 40 * us, 2, 3, D::kRecv, 500, 1 * ms);
  b.data(1, 14 * ms + 40 * us, 2, 3, D::kRecv, 478, 1 * ms, C::kHttpResp, "HTTP/1.1 200 OK", tf::kDataTlsPlaintext);
  b.close(1, 16 * ms, 2, 3);

  b.socket(1, 20 * ms, 3, 4);
  b.connect(1, 20 * ms + 10 * us, 3, 4, ipv6("::1", 6379), 50 * us);
  b.send(1, 21 * ms, 3, 14, 5 * us);  // not HTTP (a Redis PING, say)
  b.recv(1, 21 * ms + 10 * us, 3, 7, 100 * us);
  b.send(1, 22 * ms, 3, 40, 5 * us, "POST /x HTTP/1.1\r\nHost: [::1]:6379");
  b.close(1, 25 * ms, 3, 4);
  return b;
}

json har_of(const std::vector<const TraceBuilder*>& bs) {
  TempDir dir;
  TraceSet ts;
  EXPECT_TRUE(open_built(ts, dir, bs));
  std::string text = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_har(ts, f)); });
  return json::parse(text);
}

const json* entry_for(const json& har, const std::string& url) {
  for (const json& e : har["log"]["entries"])
    if (e["request"]["url"] == url) return &e;
  return nullptr;
}

double non_negative_sum(const json& t) {
  double sum = 0;
  for (const char* k : {"blocked", "dns", "connect", "send", "wait", "receive"})
    if (t[k].get<double>() >= 0) sum += t[k].get<double>();
  return sum;
}

TEST(ExportHar, OneEntryPerHttpRequestWithTheSpecTimings) {
  TraceBuilder b = mixed();
  json har = har_of({&b});
  EXPECT_EQ(har["log"]["version"], "1.2");
  EXPECT_EQ(har["log"]["creator"]["name"], "httptrace");
  const json& entries = har["log"]["entries"];
  ASSERT_EQ(entries.size(), 4u) << har.dump(1);  // the non-HTTP exchange has no entry

  const json* a = entry_for(har, "http://api.test:8080/a");
  ASSERT_TRUE(a) << har.dump(1);
  // The first event (the lookup, mono 1 ms) is 999 ms before the header's anchor.
  EXPECT_EQ((*a)["startedDateTime"], "2023-11-14T22:13:19.001Z");
  const json& ta = (*a)["timings"];
  EXPECT_EQ(ta["blocked"], -1);
  EXPECT_DOUBLE_EQ(ta["dns"].get<double>(), 0.4);
  EXPECT_DOUBLE_EQ(ta["connect"].get<double>(), 0.25);
  EXPECT_EQ(ta["ssl"], -1);
  EXPECT_DOUBLE_EQ(ta["send"].get<double>(), 0.02);  // start of the write to its end
  EXPECT_DOUBLE_EQ(ta["wait"].get<double>(), 1.01);  // request sent to the first response byte
  EXPECT_DOUBLE_EQ(ta["receive"].get<double>(), 0.27);
  EXPECT_NEAR((*a)["time"].get<double>(), non_negative_sum(ta), 1e-9);
  EXPECT_EQ((*a)["_reused"], false);
  EXPECT_EQ((*a)["_idleMs"], nullptr);
  EXPECT_EQ((*a)["serverIPAddress"], "127.0.0.1");
  EXPECT_EQ((*a)["connection"], "777:1");
  EXPECT_EQ((*a)["_pid"], 777);
  EXPECT_EQ((*a)["_tls"], nullptr);
  EXPECT_EQ((*a)["cache"], json::object());
  EXPECT_EQ((*a)["request"]["method"], "GET");
  EXPECT_EQ((*a)["request"]["httpVersion"], "HTTP/1.1");
  EXPECT_EQ((*a)["request"]["headers"], (json::parse(R"([{"name":"Host","value":"api.test:8080"}])")));
  EXPECT_EQ((*a)["request"]["headersSize"], -1);
  EXPECT_EQ((*a)["request"]["bodySize"], -1);
  EXPECT_EQ((*a)["response"]["status"], 200);
  EXPECT_EQ((*a)["response"]["content"]["size"], -1);
  EXPECT_EQ((*a)["response"]["_transferSize"], 1000);

  const json* bq = entry_for(har, "http://api.test:8080/b?x=1&y=two%20words&flag");
  ASSERT_TRUE(bq) << har.dump(1);
  const json& tb = (*bq)["timings"];
  for (const char* k : {"dns", "connect", "ssl"}) EXPECT_EQ(tb[k], -1) << k << ": reused connection";
  EXPECT_EQ((*bq)["_reused"], true);
  EXPECT_NEAR((*bq)["_idleMs"].get<double>(), 1.7, 1e-9);
  EXPECT_NEAR((*bq)["time"].get<double>(), non_negative_sum(tb), 1e-9);
  EXPECT_EQ((*bq)["startedDateTime"], "2023-11-14T22:13:19.006Z");
  EXPECT_EQ((*bq)["response"]["status"], 404);
  EXPECT_EQ((*bq)["request"]["queryString"],
            json::parse(R"([{"name":"x","value":"1"},{"name":"y","value":"two%20words"},{"name":"flag","value":""}])"));

  const json* s = entry_for(har, "https://secure.test/s");  // 443 is https's own port
  ASSERT_TRUE(s) << har.dump(1);
  const json& tsec = (*s)["timings"];
  EXPECT_DOUBLE_EQ(tsec["ssl"].get<double>(), 2.12);
  EXPECT_NEAR(tsec["connect"].get<double>(), 2.22, 1e-9) << "connect includes ssl";
  EXPECT_NEAR((*s)["time"].get<double>(), non_negative_sum(tsec), 1e-9) << "ssl is counted once, in connect";
  EXPECT_EQ((*s)["_tls"]["version"], "TLSv1.3");
  EXPECT_EQ((*s)["_tls"]["sni"], "secure.test");
  EXPECT_EQ((*s)["_tls"]["alpn"], "http/1.1");
  EXPECT_EQ((*s)["_tls"]["resumed"], false);
  EXPECT_TRUE((*s)["_tls"]["cipher"].is_string());

  // IPv6: the URL brackets the address, serverIPAddress is bare; no response: status 0.
  const json* x = entry_for(har, "http://[::1]:6379/x");
  ASSERT_TRUE(x) << har.dump(1);
  EXPECT_EQ((*x)["serverIPAddress"], "::1");
  EXPECT_EQ((*x)["request"]["method"], "POST");
  EXPECT_EQ((*x)["response"]["status"], 0);
  EXPECT_EQ((*x)["response"]["httpVersion"], "");
  EXPECT_GE((*x)["timings"]["wait"].get<double>(), 0);
  EXPECT_EQ((*x)["timings"]["receive"], 0);
  EXPECT_EQ((*x)["_reused"], true) << "the second exchange on its connection";
}

TEST(ExportHar, PoolMissIsTheNewReason) {
  TraceBuilder b(50, 1);
  const tf::Addr web = ipv4("10.0.0.1", 80);
  b.socket(1, 1 * ms, 1, 3);
  b.connect(1, 1 * ms, 1, 3, web, 10 * us);
  b.send(1, 2 * ms, 1, 30, 1 * us, "GET /1 HTTP/1.1");
  b.recv(1, 2 * ms + 10 * us, 1, 30, 1 * us, "HTTP/1.1 200 OK");
  b.socket(1, 5 * ms, 2, 4);  // conn 1 sits idle
  b.connect(1, 5 * ms, 2, 4, web, 10 * us);
  b.send(1, 6 * ms, 2, 30, 1 * us, "GET /2 HTTP/1.1");
  b.recv(1, 6 * ms + 10 * us, 2, 30, 1 * us, "HTTP/1.1 200 OK");
  b.close(1, 7 * ms, 2, 4);
  b.close(1, 8 * ms, 1, 3);
  json har = har_of({&b});
  const json* first = entry_for(har, "http://10.0.0.1/1");
  const json* second = entry_for(har, "http://10.0.0.1/2");
  ASSERT_TRUE(first && second) << har.dump(1);
  EXPECT_EQ((*first)["_newReason"], "first");
  EXPECT_EQ((*second)["_newReason"], "pool_miss");
  EXPECT_EQ((*second)["request"]["headers"][0]["value"], "10.0.0.1");
}

TEST(ExportHar, EmptyTraceIsAValidLog) {
  TraceBuilder b;
  json har = har_of({&b});
  EXPECT_EQ(har["log"]["entries"], json::array());
  EXPECT_EQ(har["log"]["version"], "1.2");
}

// The CLI: both formats are chosen by --format, written atomically, and a failed write (a full
// disk) exits 1 with a message; an unknown format names the supported ones.
TEST(ExportCli, HarAndChromeFormatsThroughTheCommand) {
  const std::string cli = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "httptrace").string();
  if (access(cli.c_str(), X_OK) != 0) GTEST_SKIP() << cli << " not built";
  TempDir dir;
  TraceBuilder b = mixed();
  const std::string trace = dir.file("m.trace");
  ASSERT_TRUE(TraceBuilder::write_file(trace, b.bytes()));
  auto run = [&](const std::string& args, const std::string& stdout_to = "") {
    const std::string to = stdout_to.empty() ? dir.file("out") : stdout_to;
    int rc = std::system((cli + " " + args + " >" + to + " 2>" + dir.file("err")).c_str());
    std::ifstream in(dir.file("err"));
    std::stringstream err;
    err << in.rdbuf();
    return std::make_pair(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, err.str());
  };
  for (const char* format : {"har", "chrome"}) {
    SCOPED_TRACE(format);
    const std::string out = dir.file(std::string("x.") + format);
    auto [rc, err] = run(std::string("export --format ") + format + " -o " + out + " " + trace);
    ASSERT_EQ(rc, 0) << err;
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_TRUE(json::accept(text.str()));
    if (access("/dev/full", W_OK) == 0) {
      auto [frc, ferr] = run(std::string("export --format=") + format + " " + trace, "/dev/full");
      EXPECT_EQ(frc, 1);
      EXPECT_NE(ferr.find("write failed"), std::string::npos) << ferr;
    }
  }
  auto [rc, err] = run("export --format yaml " + trace);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("supported: json, har, chrome"), std::string::npos) << err;
}

// -o naming a FIFO (or /dev/null) writes into it: the temporary-file-and-rename that protects a
// regular file would replace the FIFO or device with a regular file.
TEST(ExportCli, OutputToAFifoIsWrittenInPlace) {
  const std::string cli = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "httptrace").string();
  if (access(cli.c_str(), X_OK) != 0) GTEST_SKIP() << cli << " not built";
  TempDir dir;
  TraceBuilder b = mixed();
  const std::string trace = dir.file("m.trace"), fifo = dir.file("fifo"), got = dir.file("got");
  ASSERT_TRUE(TraceBuilder::write_file(trace, b.bytes()));
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // The reader gives up after 10 s, so a broken export cannot hang the test.
  const std::string cmd = "(timeout 10 cat '" + fifo + "' > '" + got + "') & " + cli + " export --format har -o '" +
                          fifo + "' '" + trace + "'; rc=$?; wait; exit $rc";
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << rc;
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  std::ifstream in(got);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(json::accept(text.str())) << text.str().substr(0, 200);
}

TEST(JsonWriterFixed, ExactDecimals) {
  std::string text = capture_output([](std::FILE* f) {
    JsonWriter w(f);
    w.begin_array();
    w.fixed(0, 3).fixed(1, 3).fixed(1234567, 3).fixed(-1500, 3).fixed(999, 3).fixed(5, 1);
    w.fixed(INT64_MIN, 9);
    w.end_array();
  });
  EXPECT_EQ(text, "[0.000,0.001,1234.567,-1.500,0.999,0.5,-9223372036.854775808]");
}

TEST(IsoTime, CivilDatesInUtc) {
  char buf[kIsoTimeMsLen + 1];
  auto fmt = [&](uint64_t ns) { return std::string(buf, format_iso_time_ms(buf, ns)); };
  EXPECT_EQ(fmt(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(fmt(951782400'000'000'000ull + 1'999'999), "2000-02-29T00:00:00.001Z");
  EXPECT_EQ(fmt(1'700'000'000'123'456'789ull), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(fmt(4'102'444'799'999'000'000ull), "2099-12-31T23:59:59.999Z");
  EXPECT_EQ(fmt(UINT64_MAX), "2554-07-21T23:34:33.709Z");
}

// The cached form says what the plain one says, across seconds, days and backwards steps.
TEST(IsoTime, CachedSecondMatchesTheFullFormat) {
  IsoTimeMs iso;
  char a[kIsoTimeMsLen + 1], b[kIsoTimeMsLen + 1];
  const uint64_t t0 = 951'868'799'000'000'000ull;  // 2000-02-29T23:59:59
  for (uint64_t step : {0ull, 1'000'000ull, 999'999ull, 7'000'001ull, 400'000'000ull}) {
    for (uint64_t t = t0, i = 0; i < 3000; ++i, t += step) {
      const uint64_t ns = i % 7 == 3 ? t - 5'000'000'000ull : t;  // now and then an earlier time
      ASSERT_EQ(std::string(a, iso.format(a, ns)), std::string(b, format_iso_time_ms(b, ns))) << ns;
    }
  }
  ASSERT_EQ(std::string(a, iso.format(a, UINT64_MAX)), "2554-07-21T23:34:33.709Z");
}

}  // namespace
}  // namespace httptrace::testing
