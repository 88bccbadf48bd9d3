// The connection / exchange model on synthetic traces.
#include <cerrno>

#include <gtest/gtest.h>

#include "analyzer/model/tls_wire.h"
#include "tests/unit/analyzer_test_util.h"
#include "tests/unit/analyzer_tls_bytes.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000;
const tf::Addr kPeer = ipv4("10.1.2.3", 8080);
using D = tf::Direction;
using C = tf::CaptureKind;

// Expect: 100-continue (curl for bodies over 1 MiB): the head, the server's 100, the body, the
// final response are one request, whose status and first byte are the final response's.
TEST(Model, InterimResponsesBelongToTheRequest) {
  TraceBuilder b(500);
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100 * us, 1, 180, 5 * us, "POST /up HTTP/1.1\r\nHost: api.example.com");
  b.recv(1, 200 * us, 1, 25, 1 * us, "HTTP/1.1 100 Continue");
  b.send(1, 210 * us, 1, 65536, 50 * us);
  b.send(1, 260 * us, 1, 1000, 5 * us);
  b.recv(1, 400 * us, 1, 150, 2 * us, "HTTP/1.1 201 Created");
  // The next request: a 103 Early Hints, then the final response in a read of its own.
  b.send(1, 500 * us, 1, 80, 5 * us, "GET /page HTTP/1.1\r\nHost: api.example.com");
  b.recv(1, 600 * us, 1, 90, 1 * us, "HTTP/1.1 103 Early Hints");
  b.recv(1, 700 * us, 1, 300, 2 * us, "HTTP/1.1 200 OK");
  // The 100 and the final response in one read (the recorder keeps both heads): answered.
  b.send(1, 720 * us, 1, 80, 5 * us, "PUT /z HTTP/1.1\r\nHost: api.example.com");
  b.recv(1, 730 * us, 1, 177, 1 * us, "HTTP/1.1 100 Continue\r\nHTTP/1.1 413 Payload Too Large\r\nConnection: close");
  // An interim response followed by a new request line (the server sent its final answer
  // together with the 100, and the recorder did not see it): that is the next request.
  b.send(1, 800 * us, 1, 80, 5 * us, "PUT /x HTTP/1.1\r\nHost: api.example.com");
  b.recv(1, 900 * us, 1, 100, 1 * us, "HTTP/1.1 100 Continue");
  b.send(1, 1000 * us, 1, 80, 5 * us, "GET /y HTTP/1.1\r\nHost: api.example.com");
  b.recv(1, 1100 * us, 1, 100, 1 * us, "HTTP/1.1 204 No Content");
  b.close(1, 1200 * us, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const auto& q = out.conns[0].requests;
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0].method, "POST");
  EXPECT_EQ(q[0].status, 201);
  EXPECT_EQ(q[0].bytes_sent, 180u + 65536 + 1000);
  EXPECT_EQ(q[0].bytes_received, 25u + 150);
  EXPECT_EQ(q[0].sent_ns, 265 * us);
  EXPECT_EQ(q[0].first_byte_ns, 402 * us);
  EXPECT_EQ(q[0].end_ns, 402 * us);
  EXPECT_EQ(q[1].target, "/page");
  EXPECT_EQ(q[1].status, 200);
  EXPECT_EQ(q[1].first_byte_ns, 702 * us);
  EXPECT_EQ(q[1].bytes_received, 390u);
  EXPECT_EQ(q[2].target, "/z");
  EXPECT_EQ(q[2].status, 413);
  EXPECT_EQ(q[2].connection_close, true);
  EXPECT_EQ(q[2].first_byte_ns, 731 * us);
  EXPECT_EQ(q[3].target, "/x");
  EXPECT_EQ(q[3].status, 100);
  EXPECT_EQ(q[4].target, "/y");
  EXPECT_EQ(q[4].status, 204);
}

// The server's side of the same: it reads the head, writes the 100, reads the body.
TEST(Model, InboundInterimResponseBelongsToTheRequest) {
  TraceBuilder b(600);
  b.accept(1, 100 * us, 1, 5, 4, ipv4("10.0.0.9", 40000), 10 * us);
  b.data(1, 200 * us, 1, 5, D::kRecv, 180, 1 * us, C::kHttpReq, "POST /up HTTP/1.1\r\nHost: svc");
  b.data(1, 300 * us, 1, 5, D::kSend, 25, 1 * us, C::kHttpResp, "HTTP/1.1 100 Continue");
  b.data(1, 310 * us, 1, 5, D::kRecv, 65536, 40 * us);
  b.data(1, 500 * us, 1, 5, D::kSend, 150, 2 * us, C::kHttpResp, "HTTP/1.1 201 Created");
  b.close(1, 600 * us, 1, 5);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const auto& q = out.conns[0].requests;
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].status, 201);
  EXPECT_EQ(q[0].bytes_received, 180u + 65536);
  EXPECT_EQ(q[0].bytes_sent, 25u + 150);
  EXPECT_EQ(q[0].sent_ns, 350 * us);
  EXPECT_EQ(q[0].first_byte_ns, 500 * us);
}

// The recorder's pieces of a status line read a byte at a time (kDataStatusLineMore) make the
// exchange's status once the line ends.
TEST(Model, AStatusLineInPiecesGivesTheStatus) {
  TraceBuilder b(500);
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100 * us, 1, 60, 5 * us, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443");
  const std::string line = "HTTP/1.1 407 Proxy Authentication Required\r\n";
  for (size_t i = 0; i < line.size(); ++i) {
    b.data(1, 200 * us + i, 1, 3, D::kRecv, 1, 1, C::kHttpResp, line.substr(i, 1),
           i == 0 ? tf::kDataDirChange : tf::kDataStatusLineMore);
  }
  b.data(1, 300 * us, 1, 3, D::kRecv, 60, 1);
  b.close(1, 400 * us, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  // A refused CONNECT is the proxy's answer about the tunnel, not a request.
  EXPECT_TRUE(out.conns[0].requests.empty());
  ASSERT_TRUE(out.conns[0].tunnel);
  EXPECT_EQ(out.conns[0].tunnel->status, 407);
  EXPECT_EQ(out.conns[0].tunnel->target, "a.example:443");
  EXPECT_EQ(out.conns[0].tunnel->start_ns, 100 * us);
  EXPECT_EQ(out.conns[0].tunnel->duration_ns, 300 * us + 1 - 100 * us);
  EXPECT_EQ(out.conns[0].bytes_received, line.size() + 60);
}

// Through a proxy's tunnel (a 407, the CONNECT again with credentials, a 200), the requests are a
// new connection's: the first one is not reused, and they are numbered from 0.
// A traced proxy's side: the CONNECT it served is its tunnel too, and the first request it relays
// is #0, as on its client's side.
TEST(Model, TheCONNECTAProxyServedIsItsTunnel) {
  TraceBuilder b(600);
  b.accept(1, 100 * us, 1, 5, 4, ipv4("10.0.0.9", 40000), 10 * us);
  b.data(1, 200 * us, 1, 5, D::kRecv, 60, 1 * us, C::kHttpReq, "CONNECT a.example:80 HTTP/1.1\r\nHost: a.example:80");
  b.data(1, 300 * us, 1, 5, D::kSend, 39, 1 * us, C::kHttpResp, "HTTP/1.1 200 Connection established");
  b.data(1, 400 * us, 1, 5, D::kRecv, 80, 1 * us, C::kHttpReq, "GET /x HTTP/1.1\r\nHost: a.example");
  b.data(1, 500 * us, 1, 5, D::kSend, 150, 2 * us, C::kHttpResp, "HTTP/1.1 200 OK");
  b.close(1, 600 * us, 1, 5);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tunnel);
  EXPECT_EQ(c.tunnel->target, "a.example:80");
  EXPECT_EQ(c.tunnel->status, 200);
  ASSERT_EQ(c.requests.size(), 1u);
  EXPECT_EQ(c.requests[0].index, 0u);
  EXPECT_EQ(c.requests[0].target, "/x");
  EXPECT_EQ(c.endpoint_port(), 40000);  // inbound: the tunnel names no endpoint of ours
}

