// Distributed tracing with no code change (issue 11): three traced processes -- curl sending a
// traceparent, a Python frontend service (ThreadingHTTPServer) that calls a Python backend
// service -- make one trace in the OTLP export, with the traceparent's ids, parents along the
// chain curl CLIENT -> frontend SERVER -> frontend CLIENT -> backend SERVER, in causal order.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/chrome_trace_check.h"
#include "tests/integration/export_util.h"
#include "tests/integration/chain_service.h"
#include "tests/integration/harness.h"
#include "tests/integration/nginx_proxy.h"

namespace httptrace::itest {
namespace {

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kSpanId[] = "00f067aa0ba902b7";

struct SpanView {
  std::string trace_id, span_id, parent;
  int kind = 0;
  int64_t pid = 0;
  uint64_t start = 0, end = 0;
  std::map<std::string, std::string> attrs;  // string and int values as text
};

std::vector<SpanView> request_spans(const nlohmann::json& doc) {
  std::vector<SpanView> out;
  for (const auto& rs : doc["resourceSpans"]) {
    int64_t pid = 0;
    for (const auto& a : rs["resource"]["attributes"])
      if (a["key"] == "process.pid") pid = std::stoll(a["value"]["intValue"].get<std::string>());
    for (const auto& ss : rs["scopeSpans"])
      for (const auto& s : ss["spans"]) {
        SpanView v;
        v.kind = s["kind"].get<int>();
        if (v.kind != 2 && v.kind != 3) continue;  // SERVER, CLIENT
        v.trace_id = s["traceId"];
        v.span_id = s["spanId"];
        v.parent = s.value("parentSpanId", "");
        v.pid = pid;
        v.start = std::stoull(s["startTimeUnixNano"].get<std::string>());
        v.end = std::stoull(s["endTimeUnixNano"].get<std::string>());
        for (const auto& a : s["attributes"]) {
          const auto& val = a["value"];
          v.attrs[a["key"]] = val.contains("stringValue") ? val["stringValue"].get<std::string>()
                              : val.contains("intValue") ? val["intValue"].get<std::string>()
                                                         : val.dump();
        }
        out.push_back(std::move(v));
      }
  }
  return out;
}

const SpanView* find_span(const std::vector<SpanView>& spans, int kind, const std::string& key,
                          const std::string& suffix) {
  const SpanView* found = nullptr;
  for (const SpanView& s : spans) {
    auto it = s.attrs.find(key);
    // url.path is compared whole, url.full by its end (the scheme and host are not the point).
    if (s.kind != kind || it == s.attrs.end()) continue;
    if (key == "url.path" ? it->second != suffix : !it->second.ends_with(suffix)) continue;
    if (found) return nullptr;  // must be unique
    found = &s;
  }
  return found;
}

TEST(DistributedTrace, CurlFrontendBackendIsOneTrace) {
  TempDir traces, out;
  Service backend(traces.path(), std::nullopt);
  ASSERT_GT(backend.port(), 0) << backend.error();
  Service frontend(traces.path(), backend.port());
  ASSERT_GT(frontend.port(), 0) << frontend.error();

  const RunOptions o = traced_into(traces.path());
  const std::string tp = std::string("00-") + kTraceId + "-" + kSpanId + "-01";
  RunResult curl = run({"curl", "-sS", "-H", "traceparent: " + tp,
                        "http://127.0.0.1:" + std::to_string(frontend.port()) + "/hello"}, o);
  ASSERT_EQ(curl.exit_code, 0) << curl.describe();
  ASSERT_EQ(curl.out, "leaf\n");
  frontend.stop();
  backend.stop();

  Export otlp = export_as("otlp", traces.path(), out / "otlp.json");
  ASSERT_TRUE(otlp.ok) << otlp.error;
  const std::vector<SpanView> spans = request_spans(otlp.doc);
  const SpanView* curl_client = find_span(spans, 3, "url.full", ":" + std::to_string(frontend.port()) + "/hello");
  const SpanView* fe_server = find_span(spans, 2, "url.path", "/hello");
  const SpanView* fe_client = find_span(spans, 3, "url.full", "/backend/hello");
  const SpanView* be_server = find_span(spans, 2, "url.path", "/backend/hello");
  ASSERT_TRUE(curl_client && fe_server && fe_client && be_server) << otlp.doc.dump(1).substr(0, 6000);

  // One trace, the one the traceparent named; the curl span is the span it named.
  for (const SpanView* s : {curl_client, fe_server, fe_client, be_server}) EXPECT_EQ(s->trace_id, kTraceId);
  EXPECT_EQ(curl_client->span_id, kSpanId);
  EXPECT_EQ(curl_client->parent, "");
  EXPECT_EQ(fe_server->parent, curl_client->span_id);
  EXPECT_EQ(fe_client->parent, fe_server->span_id);
  EXPECT_EQ(be_server->parent, fe_client->span_id);
  // Three processes: the frontend's two spans share a pid, nothing else does.
  EXPECT_EQ(fe_server->pid, fe_client->pid);
  EXPECT_NE(curl_client->pid, fe_server->pid);
  EXPECT_NE(be_server->pid, fe_server->pid);

  // Causal order: each call starts after its caller, and within the frontend the call it made
  // ends before the answer it was needed for.
  EXPECT_LE(curl_client->start, fe_server->start);
  EXPECT_LE(fe_server->start, fe_client->start);
  EXPECT_LE(fe_client->start, be_server->start);
  EXPECT_LE(fe_client->end, fe_server->end);
  EXPECT_GT(std::stoll(fe_server->attrs.at("httptrace.children_ns")), 0);

  // The same links in the JSON export.
  Export json = export_json(traces.path());
  ASSERT_TRUE(json.ok) << json.error;
  std::map<std::string, const nlohmann::json*> by_id;
  for (const auto& c : json.doc["connections"]) by_id[c["id"].get<std::string>()] = &c;
  int inbound = 0, children = 0;
  for (const auto& c : json.doc["connections"]) {
    if (c["direction"] == "inbound") {
      ++inbound;
      ASSERT_EQ(c["requests"].size(), 1u);
      const auto& linked = c["requests"][0]["linked"];
      ASSERT_TRUE(linked.is_string()) << c.dump();
      const std::string client_conn = linked.get<std::string>().substr(0, linked.get<std::string>().find('#'));
      ASSERT_TRUE(by_id.count(client_conn)) << linked;
      EXPECT_EQ((*by_id[client_conn])["direction"], "outbound");
      EXPECT_EQ((*by_id[client_conn])["requests"][0]["linked"], c["id"].get<std::string>() + "#0");
    }
    for (const auto& r : c["requests"]) {
      if (!r["parent"].is_string()) continue;
      ++children;
      EXPECT_EQ(r["parent_confidence"], "thread");
      const std::string parent_conn = r["parent"].get<std::string>().substr(0, r["parent"].get<std::string>().find('#'));
      ASSERT_TRUE(by_id.count(parent_conn));
      EXPECT_EQ((*by_id[parent_conn])["direction"], "inbound");
      EXPECT_EQ((*by_id[parent_conn])["pid"], c["pid"]);
    }
  }
  EXPECT_EQ(inbound, 2);   // the frontend's and the backend's
  EXPECT_EQ(children, 1);  // the frontend's call to the backend
}

// Without a traceparent the trace is still one, named by its root (curl's request), and every
// span below it is that trace's.
TEST(DistributedTrace, WithoutTraceparentTheRootNamesTheTrace) {
  TempDir traces, out;
  Service backend(traces.path(), std::nullopt);
  ASSERT_GT(backend.port(), 0) << backend.error();
  Service frontend(traces.path(), backend.port());
  ASSERT_GT(frontend.port(), 0) << frontend.error();
  const RunOptions o = traced_into(traces.path());
  RunResult curl = run({"curl", "-sS", "http://127.0.0.1:" + std::to_string(frontend.port()) + "/a"}, o);
  ASSERT_EQ(curl.exit_code, 0) << curl.describe();
  frontend.stop();
  backend.stop();
  Export otlp = export_as("otlp", traces.path(), out / "otlp.json");
  ASSERT_TRUE(otlp.ok) << otlp.error;
  const std::vector<SpanView> spans = request_spans(otlp.doc);
  ASSERT_EQ(spans.size(), 4u);
  int roots = 0;
  for (const SpanView& s : spans) {
    EXPECT_EQ(s.trace_id, spans[0].trace_id);
    roots += s.parent.empty();
  }
  EXPECT_EQ(roots, 1);
}

// The Chrome/Perfetto export draws the chain as flow arrows between request slices: curl's
// request -> the frontend's inbound request -> the call it made -> the backend's inbound request.
TEST(DistributedTrace, ChromeFlowsFollowTheChain) {
  TempDir traces, out;
  RunResult curl = run_chain(traces.path(), "/hello");
  ASSERT_EQ(curl.exit_code, 0) << curl.describe();

  Export chrome = export_as("chrome", traces.path(), out / "trace.json");
  ASSERT_TRUE(chrome.ok) << chrome.error;
  testcheck::ChromeStats st;
  const auto problems = testcheck::check_chrome_trace(chrome.doc, &st);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  EXPECT_EQ(st.requests, 4u);
  // Each arrow as "kind: pid target -> pid target", from the request slices it binds to.
  std::vector<std::string> arrows;
  for (const auto& f : st.bound) {
    if (f.cat != "http") continue;
    auto side = [](const nlohmann::json& slice) {
      return std::to_string(slice["pid"].get<long>()) + " " + slice["args"]["target"].get<std::string>();
    };
    arrows.push_back(f.name + ": " + side(f.from) + " -> " + side(f.to));
  }
  std::sort(arrows.begin(), arrows.end());
  ASSERT_EQ(arrows.size(), 3u) << ::testing::PrintToString(arrows);
  // Two calls across processes and the frontend's child in one process.
  std::vector<std::string> kinds;
  for (const std::string& a : arrows) kinds.push_back(a.substr(0, a.find(':')));
  EXPECT_EQ(kinds, (std::vector<std::string>{"call", "call", "child"}));
  std::set<std::string> hops(arrows.begin(), arrows.end());
  auto has = [&](const std::string& kind, const std::string& from, const std::string& to) {
    for (const std::string& a : hops)
      if (a.starts_with(kind + ": ") && a.find(" " + from + " -> ") != std::string::npos && a.ends_with(" " + to))
        return true;
    return false;
  };
  EXPECT_TRUE(has("call", "/hello", "/hello")) << ::testing::PrintToString(arrows);
  EXPECT_TRUE(has("child", "/hello", "/backend/hello")) << ::testing::PrintToString(arrows);
  EXPECT_TRUE(has("call", "/backend/hello", "/backend/hello")) << ::testing::PrintToString(arrows);
  // The child arrow stays in the frontend; the calls cross into another process.
  for (const auto& f : st.bound) {
    if (f.cat != "http") continue;
    if (f.name == "child") EXPECT_EQ(f.from["pid"], f.to["pid"]);
    else EXPECT_NE(f.from["pid"], f.to["pid"]);
  }
}

// `httptrace timeline` lists, under the frontend's inbound request, the call it made to the
// backend (indented, with the server's record of it), before the call's own connection.
TEST(DistributedTrace, TimelineListsCallsUnderTheInboundRequest) {
  TempDir traces;
  RunResult curl = run_chain(traces.path(), "/hello");
  ASSERT_EQ(curl.exit_code, 0) << curl.describe();
  RunResult tl = run({paths().cli.string(), "timeline", "--color=never", traces.path().string()});
  ASSERT_EQ(tl.exit_code, 0) << tl.describe();
  const std::string& out = tl.out;
  // The frontend's inbound block: its request, then the call made for it.
  const size_t inbound = out.find("inbound (accepted)");
  ASSERT_NE(inbound, std::string::npos) << out;
  const size_t front = out.find("  #0 GET /hello 200", inbound);
  const size_t call = out.find("\n    -> GET /backend/hello 200 ", inbound);
  const size_t detail = out.find("        call ", inbound);
  ASSERT_NE(front, std::string::npos) << out;
  ASSERT_NE(call, std::string::npos) << out;
  ASSERT_NE(detail, std::string::npos) << out;
  EXPECT_LT(front, call);
  EXPECT_LT(call, detail);
  // It names the call's request, and the backend's record of it, as the call's own rows do.
  const std::string line = out.substr(detail, out.find('\n', detail) - detail);
  const size_t id_at = line.find("call ") + 5;
  const std::string id = line.substr(id_at, line.find(' ', id_at) - id_at);
  const std::string conn = id.substr(0, id.find('#'));
  const size_t own = out.find("conn " + conn + " ");
  ASSERT_NE(own, std::string::npos) << id << "\n" << out;
  EXPECT_LT(detail, own) << "the inbound connection started first";
  EXPECT_NE(line.find("served as "), std::string::npos) << line;
}

TEST(DistributedTrace, ThroughNginxReverseProxyWithKeepAliveUpstream) {
  if (run({"sh", "-c", "command -v nginx"}).exit_code != 0) GTEST_SKIP() << "nginx not installed";
  TempDir traces, out, nginx_dir;
  Service backend(traces.path(), std::nullopt);
  ASSERT_GT(backend.port(), 0) << backend.error();
  int port = 0;
  {
    ClosedPort free;  // a port the kernel just gave out; nginx binds it once this lets go
    port = free.port();
  }
  NginxProxy nginx(nginx_dir.path(), traced_into(traces.path()), backend.port(), port);
  ASSERT_TRUE(nginx.ok()) << nginx.error();

  const RunOptions o = traced_into(traces.path());
  const std::string tp = std::string("00-") + kTraceId + "-" + kSpanId + "-01";
  RunResult first = run({"curl", "-sS", "-H", "traceparent: " + tp, nginx.url("/a")}, o);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  RunResult more = run({"curl", "-sS", nginx.url("/b"), nginx.url("/c")}, o);
  ASSERT_EQ(more.exit_code, 0) << more.describe();
  ASSERT_EQ(more.out, "leaf\nleaf\n");
  RunResult stopped = nginx.stop();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.describe();
  backend.stop();

  // The worker's upstream pool: one connection to the backend carried all three requests.
  Export json = export_json(traces.path());
  ASSERT_TRUE(json.ok) << json.error;
  const nlohmann::json* upstream = nullptr;
  int nginx_inbound = 0;
  for (const auto& c : json.doc["connections"]) {
    const bool to_backend = c["peer"] == "127.0.0.1:" + std::to_string(backend.port());
    if (to_backend && c["direction"] == "outbound") {
      EXPECT_EQ(upstream, nullptr) << "a second upstream connection: " << c.dump();
      upstream = &c;
    }
    if (c["local"] == "127.0.0.1:" + std::to_string(port) && c["direction"] == "inbound") ++nginx_inbound;
  }
  ASSERT_NE(upstream, nullptr) << json.doc.dump(1).substr(0, 4000);
  EXPECT_EQ(nginx_inbound, 2);  // one per curl
  ASSERT_EQ((*upstream)["requests"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const auto& r = (*upstream)["requests"][i];
    EXPECT_EQ(r["reused"], i > 0);
    ASSERT_TRUE(r["parent"].is_string()) << r.dump();  // the inbound request it was made for
    ASSERT_TRUE(r["linked"].is_string()) << r.dump();  // the backend's side of the call
  }

  // In Perfetto, arrows along each chain: curl -> nginx and nginx -> backend per request (six
  // calls), nginx's inbound request -> its upstream request (three children), on an event loop.
  Export chrome = export_as("chrome", traces.path(), out / "trace.json");
  ASSERT_TRUE(chrome.ok) << chrome.error;
  testcheck::ChromeStats st;
  const auto problems = testcheck::check_chrome_trace(chrome.doc, &st);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  std::map<std::string, int> flows;
  for (const auto& f : st.bound)
    if (f.cat == "http") {
      ++flows[f.name];
      EXPECT_EQ(f.from["args"]["target"], f.to["args"]["target"]) << "the path is the same at every tier";
    }
  EXPECT_EQ(flows, (std::map<std::string, int>{{"call", 6}, {"child", 3}}));

  // The timeline puts each upstream request under the inbound request it was made for, though
  // one pooled upstream connection carried all three (for two inbound connections).
  RunResult tl = run({paths().cli.string(), "timeline", "--color=never", traces.path().string()});
  ASSERT_EQ(tl.exit_code, 0) << tl.describe();
  for (const std::string path : {"/a", "/b", "/c"}) {
    const size_t call = tl.out.find("\n    -> GET " + path + " 200 ");
    ASSERT_NE(call, std::string::npos) << path << "\n" << tl.out;
    // The nearest request line above it is nginx's inbound request for the same path.
    const size_t req = tl.out.rfind("\n  #", call);
    ASSERT_NE(req, std::string::npos);
    EXPECT_NE(tl.out.substr(req, call - req).find("GET " + path + " 200"), std::string::npos)
        << tl.out.substr(req, call - req + 80);
    const size_t block = tl.out.rfind("\npid ", req);
    EXPECT_NE(tl.out.substr(block, req - block).find("inbound (accepted)"), std::string::npos);
  }

  // Every curl request is one trace through the proxy: CLIENT -> SERVER -> CLIENT -> SERVER.
  Export otlp = export_as("otlp", traces.path(), out / "otlp.json");
  ASSERT_TRUE(otlp.ok) << otlp.error;
  const std::vector<SpanView> spans = request_spans(otlp.doc);
  for (const std::string path : {"/a", "/b", "/c"}) {
    SCOPED_TRACE(path);
    // Followed down from curl's span by parent ids: the path is the same at every tier.
    auto child_of = [&](const SpanView* parent, int kind) -> const SpanView* {
      const SpanView* found = nullptr;
      for (const SpanView& s : spans)
        if (parent && s.kind == kind && s.parent == parent->span_id) found = found ? nullptr : &s;
      return found;
    };
    const SpanView* curl_client = find_span(spans, 3, "url.full", std::to_string(port) + path);
    const SpanView* proxy_server = child_of(curl_client, 2);
    const SpanView* proxy_client = child_of(proxy_server, 3);
    const SpanView* be_server = child_of(proxy_client, 2);
    ASSERT_TRUE(curl_client && proxy_server && proxy_client && be_server) << otlp.doc.dump(1).substr(0, 6000);
    EXPECT_EQ(proxy_server->attrs.at("url.path"), path);
    EXPECT_TRUE(proxy_client->attrs.at("url.full").ends_with(std::to_string(backend.port()) + path));
    EXPECT_EQ(proxy_server->pid, proxy_client->pid);  // the worker
    EXPECT_NE(proxy_server->pid, be_server->pid);
    EXPECT_EQ(be_server->attrs.at("url.path"), path);
    for (const SpanView* s : {proxy_server, proxy_client, be_server}) EXPECT_EQ(s->trace_id, curl_client->trace_id);
    // nginx passes the traceparent on unchanged: it names curl's span, not the proxy's call.
    if (path == "/a") {
      EXPECT_EQ(curl_client->trace_id, kTraceId);
      EXPECT_EQ(curl_client->span_id, kSpanId);
    }
    EXPECT_LE(curl_client->start, proxy_server->start);
    EXPECT_LE(proxy_server->start, proxy_client->start);
    EXPECT_LE(proxy_client->start, be_server->start);
  }
}

// An outbound HTTP/2 call made by the thread serving an inbound request is that request's child
// (issue 11 §2), with a real HTTP/2 client inside a server: PHP's curl (nghttp2) calling nginx's
// h2c front with prior knowledge while it serves curl's request. The JSON export links the h2
// stream to the inbound request; the OTLP export makes its CLIENT span the SERVER span's child.
TEST(DistributedTrace, AnHttp2CallIsTheChildOfTheRequestItsThreadServes) {
  if (run({"sh", "-c", "command -v nginx"}).exit_code != 0) GTEST_SKIP() << "nginx not installed";
  if (run({"php", "-r", "exit(curl_version()['features'] & CURL_VERSION_HTTP2 ? 0 : 1);"}).exit_code != 0)
    GTEST_SKIP() << "php-cli with an HTTP/2 php-curl not installed";
  TempDir traces, untraced, out, nginx_dir;
  Service backend(untraced.path(), std::nullopt);
  ASSERT_GT(backend.port(), 0) << backend.error();
  int port = 0;
  {
    ClosedPort free;
    port = free.port();
  }
  NginxProxy nginx(nginx_dir.path(), RunOptions{}, backend.port(), port, "", " http2");
  ASSERT_TRUE(nginx.ok()) << nginx.error();
  Child php;
  std::string error, line;
  ASSERT_TRUE(php.start({"php", (paths().root / "tests/servers/h2_caller.php").string(), nginx.url("/leaf")},
                        traced_into(traces.path()), false, &error)) << error;
  ASSERT_TRUE(php.read_line(&line, milliseconds{10000}) && line.rfind("PORT ", 0) == 0) << line;
  RunResult curl = run({"curl", "-sS", "http://127.0.0.1:" + line.substr(5) + "/front"});
  ASSERT_EQ(curl.exit_code, 0) << curl.describe();
  EXPECT_EQ(curl.out, "h2 200\n");
  RunResult served = php.wait(milliseconds{10000});
  ASSERT_EQ(served.exit_code, 0) << served.describe();

  Export json = export_as("json", traces.path(), out / "t.json");
  ASSERT_TRUE(json.ok) << json.error;
  const nlohmann::json* inbound = nullptr;
  const nlohmann::json* h2 = nullptr;
  for (const auto& c : json.doc["connections"]) {
    if (c["direction"] == "inbound") inbound = inbound ? nullptr : &c;
    if (c["protocol"] == "h2") h2 = h2 ? nullptr : &c;
  }
  ASSERT_TRUE(inbound && h2) << json.doc.dump(1).substr(0, 6000);
  ASSERT_EQ((*inbound)["requests"].size(), 1u);
  const auto& front = (*inbound)["requests"][0];
  EXPECT_EQ(front["target"], "/front");
  ASSERT_EQ((*h2)["requests"].size(), 1u) << h2->dump(1);
  const auto& call = (*h2)["requests"][0];
  EXPECT_EQ(call["target"], "/leaf");
  EXPECT_EQ(call["status"], 200);
  EXPECT_EQ(call["parent"], (*inbound)["id"].get<std::string>() + "#0");
  EXPECT_EQ(call["parent_confidence"], "thread");

  Export otlp = export_as("otlp", traces.path(), out / "otlp.json");
  ASSERT_TRUE(otlp.ok) << otlp.error;
  const std::vector<SpanView> spans = request_spans(otlp.doc);
  const SpanView* server = find_span(spans, 2, "url.path", "/front");
  const SpanView* client = find_span(spans, 3, "url.full", "/leaf");
  ASSERT_TRUE(server && client) << otlp.doc.dump(1).substr(0, 6000);
  EXPECT_EQ(client->parent, server->span_id);
  EXPECT_EQ(client->trace_id, server->trace_id);
  EXPECT_EQ(client->attrs.at("network.protocol.version"), "2");
  EXPECT_LE(server->start, client->start);
  EXPECT_LE(client->end, server->end);
}

}  // namespace
}  // namespace httptrace::itest
