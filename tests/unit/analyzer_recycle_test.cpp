// The model recycles closed connections' state and the pipe recycles batch slots: a connection
// that follows a richer one must not inherit anything from it, and lookups sent through the pipe
// must arrive intact even when their slots held longer ones before.
#include <algorithm>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "analyzer/export/connection_pipe.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t us = 1000;

// Four connection shapes in a de Bruijn order: each shape follows each shape (itself included),
// and since connections do not overlap, each reuses the state the previous one left.
int shape(uint32_t conn) { return "0010203112132233"[conn % 16] - '0'; }

void add_connection(TraceBuilder& b, uint32_t conn, uint64_t t) {
  const int fd = 3 + int(conn % 5);
  b.socket(1, t, conn, fd);
  switch (shape(conn)) {
    case 0:  // lookup, TLS, h2: host, dns, tls and protocol set, no requests
      b.dns(1, t + 1 * us, "a-rather-long-host-name-for-the-heap.example.com", 2 * us, {ipv4("10.0.0.1")});
      b.connect(1, t + 5 * us, conn, fd, ipv4("10.0.0.1", 443), 3 * us);
      b.tls_handshake(1, t + 10 * us, conn, fd, 4 * us, "h2");
      break;
    case 1:  // plain keep-alive with two requests
      b.connect(1, t + 5 * us, conn, fd, ipv4("10.0.0.2", 80), 3 * us);
      b.send(1, t + 10 * us, conn, 50, 1 * us, "GET /one HTTP/1.1\r\nHost: h1.example");
      b.recv(1, t + 20 * us, conn, 70, 1 * us, "HTTP/1.1 200 OK");
      b.send(1, t + 30 * us, conn, 50, 1 * us, "GET /two HTTP/1.1\r\nHost: h1.example");
      b.recv(1, t + 40 * us, conn, 70, 1 * us, "HTTP/1.1 404 Not Found");
      break;
    case 2:  // bare socket: nothing but open and close, which is not a connection
      break;
    case 3:  // refused connect
      b.connect(1, t + 5 * us, conn, fd, ipv4("10.0.0.3", 81), 3 * us, ECONNREFUSED);
      break;
  }
  b.close(1, t + 50 * us, conn, fd);
}

void expect_same(const Connection& a, const Connection& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.fd, b.fd);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.peer.port, b.peer.port);
  EXPECT_EQ(a.start_ns, b.start_ns);
  EXPECT_EQ(a.close_ns, b.close_ns);
  EXPECT_EQ(a.bytes_sent, b.bytes_sent);
  EXPECT_EQ(a.bytes_received, b.bytes_received);
  EXPECT_EQ(a.dns.has_value(), b.dns.has_value());
  EXPECT_EQ(a.has_connect, b.has_connect);
  EXPECT_EQ(a.connect_error, b.connect_error);
  EXPECT_EQ(a.tls.has_value(), b.tls.has_value());
  EXPECT_EQ(a.protocol, b.protocol);
  EXPECT_EQ(a.pool_miss, b.pool_miss);
  ASSERT_EQ(a.requests.size(), b.requests.size()) << a.id;
  for (size_t i = 0; i < a.requests.size(); ++i) {
    EXPECT_EQ(a.requests[i].index, b.requests[i].index);
    EXPECT_EQ(a.requests[i].reused, b.requests[i].reused);
    EXPECT_EQ(a.requests[i].idle_ns, b.requests[i].idle_ns);
    EXPECT_EQ(a.requests[i].target, b.requests[i].target);
    EXPECT_EQ(a.requests[i].status, b.requests[i].status);
  }
}