TEST(Model, AProxysTunnelIsSetUpNotARequest) {
  TraceBuilder b(500);
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100 * us, 1, 60, 5 * us, "CONNECT a.example:80 HTTP/1.1\r\nHost: a.example:80");
  b.recv(1, 200 * us, 1, 80, 1 * us, "HTTP/1.1 407 Proxy Authentication Required");
  b.send(1, 300 * us, 1, 90, 5 * us, "CONNECT a.example:80 HTTP/1.1\r\nHost: a.example:80");
  b.recv(1, 400 * us, 1, 39, 1 * us, "HTTP/1.1 200 Connection established");
  b.send(1, 500 * us, 1, 70, 5 * us, "GET /one HTTP/1.1\r\nHost: a.example");
  b.recv(1, 600 * us, 1, 100, 1 * us, "HTTP/1.1 200 OK");
  b.send(1, 700 * us, 1, 70, 5 * us, "GET /two HTTP/1.1\r\nHost: a.example");
  b.recv(1, 800 * us, 1, 100, 1 * us, "HTTP/1.1 204 No Content");
  b.close(1, 900 * us, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const auto& c = out.conns[0];
  ASSERT_TRUE(c.tunnel);
  EXPECT_EQ(c.tunnel->status, 200);
  EXPECT_EQ(c.tunnel->round_trips, 2u);
  EXPECT_EQ(c.tunnel->start_ns, 100 * us);
  EXPECT_EQ(c.tunnel->duration_ns, 401 * us - 100 * us);
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].index, 0u);
  EXPECT_EQ(c.requests[0].target, "/one");
  EXPECT_FALSE(c.requests[0].reused);
  EXPECT_FALSE(c.requests[0].idle_ns);
  EXPECT_EQ(c.requests[1].index, 1u);
  EXPECT_TRUE(c.requests[1].reused);
  EXPECT_EQ(c.requests[1].idle_ns, 700 * us - 601 * us);
  EXPECT_EQ(c.bytes_sent, 60u + 90 + 70 + 70);
}

TEST(Model, KeepAliveReuseIdleAndDnsTieAcrossThreads) {
  TraceBuilder b(500);
  b.dns(2, 100 * us, "api.example.com", 50 * us, {ipv4("10.9.9.9"), ipv4("10.1.2.3")});
  b.socket(1, 200 * us, 1, 3);
  b.connect(1, 210 * us, 1, 3, kPeer, 40 * us);
  b.send(1, 300 * us, 1, 80, 5 * us, "GET /a HTTP/1.1\r\nHost: api.example.com:8080");
  b.recv(1, 310 * us, 1, 0 - EAGAIN, 1 * us);  // not data
  b.recv(1, 400 * us, 1, 500, 2 * us, "HTTP/1.1 200 OK");
  b.recv(1, 410 * us, 1, 700, 2 * us);
  b.send(1, 1000 * us, 1, 90, 5 * us, "POST /b HTTP/1.1\r\nHost: api.example.com:8080");
  b.send(1, 1010 * us, 1, 1000, 5 * us);  // body, same request
  b.recv(1, 1200 * us, 1, 100, 3 * us, "HTTP/1.1 201 Created");
  b.close(1, 1300 * us, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.id, "500:1");
  EXPECT_EQ(c.host, "api.example.com");
  ASSERT_TRUE(c.dns);
  EXPECT_EQ(c.dns->start_ns, 100 * us);
  EXPECT_EQ(c.dns->duration_ns, 50 * us);
  EXPECT_EQ(c.connect_duration_ns, 40 * us);
  EXPECT_FALSE(c.failed());
  EXPECT_EQ(c.bytes_sent, 80u + 90 + 1000);
  EXPECT_EQ(c.bytes_received, 1300u);
  EXPECT_EQ(c.close_ns, 1300 * us);
  EXPECT_EQ(c.protocol, "http/1.1");
  ASSERT_EQ(c.requests.size(), 2u);
  const Exchange& a = c.requests[0];
  EXPECT_EQ(a.method, "GET");
  EXPECT_EQ(a.target, "/a");
  EXPECT_EQ(a.status, 200);
  EXPECT_FALSE(a.reused);
  EXPECT_FALSE(a.idle_ns);
  EXPECT_EQ(a.start_ns, 300 * us);
  EXPECT_EQ(a.sent_ns, 305 * us);
  EXPECT_EQ(a.first_byte_ns, 402 * us);
  EXPECT_EQ(a.end_ns, 412 * us);
  EXPECT_EQ(a.bytes_received, 1200u);
  const Exchange& x = c.requests[1];
  EXPECT_EQ(x.method, "POST");
  EXPECT_EQ(x.status, 201);
  EXPECT_TRUE(x.reused);
  EXPECT_EQ(x.idle_ns, (1000 - 412) * us);
  EXPECT_EQ(x.sent_ns, 1015 * us);
  EXPECT_EQ(x.bytes_sent, 1090u);
}

TEST(Model, ConnectionCloseEndsAtEof) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 50, 5, "GET /close HTTP/1.0");
  b.recv(1, 200, 1, 10, 5, "HTTP/1.0 200 OK");
  b.recv(1, 300, 1, 0, 7);  // EOF
  b.close(1, 400, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  ASSERT_EQ(out.conns[0].requests.size(), 1u);
  EXPECT_EQ(out.conns[0].requests[0].end_ns, 307u);
  EXPECT_EQ(out.conns[0].host, std::nullopt);  // no DNS, no Host header
}

TEST(Model, RefusedConnectIsFailedWithErrnoName) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 30, ECONNREFUSED);
  b.close(1, 50, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_TRUE(out.conns[0].failed());
  EXPECT_EQ(errno_name(out.conns[0].connect_error), "ECONNREFUSED");
  EXPECT_TRUE(out.conns[0].requests.empty());
}

TEST(Model, NonBlockingConnectDurationRunsToConnectDone) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 100, 1, 3, kPeer, 3, EINPROGRESS);
  b.connect_done(1, 600, 1, 3);
  b.close(1, 700, 1, 3);
  TraceBuilder f(2);
  f.socket(1, 0, 1, 3);
  f.connect(1, 100, 1, 3, kPeer, 3, EINPROGRESS);
  f.connect_done(1, 900, 1, 3, ETIMEDOUT);
  auto ok = model_of({&b});
  ASSERT_EQ(ok.conns.size(), 1u);
  EXPECT_EQ(ok.conns[0].connect_duration_ns, 500u);
  EXPECT_FALSE(ok.conns[0].failed());
  auto bad = model_of({&f});
  ASSERT_EQ(bad.conns.size(), 1u);
  EXPECT_EQ(bad.conns[0].connect_duration_ns, 800u);
  EXPECT_TRUE(bad.conns[0].failed());
  EXPECT_EQ(bad.conns[0].close_ns, std::nullopt);  // never closed in the trace
}

TEST(Model, DnsTieNeedsMatchingAddressAndEarlierEnd) {
  TraceBuilder b;
  b.dns(2, 10, "wrong-ip.example", 5, {ipv4("10.0.0.1")});
  b.dns(3, 20, "still-running.example", 1000, {ipv4("10.1.2.3")});  // ends after the connect starts
  b.dns(2, 30, "right.example", 5, {ipv6("::1"), ipv4("10.1.2.3")});
  b.dns(2, 40, "older-match.example", 1, {ipv4("10.1.2.3")});  // starts later, but ends at 41 > 35
  b.socket(1, 100, 1, 3);
  b.connect(1, 110, 1, 3, kPeer, 5);
  b.send(1, 200, 1, 10, 1, "GET / HTTP/1.1\r\nHost: from-header.example");
  b.close(1, 300, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].host, "older-match.example");  // the latest-ending lookup wins

  TraceBuilder h;
  h.dns(2, 10, "other.example", 5, {ipv4("10.0.0.1")});
  h.socket(1, 100, 1, 3);
  h.connect(1, 110, 1, 3, kPeer, 5);
  h.send(1, 200, 1, 10, 1, "GET / HTTP/1.1\r\nHost: from-header.example:8080");
  h.recv(1, 300, 1, 10, 1, "HTTP/1.1 200 OK");
  auto out2 = model_of({&h});
  ASSERT_EQ(out2.conns.size(), 1u);
  EXPECT_EQ(out2.conns[0].host, "from-header.example");
  EXPECT_FALSE(out2.conns[0].dns);
}

TEST(Model, DupKeepsTheConnectionOpenUntilTheLastClose) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.dup(1, 20, 1, 3, 7);
  b.close(1, 30, 1, 3);
  b.send(1, 40, 1, 10, 1);
  b.close(1, 50, 1, 99, EBADF);  // not ours: ignored
  b.close(1, 60, 1, 7);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].close_ns, 60u);
  EXPECT_EQ(out.conns[0].requests.size(), 1u);
}

