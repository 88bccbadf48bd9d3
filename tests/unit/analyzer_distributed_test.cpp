// Inbound connections, inbound -> outbound parents and process -> process links (SPEC §5) on
// synthetic traces, and the W3C traceparent parser.
#include <gtest/gtest.h>

#include "analyzer/model/trace_context.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000;
using D = tf::Direction;
using C = tf::CaptureKind;
const tf::Addr kClient = ipv4("127.0.0.1", 40001);  // TraceBuilder::connect's local for conn 1
const tf::Addr kServer = ipv4("127.0.0.1", 8080);   // TraceBuilder::accept's local
constexpr char kTp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

void read_request(TraceBuilder& b, int32_t tid, uint64_t ts, uint32_t conn, std::string_view req, uint64_t dur) {
  b.data(tid, ts, conn, 5, D::kRecv, 100, dur, C::kHttpReq, req);
}
void write_response(TraceBuilder& b, int32_t tid, uint64_t ts, uint32_t conn, uint64_t dur) {
  b.data(tid, ts, conn, 5, D::kSend, 200, dur, C::kHttpResp, "HTTP/1.1 200 OK");
}

std::string hex(const std::array<uint8_t, 16>& id) {
  char s[32];
  return std::string(s, analyzer::hex_to(s, id.data(), 16));
}

// One call from a client process (pid 100) to a server process (pid 200) over mirrored
// addresses; request is what both sides see of it. Returns {client's, server's} connection.
std::pair<Connection, Connection> one_call(const std::string& request) {
  TraceBuilder client(100), server(200);
  client.socket(1, 100 * us, 1, 3);
  client.connect(1, 110 * us, 1, 3, kServer, 10 * us);
  server.accept(1, 115 * us, 1, 5, 4, kClient, 5 * us);
  client.send(1, 200 * us, 1, 80, 5 * us, request);
  read_request(server, 1, 150 * us, 1, request, 60 * us);
  write_response(server, 1, 300 * us, 1, 5 * us);
  client.recv(1, 210 * us, 1, 200, 100 * us, "HTTP/1.1 200 OK");
  auto out = model_of({&client, &server});
  EXPECT_EQ(out.conns.size(), 2u);
  if (out.conns.size() != 2) return {};
  const bool first_is_client = out.conns[0].pid == 100;
  return {out.conns[first_is_client ? 0 : 1], out.conns[first_is_client ? 1 : 0]};
}

TEST(Inbound, ExchangeRunsFromRequestReadToResponseWritten) {
  TraceBuilder b(200);
  b.accept(1, 100 * us, 1, 5, 4, kClient, 10 * us);
  // The server waits in read() from 110 µs; the request arrives at 300 µs.
  read_request(b, 1, 110 * us, 1, "GET /a HTTP/1.1\r\nHost: svc", 190 * us);
  write_response(b, 1, 500 * us, 1, 20 * us);
  b.recv(1, 600 * us, 1, 0, 900 * us);  // the client hangs up much later: not the response's time
  b.close(1, 1600 * us, 1, 5);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.direction, ConnDirection::kInbound);
  EXPECT_EQ(c.new_reason, NewReason::kNone);
  ASSERT_EQ(c.requests.size(), 1u);
  const Exchange& x = c.requests[0];
  EXPECT_EQ(x.method, "GET");
  EXPECT_EQ(x.target, "/a");
  EXPECT_EQ(x.status, 200);
  EXPECT_EQ(x.start_ns, 300 * us);
  EXPECT_EQ(x.sent_ns, 300 * us);
  EXPECT_EQ(x.first_byte_ns, 500 * us);
  EXPECT_EQ(x.end_ns, 520 * us);
  EXPECT_EQ(x.children_ns, 0u);
  EXPECT_EQ(x.parent_span_id, 0u);  // nobody sent it a traceparent, no traced client: a root
  EXPECT_NE(x.span_id, 0u);
}

TEST(Inbound, OutboundCallOfTheServingThreadIsItsChild) {
  TraceBuilder b(200);
  b.accept(1, 100 * us, 1, 5, 4, kClient, 10 * us);
  read_request(b, 1, 110 * us, 1, "GET /front HTTP/1.1", 10 * us);
  b.socket(1, 200 * us, 2, 6);
  b.connect(1, 210 * us, 2, 6, ipv4("127.0.0.1", 9090), 10 * us);
  b.send(1, 300 * us, 2, 80, 5 * us, "GET /back HTTP/1.1");
  b.recv(1, 310 * us, 2, 100, 90 * us, "HTTP/1.1 200 OK");  // 400 µs
  b.close(1, 410 * us, 2, 6);
  write_response(b, 1, 500 * us, 1, 10 * us);
  b.close(1, 600 * us, 1, 5);
  auto out = model_of({&b});
  const Connection* in = out.by_conn(1);
  const Connection* call = out.by_conn(2);
  ASSERT_TRUE(in && call);
  ASSERT_EQ(call->requests.size(), 1u);
  const Exchange& child = call->requests[0];
  const Exchange& parent = in->requests.at(0);
  EXPECT_EQ(child.parent, "200:1#0");
  EXPECT_EQ(child.parent_confidence, ParentConfidence::kThread);
  EXPECT_EQ(child.trace_id, parent.trace_id);
  EXPECT_EQ(child.parent_span_id, parent.span_id);
  EXPECT_EQ(parent.children_ns, 100 * us);  // 300 .. 400 µs
  EXPECT_EQ(call->direction, ConnDirection::kOutbound);
}

