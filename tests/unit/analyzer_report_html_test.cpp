// The HTML report (SPEC §10) on built traces: hostile trace strings can neither end the data's
// <script> element nor add markup, the drawing caps hold while the tables count everything, an
// empty trace still makes a whole page, and the reuse table is the `httptrace reuse` numbers.
#include <algorithm>
#include <cctype>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/report/html_report.h"
#include "analyzer/report/printable.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000, ms = 1000 * us;
using nlohmann::json;

std::string page_of(const std::vector<const TraceBuilder*>& bs, const HtmlReportOptions& opt = {}) {
  TempDir dir;
  TraceSet ts;
  EXPECT_TRUE(open_built(ts, dir, bs));
  return capture_output([&](std::FILE* f) { EXPECT_TRUE(write_report_html(ts, f, opt)); });
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The text of <script ... id="ID">...</script>, parsed.
json script_json(const std::string& page, const std::string& id) {
  const std::string open = "id=\"" + id + "\">";
  size_t from = page.find(open);
  if (from == std::string::npos) return json();
  from += open.size();
  size_t to = page.find("</script>", from);
  return json::parse(page.substr(from, to - from), nullptr, /*allow_exceptions=*/false);
}

// The cells of the table with id `id`, row by row, as the text between <td ...> and </td>.
std::vector<std::vector<std::string>> table_rows(const std::string& page, const std::string& id) {
  std::vector<std::vector<std::string>> rows;
  size_t at = page.find("id=\"" + id + "\"");
  if (at == std::string::npos) return rows;
  const size_t end = page.find("</table>", at);
  at = page.find("<tbody>", at);
  for (size_t tr = page.find("<tr", at); tr < end; tr = page.find("<tr", tr + 1)) {
    const size_t tr_end = page.find("</tr>", tr);
    std::vector<std::string> cells;
    for (size_t td = page.find("<td", tr); td < tr_end; td = page.find("<td", td + 1)) {
      size_t open = page.find('>', td) + 1;
      cells.push_back(page.substr(open, page.find("</td>", open) - open));
    }
    rows.push_back(cells);
  }
  return rows;
}

// One keep-alive connection carrying `requests` GETs, starting at t.
void keep_alive(TraceBuilder& b, uint32_t conn, uint64_t t, int requests, const std::string& host = "api.test",
                const std::string& target = "/item") {
  b.socket(1, t, conn, 3);
  b.connect(1, t + 10 * us, conn, 3, ipv4("127.0.0.1", 8080), 100 * us);
  for (int i = 0; i < requests; ++i) {
    const uint64_t at = t + (1 + 2 * i) * ms;
    b.send(1, at, conn, 60, 10 * us, "GET " + target + " HTTP/1.1\r\nHost: " + host);
    b.recv(1, at + 200 * us, conn, 120, 300 * us, "HTTP/1.1 200 OK");
  }
  b.close(1, t + (2 + 2 * requests) * ms, conn, 3);
}

// client (pid 100) -> server (pid 200, inbound) -> its call to an untraced backend, n times,
// each on a connection of its own (client conns 1.., server inbound 1.., its calls 1001..).
std::pair<TraceBuilder, TraceBuilder> chains(uint32_t n) {
  using D = tf::Direction;
  using C = tf::CaptureKind;
  TraceBuilder client(100), server(200);
  for (uint32_t i = 1; i <= n; ++i) {
    const uint64_t t = i * 10 * ms;
    const tf::Addr local = ipv4("127.0.0.1", uint16_t(40000 + i));
    const tf::Addr srv = ipv4("127.0.0.1", 8080);
    client.socket(1, t, i, 3);
    // connect() records the local address the builder makes up: port 40000 + conn.
    client.connect(1, t, i, 3, srv, 10 * us);
    server.accept(1, t + 15 * us, i, 5, 4, local, 5 * us);
    client.send(1, t + 100 * us, i, 80, 5 * us, "GET /front HTTP/1.1\r\nHost: front");
    server.data(1, t + 50 * us, i, 5, D::kRecv, 80, 60 * us, C::kHttpReq, "GET /front HTTP/1.1\r\nHost: front");
    const uint32_t call = 1000 + i;
    server.socket(1, t + 200 * us, call, 6);
    server.connect(1, t + 200 * us, call, 6, ipv4("127.0.0.1", 9090), 10 * us);
    server.send(1, t + 300 * us, call, 80, 5 * us, "GET /back HTTP/1.1\r\nHost: back");
    server.recv(1, t + 310 * us, call, 100, 1 * ms, "HTTP/1.1 200 OK");  // until 1.31 ms
    server.close(1, t + 2 * ms, call, 6);
    server.data(1, t + 3 * ms, i, 5, D::kSend, 200, 10 * us, C::kHttpResp, "HTTP/1.1 200 OK");
    client.recv(1, t + 110 * us, i, 200, 3 * ms, "HTTP/1.1 200 OK");
    client.close(1, t + 4 * ms, i, 3);
    server.close(1, t + 5 * ms, i, 5);
  }
  return {std::move(client), std::move(server)};
}

TEST(HtmlReport, CallTreeFollowsTheChainWithOwnAndChildTime) {
  auto [client, server] = chains(1);
  const std::string page = page_of({&client, &server});
  auto rows = table_rows(page, "call-tree-table");
  ASSERT_EQ(rows.size(), 3u) << page.substr(page.find("call-trees"), 3000);
  // request, pid, id, start, duration, own, in calls
  EXPECT_EQ(rows[0][1], "100");
  EXPECT_EQ(rows[0][2], "100:1#0");
  EXPECT_EQ(rows[1][2], "200:1#0");
  EXPECT_EQ(rows[2][2], "200:1001#0");
  EXPECT_NE(rows[0][0].find("GET /front 200"), std::string::npos) << rows[0][0];
  EXPECT_NE(rows[2][0].find("GET /back 200"), std::string::npos) << rows[2][0];
  // The server read the request by 110 µs and answered at 3.01 ms: 2.9 ms, 1.01 ms of it in
  // its call (300 µs .. 1.31 ms).
  EXPECT_EQ(rows[1][4], "2.900");
  EXPECT_EQ(rows[1][6], "1.010");
  EXPECT_EQ(rows[1][5], "1.890");
  EXPECT_EQ(rows[2][6], "0.000");
  EXPECT_NE(page.find("data-depth=\"2\""), std::string::npos);
  EXPECT_EQ(page.find("data-depth=\"3\""), std::string::npos);
}

TEST(HtmlReport, CallTreesAreCapped) {
  auto [client, server] = chains(4);
  HtmlReportOptions opt;
  opt.max_drawn = 5;
  const std::string page = page_of({&client, &server}, opt);
  EXPECT_EQ(table_rows(page, "call-tree-table").size(), 5u);
  EXPECT_NE(page.find("id=\"calls-left-out\">7 more rows"), std::string::npos);
  opt = {};
  opt.max_call_nodes = 3;
  const std::string few = page_of({&client, &server}, opt);
  EXPECT_NE(few.find("id=\"call-nodes-left-out\">9 requests"), std::string::npos);
}

TEST(HtmlReport, HostileStringsStayText) {
  const std::string evil = "</script><img src=x onerror=alert(1)>";
  TraceBuilder b(4242, 1);
  b.set_exe("/usr/bin/<b>client</b>", {"client", "--x=</script><script>alert(2)</script>", "<!--"});
  keep_alive(b, 1, 1 * ms, 2, evil, "/a" + evil + "?q=<script>&amp;\"'");
  const std::string page = page_of({&b});

  // Three script elements (connection data, meta, the page's script), and nothing of the trace
  // made a fourth or any element at all.
  EXPECT_EQ(count(lower(page), "<script"), 3u);
  EXPECT_EQ(count(lower(page), "</script"), 3u);
  EXPECT_EQ(count(lower(page), "<img"), 0u);
  EXPECT_EQ(count(page, "<b>"), 0u);
  EXPECT_EQ(count(page, "<!--"), 0u);

  // The data still says exactly what the trace said.
  json conns = script_json(page, "ht-conns");
  ASSERT_TRUE(conns.is_array()) << page;
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(conns[0]["host"], evil);
  EXPECT_EQ(conns[0]["ep"], evil + ":8080");
  ASSERT_EQ(conns[0]["reqs"].size(), 2u);
  EXPECT_EQ(conns[0]["reqs"][0]["target"], "/a" + evil + "?q=<script>&amp;\"'");

  // In the tables, as escaped text.
  auto reuse = table_rows(page, "reuse-table");
  ASSERT_EQ(reuse.size(), 1u);
  EXPECT_EQ(reuse[0][0], "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;:8080");
  auto procs = table_rows(page, "process-table");
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0][2], "/usr/bin/&lt;b&gt;client&lt;/b&gt;");
  EXPECT_NE(procs[0][3].find("--x=&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"), std::string::npos);
}

