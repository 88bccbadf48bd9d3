// `httptrace report` and `run --report` / `run --export` from real curl traces, the page opened
// by the real consumer: headless Chromium runs its script (--dump-dom gives the DOM after that),
// reports the page's console messages on stderr, and takes a 1280x800 screenshot.
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "tests/integration/chain_service.h"
#include "tests/integration/fixture.h"
#include "tests/integration/script_server.h"

namespace httptrace::itest {
namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

std::string chromium_path() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

struct Rendered {
  RunResult run;
  std::string dom;
  std::vector<std::string> console;  // the page's console messages (errors among them)
};

// The page after its script ran, in a browser profile of its own (so parallel runs don't share one).
Rendered render(const fs::path& page, const fs::path& work, const std::vector<std::string>& extra = {},
                const std::string& fragment = "") {
  std::vector<std::string> argv = {chromium_path(), "--headless", "--no-sandbox", "--disable-gpu",
                                   "--user-data-dir=" + (work / "chromium-profile").string(),
                                   "--enable-logging=stderr", "--v=0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (extra.empty()) argv.push_back("--dump-dom");
  argv.push_back("file://" + page.string() + fragment);
  RunOptions o;
  o.timeout = milliseconds(90000);
  Rendered r;
  r.run = run(argv, o);
  r.dom = r.run.out;
  std::istringstream err(r.run.err);
  for (std::string line; std::getline(err, line);)
    if (line.find(":CONSOLE") != std::string::npos) r.console.push_back(line);
  return r;
}

// The part of the DOM the script drew: the waterfall's rows (the data's own <script> also
// holds the targets, so it must not count).
std::string drawn_rows(const std::string& dom) {
  size_t from = dom.find("<div id=\"rows\"");
  size_t to = dom.find("<div id=\"sel\"", from);
  return from == std::string::npos || to == std::string::npos ? "" : dom.substr(from, to - from);
}

// <td> texts of the table with this id, row by row.
std::vector<std::vector<std::string>> table_rows(const std::string& dom, const std::string& id) {
  std::vector<std::vector<std::string>> rows;
  size_t at = dom.find("id=\"" + id + "\"");
  if (at == std::string::npos) return rows;
  const size_t end = dom.find("</table>", at);
  at = dom.find("<tbody>", at);
  for (size_t tr = dom.find("<tr", at); tr < end; tr = dom.find("<tr", tr + 1)) {
    const size_t tr_end = dom.find("</tr>", tr);
    std::vector<std::string> cells;
    for (size_t td = dom.find("<td", tr); td < tr_end; td = dom.find("<td", td + 1)) {
      size_t open = dom.find('>', td) + 1;
      cells.push_back(dom.substr(open, dom.find("</td>", open) - open));
    }
    rows.push_back(cells);
  }
  return rows;
}

// `httptrace reuse` rows: endpoint, conns, failed, reqs, reused, ratio (the total row included).
std::vector<std::vector<std::string>> reuse_report(const fs::path& trace) {
  RunResult r = run({paths().cli.string(), "reuse", trace.string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line) && !line.empty()) {
    std::istringstream cols(line);
    std::vector<std::string> v(6);
    for (auto& c : v) cols >> c;
    rows.push_back(v);
  }
  return rows;
}

// Text as a browser serialises a text node: what the script set with textContent, never markup.
std::string as_dom_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint8_t(s[at + 3]);
}

class HtmlReport : public TracedTest {
 protected:
  // The report of a bench/gen_trace trace of CONNS connections and EVENTS events, at PAGE;
  // the test is skipped or has failed if it could not be made.
  void synthetic_report(const std::string& conns, const std::string& events, const fs::path& page) {
    const fs::path gen = paths().build / "bench/gen_trace";
    if (!fs::exists(gen)) GTEST_SKIP() << gen << " missing: make build/bench/gen_trace";
    const fs::path trace = work_ / (page.stem().string() + ".trace");
    RunResult g = run({gen.string(), "-o", trace.string(), "-c", conns, "-e", events});
    ASSERT_EQ(g.exit_code, 0) << g.describe();
    RunResult rep = run({paths().cli.string(), "report", "-o", page.string(), trace.string()});
    ASSERT_EQ(rep.exit_code, 0) << rep.describe();
  }
  void SetUp() override {
    TracedTest::SetUp();
    if (chromium_path().empty()) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh --test)";
  }