TEST(Model, InheritedConnectionIsItsOwnConnectionLinkedToTheParent) {
  TraceBuilder parent(100), child(200, 100);
  parent.dns(1, 0, "svc.example", 5, {ipv4("10.1.2.3")});
  parent.socket(1, 10, 1, 3);
  parent.connect(1, 20, 1, 3, kPeer, 5);
  parent.send(1, 30, 1, 10, 1);
  parent.recv(1, 40, 1, 10, 1);
  child.inherit(1, 50, 4, 3, 1);
  child.send(1, 60, 4, 10, 1);
  child.recv(1, 70, 4, 10, 1);
  child.close(1, 80, 4, 3);
  parent.close(1, 90, 1, 3);
  auto out = model_of({&parent, &child});
  ASSERT_EQ(out.conns.size(), 2u);
  const Connection& c = out.conns[0];  // the child's closes first
  EXPECT_EQ(c.id, "200:4");
  EXPECT_TRUE(c.inherited);
  EXPECT_EQ(c.parent_id, "100:1");
  EXPECT_EQ(c.host, "svc.example");
  EXPECT_EQ(c.peer.port, 8080);
  ASSERT_EQ(c.requests.size(), 1u);
  // SPEC §5: reused, since the connection carried an exchange before the fork.
  EXPECT_TRUE(c.requests[0].reused);
  EXPECT_EQ(c.requests[0].index, 1u);
  EXPECT_EQ(c.requests[0].idle_ns, 60u - 41);
  EXPECT_FALSE(out.conns[1].inherited);
}

TEST(Model, InheritedCopyIsNotAnotherConnection) {
  TraceBuilder parent(100), child(200, 100), idle_child(300, 100);
  parent.socket(1, 10, 1, 3);
  parent.connect(1, 20, 1, 3, kPeer, 5);
  parent.send(1, 30, 1, 10, 1, "GET /p HTTP/1.1\r\nHost: svc.example");
  parent.recv(1, 40, 1, 10, 1);
  child.inherit(1, 50, 4, 3, 1);
  child.send(1, 60, 4, 10, 1);
  child.recv(1, 70, 4, 10, 1);
  child.close(1, 80, 4, 3);
  idle_child.inherit(1, 55, 2, 3, 1);  // never used: not reported
  idle_child.close(1, 56, 2, 3);
  parent.close(1, 90, 1, 3);
  TempDir dir;
  TraceSet ts;
  Collected out;
  ASSERT_TRUE(open_built(ts, dir, {&parent, &child, &idle_child}));
  Model m(ts, out);
  Event ev;
  while (ts.next(ev)) m.on_event(ev);
  m.finish();
  ASSERT_EQ(out.conns.size(), 2u);
  EXPECT_EQ(out.conns[0].host, "svc.example");  // from the parent's Host header
  EXPECT_EQ(m.connections(), 1u);
  EXPECT_EQ(m.requests(), 2u);
  EXPECT_EQ(m.reused_requests(), 1u);
}

TEST(Model, ServerFirstBytesFormAnExchange) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.recv(1, 100, 1, 20, 5);  // greeting
  b.send(1, 200, 1, 10, 1);
  b.recv(1, 300, 1, 10, 1);
  b.close(1, 400, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns[0].requests.size(), 2u);
  EXPECT_EQ(out.conns[0].requests[0].sent_ns, 100u);
  EXPECT_EQ(out.conns[0].requests[0].bytes_sent, 0u);
  EXPECT_TRUE(out.conns[0].requests[1].reused);
}

TEST(Model, TlsLibraryPlaintextBuildsExchangesAndWireCountsBytes) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  // The handshake's wire calls are written before the handshake event (which carries its start).
  b.data(1, 110, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("example.com", {"http/1.1"}));
  b.data(1, 200, 1, 3, D::kRecv, 2000, 1, C::kTls, server_hello(true) + ccs());
  b.data(1, 300, 1, 3, D::kSend, 80, 1, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.tls_handshake(1, 100, 1, 3, 210);
  b.data(1, 405, 1, 3, D::kSend, 120, 2);
  b.data(1, 400, 1, 3, D::kSend, 100, 10, C::kHttpReq, "GET /s HTTP/1.1\r\nHost: example.com", tf::kDataTlsPlaintext);
  b.data(1, 500, 1, 3, D::kRecv, 600, 2);
  b.data(1, 500, 1, 3, D::kRecv, 580, 5, C::kHttpResp, "HTTP/1.1 200 OK", tf::kDataTlsPlaintext);
  b.data(1, 700, 1, 3, D::kSend, 120, 2);
  b.data(1, 700, 1, 3, D::kSend, 100, 10, C::kHttpReq, "GET /t HTTP/1.1\r\nHost: example.com", tf::kDataTlsPlaintext);
  b.data(1, 800, 1, 3, D::kRecv, 600, 2);
  b.data(1, 800, 1, 3, D::kRecv, 580, 5, C::kHttpResp, "HTTP/1.1 404 Not Found", tf::kDataTlsPlaintext);
  b.close(1, 900, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->library, "openssl");
  EXPECT_EQ(c.tls->version, "TLSv1.3");
  EXPECT_EQ(c.tls->sni, "example.com");
  EXPECT_EQ(c.tls->duration_ns, 210u);
  EXPECT_EQ(c.bytes_sent, 300u + 80 + 120 + 120);
  EXPECT_EQ(c.bytes_received, 2000u + 600 + 600);
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].target, "/s");
  EXPECT_EQ(c.requests[0].bytes_sent, 100u);
  EXPECT_EQ(c.requests[0].status, 200);
  EXPECT_EQ(c.requests[1].status, 404);
  EXPECT_TRUE(c.requests[1].reused);
}