TEST(HtmlReport, ControlsAndBadUtf8AreShownNotObeyed) {
  std::string s;
  append_html_text(s, std::string("a\x1b[31m\xff<\xe2\x80\xae"));
  EXPECT_EQ(s, printable("a\x1b[31m\xff") + "&lt;" + printable("\xe2\x80\xae"));
  EXPECT_EQ(s.find('\x1b'), std::string::npos);
  std::string j;
  append_script_json_string(j, "</script>&");
  EXPECT_EQ(j, "\"\\u003c/script\\u003e\\u0026\"");
  EXPECT_EQ(json::parse(j), "</script>&");
}

TEST(HtmlReport, CapsDrawingButTablesCountAll) {
  TraceBuilder b;
  for (uint32_t c = 1; c <= 30; ++c) keep_alive(b, c, c * 20 * ms, c == 1 ? 5 : 1);
  HtmlReportOptions opt;
  opt.max_drawn = 10;
  opt.max_exchanges = 3;
  const std::string page = page_of({&b}, opt);
  json conns = script_json(page, "ht-conns");
  ASSERT_TRUE(conns.is_array()) << page.substr(0, 4000);
  EXPECT_EQ(conns.size(), 10u);
  size_t drawn_reqs = 0;
  for (const json& c : conns) drawn_reqs += c["reqs"].size();
  EXPECT_EQ(drawn_reqs, 3u);
  EXPECT_EQ(conns[0]["reqsLeftOut"], 2);  // the first connection to complete had 5
  json meta = script_json(page, "ht-meta");
  EXPECT_EQ(meta["connections"], 30);
  EXPECT_EQ(meta["drawn"], 10);
  EXPECT_EQ(meta["requests"], 34);
  EXPECT_NE(page.find("the first 10 connections to complete; 20 more are left out"), std::string::npos);
  auto reuse = table_rows(page, "reuse-table");
  ASSERT_EQ(reuse.size(), 1u);
  EXPECT_EQ(reuse[0][1], "30");  // conns
  EXPECT_EQ(reuse[0][3], "34");  // reqs
  EXPECT_EQ(reuse[0][4], "4");   // reused
  EXPECT_EQ(reuse[0][5], "12%");
  EXPECT_NE(page.find("<dd id=\"n-connections\">30</dd>"), std::string::npos);
}

