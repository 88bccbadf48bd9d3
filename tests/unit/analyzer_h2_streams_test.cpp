// HTTP/2 streams as requests (analyzer/model/h2_streams.h) on synthetic traces: frame headers and
// H2HeadersEvents together, overlapping streams, RST_STREAM, server-side roles, and the reader's
// checks of kind 20.
#include <gtest/gtest.h>

#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

const tf::Addr kPeer = ipv4("10.1.2.3", 443);
using D = tf::Direction;
using C = tf::CaptureKind;

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, uint32_t len = 10) {
  return std::string{char(len >> 16), char(len >> 8), char(len), char(type), char(flags),
                     char(stream >> 24), char(stream >> 16), char(stream >> 8), char(stream)};
}

// An H2HeadersEvent with the given fields (empty = absent), in kH2Field order.
void headers(TraceBuilder& b, uint64_t ts, uint32_t stream, D dir, uint8_t flags,
             std::vector<std::string> fields) {
  tf::H2HeadersEvent e{};
  e.h.kind = uint16_t(tf::EventKind::kH2Headers);
  e.h.conn = 1;
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

}  // namespace
}  // namespace httptrace::testing
