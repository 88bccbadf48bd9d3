// HTTP/2 streams as requests (analyzer/model/h2_streams.h) on synthetic traces: frame headers and
// H2HeadersEvents together, overlapping streams, RST_STREAM, server-side roles, and the reader's
// checks of kind 20.
#include <gtest/gtest.h>

#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

const tf::Addr kPeer = ipv4("10.1.2.3", 443);
constexpr char kTp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
using D = tf::Direction;
using C = tf::CaptureKind;

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, uint32_t len = 10) {
  return std::string{char(len >> 16), char(len >> 8), char(len), char(type), char(flags),
                     char(stream >> 24), char(stream >> 16), char(stream >> 8), char(stream)};
}

// An H2HeadersEvent with the given fields (empty = absent), in kH2Field order.
void headers(TraceBuilder& b, uint64_t ts, uint32_t stream, D dir, uint8_t flags,
             std::vector<std::string> fields, uint32_t conn = 1) {
  tf::H2HeadersEvent e{};
  e.h.kind = uint16_t(tf::EventKind::kH2Headers);
  e.h.conn = conn;
  e.h.ts_ns = ts;
  e.stream = stream;
  e.dir = uint8_t(dir);
  e.flags = flags;
  std::string tail;
  fields.resize(tf::kH2Fields);
  for (int f = 0; f < tf::kH2Fields; ++f) {
    if (fields[f].empty()) continue;
    e.fields |= uint8_t(1u << f);
    e.len[f] = uint16_t(fields[f].size());
    tail += fields[f];
  }
  b.add(1, e, tail);
}

void h2_conn(TraceBuilder& b) {
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.tls_handshake(1, 100, 1, 3, 50, "h2");
}

void frames(TraceBuilder& b, uint64_t ts, D dir, uint64_t dur, const std::string& f, uint8_t flags = 0) {
  b.data(1, ts, 1, 3, dir, 100, dur, C::kH2Frames, f, tf::kDataTlsPlaintext | flags);
}

// h2c: frames on a plain socket, n bytes.
void plain_frames(TraceBuilder& b, uint32_t conn, uint64_t ts, D dir, uint64_t dur, int64_t n, const std::string& f) {
  b.data(1, ts, conn, 3, dir, n, dur, C::kH2Frames, f);
}

constexpr char kUpgradeRequest[] =
    "GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: Upgrade, HTTP2-Settings";
constexpr char k101[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade";

TEST(H2Streams, OverlappingStreamsAreRequestsWithTheirOwnTimes) {
  TraceBuilder b;
  h2_conn(b);
  // Two requests in one write (stream 3 ends its request with a DATA frame later), responses
  // out of order: 3 first, then 1 with its body in a second read.
  headers(b, 1000, 1, D::kSend, tf::kH2EndStream, {"GET", "/a", "example.com:443"});
  headers(b, 1000, 3, D::kSend, 0, {"POST", "/b", "example.com"});
  frames(b, 1000, D::kSend, 50, frame(4, 0, 0) + frame(1, 5, 1) + frame(1, 4, 3));
  frames(b, 1100, D::kSend, 20, frame(0, 1, 3, 100));
  headers(b, 2050, 3, D::kRecv, tf::kH2EndStream, {"", "", "", "204"});
  frames(b, 2000, D::kRecv, 50, frame(1, 5, 3));
  headers(b, 3050, 1, D::kRecv, 0, {"", "", "", "200"});
  frames(b, 3000, D::kRecv, 50, frame(1, 4, 1, 20));
  frames(b, 4000, D::kRecv, 60, frame(0, 0, 1, 1000) + frame(0, 1, 1, 5));
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.protocol, "h2");
  EXPECT_EQ(c.host, "example.com") << ":authority without its port, as Host";
  ASSERT_EQ(c.requests.size(), 2u);
  const Exchange& a = c.requests[0];
  const Exchange& p = c.requests[1];
  EXPECT_EQ(a.stream, 1u);
  EXPECT_EQ(a.method, "GET");
  EXPECT_EQ(a.target, "/a");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.start_ns, 1000u);
  EXPECT_EQ(a.sent_ns, 1050u) << "END_STREAM on the HEADERS: the end of that write";
  EXPECT_EQ(a.first_byte_ns, 3050u);
  EXPECT_EQ(a.end_ns, 4060u);
  EXPECT_EQ(a.bytes_sent, 19u);
  EXPECT_EQ(a.bytes_received, 29u + 1009 + 14);
  EXPECT_FALSE(a.reused);
  EXPECT_FALSE(a.idle_ns);
  EXPECT_EQ(p.stream, 3u);
  EXPECT_EQ(p.method, "POST");
  EXPECT_EQ(p.status, 204);
  EXPECT_EQ(p.sent_ns, 1120u) << "END_STREAM came on the DATA frame of the second write";
  EXPECT_EQ(p.first_byte_ns, 2050u);
  EXPECT_EQ(p.end_ns, 2050u);
  EXPECT_TRUE(p.reused);
  EXPECT_FALSE(p.idle_ns) << "stream 1 was still open: no idle time between overlapping streams";
}