TEST(Model, Tls13FromTheWire) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", {"http/1.1"}));
  b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  b.data(1, 210, 1, 3, D::kRecv, 1000, 5);
  b.data(1, 300, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.data(1, 310, 1, 3, D::kSend, 150, 2);  // the request
  b.data(1, 400, 1, 3, D::kRecv, 900, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.data(1, 600, 1, 3, D::kSend, 150, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.data(1, 700, 1, 3, D::kRecv, 900, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.close(1, 800, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->library, "wire");
  EXPECT_EQ(c.tls->sni, "wire.example");
  EXPECT_EQ(c.tls->alpn, "http/1.1");
  EXPECT_EQ(c.tls->version, "TLSv1.3");
  EXPECT_EQ(c.tls->cipher, "TLS_AES_128_GCM_SHA256");  // from the ServerHello
  EXPECT_EQ(c.tls->start_ns, 100u);
  EXPECT_EQ(c.tls->duration_ns, 202u);  // to the end of the client's Finished
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].start_ns, 310u);
  EXPECT_EQ(c.requests[0].first_byte_ns, 404u);
  EXPECT_EQ(c.requests[1].start_ns, 600u);
  EXPECT_EQ(c.bytes_sent, 300u + 64 + 150 + 150);
}

// OpenSSL's socket BIO reads the ServerHello record's 5-byte header and its body separately; the
// recorder captures the body (kTlsBody) and the version still comes out.
TEST(Model, Tls13FromTheWireWithTheServerHelloReadInTwo) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", {"http/1.1"}));
  const std::string hello = server_hello(true);
  b.data(1, 200, 1, 3, D::kRecv, 5, 5, C::kTls, hello.substr(0, 5));
  b.data(1, 210, 1, 3, D::kRecv, int64_t(hello.size()) - 5, 5, C::kTlsBody, hello.substr(5));
  b.data(1, 300, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.data(1, 310, 1, 3, D::kSend, 150, 2);  // the request
  b.data(1, 400, 1, 3, D::kRecv, 900, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.close(1, 800, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  ASSERT_TRUE(out.conns[0].tls);
  EXPECT_EQ(out.conns[0].tls->version, "TLSv1.3");
  EXPECT_EQ(out.conns[0].requests.size(), 1u);
}

TEST(Model, Tls13FromTheWireWithRequestCoalescedIntoTheFinishedWrite) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", {}));
  b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  const std::string flight = ccs() + tls_record(0x17, std::string(53, 'f'));
  b.data(1, 300, 1, 3, D::kSend, int64_t(flight.size()) + 140, 2, C::kTls, flight);
  b.data(1, 400, 1, 3, D::kRecv, 900, 4);
  b.close(1, 800, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns[0].requests.size(), 1u);
  EXPECT_EQ(out.conns[0].requests[0].bytes_sent, 140u);
  EXPECT_EQ(out.conns[0].requests[0].start_ns, 300u);
}

// java.net.http writes its TLS 1.3 CCS alone and its Finished in the next write (the recorder
// captures that write's record header): the handshake ends with the Finished, and the request
// is what follows it -- here behind it in the same write, then a write of its own. A trace
// recorded before that capture keeps the old reading (the handshake ends at the CCS).
TEST(Model, Tls13FinishedWrittenApartFromItsCcs) {
  for (const bool captured : {true, false}) {
    SCOPED_TRACE(captured ? "Finished captured" : "older trace");
    TraceBuilder b;
    b.socket(1, 0, 1, 3);
    b.connect(1, 10, 1, 3, kPeer, 10);
    b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", {}));
    b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
    b.data(1, 300, 1, 3, D::kSend, 6, 2, C::kTls, ccs().substr(0, 5));
    const std::string finished = tls_record(0x17, std::string(85, 'f'));
    if (captured) b.data(1, 400, 1, 3, D::kSend, 90 + 40, 2, C::kTls, finished.substr(0, 5));
    else b.data(1, 400, 1, 3, D::kSend, 90 + 40, 2);
    b.data(1, 410, 1, 3, D::kSend, 138, 2);
    b.data(1, 500, 1, 3, D::kRecv, 900, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.close(1, 800, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns.size(), 1u);
    const Connection& c = out.conns[0];
    ASSERT_TRUE(c.tls);
    ASSERT_EQ(c.requests.size(), 1u);
    EXPECT_EQ(c.tls->duration_ns, captured ? 402u - 100 : 302u - 100);
    EXPECT_EQ(c.requests[0].start_ns, 400u);
    EXPECT_EQ(c.requests[0].bytes_sent, captured ? 40u + 138 : 130u + 138);
    EXPECT_EQ(c.bytes_sent, 300u + 6 + 130 + 138);
  }
}

// GnuTLS writes its TLS 1.3 CCS right after reading the ServerHello and reads the rest of the
// server's flight before its Finished: those reads are the handshake, no response. Through a
// proxy they had stretched the CONNECT exchange (the tunnel) over the handshake.
TEST(Model, Tls13CcsWrittenBeforeTheServersFlightIsRead) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 50, 1, 84, 5, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443");
  b.recv(1, 80, 1, 39, 2, "HTTP/1.1 200 Connection established");
  b.data(1, 100, 1, 3, D::kSend, 517, 1, C::kTls, client_hello("a.example", {}));
  const std::string hello = server_hello(true);
  b.data(1, 200, 1, 3, D::kRecv, 5, 1, C::kTls, hello.substr(0, 5));
  b.data(1, 210, 1, 3, D::kRecv, int64_t(hello.size()) - 5, 1, C::kTlsBody, hello.substr(5));
  b.data(1, 300, 1, 3, D::kSend, 6, 2, C::kTls, ccs().substr(0, 5));
  b.data(1, 310, 1, 3, D::kRecv, 6, 1, C::kTls, ccs().substr(0, 5));
  b.data(1, 320, 1, 3, D::kRecv, 844, 1);
  b.data(1, 330, 1, 3, D::kRecv, 74, 1);
  b.data(1, 400, 1, 3, D::kSend, 74, 2, C::kTls, tls_record(0x17, std::string(69, 'f')).substr(0, 5));
  b.data(1, 410, 1, 3, D::kSend, 120, 2);
  b.data(1, 500, 1, 3, D::kRecv, 300, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.close(1, 800, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tunnel);
  EXPECT_EQ(c.tunnel->start_ns + c.tunnel->duration_ns, 82u);
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->duration_ns, 402u - 100);
  ASSERT_EQ(c.requests.size(), 1u);
  EXPECT_EQ(c.requests[0].start_ns, 410u);
  EXPECT_EQ(c.requests[0].bytes_sent, 120u);
  EXPECT_EQ(c.requests[0].bytes_received, 300u);
}

// TLS 1.3 session tickets read before a slow response (node, java): records of one size soon
// after the Finished, then the client reads again before it writes. Times in ns; the
// ServerHello's turn (100 .. 200) and 50 ms make the window in which tickets are looked for.
namespace tickets {

// A TLS 1.3 handshake from the wire ending with the client's Finished (written at 300, end 302),
// and the request written behind it; the client offered ALPN alpn.
void handshake(TraceBuilder& b, const std::vector<std::string>& alpn = {}) {
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", alpn));
  b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  b.data(1, 300, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
}
const std::string kTicket = tls_record(0x17, std::string(250, 't')).substr(0, 5);  // a 255-byte record
const std::string kResponse = tls_record(0x17, std::string(158, 'r')).substr(0, 5);

}  // namespace tickets

TEST(Model, Tls13TicketsReadBeforeASlowResponseAreNotItsFirstByte) {
  for (const bool apart : {false, true}) {
    SCOPED_TRACE(apart ? "a read per ticket" : "both tickets in one read");
    TraceBuilder b;
    tickets::handshake(b);
    b.data(1, 400, 1, 3, D::kSend, 150, 2);  // the request
    if (apart) {
      b.data(1, 1'000, 1, 3, D::kRecv, 255, 4, C::kTls, tickets::kTicket);
      b.data(1, 1'100, 1, 3, D::kRecv, 255, 4);
    } else {
      b.data(1, 1'000, 1, 3, D::kRecv, 510, 4, C::kTls, tickets::kTicket);
    }
    b.data(1, 200'000'000, 1, 3, D::kRecv, 163, 4);  // the response, 200 ms later
    b.data(1, 300'000'000, 1, 3, D::kSend, 150, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.data(1, 400'000'000, 1, 3, D::kRecv, 163, 4, C::kTls, tickets::kResponse);
    b.close(1, 500'000'000, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns.size(), 1u);
    const Connection& c = out.conns[0];
    ASSERT_EQ(c.requests.size(), 2u);
    EXPECT_EQ(c.requests[0].start_ns, 400u);
    EXPECT_EQ(c.requests[0].first_byte_ns, 200'000'004u);
    EXPECT_EQ(c.requests[0].bytes_received, 163u);
    EXPECT_EQ(c.requests[1].first_byte_ns, 400'000'004u);
    EXPECT_EQ(c.bytes_received, 2000u + 510 + 163 + 163);
  }
}

// What the tickets' look may also be, stays what it was.
TEST(Model, Tls13ReadsLikeTicketsThatWereTheResponse) {
  {
    SCOPED_TRACE("one record, then the next request: it was the whole response");
    TraceBuilder b;
    tickets::handshake(b);
    b.data(1, 400, 1, 3, D::kSend, 150, 2);
    b.data(1, 1'000, 1, 3, D::kRecv, 255, 4, C::kTls, tickets::kTicket);
    b.data(1, 2'000, 1, 3, D::kSend, 150, 2);
    b.data(1, 3'000, 1, 3, D::kRecv, 163, 4, C::kTls, tickets::kResponse);
    b.close(1, 4'000, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns[0].requests.size(), 2u);
    EXPECT_EQ(out.conns[0].requests[0].first_byte_ns, 1'004u);
    EXPECT_EQ(out.conns[0].requests[0].bytes_received, 255u);
  }
  {
    SCOPED_TRACE("records of two sizes: the head and the body");
    TraceBuilder b;
    tickets::handshake(b);
    b.data(1, 400, 1, 3, D::kSend, 150, 2);
    b.data(1, 1'000, 1, 3, D::kRecv, 255 + 163, 4, C::kTls, tickets::kTicket);
    b.data(1, 50'000'000, 1, 3, D::kRecv, 1000, 4);
    b.close(1, 60'000'000, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns[0].requests.size(), 1u);
    EXPECT_EQ(out.conns[0].requests[0].first_byte_ns, 1'004u);
    EXPECT_EQ(out.conns[0].requests[0].bytes_received, 255u + 163 + 1000);
  }
  {
    SCOPED_TRACE("long after the Finished: a response's head, its body later");
    TraceBuilder b;
    tickets::handshake(b);
    b.data(1, 400, 1, 3, D::kSend, 150, 2);
    b.data(1, 80'000'000, 1, 3, D::kRecv, 255, 4, C::kTls, tickets::kTicket);
    b.data(1, 110'000'000, 1, 3, D::kRecv, 1000, 4);
    b.close(1, 120'000'000, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns[0].requests.size(), 1u);
    EXPECT_EQ(out.conns[0].requests[0].first_byte_ns, 80'000'004u);
  }
}

// Tickets read before the first request: no exchange of their own, whether the client offered
// HTTP (which only a request can start) or not (the server spoke first: its greeting follows).
TEST(Model, Tls13TicketsReadBeforeTheFirstRequest) {
  {
    SCOPED_TRACE("HTTP offered");
    TraceBuilder b;
    tickets::handshake(b, {"http/1.1"});
    b.data(1, 1'000, 1, 3, D::kRecv, 510, 4, C::kTls, tickets::kTicket);
    b.data(1, 2'000, 1, 3, D::kSend, 150, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.data(1, 3'000, 1, 3, D::kRecv, 163, 4, C::kTls, tickets::kResponse);
    b.close(1, 4'000, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns[0].requests.size(), 1u);
    EXPECT_EQ(out.conns[0].requests[0].start_ns, 2'000u);
    EXPECT_EQ(out.conns[0].requests[0].bytes_received, 163u);
    EXPECT_EQ(out.conns[0].bytes_received, 2000u + 510 + 163);
  }
  {
    SCOPED_TRACE("nothing offered, a greeting");
    TraceBuilder b;
    tickets::handshake(b);
    b.data(1, 1'000, 1, 3, D::kRecv, 510, 4, C::kTls, tickets::kTicket);
    b.data(1, 5'000'000, 1, 3, D::kRecv, 60, 4);
    b.data(1, 6'000'000, 1, 3, D::kSend, 40, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.data(1, 7'000'000, 1, 3, D::kRecv, 60, 4, C::kTls, tls_record(0x17, std::string(55, 'y')).substr(0, 5));
    b.close(1, 8'000'000, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns[0].requests.size(), 2u);
    EXPECT_EQ(out.conns[0].requests[0].start_ns, 5'000'000u);
    EXPECT_EQ(out.conns[0].requests[0].first_byte_ns, 5'000'004u);
    EXPECT_EQ(out.conns[0].requests[0].bytes_received, 60u);
    EXPECT_EQ(out.conns[0].requests[1].start_ns, 6'000'000u);
  }
}

// The server's end of TLS seen only on the wire (node's https): the ClientHello is read. TLS 1.3
// with java's lone CCS: its Finished comes in the next read, the request behind it; our tickets
// are written at once and the answer after the handler's 100 ms; the client's close_notify and
// ours in answer end the session.
TEST(Model, Tls13ServerFromTheWire) {
  const uint64_t finished = 5 + 4 + 32 + 1 + 16;  // TLS_AES_128_GCM_SHA256
  TraceBuilder b;
  b.accept(1, 100, 1, 5, 4, ipv4("10.0.0.9", 40000), 10);
  b.data(1, 200, 1, 5, D::kRecv, 517, 5, C::kTls, client_hello("svc.example", {}));
  b.data(1, 300, 1, 5, D::kSend, 1352, 50, C::kTls, server_hello(true) + ccs());
  b.data(1, 400, 1, 5, D::kRecv, 6, 5, C::kTls, ccs().substr(0, 5));
  b.data(1, 500, 1, 5, D::kRecv, int64_t(finished) + 100, 5);
  b.data(1, 600, 1, 5, D::kSend, 510, 20, C::kTls, tickets::kTicket);
  b.data(1, 100'000'000, 1, 5, D::kSend, 163, 30);
  b.data(1, 200'000'000, 1, 5, D::kRecv, 24, 3, C::kTls, tls_record(0x17, std::string(19, 'a')).substr(0, 5));
  b.data(1, 200'001'000, 1, 5, D::kSend, 24, 3, C::kTls, tls_record(0x17, std::string(19, 'a')).substr(0, 5));
  b.close(1, 200'002'000, 1, 5);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->library, "wire");
  EXPECT_EQ(c.tls->version, "TLSv1.3");
  EXPECT_EQ(c.tls->cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(c.tls->sni, "svc.example");
  EXPECT_EQ(c.tls->start_ns, 205u);
  EXPECT_EQ(c.tls->duration_ns, 505u - 205);
  ASSERT_EQ(c.requests.size(), 1u);
  EXPECT_EQ(c.requests[0].start_ns, 505u);
  EXPECT_EQ(c.requests[0].first_byte_ns, 100'000'000u);
  EXPECT_EQ(c.requests[0].bytes_received, 100u);  // the request (inbound: read)
  EXPECT_EQ(c.requests[0].bytes_sent, 163u);      // the answer, without the tickets
  EXPECT_EQ(c.bytes_sent, 1352u + 510 + 163 + 24);
}

// Tickets written before the request arrived: two records of one size are no exchange even where
// the client offered no ALPN. A full TLS 1.2 handshake ends with our CCS + Finished.
TEST(Model, ServerFromTheWireTicketsFirstAndTls12) {
  {
    SCOPED_TRACE("TLS 1.3, tickets before the request");
    TraceBuilder b;
    b.accept(1, 100, 1, 5, 4, ipv4("10.0.0.9", 40000), 10);
    b.data(1, 200, 1, 5, D::kRecv, 517, 5, C::kTls, client_hello("svc.example", {}));
    b.data(1, 300, 1, 5, D::kSend, 1352, 50, C::kTls, server_hello(true) + ccs());
    b.data(1, 400, 1, 5, D::kRecv, 64, 5, C::kTls, ccs().substr(0, 5));
    b.data(1, 500, 1, 5, D::kSend, 510, 20, C::kTls, tickets::kTicket);
    b.data(1, 600, 1, 5, D::kRecv, 100, 5, C::kTls, tls_record(0x17, std::string(95, 'q')).substr(0, 5));
    b.data(1, 700, 1, 5, D::kSend, 163, 30, C::kTls, tickets::kResponse);
    b.close(1, 800, 1, 5);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns[0].requests.size(), 1u);
    EXPECT_EQ(out.conns[0].requests[0].start_ns, 605u);
    EXPECT_EQ(out.conns[0].requests[0].bytes_sent, 163u);
    EXPECT_EQ(out.conns[0].tls->duration_ns, 405u - 205);
  }
  {
    SCOPED_TRACE("TLS 1.2");
    TraceBuilder b;
    b.accept(1, 100, 1, 5, 4, ipv4("10.0.0.9", 40000), 10);
    b.data(1, 200, 1, 5, D::kRecv, 300, 5, C::kTls, client_hello("old.example", {"http/1.1"}, false));
    b.data(1, 300, 1, 5, D::kSend, 3000, 50, C::kTls, server_hello(false, "http/1.1"));
    b.data(1, 400, 1, 5, D::kRecv, 126, 5, C::kTls, tls_record(0x16, std::string(70, 'k')));
    b.data(1, 500, 1, 5, D::kSend, 51, 5, C::kTls, ccs());
    b.data(1, 600, 1, 5, D::kRecv, 150, 5, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.data(1, 700, 1, 5, D::kSend, 900, 5, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.close(1, 800, 1, 5);
    auto out = model_of({&b});
    const Connection& c = out.conns[0];
    ASSERT_TRUE(c.tls);
    EXPECT_EQ(c.tls->version, "TLSv1.2");
    EXPECT_EQ(c.tls->alpn, "http/1.1");
    EXPECT_EQ(c.tls->duration_ns, 505u - 205);
    ASSERT_EQ(c.requests.size(), 1u);
    EXPECT_EQ(c.requests[0].bytes_received, 150u);
    EXPECT_EQ(c.requests[0].bytes_sent, 900u);
  }
}

TEST(Model, Tls12FullHandshakeFromTheWire) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("old.example", {"h2", "http/1.1"}, false));
  b.data(1, 200, 1, 3, D::kRecv, 3000, 5, C::kTls, server_hello(false, "http/1.1"));
  b.data(1, 300, 1, 3, D::kSend, 126, 2, C::kTls, tls_record(0x16, std::string(70, 'k')));  // ClientKeyExchange...
  b.data(1, 400, 1, 3, D::kRecv, 51, 3, C::kTls, ccs());  // server CCS + Finished
  b.data(1, 500, 1, 3, D::kSend, 150, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.data(1, 600, 1, 3, D::kRecv, 900, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.close(1, 800, 1, 3);
  auto out = model_of({&b});
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->version, "TLSv1.2");
  EXPECT_EQ(c.tls->alpn, "http/1.1");  // the server's choice, visible in 1.2
  EXPECT_EQ(c.tls->alpn_offered, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(c.tls->duration_ns, 303u);  // ClientHello .. end of the server's Finished
  EXPECT_NE(c.protocol, "h2");
  ASSERT_EQ(c.requests.size(), 1u);
  EXPECT_EQ(c.requests[0].start_ns, 500u);
  EXPECT_FALSE(c.requests[0].reused);
}

TEST(Model, H2IsMarkedAndNotSplitIntoFakeExchanges) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.tls_handshake(1, 100, 1, 3, 50, "h2");
  b.data(1, 200, 1, 3, D::kSend, 100, 1, C::kOpaque, "PRI * HT", tf::kDataTlsPlaintext);
  b.data(1, 300, 1, 3, D::kRecv, 100, 1, C::kNone, "", tf::kDataTlsPlaintext);
  b.data(1, 400, 1, 3, D::kSend, 100, 1, C::kNone, "", tf::kDataTlsPlaintext);
  b.close(1, 900, 1, 3);
  TraceBuilder w;  // wire only, client offers only h2
  w.socket(1, 0, 1, 3);
  w.connect(1, 10, 1, 3, kPeer, 10);
  w.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("h2.example", {"h2"}));
  w.data(1, 200, 1, 3, D::kRecv, 300, 1);
  w.data(1, 300, 1, 3, D::kSend, 300, 1);
  w.data(1, 400, 1, 3, D::kRecv, 300, 1);
  for (auto* t : {&b, &w}) {
    auto out = model_of({t});
    ASSERT_EQ(out.conns.size(), 1u);
    EXPECT_EQ(out.conns[0].protocol, "h2");
    EXPECT_TRUE(out.conns[0].requests.empty());
  }
}

TEST(Model, H2FrameHeadersCountStreams) {
  auto frame = [](uint8_t type, uint32_t stream) {
    return std::string{0, 0, 10, char(type), 4, char(stream >> 24), char(stream >> 16), char(stream >> 8), char(stream)};
  };
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.tls_handshake(1, 100, 1, 3, 50, "h2");
  // SETTINGS, then HEADERS on streams 1 and 3, DATA on 1, trailers (HEADERS) on 1 again, HEADERS on 5.
  b.data(1, 200, 1, 3, D::kSend, 100, 1, C::kH2Frames, frame(4, 0) + frame(1, 1) + frame(1, 3), tf::kDataTlsPlaintext);
  b.data(1, 300, 1, 3, D::kSend, 100, 1, C::kH2Frames, frame(0, 1) + frame(1, 1) + frame(1, 5), tf::kDataTlsPlaintext);
  b.data(1, 400, 1, 3, D::kRecv, 100, 1, C::kH2Frames, frame(1, 1) + frame(1, 3), tf::kDataTlsPlaintext);
  b.data(1, 500, 1, 3, D::kSend, 100, 1, C::kH2Frames, std::string("\0\0\1\1", 4), tf::kDataTlsPlaintext);  // cut
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].protocol, "h2");
  EXPECT_EQ(out.conns[0].h2_streams, 3u);
  // Without decoded headers (no H2HeadersEvent) each stream is still a request, its method,
  // target and status unknown; stream 5 got no response HEADERS.
  const auto& rq = out.conns[0].requests;
  ASSERT_EQ(rq.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rq[i].stream, 1 + 2 * i);
    EXPECT_EQ(rq[i].method, "");
    EXPECT_EQ(rq[i].status, 0);
  }
  EXPECT_TRUE(rq[0].first_byte_ns && rq[1].first_byte_ns);
  EXPECT_FALSE(rq[2].first_byte_ns);
}

TEST(Model, PoolMissWhenAnIdleConnectionToTheSameEndpointExists) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 10, 1);
  b.recv(1, 200, 1, 10, 1);  // answered: idle from here
  b.socket(1, 300, 2, 4);
  b.connect(1, 310, 2, 4, kPeer, 10);  // a miss
  b.send(1, 400, 2, 10, 1);            // conn 2 now busy (waiting)
  b.socket(1, 500, 3, 5);
  b.connect(1, 510, 3, 5, ipv4("10.1.2.3", 9999), 10);  // other port: not a miss
  b.close(1, 600, 1, 3);
  b.socket(1, 700, 4, 6);
  b.connect(1, 710, 4, 6, kPeer, 10);  // conn 1 closed, conn 2 busy: not a miss
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 4u);
  EXPECT_EQ(out.by_conn(2)->pool_miss, 1u);
  EXPECT_EQ(out.by_conn(3)->pool_miss, 0u);
  EXPECT_EQ(out.by_conn(4)->pool_miss, 0u);
}

// curl to localhost with 127.0.0.1 refused and ::1 listening: it tries 127.0.0.1 first, then ::1.
TEST(ModelAttempts, RefusedFirstAddressIsAnAttemptOfTheWinner) {
  TraceBuilder b;
  b.socket(1, 0, 1, 5);
  b.connect(1, 10, 1, 5, ipv4("127.0.0.1", 8080), 50, EINPROGRESS);
  b.connect_done(1, 70, 1, 5, ECONNREFUSED);
  b.close(1, 2000, 1, 5);
  b.socket(1, 2010, 2, 5);
  b.connect(1, 2020, 2, 5, ipv6("::1", 8080), 250, EINPROGRESS);
  b.connect_done(1, 2300, 2, 5);
  b.send(1, 2400, 2, 79, 10, "GET / HTTP/1.1\r\nHost: localhost:8080");
  b.recv(1, 3000, 2, 100, 5, "HTTP/1.1 200 OK");
  b.close(1, 4000, 2, 5);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.conn, 2u);
  EXPECT_FALSE(c.failed());
  ASSERT_EQ(c.attempts.size(), 1u);
  EXPECT_EQ(format_addr(c.attempts[0].peer, true), "127.0.0.1:8080");
  EXPECT_EQ(c.attempts[0].start_ns, 10u);
  EXPECT_EQ(c.attempts[0].duration_ns, 60u);
  EXPECT_EQ(errno_name(c.attempts[0].error), "ECONNREFUSED");
  EXPECT_EQ(c.requests.size(), 1u);
}

// Happy eyeballs: the second family's connect wins while the first is still pending; the loser is
// closed unfinished.
TEST(ModelAttempts, AbandonedPendingConnectIsAnAttemptOfTheWinner) {
  TraceBuilder b;
  b.dns(1, 0, "dual.example", 100, {ipv6("2001:db8::1"), ipv4("10.1.2.3")});
  b.socket(1, 200, 1, 5);
  b.connect(1, 210, 1, 5, ipv6("2001:db8::1", 8080), 20, EINPROGRESS);
  b.socket(1, 250'000'210, 2, 6);
  b.connect(1, 250'000'220, 2, 6, kPeer, 20, EINPROGRESS);
  b.connect_done(1, 250'000'500, 2, 6);
  b.close(1, 250'000'600, 1, 5);
  b.send(1, 250'001'000, 2, 10, 1, "GET / HTTP/1.1\r\nHost: dual.example");
  b.recv(1, 250'002'000, 2, 10, 1, "HTTP/1.1 200 OK");
  b.close(1, 250'003'000, 2, 6);
  Collected out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.conn, 2u);
  EXPECT_EQ(c.host, "dual.example");
  EXPECT_TRUE(c.dns_first_use);  // the lookup's first use moved over from the loser
  ASSERT_EQ(c.attempts.size(), 1u);
  EXPECT_EQ(c.attempts[0].error, 0);  // abandoned, not failed
  EXPECT_EQ(c.attempts[0].duration_ns, 250'000'600u - 210);
}

TEST(ModelAttempts, ConnectThatNeverSucceededIsOneFailedConnection) {
  TraceBuilder b;
  b.socket(1, 0, 1, 5);
  b.connect(1, 10, 1, 5, ipv4("127.0.0.1", 8080), 50, ECONNREFUSED);
  b.close(1, 100, 1, 5);
  b.socket(1, 110, 2, 5);
  b.connect(1, 120, 2, 5, ipv6("::1", 8080), 50, ECONNREFUSED);
  b.close(1, 200, 2, 5);
  // Another endpoint later: the attempts above are not its.
  b.socket(1, 300, 3, 5);
  b.connect(1, 310, 3, 5, ipv4("127.0.0.1", 9090), 10);
  b.close(1, 400, 3, 5);
  TempDir dir;
  TraceSet ts;
  Collected out;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  Model m(ts, out);
  Event ev;
  while (ts.next(ev)) m.on_event(ev);
  m.finish();
  ASSERT_EQ(out.conns.size(), 2u);
  const Connection* failed = out.by_conn(2);
  ASSERT_TRUE(failed);
  EXPECT_TRUE(failed->failed());
  ASSERT_EQ(failed->attempts.size(), 1u);
  EXPECT_EQ(format_addr(failed->attempts[0].peer, true), "127.0.0.1:8080");
  EXPECT_TRUE(out.by_conn(3)->attempts.empty());
  EXPECT_EQ(m.connections(), 2u);
  EXPECT_EQ(m.failed_connects(), 1u);
}

// A client retrying the same address is not a race: each refused connect is its own.
TEST(ModelAttempts, RetriesToTheSameAddressStayConnections) {
  TraceBuilder b;
  for (uint32_t i = 1; i <= 3; ++i) {
    b.socket(1, i * 1000, i, 5);
    b.connect(1, i * 1000 + 10, i, 5, kPeer, 50, ECONNREFUSED);
    b.close(1, i * 1000 + 100, i, 5);
  }
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 3u);
  for (const auto& c : out.conns) {
    EXPECT_TRUE(c.failed());
    EXPECT_TRUE(c.attempts.empty());
  }
}

// The JDK opens and closes sockets at start-up that never connect; a listening socket never
// connects either. None of them is a connection.
TEST(ModelAttempts, SocketsThatNeverConnectedAreNotConnections) {
  TraceBuilder b;
  for (uint32_t i = 1; i <= 8; ++i) {
    b.socket(1, i * 10, i, 8);
    b.close(1, i * 10 + 5, i, 8);
  }
  b.socket(1, 200, 9, 9);  // listening: open until the end
  b.socket(1, 300, 10, 10);
  b.connect(1, 310, 10, 10, kPeer, 10);
  b.send(1, 400, 10, 10, 1);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].conn, 10u);
}

// The JDK connects AF_INET6 sockets to ::ffff:127.0.0.1 after an IPv4 lookup.
TEST(ModelAttempts, MappedPeerFindsItsLookup) {
  TraceBuilder b;
  b.dns(1, 0, "localhost", 100, {ipv4("127.0.0.1")});
  b.socket(1, 200, 1, 8);
  b.connect(1, 210, 1, 8, ipv6("::ffff:127.0.0.1", 8080), 20);
  b.send(1, 300, 1, 10, 1);
  b.recv(1, 400, 1, 10, 1);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].host, "localhost");
  ASSERT_TRUE(out.conns[0].dns);
  EXPECT_EQ(out.conns[0].dns->start_ns, 0u);
}

TEST(ModelAttempts, SniNamesTheHostWhenNothingElseDoes) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, ipv6("::ffff:10.1.2.3", 443), 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("sni.example", {"http/1.1"}));
  b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  b.data(1, 300, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].host, "sni.example");
}

// A pool of one shared by two threads: thread 1 is still reading its body when thread 2 opens a
// second connection. That is concurrency, not a miss.
TEST(ModelPoolMiss, ConnectionStillReceivingItsBodyIsBusy) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 10, 1);
  b.recv(1, 200, 1, 100, 1, "HTTP/1.1 200 OK");  // headers
  b.socket(2, 300, 2, 4);
  b.connect(2, 310, 2, 4, kPeer, 10);
  b.recv(1, 400, 1, 5000, 1);  // more of the body: conn 1 was busy
  b.send(2, 410, 2, 10, 1);
  b.recv(2, 500, 2, 100, 1);
  b.send(1, 600, 1, 10, 1);
  b.close(1, 700, 1, 3);
  b.close(2, 710, 2, 4);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 2u);
  EXPECT_EQ(out.by_conn(2)->pool_miss, 0u);
}