TEST(Recycling, ConnectionsThroughThePipeMatchTheModelInline) {
  TraceBuilder b(700);
  constexpr uint32_t kConns = 6000;  // several batches, so slots and ConnStates are reused
  for (uint32_t i = 1; i <= kConns; ++i) add_connection(b, i, uint64_t(i) * 100 * us);
  Collected inline_out = model_of({&b});
  uint32_t kept = 0;
  for (uint32_t i = 1; i <= kConns; ++i) kept += shape(i) != 2;
  ASSERT_EQ(inline_out.conns.size(), kept);

  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  Collected piped;
  {
    ConnectionPipe pipe(piped);
    Model m(ts, pipe);
    Event ev;
    while (ts.next(ev)) m.on_event(ev);
    m.finish();
    pipe.close();
  }
  ASSERT_EQ(piped.conns.size(), kept);
  for (uint32_t i = 0; i < kept; ++i) expect_same(piped.conns[i], inline_out.conns[i]);
  // Refused connects are held as possible attempts and come out later: compare in id order.
  auto by_id = [](const Connection& x, const Connection& y) { return x.conn < y.conn; };
  std::sort(piped.conns.begin(), piped.conns.end(), by_id);
  // The shapes are what they should be, not only the same both ways.
  for (uint32_t i = 0, want = 1; i < kept; ++i, ++want) {
    const Connection& c = piped.conns[i];
    while (shape(want) == 2) ++want;
    ASSERT_EQ(c.conn, want);
    EXPECT_EQ(c.protocol == "h2", shape(c.conn) == 0);
    EXPECT_EQ(c.tls.has_value(), shape(c.conn) == 0);
    ASSERT_EQ(c.requests.size(), shape(c.conn) == 1 ? 2u : 0u);
    if (shape(c.conn) == 1) {
      EXPECT_FALSE(c.requests[0].idle_ns);
    }
    EXPECT_EQ(c.failed(), shape(c.conn) == 3);
  }
}

TEST(Recycling, LookupsThroughThePipeArriveIntactAndInOrderOnAnotherThread) {
  struct Recorder : ConnectionSink, DnsSink {
    void on_connection(const Connection& c) override { conns.push_back(c.conn); }
    void on_dns(const DnsLookup& l) override {
      lookups.push_back(l);
      other_thread = other_thread && std::this_thread::get_id() != caller;
    }
    std::vector<uint32_t> conns;
    std::vector<DnsLookup> lookups;
    std::thread::id caller = std::this_thread::get_id();
    bool other_thread = true;
  } rec;
  constexpr int kN = 20000;
  auto lookup = [](int i) {
    DnsLookup l;
    l.pid = i;
    l.host = std::string(size_t(i % 3 == 0 ? 40 : i % 5), 'a' + char(i % 26));
    l.start_ns = uint64_t(i) * 7;
    l.error = i % 11 == 0 ? -2 : 0;
    for (int k = 0; k < i % 4; ++k) l.addresses.push_back(ipv4("10.0.0.1", uint16_t(i + k)));
    return l;
  };
  {
    ConnectionPipe pipe(rec, &rec);
    for (int i = 0; i < kN; ++i) {
      pipe.on_dns(lookup(i));
      if (i % 3 == 0) {
        Connection c;
        c.conn = uint32_t(i);
        pipe.on_connection(std::move(c));
      }
    }
    pipe.close();
  }
  ASSERT_EQ(rec.lookups.size(), size_t(kN));
  for (int i = 0; i < kN; ++i) {
    const DnsLookup want = lookup(i);
    const DnsLookup& got = rec.lookups[size_t(i)];
    ASSERT_EQ(got.pid, want.pid);
    ASSERT_EQ(got.host, want.host) << i;
    ASSERT_EQ(got.start_ns, want.start_ns);
    ASSERT_EQ(got.error, want.error);
    ASSERT_EQ(got.addresses.size(), want.addresses.size()) << i;
    for (size_t k = 0; k < want.addresses.size(); ++k) ASSERT_EQ(got.addresses[k].port, want.addresses[k].port);
  }
  ASSERT_EQ(rec.conns.size(), size_t((kN + 2) / 3));
  for (size_t i = 0; i < rec.conns.size(); ++i) ASSERT_EQ(rec.conns[i], uint32_t(i * 3));
  EXPECT_TRUE(rec.other_thread);
}

}  // namespace
}  // namespace httptrace::testing