TEST(H2Streams, SequentialStreamsHaveIdleTimeAndRstEndsAStream) {
  TraceBuilder b;
  h2_conn(b);
  frames(b, 1000, D::kSend, 10, frame(1, 5, 1));
  frames(b, 2000, D::kRecv, 10, frame(1, 5, 1));
  frames(b, 5000, D::kSend, 10, frame(1, 5, 3));
  frames(b, 6000, D::kRecv, 10, frame(3, 0, 3, 4));  // RST_STREAM from the server
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const auto& rq = out.conns[0].requests;
  ASSERT_EQ(rq.size(), 2u);
  EXPECT_EQ(rq[1].idle_ns, 5000u - 2010u);
  EXPECT_EQ(rq[1].end_ns, 6010u);
  EXPECT_FALSE(rq[1].first_byte_ns) << "reset before any response HEADERS";
  EXPECT_EQ(rq[1].status, 0);
}

TEST(H2Streams, InterimStatusIsReplacedByTheFinalOne) {
  TraceBuilder b;
  h2_conn(b);
  frames(b, 1000, D::kSend, 10, frame(1, 5, 1));
  headers(b, 2010, 1, D::kRecv, 0, {"", "", "", "103"});
  frames(b, 2000, D::kRecv, 10, frame(1, 4, 1));
  headers(b, 3010, 1, D::kRecv, tf::kH2EndStream, {"", "", "", "200"});
  frames(b, 3000, D::kRecv, 10, frame(1, 5, 1));
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  ASSERT_EQ(out.conns[0].requests.size(), 1u);
  EXPECT_EQ(out.conns[0].requests[0].status, 200);
  EXPECT_EQ(out.conns[0].requests[0].first_byte_ns, 2010u) << "the 103 was the first byte";
}

TEST(H2Streams, ServerSideReadsRequestsAndWritesResponses) {
  TraceBuilder b;
  b.accept(1, 0, 1, 3, 2, kPeer, 10);
  b.tls_handshake(1, 100, 1, 3, 50, "h2");
  headers(b, 1010, 1, D::kRecv, tf::kH2EndStream, {"GET", "/in"});
  frames(b, 1000, D::kRecv, 10, frame(1, 5, 1));
  headers(b, 2000, 1, D::kSend, 0, {"", "", "", "200"});
  frames(b, 2000, D::kSend, 10, frame(1, 4, 1) + frame(0, 1, 1));
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  ASSERT_EQ(out.conns[0].requests.size(), 1u);
  const Exchange& x = out.conns[0].requests[0];
  EXPECT_EQ(x.method, "GET");
  EXPECT_EQ(x.target, "/in");
  EXPECT_EQ(x.status, 200);
  EXPECT_EQ(x.start_ns, 1010u);
  EXPECT_EQ(x.first_byte_ns, 2000u);
  EXPECT_EQ(x.end_ns, 2010u);
}