TEST(ModelPoolMiss, ConnectionWhoseNextCallIsAWriteWasIdle) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 10, 1);
  b.recv(1, 200, 1, 100, 1, "HTTP/1.1 200 OK");
  b.socket(2, 300, 2, 4);
  b.connect(2, 310, 2, 4, kPeer, 10);
  b.recv(1, 320, 1, 0 - EAGAIN, 1);  // a failed read moves nothing: still undecided
  b.send(2, 410, 2, 10, 1);
  b.send(1, 420, 1, 10, 1);  // the next request: conn 1 was idle when conn 2 was opened
  b.recv(2, 500, 2, 100, 1);
  b.close(2, 710, 2, 4);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 2u);
  EXPECT_EQ(out.by_conn(2)->pool_miss, 1u);
}

std::string server_hello_with_suite(uint8_t hi, uint8_t lo) {
  std::string sh = server_hello(false, "http/1.1");
  // record(5) + handshake header(4) + version(2) + random(32) + session id length(1, empty)
  sh[5 + 4 + 2 + 32 + 1] = char(hi);
  sh[5 + 4 + 2 + 32 + 2] = char(lo);
  return sh;
}

TEST(ModelTlsWire, Tls12CipherFromTheServerHello) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("old.example", {"http/1.1"}, false));
  b.data(1, 200, 1, 3, D::kRecv, 3000, 5, C::kTls, server_hello_with_suite(0xc0, 0x2f));
  b.data(1, 300, 1, 3, D::kSend, 126, 2, C::kTls, tls_record(0x16, std::string(70, 'k')));
  b.data(1, 400, 1, 3, D::kRecv, 51, 3, C::kTls, ccs());
  b.data(1, 500, 1, 3, D::kSend, 150, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
  auto out = model_of({&b});
  ASSERT_TRUE(out.conns[0].tls);
  EXPECT_EQ(out.conns[0].tls->cipher, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
  EXPECT_EQ(cipher_suite_name(0xfefe), "0xfefe");
}

// PostgreSQL: SSLRequest (8 bytes), the server's 'S', then the handshake; seen only on the wire.
TEST(ModelTlsWire, StartTlsRoundTripIsAnExchangeAndTheHandshakeIsStillFound) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 8, 1);
  b.recv(1, 150, 1, 1, 1);
  b.data(1, 200, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("db.example", {}));
  b.data(1, 300, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  b.data(1, 400, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.data(1, 500, 1, 3, D::kSend, 90, 2, C::kTls, tls_record(0x17, std::string(20, 'q')));
  b.data(1, 600, 1, 3, D::kRecv, 400, 2, C::kTls, tls_record(0x17, std::string(20, 'r')));
  b.close(1, 700, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->version, "TLSv1.3");
  EXPECT_EQ(c.tls->start_ns, 200u);
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].bytes_sent, 8u);
  EXPECT_EQ(c.requests[0].bytes_received, 1u);
  EXPECT_EQ(c.requests[1].start_ns, 500u);
  EXPECT_TRUE(c.requests[1].reused);
}