  // Every check that holds for any report of a traced run: self-contained, drawn without a
  // console message, one row per connection, the reuse table equal to `httptrace reuse`.
  std::string check_page(const fs::path& page, const fs::path& trace, const json& doc) {
    const std::string html = read_file(page);
    EXPECT_FALSE(html.empty()) << page;
    // Nothing fetched: no src/href/url() pointing anywhere, and a policy that forbids it anyway.
    std::smatch m;
    EXPECT_FALSE(std::regex_search(html, m, std::regex(R"((src|href)\s*=\s*["']?\s*(https?:)?//)", std::regex::icase)))
        << m.str();
    EXPECT_FALSE(std::regex_search(html, m, std::regex(R"(url\(\s*["']?\s*(https?:)?//|@import)", std::regex::icase)))
        << m.str();
    EXPECT_NE(html.find("default-src 'none'"), std::string::npos);

    Rendered r = render(page, work_.path());
    EXPECT_EQ(r.run.exit_code, 0) << r.run.describe();
    EXPECT_TRUE(r.console.empty()) << "console messages from the page:\n" << ::testing::PrintToString(r.console);
    const std::string rows = drawn_rows(r.dom);
    EXPECT_EQ(count(rows, "class=\"row\""), doc["connections"].size()) << rows;
    EXPECT_EQ(count(rows, "<b>"), 0u) << "a target became markup";
    for (const json& c : doc["connections"])
      for (const json& q : c["requests"]) {
        if (!q["target"].is_string()) continue;
        const std::string text = q["method"].get<std::string>() + " " + q["target"].get<std::string>();
        EXPECT_NE(rows.find(as_dom_text(text)), std::string::npos) << text << " not drawn";
      }

    auto table = table_rows(r.dom, "reuse-table");
    auto expected = reuse_report(trace);
    EXPECT_EQ(table.size(), expected.size());
    for (size_t i = 0; i < std::min(table.size(), expected.size()); ++i)
      for (size_t k = 0; k < 6; ++k) EXPECT_EQ(table[i][k], expected[i][k]) << "row " << i << " column " << k;

    std::smatch ms;
    if (std::regex_search(r.dom, ms, std::regex("data-render-ms=\"([0-9.]+)\"")))
      RecordProperty("render_ms", ms[1].str());
    else ADD_FAILURE() << "the script did not finish drawing";
    return r.dom;
  }

  TempDir work_;
};

// curl: two requests on one kept-alive connection, a third to another host name (127.0.0.1),
// which curl's pool keys separately: a new connection.
TEST_F(HtmlReport, CurlKeepAliveAndANewConnection) {
  const std::string other = "http://127.0.0.1:" + server_.port_str() + "/c";
  RunResult r = traced({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", server_.url("/a"),
                        server_.url("/b?x=<b>&y=1"), other});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(doc["connections"].size(), 2u) << doc.dump(1);

  const fs::path page = work_ / "report.html";
  RunResult rep = run({paths().cli.string(), "report", "-o", page.string(), dir_.path().string()});
  ASSERT_EQ(rep.exit_code, 0) << rep.describe();
  const std::string dom = check_page(page, dir_.path(), doc);
  // The reused request's idle gap is drawn, and the keep-alive endpoint shows its reuse.
  EXPECT_GE(count(drawn_rows(dom), "seg idle"), 1u);
  auto table = table_rows(dom, "reuse-table");
  ASSERT_EQ(table.size(), 3u);  // 127.0.0.1, localhost, total
  EXPECT_EQ(table[1][0], "localhost:" + server_.port_str());
  EXPECT_EQ(table[1][4], "1");
  EXPECT_EQ(table[2][1], "2");
  auto procs = table_rows(dom, "process-table");
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_NE(procs[0][2].find("curl"), std::string::npos);

  // Hovering the first request's send bar shows its exact phases; dragging across the middle
  // half of the chart zooms to it (the page's #selftest drives both, there being no mouse).
  Rendered driven = render(page, work_.path(), {"--dump-dom"}, "#selftest");
  EXPECT_TRUE(driven.console.empty()) << ::testing::PrintToString(driven.console);
  const size_t tip_at = driven.dom.find("<div id=\"tip\"");
  ASSERT_NE(tip_at, std::string::npos);
  const std::string tip = driven.dom.substr(tip_at, driven.dom.find("</div>", tip_at) - tip_at);
  EXPECT_EQ(tip.find(" hidden"), std::string::npos) << tip;
  const json* first = nullptr;
  for (const json& c : doc["connections"])
    if (!first || c["start_ns"].get<uint64_t>() < (*first)["start_ns"].get<uint64_t>()) first = &c;
  ASSERT_TRUE(first && !(*first)["requests"].empty());
  const json& q = (*first)["requests"][0];
  char want[96];
  std::snprintf(want, sizeof want, "send: %.3f ms  (at %.3f", (q["sent_ns"].get<double>() - q["start_ns"].get<double>()) / 1e6,
                q["start_ns"].get<double>() / 1e6);
  EXPECT_NE(tip.find(want), std::string::npos) << want << " not in " << tip;
  EXPECT_NE(tip.find("<b>" + (*first)["id"].get<std::string>() + " "), std::string::npos) << tip;
  std::smatch view;
  ASSERT_TRUE(std::regex_search(driven.dom, view, std::regex("data-view=\"([0-9]+)-([0-9]+)\"")));
  const double a = std::stod(view[1]), b = std::stod(view[2]);
  std::smatch whole;
  const std::string html = read_file(page);
  ASSERT_TRUE(std::regex_search(html, whole, std::regex("id=\"ht-meta\">\\{\"end\":([0-9]+)")));
  const double span = std::stod(whole[1]);
  EXPECT_NEAR(a, span / 4, span / 20);
  EXPECT_NEAR(b, span * 3 / 4, span / 20);

  // At 1280x800 the browser makes a picture of it.
  const fs::path png = work_ / "report.png";
  Rendered shot = render(page, work_.path(), {"--window-size=1280,800", "--screenshot=" + png.string()});
  EXPECT_EQ(shot.run.exit_code, 0) << shot.run.describe();
  EXPECT_TRUE(shot.console.empty()) << ::testing::PrintToString(shot.console);
  const std::string img = read_file(png);
  ASSERT_GE(img.size(), 24u) << "no screenshot at " << png;
  EXPECT_EQ(img.substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_EQ(be32(img, 16), 1280u);
  EXPECT_EQ(be32(img, 20), 800u);

  // And prints (@media print): the browser's own print path makes a PDF of it.
  const fs::path pdf = work_ / "report.pdf";
  Rendered printed = render(page, work_.path(), {"--no-pdf-header-footer", "--print-to-pdf=" + pdf.string()});
  EXPECT_EQ(printed.run.exit_code, 0) << printed.run.describe();
  EXPECT_TRUE(printed.console.empty()) << ::testing::PrintToString(printed.console);
  EXPECT_EQ(read_file(pdf).substr(0, 5), "%PDF-") << "no PDF at " << pdf;
}

// Through an HTTP proxy's tunnel (curl -p): the CONNECT is drawn as the connection's set-up, and
// its request bars are the two GETs only.
TEST_F(HtmlReport, AProxyTunnelIsPartOfTheSetUp) {
  ScriptServer proxy("connect_proxy.py", RunOptions{});
  ASSERT_TRUE(proxy.ok()) << proxy.error();
  RunResult r = traced({"curl", "-s", "-p", "-x", "http://127.0.0.1:" + std::to_string(proxy.port()), "-o",
                        "/dev/null", "-o", "/dev/null", server_.url("/p1"), server_.url("/p2")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  const fs::path page = work_ / "report.html";
  RunResult rep = run({paths().cli.string(), "report", "-o", page.string(), dir_.path().string()});
  ASSERT_EQ(rep.exit_code, 0) << rep.describe();
  const std::string rows = drawn_rows(check_page(page, dir_.path(), doc));
  EXPECT_EQ(count(rows, "seg tunnel"), 1u) << rows;
  EXPECT_EQ(count(rows, "seg send"), 2u) << rows;
}

// `run --export json -o F --report F.html`: the traced command's output and status are its own,
// the export is the same document `export` makes from the kept trace, the report renders.
// A call chain across three traced processes (curl -> frontend service -> backend service): the
// call tree shows curl's request at the root, the frontend's inbound request under it, the call
// it made under that, and the backend's inbound request at the bottom, with own time and time in
// calls adding up to each duration.
TEST_F(HtmlReport, CallTreeOfADistributedChain) {
  TempDir traces;
  RunResult curl = run_chain(traces.path(), "/hello");
  ASSERT_EQ(curl.exit_code, 0) << curl.describe();
  ASSERT_EQ(curl.out, "leaf\n");
  const fs::path page = work_.path() / "report.html";
  RunResult rep = run({paths().cli.string(), "report", "-o", page.string(), traces.path().string()});
  ASSERT_EQ(rep.exit_code, 0) << rep.describe();
  Rendered r = render(page, work_.path());
  ASSERT_EQ(r.run.exit_code, 0) << r.run.describe();
  EXPECT_TRUE(r.console.empty()) << ::testing::PrintToString(r.console);

  auto rows = table_rows(r.dom, "call-tree-table");
  ASSERT_EQ(rows.size(), 4u) << r.dom.substr(r.dom.find("call-tree-table"), 4000);
  // Depth by the order of rows and their indent (data-depth on each row).
  std::vector<std::string> depths;
  const size_t table = r.dom.find("id=\"call-tree-table\"");
  for (size_t at = r.dom.find("data-depth=\"", table); at != std::string::npos && depths.size() < 4;
       at = r.dom.find("data-depth=\"", at + 1))
    depths.push_back(r.dom.substr(at + 12, r.dom.find('"', at + 12) - at - 12));
  EXPECT_EQ(depths, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_NE(rows[0][0].find("GET /hello"), std::string::npos) << rows[0][0];
  EXPECT_NE(rows[1][0].find("GET /hello"), std::string::npos) << rows[1][0];
  EXPECT_NE(rows[2][0].find("GET /backend/hello"), std::string::npos) << rows[2][0];
  EXPECT_NE(rows[3][0].find("GET /backend/hello"), std::string::npos) << rows[3][0];
  // curl, then the frontend twice (its inbound request and its call), then the backend.
  EXPECT_NE(rows[0][1], rows[1][1]);
  EXPECT_EQ(rows[1][1], rows[2][1]);
  EXPECT_NE(rows[2][1], rows[3][1]);
  auto ms_of = [](const std::string& s) { return std::stod(s); };
  for (const auto& row : rows) {
    ASSERT_EQ(row.size(), 7u);
    SCOPED_TRACE(row[0]);
    // duration = own + in calls (µs digits: exact to the last one)
    EXPECT_NEAR(ms_of(row[4]), ms_of(row[5]) + ms_of(row[6]), 0.0015);
  }
  // Each level's time in calls is at least its child's duration where the child is a server's
  // request (the client waited for it), and the leaf made no calls.
  EXPECT_GT(ms_of(rows[1][6]), 0.0) << "the frontend's time in its call to the backend";
  EXPECT_GE(ms_of(rows[1][6]), ms_of(rows[2][4]) - 0.0015);
  EXPECT_EQ(ms_of(rows[3][6]), 0.0);
  // Causal order: the client's request starts before the server read it. (Not "the client's
  // duration covers the server's": the server's last write may return after the client has read
  // the response, when the machine is busy.)
  EXPECT_LE(ms_of(rows[0][3]), ms_of(rows[1][3]));
  EXPECT_LE(ms_of(rows[2][3]), ms_of(rows[3][3]));
}

TEST_F(HtmlReport, RunExportsAndReports) {
  const fs::path json_out = work_ / "run.json", page = work_ / "run.html", traces = work_ / "traces";
  RunResult r = run({paths().cli.string(), "run", "-o", traces.string(), "--export", "json", "-o", json_out.string(),
                     "--report", page.string(), "--", "curl", "-s", server_.url("/a"), server_.url("/b")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.substr(0, 52), "hello from httptrace-test\nhello from httptrace-test\n");
  EXPECT_NE(r.out.find("endpoint"), std::string::npos) << "run still prints the reuse report";
  EXPECT_NE(r.err.find("wrote the json export to " + json_out.string()), std::string::npos) << r.err;
  json doc = json::parse(read_file(json_out), nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << read_file(json_out);
  Export again = export_json(traces);
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(doc, again.doc);
  ASSERT_EQ(doc["connections"].size(), 1u);
  EXPECT_EQ(doc["connections"][0]["requests"].size(), 2u);
  check_page(page, traces, doc);
}

TEST_F(HtmlReport, RunKeepsTheCommandsStatusAndLeavesNoEmptyTempDir) {
  const fs::path tmp = work_ / "tmp", page = work_ / "never.html";
  fs::create_directories(tmp);
  RunOptions o;
  o.env = {{"TMPDIR", tmp.string()}};
  RunResult r = run({paths().cli.string(), "run", "--report", page.string(), "--export", "har", "-o",
                     (work_ / "never.har").string(), "--", "sh", "-c", "exit 3"}, o);
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("no trace was written"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(tmp)) << "run left its temporary directory behind";
  EXPECT_FALSE(fs::exists(page));

  RunResult bad = run({paths().cli.string(), "run", "--export", "json", "--", "true"});
  EXPECT_EQ(bad.exit_code, 2) << bad.describe();
  EXPECT_NE(bad.err.find("needs -o FILE"), std::string::npos) << bad.err;
  RunResult unknown = run({paths().cli.string(), "run", "--export", "pdf", "-o", "x", "--", "true"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.describe();
}

// 10,000 synthetic connections: the page draws the capped 5,000, says so, and Chromium draws
// them without a complaint; the time the script took to the first screen is recorded
// (render_ms; rows further down get their bars as they come near the screen).
TEST_F(HtmlReport, TenThousandConnectionsDrawCapped) {
  const fs::path page = work_ / "many.html";
  synthetic_report("10000", "100000", page);
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string html = read_file(page);
  EXPECT_NE(html.find("draws the first 5000 connections to complete; 5000 more are left out"), std::string::npos);
  Rendered r = render(page, work_.path());
  EXPECT_TRUE(r.console.empty()) << ::testing::PrintToString(r.console);
  EXPECT_EQ(count(drawn_rows(r.dom), "class=\"row\""), 5000u);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.dom, m, std::regex("data-render-ms=\"([0-9.]+)\"")));
  RecordProperty("render_ms", m[1].str());
  std::printf("[ report ] 10000 connections: %zu bytes, the script made its 5000 rows in %s ms\n", html.size(), m[1].str().c_str());
}

// Rows far down the page get their bars only as they come near the screen; printing must not
// depend on that. The print path (headless --print-to-pdf, as a user's Ctrl-P) draws as many
// boxes as a copy of the page that fills every row at once, and more than a copy that never
// hears of the printing (which is what shows this check can fail).
TEST_F(HtmlReport, PrintingDrawsEveryRow) {
  const fs::path page = work_ / "lazy.html";
  synthetic_report("400", "8000", page);
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string html = read_file(page);
  auto variant = [&](const std::string& name, const std::string& from, const std::string& to) {
    std::string text = html;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "the report's script no longer holds " << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    const fs::path p = work_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  };
  const fs::path eager = variant("eager.html", "var kEager = 150", "var kEager = 1e9");
  const fs::path deaf = variant("deaf.html", "window.addEventListener('beforeprint', fillAll);", "");
  // Rectangles the PDF's pages paint: the `re` operators of its (deflated) content streams.
  auto boxes = [&](const fs::path& html_page) -> long {
    const fs::path pdf = work_ / (html_page.stem().string() + ".pdf");
    Rendered printed = render(html_page, work_.path(), {"--no-pdf-header-footer", "--print-to-pdf=" + pdf.string()});
    EXPECT_EQ(printed.run.exit_code, 0) << printed.run.describe();
    RunResult n = run({"python3", "-c",
                       "import re,sys,zlib\n"
                       "d=open(sys.argv[1],'rb').read(); n=0\n"
                       "for m in re.finditer(rb'stream\\r?\\n(.*?)endstream', d, re.S):\n"
                       "  try: n += len(re.findall(rb'\\bre\\b', zlib.decompress(m.group(1))))\n"
                       "  except zlib.error: pass\n"
                       "print(n)\n",
                       pdf.string()});
    EXPECT_EQ(n.exit_code, 0) << n.describe();
    return std::atol(n.out.c_str());
  };
  const long lazy_n = boxes(page), eager_n = boxes(eager), deaf_n = boxes(deaf);
  EXPECT_GT(eager_n, 0);
  EXPECT_EQ(lazy_n, eager_n) << "the printed report lacks bars the fully drawn one has";
  EXPECT_LT(deaf_n, eager_n) << "400 rows all drawn before printing: this check proves nothing";
}

}  // namespace
}  // namespace httptrace::itest