TEST(H2Streams, ReaderRefusesAFieldLongerThanItsBound) {
  TraceBuilder b;
  h2_conn(b);
  tf::H2HeadersEvent e{};
  e.h.kind = uint16_t(tf::EventKind::kH2Headers);
  e.h.conn = 1;
  e.h.ts_ns = 1000;
  e.stream = 1;
  e.fields = 1u << tf::kH2FieldStatus;
  e.len[tf::kH2FieldStatus] = 4;  // a status is 3 digits
  b.add(1, e, "2000");
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  Collected out;
  Model m(ts, out);
  Event ev;
  while (ts.next(ev)) m.on_event(ev);
  m.finish();
  ASSERT_FALSE(ts.warnings().empty());
  EXPECT_NE(ts.warnings().front().find("h2 header field longer than its bound"), std::string::npos)
      << ts.warnings().front();
}

// curl --http2 http://...: the first request goes as HTTP/1.1 offering the upgrade; after the 101
// the client sends its preface and the next request opens stream 3. The 101's read also brought
// the server's SETTINGS (as HTTP/1 bytes to the recorder), stream 1's response comes as frames.
TEST(H2Streams, H2cUpgradeMakesTheUpgradedRequestStream1) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, ipv4("127.0.0.1", 8080), 10);
  b.send(1, 1000, 1, 150, 10, kUpgradeRequest);
  b.recv(1, 1100, 1, 80, 100, k101);
  plain_frames(b, 1, 1300, D::kSend, 10, 24 + 9 + 30, frame(4, 0, 0, 30));  // preface + SETTINGS
  headers(b, 1400, 1, D::kRecv, 0, {"", "", "", "200"});
  plain_frames(b, 1, 1390, D::kRecv, 10, 9 + 10 + 9 + 107, frame(1, 4, 1, 10) + frame(0, 1, 1, 107));
  headers(b, 2000, 3, D::kSend, tf::kH2EndStream, {"GET", "/b", "127.0.0.1:8080"});
  plain_frames(b, 1, 2000, D::kSend, 10, 9 + 20, frame(1, 5, 3, 20));
  headers(b, 2510, 3, D::kRecv, 0, {"", "", "", "404"});
  plain_frames(b, 1, 2500, D::kRecv, 10, 9 + 10 + 9 + 5, frame(1, 4, 3, 10) + frame(0, 1, 3, 5));
  b.close(1, 3000, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.protocol, "h2");
  EXPECT_EQ(c.h2_streams, 2u);
  EXPECT_EQ(c.h2_responses, 2u);
  ASSERT_EQ(c.requests.size(), 2u);
  const Exchange& a = c.requests[0];
  EXPECT_EQ(a.stream, 1u);
  EXPECT_EQ(a.index, 0u);
  EXPECT_FALSE(a.reused);
  EXPECT_EQ(a.method, "GET");
  EXPECT_EQ(a.target, "/a");
  EXPECT_EQ(a.status, 200) << "the 101 is interim; the final status came in h2";
  EXPECT_EQ(a.start_ns, 1000u);
  EXPECT_EQ(a.sent_ns, 1010u);
  EXPECT_EQ(a.first_byte_ns, 1200u) << "the 101 was its first byte";
  EXPECT_EQ(a.end_ns, 1400u) << "END_STREAM on stream 1's DATA";
  EXPECT_EQ(a.bytes_sent, 150u);
  EXPECT_EQ(a.bytes_received, 80u + 9 + 10 + 9 + 107);
  const Exchange& n = c.requests[1];
  EXPECT_EQ(n.stream, 3u);
  EXPECT_EQ(n.index, 1u);
  EXPECT_TRUE(n.reused);
  EXPECT_EQ(n.method, "GET");
  EXPECT_EQ(n.target, "/b");
  EXPECT_EQ(n.status, 404);
  EXPECT_EQ(n.start_ns, 2000u);
  EXPECT_EQ(n.idle_ns, 2000u - 1400u);
  EXPECT_EQ(n.end_ns, 2510u);
}