// The same through libpq's OpenSSL: exchanges come from the plaintext, but the SSLRequest round
// trip happened before any of it and is only on the wire.
TEST(ModelTlsWire, StartTlsRoundTripGoesFirstWithLibraryTls) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 8, 1);
  b.recv(1, 150, 1, 1, 1);
  b.data(1, 210, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("", {}));
  b.data(1, 300, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  b.data(1, 400, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
  b.tls_handshake(1, 200, 1, 3, 210, "", "");
  b.data(1, 500, 1, 3, D::kSend, 90, 2);
  b.data(1, 500, 1, 3, D::kSend, 63, 4, C::kNone, "", tf::kDataTlsPlaintext);
  b.data(1, 600, 1, 3, D::kRecv, 431, 2);
  b.data(1, 600, 1, 3, D::kRecv, 414, 4, C::kNone, "", tf::kDataTlsPlaintext);
  b.close(1, 700, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[0].index, 0u);
  EXPECT_EQ(c.requests[0].bytes_sent, 8u);
  EXPECT_FALSE(c.requests[0].reused);
  EXPECT_EQ(c.requests[1].index, 1u);
  EXPECT_EQ(c.requests[1].bytes_sent, 63u);
  EXPECT_TRUE(c.requests[1].reused);
  EXPECT_EQ(c.requests[1].idle_ns, 500u - 151);
}

// Nor when the end of the stream (asyncio reads to EOF after its alert) or the server's own
// close_notify follows it.
TEST(ModelTlsWire, ClientCloseNotifyIsNotAnExchange) {
  enum After { kClose, kEof, kPeersAlert };
  for (bool tls13 : {true, false})
    for (After after : {kClose, kEof, kPeersAlert}) {
    TraceBuilder b;
    b.socket(1, 0, 1, 3);
    b.connect(1, 10, 1, 3, kPeer, 10);
    b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", {"http/1.1"}, tls13));
    if (tls13) {
      b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
      b.data(1, 300, 1, 3, D::kSend, 64, 2, C::kTls, ccs() + tls_record(0x17, std::string(53, 'f')));
    } else {
      b.data(1, 200, 1, 3, D::kRecv, 3000, 5, C::kTls, server_hello(false));
      b.data(1, 300, 1, 3, D::kSend, 126, 2, C::kTls, tls_record(0x16, std::string(70, 'k')));
      b.data(1, 350, 1, 3, D::kRecv, 51, 3, C::kTls, ccs());
    }
    b.data(1, 400, 1, 3, D::kSend, 150, 2, C::kTls, tls_record(0x17, std::string(20, 'x')));
    b.data(1, 500, 1, 3, D::kRecv, 900, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
    const std::string alert = tls13 ? tls_record(0x17, std::string(19, 'a')) : tls_record(0x15, std::string(26, 'a'));
    b.data(1, 600, 1, 3, D::kSend, alert.size(), 2, C::kTls, alert);
    if (after == kPeersAlert) b.data(1, 620, 1, 3, D::kRecv, alert.size(), 2, C::kTls, alert);
    if (after != kClose) b.data(1, 650, 1, 3, D::kRecv, 0, 2);
    b.close(1, 700, 1, 3);
    auto out = model_of({&b});
    ASSERT_EQ(out.conns.size(), 1u);
    EXPECT_EQ(out.conns[0].requests.size(), 1u) << (tls13 ? "TLS 1.3" : "TLS 1.2") << ", then " << after;
    EXPECT_EQ(out.conns[0].requests[0].end_ns, 504u);
    EXPECT_EQ(out.conns[0].bytes_received, (tls13 ? 2000u + 900 : 3000u + 51 + 900) + (after == kPeersAlert ? alert.size() : 0));
  }
}

// node writes CCS + Finished + the first request in one call; the recorder keeps only the CCS
// header of such a flight. The Finished size follows from the suite (here SHA-256: 58 bytes).
TEST(ModelTlsWire, Tls13RequestCoalescedBehindACutFlight) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.data(1, 100, 1, 3, D::kSend, 300, 1, C::kTls, client_hello("wire.example", {}));
  b.data(1, 200, 1, 3, D::kRecv, 2000, 5, C::kTls, server_hello(true) + ccs());
  b.data(1, 300, 1, 3, D::kSend, 6 + 58 + 104, 2, C::kTls, ccs().substr(0, 5));
  b.data(1, 400, 1, 3, D::kRecv, 684, 4, C::kTls, tls_record(0x17, std::string(20, 'x')));
  b.close(1, 800, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns[0].requests.size(), 1u);
  EXPECT_EQ(out.conns[0].requests[0].bytes_sent, 104u);
  EXPECT_EQ(out.conns[0].requests[0].start_ns, 300u);
  EXPECT_EQ(out.conns[0].requests[0].sent_ns, 302u);
}

TEST(ModelHttpHeaders, TraceparentCutTargetAndResponseConnectionHeaders) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 80, 1,
         "GET /a HTTP/1.1\r\nHost: h.example\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  b.recv(1, 200, 1, 100, 1, "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=100");
  const std::string long_target = "/" + std::string(255, 'x');
  b.data(1, 300, 1, 3, D::kSend, 600, 1, C::kHttpReq, "GET " + long_target + "\r\nHost: h.example", tf::kDataCaptureCut);
  b.recv(1, 400, 1, 100, 1, "HTTP/1.1 200 OK\r\nConnection: close");
  b.send(1, 500, 1, 80, 1, "GET /c HTTP/1.1\r\nHost: h.example");
  b.recv(1, 600, 1, 100, 1, "HTTP/1.1 204 No Content");
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  const auto& r = out.conns[0].requests;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(r[0].connection_close, false);
  EXPECT_EQ(r[0].keep_alive_timeout_s, 5);
  EXPECT_FALSE(r[0].target_cut);
  EXPECT_EQ(r[1].target, long_target);
  EXPECT_TRUE(r[1].target_cut);
  EXPECT_EQ(r[1].method, "GET");
  EXPECT_EQ(r[1].connection_close, true);
  EXPECT_EQ(r[1].keep_alive_timeout_s, std::nullopt);
  EXPECT_EQ(r[1].traceparent, "");
  EXPECT_EQ(r[2].connection_close, std::nullopt);  // no Connection header: not known
  EXPECT_EQ(r[2].status, 204);
}

