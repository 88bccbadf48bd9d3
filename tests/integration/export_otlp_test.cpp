// `export --format otlp`: real curl traces exported as OTLP/JSON and pushed over OTLP/HTTP to a
// receiver that decodes with the OpenTelemetry project's own generated protobuf code
// (tests/servers/otlp_receiver.js; npm packages installed by scripts/npm-otlp.sh).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/integration/export_util.h"
#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

std::string node_modules() {
  static const std::string dir = [] {
    RunResult r = run({(paths().root / "scripts/npm-otlp.sh").string()}, {.timeout = milliseconds(300000)});
    if (r.exit_code != 0) return std::string();
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }();
  return dir;
}

std::string receiver_script() { return (paths().root / "tests/servers/otlp_receiver.js").string(); }

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The receiver, listening on loopback until destroyed; statuses are its first answers in turn.
class Receiver {
 public:
  Receiver(const fs::path& log, const std::string& statuses) : log_(log) {
    RunOptions o;
    o.env = {{"OTLP_NODE_MODULES", node_modules()}};
    std::string err;
    if (!child_.start({"node", receiver_script(), "serve", log.string(), statuses}, o, true, &err)) {
      error_ = err;
      return;
    }
    std::string line;
    if (!child_.read_line(&line, milliseconds(20000))) error_ = "the receiver did not print its port";
    else port_ = std::stoi(line);
  }
  ~Receiver() {
    child_.close_stdin();
    child_.wait(milliseconds(10000));
  }
  bool ok() const { return port_ > 0; }
  const std::string& error() const { return error_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<json> requests() const {
    std::vector<json> v;
    std::ifstream f(log_);
    for (std::string line; std::getline(f, line);) v.push_back(json::parse(line));
    return v;
  }

 private:
  fs::path log_;
  Child child_;
  int port_ = 0;
  std::string error_;
};

std::vector<json> all_spans(const json& req) {
  std::vector<json> v;
  for (const auto& rs : req["resourceSpans"])
    for (const auto& ss : rs["scopeSpans"])
      for (const auto& s : ss["spans"]) v.push_back(s);
  return v;
}

json attr(const json& span_or_resource, const std::string& key) {
  for (const auto& a : span_or_resource["attributes"])
    if (a["key"] == key) {
      const json& v = a["value"];
      if (v.contains("stringValue")) return v["stringValue"];
      if (v.contains("intValue")) return std::stoll(v["intValue"].get<std::string>());
      if (v.contains("boolValue")) return v["boolValue"];
    }
  return nullptr;
}

class ExportOtlp : public TracedTest {
 protected:
  void SetUp() override {
    TracedTest::SetUp();
    if (node_modules().empty()) GTEST_SKIP() << "scripts/npm-otlp.sh could not install the OTLP decoder";
  }
  // curl: three requests on one kept-alive connection.
  void trace_curl() {
    RunResult r = traced({"curl", "-s", server_.url("/a"), server_.url("/b"), server_.url("/c?q=1")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  RunResult cli(std::vector<std::string> args, const Env& env = {}) {
    args.insert(args.begin(), paths().cli.string());
    return run(args, {.env = env});
  }
  // The OTLP/JSON file export, checked by the receiver's JSON-mapping round trip. The file is
  // OTLP JSON Lines (a request per line); returned as one request holding every line's
  // resourceSpans, and the number of lines.
  json file_export(const Env& env = {}, size_t* lines = nullptr) {
    const fs::path out = dir_ / "otlp.json";
    RunResult r = cli({"export", "--format", "otlp", "-o", out.string(), dir_.path().string()}, env);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    RunResult check = run({"node", receiver_script(), "check", out.string()},
                          {.env = {{"OTLP_NODE_MODULES", node_modules()}}});
    EXPECT_EQ(check.exit_code, 0) << check.describe();
    Export e = otlp_lines(read_file(out), lines);
    EXPECT_TRUE(e.ok) << e.error;
    return e.doc;
  }
};

TEST_F(ExportOtlp, CurlKeepAliveFollowsTheHttpConventions) {
  trace_curl();
  const json doc = file_export();
  ASSERT_EQ(doc["resourceSpans"].size(), 1u) << doc.dump(1);
  const json& rs = doc["resourceSpans"][0];
  EXPECT_EQ(attr(rs["resource"], "service.name"), "curl");
  EXPECT_TRUE(attr(rs["resource"], "process.pid").is_number());
  EXPECT_TRUE(attr(rs["resource"], "process.executable.path").get<std::string>().ends_with("curl"));

  std::vector<json> setup, requests;
  std::map<std::string, json> by_id;
  std::set<std::string> trace_ids;
  for (const json& s : all_spans(doc)) {
    SCOPED_TRACE(s.dump());
    EXPECT_TRUE(s["kind"].is_number_integer());
    EXPECT_LE(std::stoull(s["startTimeUnixNano"].get<std::string>()),
              std::stoull(s["endTimeUnixNano"].get<std::string>()));
    trace_ids.insert(s["traceId"]);
    by_id[s["spanId"]] = s;
    if (s["name"] == "HTTP connection_setup") setup.push_back(s);
    if (s["kind"] == 3) requests.push_back(s);
  }
  EXPECT_EQ(trace_ids.size(), 1u);
  ASSERT_EQ(setup.size(), 1u);
  ASSERT_EQ(requests.size(), 3u);
  const std::string port = server_.port_str();
  const std::vector<std::string> urls = {"http://localhost:" + port + "/a", "http://localhost:" + port + "/b",
                                         "http://localhost:" + port + "/c?q=1"};
  for (size_t i = 0; i < 3; ++i) {
    const json& s = requests[i];
    SCOPED_TRACE(s.dump());
    EXPECT_EQ(s["name"], "GET");
    EXPECT_EQ(attr(s, "http.request.method"), "GET");
    EXPECT_EQ(attr(s, "url.full"), urls[i]);
    EXPECT_EQ(attr(s, "server.address"), "localhost");
    EXPECT_EQ(attr(s, "server.port"), server_.port());
    EXPECT_EQ(attr(s, "network.peer.address"), "127.0.0.1");
    EXPECT_EQ(attr(s, "network.protocol.version"), "1.1");
    EXPECT_EQ(attr(s, "http.response.status_code"), 200);
    EXPECT_TRUE(attr(s, "error.type").is_null());
    EXPECT_EQ(attr(s, "httptrace.reused"), i > 0);
    EXPECT_EQ(attr(s, "httptrace.idle_ns").is_number(), i > 0);
    ASSERT_EQ(s["links"].size(), 1u);
    EXPECT_EQ(s["links"][0]["spanId"], setup[0]["spanId"]);
    EXPECT_FALSE(s.contains("parentSpanId"));
  }
  // The children of the setup span: a connect at least (curl resolves localhost itself).
  bool saw_connect = false;
  for (const auto& [id, s] : by_id) {
    if (!s.contains("parentSpanId")) continue;
    EXPECT_EQ(s["parentSpanId"], setup[0]["spanId"]);
    saw_connect |= s["name"] == "socket connect";
  }
  EXPECT_TRUE(saw_connect);

  // Derived ids: a second export is byte-for-byte the same; OTEL_SERVICE_NAME renames the service.
  const json again = file_export({{"OTEL_SERVICE_NAME", "checkout"}});
  EXPECT_EQ(attr(again["resourceSpans"][0]["resource"], "service.name"), "checkout");
  EXPECT_EQ(all_spans(again), all_spans(doc));
}

TEST_F(ExportOtlp, HttpsHasATlsHandshakeChild) {
  TempDir certs;
  TlsFiles tls;
  std::string err;
  ASSERT_TRUE(make_self_signed_cert(certs.path(), &tls, &err)) << err;
  TestServer https({.tls = tls});
  ASSERT_TRUE(https.ok()) << https.error();
  RunResult r = traced({"curl", "-sk", https.url("/a"), https.url("/b")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const json doc = file_export();
  int handshakes = 0, requests = 0;
  for (const json& s : all_spans(doc)) {
    if (s["name"] == "TLS handshake") {
      ++handshakes;
      EXPECT_TRUE(attr(s, "tls.protocol.version").is_string()) << s.dump();
    }
    if (s["kind"] == 3) {
      ++requests;
      EXPECT_TRUE(attr(s, "url.full").get<std::string>().starts_with("https://localhost:")) << s.dump();
    }
  }
  EXPECT_EQ(handshakes, 1);
  EXPECT_EQ(requests, 2);
}

TEST_F(ExportOtlp, PushProtobufAndJsonDecodeToTheFileExport) {
  trace_curl();
  const json file = file_export();
  for (const std::string protocol : {"http/protobuf", "http/json"}) {
    SCOPED_TRACE(protocol);
    Receiver rx(dir_ / ("rx-" + protocol.substr(5) + ".jsonl"), "");
    ASSERT_TRUE(rx.ok()) << rx.error();
    RunResult r = cli({"export", "--format", "otlp", dir_.path().string()},
                      {{"OTEL_EXPORTER_OTLP_ENDPOINT", rx.url()},
                       {"OTEL_EXPORTER_OTLP_PROTOCOL", protocol},
                       {"OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team%20a, authorization=Bearer t0k"}});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const std::vector<json> got = rx.requests();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]["contentType"], protocol == "http/json" ? "application/json" : "application/x-protobuf");
    EXPECT_EQ(got[0]["headers"]["x-tenant"], "team a");
    EXPECT_EQ(got[0]["headers"]["authorization"], "Bearer t0k");
    ASSERT_FALSE(got[0].contains("error")) << got[0]["error"];
    EXPECT_EQ(got[0]["request"], file);
  }
}

TEST_F(ExportOtlp, BatchesOfTheConfiguredSize) {
  trace_curl();
  const size_t total = all_spans(file_export()).size();
  Receiver rx(dir_ / "rx.jsonl", "");
  ASSERT_TRUE(rx.ok()) << rx.error();
  RunResult r = cli({"export", "--format", "otlp", "--endpoint", rx.url(), dir_.path().string()},
                    {{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  size_t sum = 0;
  const std::vector<json> got = rx.requests();
  for (const json& g : got) {
    ASSERT_FALSE(g.contains("error")) << g["error"];
    const size_t n = all_spans(g["request"]).size();
    EXPECT_LE(n, 2u);
    sum += n;
  }
  EXPECT_EQ(sum, total);
  EXPECT_EQ(got.size(), (total + 1) / 2);
}

// A file the Collector's otlpjsonfile receiver can read: it takes a line at a time, at most 1 MiB
// by default, so a large export is many requests of under 1 MiB, a line each (the receiver's
// check asserts the size), holding the same spans as a push.
TEST_F(ExportOtlp, ALargeFileIsALinePerRequestEachUnderAMebibyte) {
  const fs::path gen = paths().build / "bench/gen_trace";
  if (!fs::exists(gen)) GTEST_SKIP() << gen << " missing: make build/bench/gen_trace";
  RunResult g = run({gen.string(), "-o", (dir_ / "gen.trace").string(), "-c", "100", "-e", "5000"});
  ASSERT_EQ(g.exit_code, 0) << g.describe();
  size_t lines = 0;
  const size_t total = all_spans(file_export({}, &lines)).size();
  EXPECT_GT(lines, 2u);
  Receiver rx(dir_ / "rx.jsonl", "");
  ASSERT_TRUE(rx.ok()) << rx.error();
  RunResult r = cli({"export", "--format", "otlp", "--endpoint", rx.url(), (dir_ / "gen.trace").string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  size_t pushed = 0;
  for (const json& got : rx.requests()) pushed += all_spans(got["request"]).size();
  EXPECT_EQ(pushed, total);
  EXPECT_GT(total, 5000u / 3);
}

TEST_F(ExportOtlp, RetriesA503ThenSucceeds) {
  trace_curl();
  Receiver rx(dir_ / "rx.jsonl", "503");
  ASSERT_TRUE(rx.ok()) << rx.error();
  RunResult r = cli({"export", "--format", "otlp", "--endpoint", rx.url() + "/", dir_.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::vector<json> got = rx.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["status"], 503);
  EXPECT_EQ(got[1]["status"], 200);
  EXPECT_EQ(got[0]["url"], "/v1/traces");
  EXPECT_EQ(got[0]["request"], got[1]["request"]);
}

TEST_F(ExportOtlp, A400IsNotRetriedAndSaysWhatWasRefused) {
  trace_curl();
  Receiver rx(dir_ / "rx.jsonl", "400");
  ASSERT_TRUE(rx.ok()) << rx.error();
  RunResult r = cli({"export", "--format", "otlp", "--endpoint", rx.url(), dir_.path().string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("HTTP 400"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("span name too long"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not retried"), std::string::npos) << r.err;
  EXPECT_EQ(rx.requests().size(), 1u);
}

TEST_F(ExportOtlp, AReceiverThatNeverAnswersTimesOut) {
  trace_curl();
  // Listening but never accepting: the kernel completes the handshake, nobody ever answers.
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 8), 0);
  ASSERT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  RunResult r = cli({"export", "--format", "otlp", "--endpoint", url, dir_.path().string()},
                    {{"OTEL_EXPORTER_OTLP_TIMEOUT", "300"}, {"HTTPTRACE_OTLP_ATTEMPTS", "1"}});
  close(s);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("no answer within 300 ms"), std::string::npos) << r.err;
}

TEST_F(ExportOtlp, HttpsEndpointIsAClearUsageError) {
  RunResult r = cli({"export", "--format", "otlp", "--endpoint", "https://collector:4318", dir_.path().string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("https is not supported yet"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace httptrace::itest