// A 101 to a request that did not offer h2c (a WebSocket upgrade) switches to something else.
TEST(H2Streams, OtherUpgradesStayHttp1) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, ipv4("127.0.0.1", 8080), 10);
  b.send(1, 1000, 1, 150, 10, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade");
  b.recv(1, 1100, 1, 80, 100, k101);
  b.send(1, 1300, 1, 20, 10);
  b.recv(1, 1400, 1, 20, 10);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].protocol, "http/1.1");
  ASSERT_GE(out.conns[0].requests.size(), 1u);
  EXPECT_EQ(out.conns[0].requests[0].status, 101);
  EXPECT_FALSE(out.conns[0].requests[0].stream);
}

// The server's side of an upgrade: it reads the request, writes the 101 (and its SETTINGS), then
// stream 1's response as frames; the client's preface and stream 3 follow.
TEST(H2Streams, H2cUpgradeOnTheServerSide) {
  TraceBuilder b(200);
  b.accept(1, 0, 1, 3, 2, ipv4("127.0.0.1", 40001), 10);
  b.data(1, 500, 1, 3, D::kRecv, 150, 500, C::kHttpReq, kUpgradeRequest);
  b.data(1, 1100, 1, 3, D::kSend, 89, 10, C::kHttpResp, k101);
  headers(b, 1200, 1, D::kSend, 0, {"", "", "", "200"});
  plain_frames(b, 1, 1200, D::kSend, 10, 9 + 10 + 9 + 107, frame(1, 4, 1, 10) + frame(0, 1, 1, 107));
  b.data(1, 1300, 1, 3, D::kRecv, 24, 100, C::kOpaque, "PRI * HT");
  headers(b, 1500, 3, D::kRecv, tf::kH2EndStream, {"GET", "/b"});
  plain_frames(b, 1, 1450, D::kRecv, 50, 9 + 20, frame(1, 5, 3, 20));
  plain_frames(b, 1, 1600, D::kSend, 10, 9 + 10, frame(1, 5, 3, 10));
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.protocol, "h2");
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].stream, 1u);
  EXPECT_EQ(c.requests[0].target, "/a");
  EXPECT_EQ(c.requests[0].status, 200);
  EXPECT_EQ(c.requests[0].start_ns, 1000u) << "a request read counts from the read's end";
  EXPECT_EQ(c.requests[0].first_byte_ns, 1100u) << "the 101's write began the response";
  EXPECT_EQ(c.requests[0].end_ns, 1210u);
  EXPECT_EQ(c.requests[0].bytes_received, 150u) << "inbound: the request was received";
  EXPECT_EQ(c.requests[0].bytes_sent, 89u + 9 + 10 + 9 + 107);
  EXPECT_EQ(c.requests[1].stream, 3u);
  EXPECT_EQ(c.requests[1].target, "/b");
}

// Issue 11: a thread serving an inbound HTTP/1 request opens two streams on an h2 connection;
// both are that request's children, as HTTP/1 calls would be.
TEST(H2Streams, OutboundStreamsOfAServingThreadAreItsChildren) {
  TraceBuilder b(200);
  b.accept(1, 100, 1, 5, 4, ipv4("127.0.0.1", 40001), 10);
  b.data(1, 110, 1, 5, D::kRecv, 100, 10, C::kHttpReq, "GET /front HTTP/1.1");
  b.socket(1, 200, 2, 6);
  b.connect(1, 210, 2, 6, kPeer, 10);
  b.tls_handshake(1, 230, 2, 6, 50, "h2");
  headers(b, 300, 1, D::kSend, tf::kH2EndStream, {"GET", "/x"}, 2);
  headers(b, 300, 3, D::kSend, tf::kH2EndStream, {"GET", "/y"}, 2);
  b.data(1, 300, 2, 6, D::kSend, 100, 10, C::kH2Frames, frame(1, 5, 1) + frame(1, 5, 3), tf::kDataTlsPlaintext);
  b.data(1, 320, 2, 6, D::kRecv, 100, 80, C::kH2Frames, frame(1, 5, 1) + frame(1, 5, 3), tf::kDataTlsPlaintext);
  b.data(1, 500, 1, 5, D::kSend, 200, 10, C::kHttpResp, "HTTP/1.1 200 OK");
  auto out = model_of({&b});
  const Connection* in = out.by_conn(1);
  const Connection* call = out.by_conn(2);
  ASSERT_TRUE(in && call);
  ASSERT_EQ(call->requests.size(), 2u);
  const Exchange& parent = in->requests.at(0);
  for (const Exchange& x : call->requests) {
    EXPECT_EQ(x.parent, "200:1#0") << *x.stream;
    EXPECT_EQ(x.parent_confidence, ParentConfidence::kThread);
    EXPECT_EQ(x.trace_id, parent.trace_id);
    EXPECT_EQ(x.parent_span_id, parent.span_id);
  }
  EXPECT_NE(call->requests[0].span_id, call->requests[1].span_id);
  EXPECT_EQ(parent.children_ns, 100u) << "300 .. 400 ns, the two streams at once";
}

