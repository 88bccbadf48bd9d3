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
