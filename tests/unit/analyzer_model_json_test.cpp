// The model's newer keys in the JSON export (SPEC §6): attempts per connection, and per request
// traceparent (null when none) and, only when known, target_cut, connection_close,
// keep_alive_timeout_s.
#include <cerrno>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

nlohmann::json export_of(const TraceBuilder& b) {
  TempDir dir;
  TraceSet ts;
  EXPECT_TRUE(open_built(ts, dir, {&b}));
  std::string text = capture_output([&](std::FILE* f) { EXPECT_TRUE(write_json(ts, f)); });
  return nlohmann::json::parse(text);
}

TEST(ModelJson, AttemptsAndHeaderKeys) {
  TraceBuilder b;
  b.socket(1, 0, 1, 5);
  b.connect(1, 10, 1, 5, ipv4("127.0.0.1", 8080), 50, ECONNREFUSED);
  b.close(1, 100, 1, 5);
  b.socket(1, 110, 2, 5);
  b.connect(1, 120, 2, 5, ipv6("::1", 8080), 50);
  b.send(1, 200, 2, 80, 1, "GET /a HTTP/1.1\r\nHost: localhost\r\ntraceparent: 00-ab-cd-01");
  b.recv(1, 300, 2, 100, 1, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=7");
  b.data(1, 400, 2, 5, tf::Direction::kSend, 600, 1, tf::CaptureKind::kHttpReq, "GET /" + std::string(255, 'l'),
         tf::kDataCaptureCut);
  b.recv(1, 500, 2, 100, 1, "HTTP/1.1 200 OK\r\nConnection: close");
  b.close(1, 600, 2, 5);
  const nlohmann::json j = export_of(b);
  ASSERT_EQ(j["connections"].size(), 1u) << j.dump(1);
  const auto& c = j["connections"][0];
  ASSERT_EQ(c["attempts"].size(), 1u);
  const auto& a = c["attempts"][0];
  EXPECT_EQ(a["peer"], "127.0.0.1:8080");
  EXPECT_EQ(a["duration_ns"], 50);
  EXPECT_EQ(a["error"], "ECONNREFUSED");
  EXPECT_TRUE(a["start_ns"].is_number());
  ASSERT_EQ(c["requests"].size(), 2u);
  const auto& r0 = c["requests"][0];
  EXPECT_EQ(r0["traceparent"], "00-ab-cd-01");
  EXPECT_EQ(r0["keep_alive_timeout_s"], 7);
  EXPECT_FALSE(r0.contains("connection_close"));
  EXPECT_FALSE(r0.contains("target_cut"));
  const auto& r1 = c["requests"][1];
  EXPECT_EQ(r1["traceparent"], nullptr);
  EXPECT_EQ(r1["target_cut"], true);
  EXPECT_EQ(r1["target"].get<std::string>().size(), 256u);
  EXPECT_EQ(r1["connection_close"], true);
  EXPECT_FALSE(r1.contains("keep_alive_timeout_s"));
  EXPECT_EQ(j["summary"]["connections"], 1);
  EXPECT_EQ(j["summary"]["failed_connects"], 0);
}

}  // namespace
}  // namespace httptrace::testing