// Java's HttpClient: the server's early "200 OK" is read (on the selector thread) while the
// request body's write is still under way. Placed at their completion, the read comes before the
// write returned.
TEST(ModelOrdering, EarlyResponseWhileTheLastWriteIsStillUnderWay) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);
  b.connect(1, 10, 1, 3, kPeer, 10);
  b.send(1, 100, 1, 200, 10, "POST /upload HTTP/1.1\r\nHost: h.example");
  b.send(1, 120, 1, 1'000'000, 480);  // body: returns at 600
  b.recv(2, 150, 1, 100, 250, "HTTP/1.1 200 OK");  // complete at 400
  b.close(1, 700, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  ASSERT_EQ(out.conns[0].requests.size(), 1u);
  const Exchange& x = out.conns[0].requests[0];
  EXPECT_EQ(x.start_ns, 100u);
  EXPECT_EQ(x.first_byte_ns, 400u);
  EXPECT_LE(x.sent_ns, *x.first_byte_ns);  // wait = first_byte - sent is never negative
  EXPECT_EQ(x.sent_ns, 400u);
  EXPECT_EQ(x.end_ns, 600u);  // the exchange lasts until its last call returned
  EXPECT_EQ(x.bytes_sent, 1'000'200u);
  EXPECT_EQ(x.status, 200);
}