TEST(HtmlReport, EmptyTraceIsAWholePage) {
  TraceBuilder b;
  const std::string page = page_of({&b});
  EXPECT_EQ(script_json(page, "ht-conns"), json::array());
  json meta = script_json(page, "ht-meta");
  EXPECT_EQ(meta["connections"], 0);
  EXPECT_NE(page.find("no connections in the trace"), std::string::npos);
  EXPECT_EQ(page.find("id=\"dropped\""), std::string::npos);
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>"));
  EXPECT_TRUE(page.ends_with("</html>\n"));
}

TEST(HtmlReport, DroppedEventsAreAVisibleWarning) {
  TraceBuilder b;
  b.header().dropped_events = 7;
  keep_alive(b, 1, 1 * ms, 1);
  const std::string page = page_of({&b});
  EXPECT_NE(page.find("<p class=\"warn\" id=\"dropped\">Warning: 7 events were dropped"), std::string::npos);
  EXPECT_EQ(script_json(page, "ht-meta")["dropped"], 7);
  auto procs = table_rows(page, "process-table");
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0][4], "7");
}

// The report's reuse table against `httptrace reuse` on the same trace: same endpoints, same
// counts, in the same order (both come from ReuseCollector).
TEST(HtmlReport, ReuseTableIsTheReuseReport) {
  TraceBuilder b;
  keep_alive(b, 1, 1 * ms, 3, "a.test");
  keep_alive(b, 2, 20 * ms, 1, "b.test");
  keep_alive(b, 3, 40 * ms, 2, "a.test");
  const std::string page = page_of({&b});
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  const std::string text = capture_output([&](std::FILE* f) { write_reuse(ts, f); });
  auto rows = table_rows(page, "reuse-table");
  ASSERT_EQ(rows.size(), 3u);  // two endpoints and the total
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);  // header
  for (const auto& row : rows) {
    ASSERT_TRUE(std::getline(lines, line));
    std::istringstream cols(line);
    std::string name, conns, failed, reqs, reused, ratio;
    cols >> name >> conns >> failed >> reqs >> reused >> ratio;
    EXPECT_EQ(row[0], name);
    EXPECT_EQ(row[1], conns);
    EXPECT_EQ(row[2], failed);
    EXPECT_EQ(row[3], reqs);
    EXPECT_EQ(row[4], reused);
    EXPECT_EQ(row[5], ratio);
  }
  EXPECT_EQ(rows[0][0], "a.test:8080");
  EXPECT_EQ(rows[0][3], "5");
  EXPECT_EQ(rows[0][4], "3");
}

TEST(HtmlReport, NewReasonFallsBackToADash) {
  TraceBuilder b;
  keep_alive(b, 1, 1 * ms, 1);
  const std::string page = page_of({&b});
  json conns = script_json(page, "ht-conns");
  ASSERT_EQ(conns.size(), 1u);
  auto reasons = table_rows(page, "reason-table");
  ASSERT_EQ(reasons.size(), 1u);
  // Until the model fills new_reason every connection has none: one row, for all of them.
  const char* name = conns[0].contains("reason") ? nullptr : "\u2014";
  if (name) EXPECT_EQ(reasons[0][0], name);
  else EXPECT_EQ(reasons[0][0], conns[0]["reason"].get<std::string>());
  EXPECT_EQ(reasons[0][1], "1");
}

}  // namespace
}  // namespace httptrace::testing