// One -H traceparent for several URLs puts it on every stream: only the first is the span it
// names; the others are that span's children, each with a span of its own.
TEST(H2Streams, ARepeatedTraceparentNamesOnlyTheFirstStream) {
  TraceBuilder b;
  h2_conn(b);
  headers(b, 1000, 1, D::kSend, tf::kH2EndStream, {"GET", "/a", "", "", kTp});
  frames(b, 1000, D::kSend, 10, frame(1, 5, 1));
  headers(b, 1100, 3, D::kSend, tf::kH2EndStream, {"GET", "/b", "", "", kTp});
  frames(b, 1100, D::kSend, 10, frame(1, 5, 3));
  frames(b, 2000, D::kRecv, 10, frame(1, 5, 1) + frame(1, 5, 3));
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const auto& rq = out.conns[0].requests;
  ASSERT_EQ(rq.size(), 2u);
  EXPECT_EQ(rq[0].span_id, 0x00f067aa0ba902b7u);
  EXPECT_NE(rq[1].span_id, rq[0].span_id);
  EXPECT_EQ(rq[1].parent_span_id, 0x00f067aa0ba902b7u);
  EXPECT_EQ(rq[1].trace_id, rq[0].trace_id);
}

// Both ends traced (h2c, prior knowledge): each server stream is linked to the client's stream
// of the same id and joins its trace as its child, as an HTTP/1 request does.
TEST(H2Streams, StreamsOfBothEndsAreLinkedById) {
  TraceBuilder client(100), server(200);
  client.socket(1, 100, 1, 3);
  client.connect(1, 110, 1, 3, ipv4("127.0.0.1", 8080), 10);  // local 127.0.0.1:40001
  server.accept(1, 115, 1, 5, 4, ipv4("127.0.0.1", 40001), 5);
  client.data(1, 200, 1, 3, D::kSend, 24, 5, C::kOpaque, "PRI * HT");
  server.data(1, 150, 1, 5, D::kRecv, 24, 60, C::kOpaque, "PRI * HT");
  for (uint32_t id : {1u, 3u}) {
    const uint64_t t = 300 + 100 * id;
    headers(client, t, id, D::kSend, tf::kH2EndStream, {"GET", "/s" + std::to_string(id), "h"});
    plain_frames(client, 1, t, D::kSend, 5, 19, frame(1, 5, id));
    headers(server, t + 10, id, D::kRecv, tf::kH2EndStream, {"GET", "/s" + std::to_string(id), "h"});
    server.data(1, t + 5, 1, 5, D::kRecv, 19, 5, C::kH2Frames, frame(1, 5, id));
    server.data(1, t + 20, 1, 5, D::kSend, 19, 5, C::kH2Frames, frame(1, 5, id));
    plain_frames(client, 1, t + 30, D::kRecv, 5, 19, frame(1, 5, id));
  }
  auto out = model_of({&client, &server});
  ASSERT_EQ(out.conns.size(), 2u);
  const Connection& a = out.conns[0].pid == 100 ? out.conns[0] : out.conns[1];
  const Connection& s = out.conns[0].pid == 100 ? out.conns[1] : out.conns[0];
  ASSERT_EQ(a.requests.size(), 2u);
  ASSERT_EQ(s.requests.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(s.requests[i].linked, "100:1#" + std::to_string(i));
    EXPECT_EQ(a.requests[i].linked, "200:1#" + std::to_string(i));
    EXPECT_EQ(s.requests[i].trace_id, a.requests[i].trace_id);
    EXPECT_EQ(s.requests[i].parent_span_id, a.requests[i].span_id);
  }
  EXPECT_NE(a.requests[0].span_id, a.requests[1].span_id);
}