// A server: the listening socket never connects (not a connection); an accepted one is, even
// when the client sent nothing before closing (a health check).
TEST(ModelAttempts, ListeningSocketIsNotAConnectionButAnAcceptedOneIs) {
  TraceBuilder b;
  b.socket(1, 0, 1, 3);  // socket, bind, listen
  tf::AcceptEvent a{};
  a.h = TraceBuilder::head(tf::EventKind::kAccept, 2, 100);
  a.dur_ns = 10;
  a.fd = 4;
  a.listen_fd = 3;
  a.peer = ipv4("127.0.0.1", 50000);
  a.local = ipv4("127.0.0.1", 8080);
  b.add(1, a);
  b.close(1, 200, 2, 4);
  b.close(1, 300, 1, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 1u);
  EXPECT_EQ(out.conns[0].conn, 2u);
  EXPECT_EQ(format_addr(out.conns[0].peer, true), "127.0.0.1:50000");
  EXPECT_EQ(format_addr(out.conns[0].local, true), "127.0.0.1:8080");
}

// A socket adopted across exec (kExecInherit) is the same connection, going on in the new image.
TEST(Model, SocketSurvivingExecIsTheSameConnection) {
  if (event_min_size(uint16_t(tf::EventKind::kExecInherit)) == 0)
    GTEST_SKIP() << "this reader does not deliver kExecInherit yet";
  TraceBuilder old_image(500), new_image(500);
  old_image.socket(1, 0, 1, 3);
  old_image.connect(1, 10, 1, 3, kPeer, 10);
  old_image.send(1, 100, 1, 10, 1, "GET /before HTTP/1.1\r\nHost: h.example");
  old_image.recv(1, 200, 1, 10, 1);
  tf::InheritEvent e{};
  e.h = TraceBuilder::head(tf::EventKind::kExecInherit, 1, 300);
  e.fd = 3;
  e.parent_conn = 1;
  new_image.add(1, e);
  new_image.send(1, 400, 1, 10, 1, "GET /after HTTP/1.1\r\nHost: h.example");
  new_image.recv(1, 500, 1, 10, 1);
  new_image.close(1, 600, 1, 3);
  auto out = model_of({&old_image, &new_image});
  ASSERT_EQ(out.conns.size(), 1u);
  const Connection& c = out.conns[0];
  EXPECT_EQ(c.id, "500:1");
  EXPECT_EQ(c.close_ns, 600u);
  ASSERT_EQ(c.requests.size(), 2u);
  EXPECT_EQ(c.requests[1].target, "/after");
  EXPECT_TRUE(c.requests[1].reused);
}

}  // namespace
}  // namespace httptrace::testing

namespace httptrace::testing {
namespace {

TEST(Model, ConnectionsOpenWhenEventsWereLostSaySo) {
  TraceBuilder b(500);
  b.socket(1, 100 * us, 1, 3);
  b.connect(1, 110 * us, 1, 3, kPeer, 10 * us);
  b.lost(2, 200 * us, 4, tf::DropCause::kDiskFull);  // another thread of the process lost four
  b.send(1, 300 * us, 1, 80, 5 * us, "GET /a HTTP/1.1");
  b.recv(1, 310 * us, 1, 100, 5 * us, "HTTP/1.1 200 OK");
  b.close(1, 400 * us, 1, 3);
  b.socket(1, 500 * us, 2, 3);  // opened after: nothing of it can have been lost before
  b.connect(1, 510 * us, 2, 3, kPeer, 10 * us);
  b.close(1, 600 * us, 2, 3);
  auto out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 2u);
  EXPECT_TRUE(out.by_conn(1)->events_lost);
  EXPECT_FALSE(out.by_conn(2)->events_lost);
}

}  // namespace
}  // namespace httptrace::testing