TEST(Inbound, EventLoopLinksOnlyWhileOneRequestIsUnanswered) {
  TraceBuilder b(200);
  b.accept(1, 100 * us, 1, 5, 4, kClient, 1 * us);
  b.accept(1, 101 * us, 2, 6, 4, ipv4("127.0.0.1", 40002), 1 * us);
  read_request(b, 1, 110 * us, 1, "GET /one HTTP/1.1", 1 * us);
  read_request(b, 1, 120 * us, 2, "GET /two HTTP/1.1", 1 * us);
  // Two unanswered on this thread: this call cannot be placed.
  b.socket(1, 130 * us, 3, 7);
  b.connect(1, 131 * us, 3, 7, ipv4("127.0.0.1", 9090), 1 * us);
  b.send(1, 140 * us, 3, 80, 1 * us, "GET /x HTTP/1.1");
  b.recv(1, 150 * us, 3, 100, 1 * us, "HTTP/1.1 200 OK");
  write_response(b, 1, 160 * us, 1, 1 * us);
  // Now only /two is waiting: the next call is its, but the thread multiplexes.
  b.send(1, 170 * us, 3, 80, 1 * us, "GET /y HTTP/1.1");
  b.recv(1, 180 * us, 3, 100, 1 * us, "HTTP/1.1 200 OK");
  write_response(b, 1, 190 * us, 2, 1 * us);
  auto out = model_of({&b});
  const Connection* call = out.by_conn(3);
  ASSERT_TRUE(call);
  ASSERT_EQ(call->requests.size(), 2u);
  EXPECT_EQ(call->requests[0].parent, "");
  EXPECT_EQ(call->requests[0].parent_span_id, 0u);
  EXPECT_EQ(call->requests[1].parent, "200:2#0");
  EXPECT_EQ(call->requests[1].parent_confidence, ParentConfidence::kSingleOpen);
}

TEST(Inbound, MirroredConnectionsOfTwoProcessesAreOneCall) {
  const auto [a, s] = one_call(std::string("GET /a HTTP/1.1\r\ntraceparent: ") + kTp);
  ASSERT_EQ(a.requests.size(), 1u);
  ASSERT_EQ(s.requests.size(), 1u);
  EXPECT_EQ(a.requests[0].linked, "200:1#0");
  EXPECT_EQ(s.requests[0].linked, "100:1#0");
  // The client span is the one the traceparent names; the server's is its child in that trace.
  EXPECT_EQ(hex(a.requests[0].trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(a.requests[0].span_id, 0x00f067aa0ba902b7u);
  EXPECT_EQ(s.requests[0].trace_id, a.requests[0].trace_id);
  EXPECT_EQ(s.requests[0].parent_span_id, a.requests[0].span_id);
  EXPECT_NE(s.requests[0].span_id, a.requests[0].span_id);
}

TEST(Inbound, WithoutTraceparentTheServerJoinsTheClientsTrace) {
  const auto [a, s] = one_call("GET /a HTTP/1.1");
  EXPECT_EQ(a.requests.at(0).parent_span_id, 0u);
  EXPECT_EQ(s.requests.at(0).trace_id, a.requests.at(0).trace_id);
  EXPECT_EQ(s.requests.at(0).parent_span_id, a.requests.at(0).span_id);
}

TEST(Inbound, ReuseCountsOnlyOutboundConnections) {
  TraceBuilder b(200);
  b.accept(1, 100 * us, 1, 5, 4, kClient, 10 * us);
  read_request(b, 1, 110 * us, 1, "GET /a HTTP/1.1", 10 * us);
  write_response(b, 1, 500 * us, 1, 20 * us);
  b.close(1, 600 * us, 1, 5);
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  const std::string out = capture_output([&](std::FILE* f) { write_reuse(ts, f); });
  EXPECT_EQ(out.find("40001"), std::string::npos) << out;  // the client's ephemeral port
  EXPECT_NE(out.find("no connections"), std::string::npos) << out;
}

TEST(TraceParent, ParsesOnlyValidHeaders) {
  auto tp = analyzer::parse_traceparent(kTp);
  ASSERT_TRUE(tp);
  EXPECT_EQ(hex(tp->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(tp->parent_span_id, 0x00f067aa0ba902b7u);
  // A later version may add fields after a dash; version 00 may not.
  EXPECT_TRUE(analyzer::parse_traceparent(std::string("01") + (kTp + 2) + "-extra"));
  EXPECT_FALSE(analyzer::parse_traceparent(std::string(kTp) + "-extra"));
  for (const char* bad : {
           "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero span id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})  // separator
    EXPECT_FALSE(analyzer::parse_traceparent(bad)) << bad;
}

TEST(TraceParent, DerivedIdsAreStableAndDistinct) {
  EXPECT_EQ(analyzer::derive_span_id(1, "5:1", 0), analyzer::derive_span_id(1, "5:1", 0));
  EXPECT_NE(analyzer::derive_span_id(1, "5:1", 0), analyzer::derive_span_id(1, "5:1", 1));
  EXPECT_NE(analyzer::derive_span_id(1, "5:1", 0), analyzer::derive_span_id(2, "5:1", 0));
  EXPECT_NE(analyzer::derive_trace_id(1, "5:1", 0), analyzer::derive_trace_id(1, "5:2", 0));
}

}  // namespace
}  // namespace httptrace::testing