// A server's inbound h2 streams are parents: an outbound call made while exactly one stream is
// open (its request read, its response not ended) is that stream's child; with two open, nobody's.
TEST(H2Streams, InboundStreamIsTheParentWhileItAloneIsOpen) {
  TraceBuilder b(200);
  b.accept(1, 100, 1, 5, 4, ipv4("127.0.0.1", 40001), 10);
  b.tls_handshake(1, 110, 1, 5, 50, "h2");
  headers(b, 200, 1, D::kRecv, tf::kH2EndStream, {"GET", "/one", "", "", kTp});
  b.data(1, 190, 1, 5, D::kRecv, 100, 10, C::kH2Frames, frame(1, 5, 1), tf::kDataTlsPlaintext);
  b.data(1, 210, 1, 5, D::kSend, 9, 5, C::kH2Frames, frame(4, 1, 0, 0), tf::kDataTlsPlaintext);  // SETTINGS ack
  b.socket(1, 300, 2, 6);
  b.connect(1, 310, 2, 6, ipv4("127.0.0.1", 9090), 10);
  b.send(1, 330, 2, 80, 5, "GET /back1 HTTP/1.1");
  b.recv(1, 340, 2, 100, 10, "HTTP/1.1 200 OK");
  headers(b, 400, 3, D::kRecv, tf::kH2EndStream, {"GET", "/two"}, 1);
  b.data(1, 390, 1, 5, D::kRecv, 100, 10, C::kH2Frames, frame(1, 5, 3), tf::kDataTlsPlaintext);
  b.send(1, 430, 2, 80, 5, "GET /back2 HTTP/1.1");  // streams 1 and 3 both open
  b.recv(1, 440, 2, 100, 10, "HTTP/1.1 200 OK");
  b.data(1, 500, 1, 5, D::kSend, 100, 10, C::kH2Frames, frame(1, 5, 1), tf::kDataTlsPlaintext);
  b.send(1, 530, 2, 80, 5, "GET /back3 HTTP/1.1");  // only stream 3 open
  b.recv(1, 540, 2, 100, 10, "HTTP/1.1 200 OK");
  b.data(1, 600, 1, 5, D::kSend, 100, 10, C::kH2Frames, frame(1, 5, 3), tf::kDataTlsPlaintext);
  auto out = model_of({&b});
  const Connection* in = out.by_conn(1);
  const Connection* call = out.by_conn(2);
  ASSERT_TRUE(in && call);
  ASSERT_EQ(in->requests.size(), 2u);
  ASSERT_EQ(call->requests.size(), 3u);
  const Exchange& one = in->requests[0];
  EXPECT_EQ(one.target, "/one");
  EXPECT_EQ(call->requests[0].parent, "200:1#0");
  EXPECT_EQ(call->requests[0].parent_confidence, ParentConfidence::kSingleOpen);
  EXPECT_EQ(call->requests[0].trace_id, one.trace_id);
  EXPECT_EQ(call->requests[0].parent_span_id, one.span_id);
  EXPECT_EQ(one.parent_span_id, 0x00f067aa0ba902b7u) << "the stream joined its traceparent's trace";
  EXPECT_EQ(one.children_ns, 20u);
  EXPECT_EQ(call->requests[1].parent, "") << "two streams open: not known which";
  EXPECT_EQ(call->requests[2].parent, "200:1#1");
  EXPECT_EQ(call->requests[2].trace_id, in->requests[1].trace_id);
}

}  // namespace
}  // namespace httptrace::testing
