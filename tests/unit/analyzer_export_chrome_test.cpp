// Chrome Trace Event export (SPEC §8) on built traces, checked by the independent structural
// checker (tests/integration/chrome_trace_check.h) and for units, names and tracks.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/reports.h"
#include "tests/integration/chrome_trace_check.h"
#include "tests/unit/analyzer_test_util.h"
#include "tests/unit/analyzer_tls_bytes.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000, ms = 1000 * us;
using D = tf::Direction;
using C = tf::CaptureKind;
using nlohmann::json;

json chrome_of(const std::vector<const TraceBuilder*>& bs) {
  TempDir dir;
  TraceSet ts;
  EXPECT_TRUE(open_built(ts, dir, bs));
  std::string text = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_chrome(ts, f)); });
  return json::parse(text);
}

std::vector<json> events(const json& doc, const std::string& ph, const std::string& name = "") {
  std::vector<json> out;
  for (const json& e : doc["traceEvents"])
    if (e["ph"] == ph && (name.empty() || e["name"] == name)) out.push_back(e);
  return out;
}

// Two overlapping connections to one server (the second opened while the first waits), a
// lookup before them, keep-alive on the first; a TLS connection in a second process.
TEST(ExportChrome, TracksSlicesRequestsAndFlows) {
  TraceBuilder b(900, 1);
  b.set_exe("/usr/bin/fetcher", {"fetcher"});
  const tf::Addr web = ipv4("127.0.0.1", 8080);
  b.dns(1, 1 * ms, "api.test", 500 * us, {ipv4("127.0.0.1")});
  b.socket(1, 2 * ms, 1, 3);
  b.connect(1, 2 * ms, 1, 3, web, 200 * us);
  b.send(1, 3 * ms, 1, 60, 20 * us, "GET /slow HTTP/1.1\r\nHost: api.test:8080");
  b.socket(2, 3 * ms + 100 * us, 2, 4);
  b.connect(2, 3 * ms + 100 * us, 2, 4, web, 200 * us);
  b.send(2, 4 * ms, 2, 60, 20 * us, "GET /fast HTTP/1.1\r\nHost: api.test:8080");
  b.recv(2, 4 * ms + 30 * us, 2, 100, 1 * ms, "HTTP/1.1 200 OK");
  b.close(2, 6 * ms, 2, 4);
  b.recv(1, 3 * ms + 30 * us, 1, 100, 7 * ms, "HTTP/1.1 200 OK");
  b.send(1, 12 * ms, 1, 60, 20 * us, "GET /again HTTP/1.1\r\nHost: api.test:8080");
  b.recv(1, 12 * ms + 30 * us, 1, 100, 1 * ms, "HTTP/1.1 200 OK");
  b.close(1, 14 * ms, 1, 3);

  TraceBuilder t(901, 900);
  t.set_exe("/usr/bin/secure", {"secure"});
  t.socket(1, 20 * ms, 1, 3);
  t.connect(1, 20 * ms, 1, 3, ipv4("127.0.0.2", 443), 100 * us);
  t.data(1, 21 * ms, 1, 3, D::kSend, 517, 10 * us, C::kTls, client_hello("secure.test", {"http/1.1"}));
  t.data(1, 21 * ms + 20 * us, 1, 3, D::kRecv, 2400, 2 * ms, C::kTls, server_hello(true) + ccs());
  t.data(1, 23 * ms + 100 * us, 1, 3, D::kSend, 80, 10 * us, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  t.tls_handshake(1, 21 * ms, 1, 3, 2 * ms + 120 * us, "http/1.1", "secure.test");
  t.data(1, 24 * ms, 1, 3, D::kSend, 110, 20 * us);
  t.data(1, 24 * ms, 1, 3, D::kSend, 88, 30 * us, C::kHttpReq, "GET /s HTTP/1.1\r\nHost: secure.test",
         tf::kDataTlsPlaintext);
  t.data(1, 24 * ms + 40 * us, 1, 3, D::kRecv, 500, 1 * ms);
  t.data(1, 24 * ms + 40 * us, 1, 3, D::kRecv, 478, 1 * ms, C::kHttpResp, "HTTP/1.1 200 OK", tf::kDataTlsPlaintext);
  t.close(1, 26 * ms, 1, 3);

  json doc = chrome_of({&b, &t});
  testcheck::ChromeStats st;
  auto problems = testcheck::check_chrome_trace(doc, &st);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << doc.dump(1);
  EXPECT_EQ(st.tracks, 3u);
  EXPECT_EQ(st.requests, 4u);
  EXPECT_EQ(st.children, 4u * 3);
  EXPECT_EQ(st.flows, 2u) << "one per connection with a lookup";

  // Processes named by their exe.
  std::map<long, std::string> procs;
  for (const json& e : events(doc, "M", "process_name")) procs[e["pid"]] = e["args"]["name"];
  EXPECT_EQ(procs, (std::map<long, std::string>{{900, "/usr/bin/fetcher"}, {901, "/usr/bin/secure"}}));
  // Tracks named "host peer protocol", one per connection.
  std::multiset<std::string> names;
  for (const json& e : events(doc, "M", "thread_name")) names.insert(e["args"]["name"]);
  EXPECT_EQ(names, (std::multiset<std::string>{"api.test 127.0.0.1:8080 http/1.1", "api.test 127.0.0.1:8080 http/1.1",
                                               "secure.test 127.0.0.2:443 http/1.1"}));
  // µs since t0 (the lookup at mono 1 ms).
  auto dns = events(doc, "X", "dns");
  ASSERT_EQ(dns.size(), 2u);
  EXPECT_DOUBLE_EQ(dns[0]["ts"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(dns[0]["dur"].get<double>(), 500.0);
  auto tls = events(doc, "X", "tls");
  ASSERT_EQ(tls.size(), 1u);
  EXPECT_DOUBLE_EQ(tls[0]["ts"].get<double>(), 20000.0);
  EXPECT_DOUBLE_EQ(tls[0]["dur"].get<double>(), 2120.0);
  EXPECT_EQ(tls[0]["args"]["version"], "TLSv1.3");
  EXPECT_EQ(tls[0]["pid"], 901);
  // The overlapping requests are on different tracks; the slow one's wait is 7.01 ms.
  long slow_tid = 0, fast_tid = 0;
  for (const json& e : events(doc, "X")) {
    if (e["name"] == "GET /slow") slow_tid = e["tid"];
    if (e["name"] == "GET /fast") fast_tid = e["tid"];
  }
  EXPECT_NE(slow_tid, 0);
  EXPECT_NE(slow_tid, fast_tid);
  bool found = false;
  for (const json& e : events(doc, "X", "wait"))
    if (e["tid"] == slow_tid && !found) {
      found = true;
      EXPECT_NEAR(e["dur"].get<double>(), 7010.0, 1e-6);
    }
  EXPECT_TRUE(found);
}

// The checker itself catches what it is for (else a passing export test means nothing).
TEST(ChromeTraceCheck, RejectsOverlapsBadNestingAndUnnamedTracks) {
  json overlap = json::parse(R"({"traceEvents":[
    {"ph":"M","name":"process_name","pid":1,"args":{"name":"p"}},
    {"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"t"}},
    {"ph":"X","name":"a","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"X","name":"b","pid":1,"tid":2,"ts":5,"dur":10}]})");
  EXPECT_EQ(testcheck::check_chrome_trace(overlap).size(), 1u);
  json nesting = json::parse(R"({"traceEvents":[
    {"ph":"M","name":"process_name","pid":1,"args":{"name":"p"}},
    {"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"t"}},
    {"ph":"b","name":"GET /","cat":"http","id2":{"local":"0x1"},"pid":1,"tid":2,"ts":0},
    {"ph":"b","name":"send","cat":"http","id2":{"local":"0x1"},"pid":1,"tid":2,"ts":1},
    {"ph":"e","name":"GET /","cat":"http","id2":{"local":"0x1"},"pid":1,"tid":2,"ts":2}]})");
  EXPECT_FALSE(testcheck::check_chrome_trace(nesting).empty());
  json numeric_id = json::parse(R"({"traceEvents":[
    {"ph":"M","name":"process_name","pid":1,"args":{"name":"p"}},
    {"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"t"}},
    {"ph":"b","name":"GET /","cat":"http","id2":{"local":1},"pid":1,"tid":2,"ts":0},
    {"ph":"e","name":"GET /","cat":"http","id2":{"local":1},"pid":1,"tid":2,"ts":2}]})");
  EXPECT_EQ(testcheck::check_chrome_trace(numeric_id).size(), 2u) << "Perfetto drops a numeric id2.local";
  json unnamed = json::parse(R"({"traceEvents":[{"ph":"X","name":"a","pid":1,"tid":2,"ts":0,"dur":1}]})");
  EXPECT_EQ(testcheck::check_chrome_trace(unnamed).size(), 2u);
  // Nested complete slices are fine; a phase outside its request, a flow without its other end,
  // one bound to no slice, and one whose finish does not bind to its enclosing slice are not.
  const std::string named = R"({"ph":"M","name":"process_name","pid":1,"args":{"name":"p"}},
    {"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"t"}},)";
  auto doc = [&](const std::string& evs) { return json::parse("{\"traceEvents\":[" + named + evs + "]}"); };
  testcheck::ChromeStats st;
  EXPECT_TRUE(testcheck::check_chrome_trace(doc(R"(
    {"ph":"X","name":"GET /","cat":"http","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"X","name":"send","cat":"http","pid":1,"tid":2,"ts":0,"dur":4},
    {"ph":"X","name":"wait","cat":"http","pid":1,"tid":2,"ts":4,"dur":6},
    {"ph":"s","name":"n","cat":"http","pid":1,"tid":2,"ts":1,"id":7},
    {"ph":"f","bp":"e","name":"n","cat":"http","pid":1,"tid":2,"ts":5,"id":7})"), &st).empty());
  EXPECT_EQ(st.requests, 1u);
  EXPECT_EQ(st.children, 2u);
  EXPECT_EQ(st.flows, 1u);
  EXPECT_EQ(testcheck::check_chrome_trace(doc(R"(
    {"ph":"X","name":"GET /","cat":"http","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"X","name":"receive","cat":"http","pid":1,"tid":2,"ts":20,"dur":4})")).size(), 1u);
  EXPECT_EQ(testcheck::check_chrome_trace(doc(R"(
    {"ph":"X","name":"a","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"s","name":"n","cat":"http","pid":1,"tid":2,"ts":1,"id":7})")).size(), 1u);
  EXPECT_EQ(testcheck::check_chrome_trace(doc(R"(
    {"ph":"X","name":"a","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"s","name":"n","cat":"http","pid":1,"tid":2,"ts":1,"id":7},
    {"ph":"f","bp":"e","name":"m","cat":"http","pid":1,"tid":2,"ts":2,"id":7})")).size(), 2u)
      << "v1 flows pair by cat, name and id";
  EXPECT_EQ(testcheck::check_chrome_trace(doc(R"(
    {"ph":"X","name":"a","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"s","name":"n","cat":"http","pid":1,"tid":2,"ts":1,"id":7},
    {"ph":"f","bp":"e","name":"n","cat":"http","pid":1,"tid":2,"ts":20,"id":7})")).size(), 1u);
  EXPECT_EQ(testcheck::check_chrome_trace(doc(R"(
    {"ph":"X","name":"a","pid":1,"tid":2,"ts":0,"dur":10},
    {"ph":"s","name":"n","cat":"http","pid":1,"tid":2,"ts":1,"id":7},
    {"ph":"f","name":"n","cat":"http","pid":1,"tid":2,"ts":2,"id":7})")).size(), 1u);
}

// A traced client (pid 100) calls a traced server (pid 200) over mirrored addresses; serving it,
// the server calls a backend. Arrows: client request -> server request ("call", across
// processes), server request -> its outbound request ("child", one process).
TEST(ExportChrome, FlowsFollowTheCallChain) {
  const tf::Addr server_addr = ipv4("127.0.0.1", 8080), client_addr = ipv4("127.0.0.1", 40001);
  TraceBuilder client(100), server(200);
  client.set_exe("/usr/bin/curl", {"curl"});
  server.set_exe("/usr/bin/front", {"front"});
  client.socket(1, 100 * us, 1, 3);
  client.connect(1, 110 * us, 1, 3, server_addr, 10 * us);
  server.accept(1, 115 * us, 1, 5, 4, client_addr, 5 * us);
  client.send(1, 200 * us, 1, 80, 5 * us, "GET /front HTTP/1.1\r\nHost: front");
  server.data(1, 150 * us, 1, 5, D::kRecv, 80, 60 * us, C::kHttpReq, "GET /front HTTP/1.1\r\nHost: front");
  server.socket(1, 220 * us, 2, 6);
  server.connect(1, 225 * us, 2, 6, ipv4("127.0.0.1", 9090), 5 * us);
  server.send(1, 240 * us, 2, 80, 5 * us, "GET /back HTTP/1.1\r\nHost: back");
  server.recv(1, 250 * us, 2, 100, 30 * us, "HTTP/1.1 200 OK");
  server.close(1, 290 * us, 2, 6);
  server.data(1, 300 * us, 1, 5, D::kSend, 200, 5 * us, C::kHttpResp, "HTTP/1.1 200 OK");
  client.recv(1, 210 * us, 1, 200, 100 * us, "HTTP/1.1 200 OK");
  client.close(1, 400 * us, 1, 3);
  server.close(1, 410 * us, 1, 5);

  json doc = chrome_of({&client, &server});
  testcheck::ChromeStats st;
  auto problems = testcheck::check_chrome_trace(doc, &st);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << doc.dump(1);
  EXPECT_EQ(st.requests, 3u);
  EXPECT_EQ(st.children, 3u * 3);
  std::multiset<std::string> arrows;
  for (const auto& f : st.bound) {
    if (f.cat != "http") continue;
    arrows.insert(f.name + ": " + f.from["args"]["connection"].get<std::string>() + " " +
                  f.from["name"].get<std::string>() + " -> " + f.to["args"]["connection"].get<std::string>() +
                  " " + f.to["name"].get<std::string>());
  }
  EXPECT_EQ(arrows, (std::multiset<std::string>{"call: 100:1 GET /front -> 200:1 GET /front",
                                                "child: 200:1 GET /front -> 200:2 GET /back"}));
  // The inbound connection's track says so.
  std::set<std::string> names;
  for (const json& e : events(doc, "M", "thread_name")) names.insert(e["args"]["name"]);
  EXPECT_TRUE(names.count("front 127.0.0.1:40001 http/1.1 inbound")) << ::testing::PrintToString(names);
}

TEST(ExportChrome, SetupSlicesNeverOverlapOnATrack) {
  // A handshake recorded as starting before the connect returned (a non-blocking connect whose
  // completion was noticed late): the tls slice is moved to start when the connect ended.
  TraceBuilder b(5, 1);
  b.socket(1, 1 * ms, 1, 3);
  b.connect(1, 2 * ms, 1, 3, ipv4("10.1.1.1", 443), 3 * ms);
  b.tls_handshake(1, 4 * ms, 1, 3, 2 * ms, "http/1.1", "h.test");
  b.data(1, 7 * ms, 1, 3, D::kSend, 88, 30 * us, C::kHttpReq, "GET / HTTP/1.1\r\nHost: h.test",
         tf::kDataTlsPlaintext);
  b.data(1, 7 * ms + 40 * us, 1, 3, D::kRecv, 478, 1 * ms, C::kHttpResp, "HTTP/1.1 200 OK", tf::kDataTlsPlaintext);
  b.close(1, 9 * ms, 1, 3);
  json doc = chrome_of({&b});
  ASSERT_EQ(events(doc, "X", "tls").size(), 1u) << doc.dump(1);
  ASSERT_EQ(events(doc, "X", "connect").size(), 1u) << doc.dump(1);
  auto problems = testcheck::check_chrome_trace(doc);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << doc.dump(1);
  EXPECT_DOUBLE_EQ(events(doc, "X", "tls")[0]["ts"].get<double>(), 4000.0);
}

}  // namespace
}  // namespace httptrace::testing
