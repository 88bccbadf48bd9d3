// new_reason (SPEC §5) on synthetic traces: each reason, the precedence between them, what is
// replaced and for how long it sat idle; the log-linear percentiles against exact sorted values;
// the `why` report and the JSON keys.
#include <cerrno>
#include <cmath>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/model/new_reason.h"
#include "analyzer/model/percentiles.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

constexpr uint64_t ms = 1'000'000;
const tf::Addr kPeer = ipv4("10.1.2.3", 8080);

// One request/response on conn at t (ms), answered 1 ms later.
void exchange(TraceBuilder& b, uint32_t conn, uint64_t t, std::string_view resp = "HTTP/1.1 200 OK") {
  b.send(1, t * ms, conn, 50, 1000, "GET / HTTP/1.1\r\nHost: api");
  b.recv(1, t * ms + ms, conn, 100, 1000, resp);
}
void open(TraceBuilder& b, uint32_t conn, uint64_t t, int fd, int32_t tid = 1) {
  b.socket(tid, t * ms, conn, fd);
  b.connect(tid, t * ms + 10, conn, fd, kPeer, 100);
}

NewReason reason_of(const Collected& out, uint32_t conn) {
  const Connection* c = out.by_conn(conn);
  return c ? c->new_reason : NewReason::kNone;
}

TEST(NewReason, FirstConnectionToAnEndpoint) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);
  b.close(1, 5 * ms, 1, 3);
  open(b, 2, 6, 3);  // another endpoint is first too
  b.connect(1, 6 * ms + 20, 2, 3, ipv4("10.1.2.3", 9090), 100);
  auto out = model_of({&b});
  const Connection& c = *out.by_conn(1);
  EXPECT_EQ(c.new_reason, NewReason::kFirst);
  EXPECT_STREQ(new_reason_name(c.new_reason), "first");
  EXPECT_EQ(c.replaced, "");
  EXPECT_FALSE(c.replaced_idle_ns);
  EXPECT_EQ(c.pool_miss, 0u);
}

TEST(NewReason, BusyWhenTheOnlyOpenOneIsMidExchange) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  b.send(1, 1 * ms, 1, 50, 1000, "GET /slow HTTP/1.1\r\nHost: api");
  open(b, 2, 2, 4, 2);  // conn 1 is still waiting for its response
  exchange(b, 2, 3);
  b.recv(1, 10 * ms, 1, 100, 1000, "HTTP/1.1 200 OK");
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 1), NewReason::kFirst);
  EXPECT_EQ(reason_of(out, 2), NewReason::kBusy);
  EXPECT_EQ(out.by_conn(2)->replaced, "");
}

TEST(NewReason, PoolMissNamesTheIdleOneAndItsIdleTime) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);  // ends at 2 ms + 1 µs
  open(b, 2, 5, 4);
  auto out = model_of({&b});
  const Connection& c = *out.by_conn(2);
  EXPECT_EQ(c.new_reason, NewReason::kPoolMiss);
  EXPECT_EQ(c.pool_miss, 1u);
  EXPECT_EQ(c.replaced, "1000:1");
  EXPECT_EQ(c.replaced_idle_ns, 5 * ms + 10 - (2 * ms + 1000));
}

// Conn 1 was reading a response when conn 2 connected: its next call, a write, says the response
// had been complete, so conn 2 could have used it.
TEST(NewReason, PoolMissDecidedByTheCandidatesNextCall) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);
  open(b, 2, 3, 4);
  b.send(1, 4 * ms, 1, 50, 1000, "GET /next HTTP/1.1\r\nHost: api");
  auto out = model_of({&b});
  const Connection& c = *out.by_conn(2);
  EXPECT_EQ(c.new_reason, NewReason::kPoolMiss);
  EXPECT_EQ(c.pool_miss, 1u);
  EXPECT_EQ(c.replaced, "1000:1");
  EXPECT_EQ(c.replaced_idle_ns, 3 * ms + 10 - (2 * ms + 1000));
}

TEST(NewReason, ClosedByPeerWhenWeReadEofWhileIdle) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);
  b.recv(1, 50 * ms, 1, 0, 1000);  // the server's idle timeout: EOF
  b.close(1, 50 * ms + 2000, 1, 3);
  open(b, 2, 60, 3);
  auto out = model_of({&b});
  const Connection& c = *out.by_conn(2);
  EXPECT_EQ(c.new_reason, NewReason::kClosedByPeer);
  EXPECT_EQ(c.replaced, "1000:1");
  // A response read until EOF ends at the EOF (it may have been read-until-close): idle from there.
  EXPECT_EQ(c.replaced_idle_ns, 60 * ms + 10 - (50 * ms + 1000));
  EXPECT_EQ(c.pool_miss, 0u);
}

TEST(NewReason, ClosedByPeerWhenTheLastResponseSaidConnectionClose) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1, "HTTP/1.1 200 OK\r\nConnection: close");
  b.close(1, 3 * ms, 1, 3);  // the client closes first, as told
  open(b, 2, 4, 3);
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 2), NewReason::kClosedByPeer);
  EXPECT_EQ(out.by_conn(2)->replaced, "1000:1");
}

// A client that polls its idle sockets (urllib3) closes a dropped one without reading it: idle past
// the announced Keep-Alive timeout, the server had closed it.
TEST(NewReason, ClosedByPeerWhenIdlePastTheAnnouncedTimeout) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1");
  b.close(1, 1500 * ms, 1, 3);
  open(b, 2, 1501, 3);
  exchange(b, 2, 1700, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1");
  b.close(1, 1710 * ms, 2, 3);  // 9 ms idle, well inside the timeout: the client's doing
  open(b, 4, 1720, 3);
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 2), NewReason::kClosedByPeer);
  EXPECT_EQ(reason_of(out, 4), NewReason::kClosedByClient);
}

TEST(NewReason, ResetOnReuseAfterEofOnAStaleConnection) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);
  b.send(1, 1500 * ms, 1, 50, 1000, "GET /again HTTP/1.1\r\nHost: api");  // reuse after 1.5 s idle
  b.recv(1, 1500 * ms + 100'000, 1, 0, 1000);                             // EOF before any response
  b.close(1, 1500 * ms + 200'000, 1, 3);
  open(b, 2, 1501, 3);
  exchange(b, 2, 1502);
  auto out = model_of({&b});
  const Connection& stale = *out.by_conn(1);
  ASSERT_EQ(stale.requests.size(), 2u);
  EXPECT_TRUE(stale.requests[1].reused);
  EXPECT_EQ(stale.requests[1].failed_errno, 0);  // EOF
  EXPECT_FALSE(stale.requests[0].failed_errno);
  const Connection& c = *out.by_conn(2);
  EXPECT_EQ(c.new_reason, NewReason::kResetOnReuse);
  EXPECT_EQ(c.replaced, "1000:1");
  EXPECT_EQ(c.replaced_idle_ns, 1501 * ms + 10 - (2 * ms + 1000));  // since its last answered request
}

TEST(NewReason, ResetOnReuseAfterEconnresetOrEpipe) {
  for (int err : {ECONNRESET, EPIPE}) {
    TraceBuilder b;
    open(b, 1, 0, 3);
    exchange(b, 1, 1);
    if (err == EPIPE) {
      b.send(1, 10 * ms, 1, -EPIPE, 1000, "GET /again HTTP/1.1\r\nHost: api");
    } else {
      b.send(1, 10 * ms, 1, 50, 1000, "GET /again HTTP/1.1\r\nHost: api");
      b.recv(1, 10 * ms + 100'000, 1, -ECONNRESET, 1000);
    }
    b.close(1, 11 * ms, 1, 3);
    open(b, 2, 12, 3);
    auto out = model_of({&b});
    SCOPED_TRACE(errno_name(err));
    const Connection& stale = *out.by_conn(1);
    ASSERT_EQ(stale.requests.size(), 2u);
    EXPECT_EQ(stale.requests[1].failed_errno, err);
    EXPECT_EQ(stale.requests[1].bytes_sent, err == EPIPE ? 0u : 50u);  // a failed write moved nothing
    EXPECT_EQ(reason_of(out, 2), NewReason::kResetOnReuse);
  }
}

// PHP's file_get_contents, urllib.request: the request says Connection: close, the server
// obliges (and echoes it) and closes first. The client chose not to keep the connection.
TEST(NewReason, ClosedByClientWhenItsRequestAskedForTheClose) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  b.send(1, 1 * ms, 1, 50, 1000, "GET / HTTP/1.1\r\nHost: api\r\nConnection: close");
  b.recv(1, 2 * ms, 1, 100, 1000, "HTTP/1.1 200 OK\r\nConnection: close");
  b.recv(1, 3 * ms, 1, 0, 1000);  // the server's close
  b.close(1, 3 * ms + 5000, 1, 3);
  open(b, 2, 4, 3);
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 2), NewReason::kClosedByClient);
  EXPECT_EQ(out.by_conn(2)->replaced, "1000:1");
}

TEST(NewReason, ClosedByClientWhenWeClosedAnIdleOne) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);
  b.close(1, 3 * ms, 1, 3);
  open(b, 2, 4, 3);
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 2), NewReason::kClosedByClient);
  EXPECT_EQ(out.by_conn(2)->replaced, "1000:1");
  EXPECT_EQ(out.by_conn(2)->replaced_idle_ns, 4 * ms + 10 - (2 * ms + 1000));
}

// reset_on_reuse > closed_by_peer > pool_miss > busy > closed_by_client > first.
TEST(NewReason, PrecedenceFailureEvidenceOverMissOverBusyOverClientClose) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);  // conn 1 stays idle throughout
  open(b, 2, 3, 4);   // pool miss (conn 1 idle)
  exchange(b, 2, 4);
  b.send(1, 10 * ms, 2, 50, 1000, "GET /stale HTTP/1.1\r\nHost: api");
  b.recv(1, 10 * ms + 1000, 2, 0, 1000);
  b.close(1, 10 * ms + 2000, 2, 4);
  open(b, 3, 11, 4);  // conn 2 failed its reuse; conn 1 is idle: reset_on_reuse wins
  exchange(b, 3, 12, "HTTP/1.1 200 OK\r\nConnection: close");
  b.close(1, 14 * ms, 3, 4);
  open(b, 4, 15, 4);  // conn 3 closed by the server, conn 1 idle: closed_by_peer wins
  b.send(1, 16 * ms, 4, 50, 1000, "GET /slow HTTP/1.1\r\nHost: api");
  b.send(1, 16 * ms + 5000, 1, 50, 1000, "GET /slow HTTP/1.1\r\nHost: api");  // conn 1 busy too
  b.close(1, 17 * ms, 5, 9);  // (unknown connection: ignored)
  open(b, 5, 18, 5);  // every open one is waiting: busy
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 1), NewReason::kFirst);
  EXPECT_EQ(reason_of(out, 2), NewReason::kPoolMiss);
  EXPECT_EQ(reason_of(out, 3), NewReason::kResetOnReuse);
  EXPECT_EQ(out.by_conn(3)->replaced, "1000:2");
  EXPECT_EQ(out.by_conn(3)->pool_miss, 0u);  // 1 exactly when the reason is pool_miss
  EXPECT_EQ(reason_of(out, 4), NewReason::kClosedByPeer);
  EXPECT_EQ(out.by_conn(4)->replaced, "1000:3");
  EXPECT_EQ(out.by_conn(4)->pool_miss, 0u);
  EXPECT_EQ(reason_of(out, 5), NewReason::kBusy);
}

TEST(NewReason, BusyOutranksAClientClose) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1);
  b.close(1, 3 * ms, 1, 3);
  open(b, 2, 4, 3);
  b.send(1, 5 * ms, 2, 50, 1000, "GET /slow HTTP/1.1\r\nHost: api");
  open(b, 3, 6, 4, 2);  // conn 1 closed by the client, conn 2 waiting
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 2), NewReason::kClosedByClient);
  EXPECT_EQ(reason_of(out, 3), NewReason::kBusy);
}

// The server drops one connection; the reconnect takes its place. A second connection opened
// while that one is busy is concurrency, not another consequence of the same close.
TEST(NewReason, ACloseIsReplacedOnce) {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1, "HTTP/1.1 200 OK\r\nConnection: close");
  b.close(1, 3 * ms, 1, 3);
  open(b, 2, 4, 3);
  b.send(1, 5 * ms, 2, 50, 1000, "GET /slow HTTP/1.1\r\nHost: api");
  open(b, 3, 6, 4, 2);
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 2), NewReason::kClosedByPeer);
  EXPECT_EQ(reason_of(out, 3), NewReason::kBusy);
}

TEST(NewReason, NoneForAcceptedInheritedAndFailed) {
  TraceBuilder parent(100);
  parent.accept(1, 0, 1, 5, 4, ipv4("127.0.0.1", 50000), 10);
  parent.recv(1, 1 * ms, 1, 50, 1000, "GET / HTTP/1.1");
  parent.send(1, 2 * ms, 1, 100, 1000);
  parent.socket(1, 3 * ms, 2, 6);
  parent.connect(1, 3 * ms, 2, 6, kPeer, 100, ECONNREFUSED);
  parent.close(1, 4 * ms, 2, 6);
  parent.socket(1, 5 * ms, 3, 6);
  parent.connect(1, 5 * ms, 3, 6, kPeer, 100);
  exchange(parent, 3, 6);
  TraceBuilder child(101, 100);
  child.inherit(1, 10 * ms, 1, 6, 3);
  exchange(child, 1, 11);
  auto out = model_of({&parent, &child});
  for (const Connection& c : out.conns) {
    SCOPED_TRACE(c.id);
    if (c.id == "100:3") {
      EXPECT_EQ(c.new_reason, NewReason::kFirst);  // the refused connect before it is no connection
    } else {
      EXPECT_EQ(c.new_reason, NewReason::kNone);
      EXPECT_EQ(c.pool_miss, 0u);
    }
  }
}

// Through one HTTP proxy, a tunnel to another target is a first connection however idle the
// open tunnel beside it; a second tunnel to the same target while the first sat idle is a miss.
TEST(NewReason, ThroughAProxyEachTargetIsItsOwnEndpoint) {
  TraceBuilder b;
  auto tunnel = [&](uint32_t conn, uint64_t t, int fd, const std::string& target) {
    open(b, conn, t, fd);
    b.send(1, t * ms + ms, conn, 60, 1000, "CONNECT " + target + " HTTP/1.1\r\nHost: " + target);
    b.recv(1, t * ms + 2 * ms, conn, 39, 1000, "HTTP/1.1 200 Connection established");
    exchange(b, conn, t + 3);
  };
  tunnel(1, 0, 3, "a.example:443");   // idle from 4 ms on
  tunnel(2, 10, 4, "b.example:443");  // another server behind the proxy: first
  tunnel(3, 20, 5, "a.example:443");  // conn 1 sat idle: a miss
  auto out = model_of({&b});
  EXPECT_EQ(reason_of(out, 1), NewReason::kFirst);
  EXPECT_EQ(reason_of(out, 2), NewReason::kFirst);
  EXPECT_EQ(reason_of(out, 3), NewReason::kPoolMiss);
  EXPECT_EQ(out.by_conn(3)->replaced, "1000:1");
  EXPECT_EQ(out.by_conn(2)->replaced, "");
}

TEST(NewReason, EndpointHistoryStaysBounded) {
  EndpointHistory h;
  OpenScan none;
  for (uint32_t i = 0; i < 3 * EndpointHistory::kMaxEndpoints; ++i) {
    tf::Addr a = ipv4("10.0.0.0", 80);
    std::memcpy(a.ip, &i, sizeof i);
    h.on_close(a, "", "1:" + std::to_string(i), i, i, NewReason::kClosedByClient, false);
    ASSERT_LE(h.endpoints(), 2 * EndpointHistory::kMaxEndpoints);
  }
  tf::Addr recent = ipv4("10.0.0.0", 80);
  uint32_t last = 3 * EndpointHistory::kMaxEndpoints - 1;
  std::memcpy(recent.ip, &last, sizeof last);
  EXPECT_EQ(h.decide(recent, "", last + 10, none).reason, NewReason::kClosedByClient);
  // Many closes to one endpoint keep only the last few.
  for (uint32_t i = 0; i < 1000; ++i) h.on_close(kPeer, "", "2:" + std::to_string(i), i, i, NewReason::kClosedByPeer, false);
  ReasonVerdict v = h.decide(kPeer, "", 2000, none);
  // Through a proxy each target is its own endpoint: the closes above are none of its history.
  EXPECT_EQ(h.decide(kPeer, "a.example:443", 2000, none).reason, NewReason::kFirst);
  EXPECT_EQ(v.reason, NewReason::kClosedByPeer);
  EXPECT_EQ(v.replaced, "2:999");
}

// --- percentiles --------------------------------------------------------------------------

uint64_t exact_rank(std::vector<uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = std::max<size_t>(1, size_t(std::ceil(q * double(v.size()))));
  return v[std::min(rank, v.size()) - 1];
}

TEST(Percentiles, MatchExactSortedValuesWithinTheBucketError) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> lat(std::log(2e6), 1.5);  // ~2 ms median, long tail
  std::uniform_int_distribution<uint64_t> small(0, 127);
  for (int dist = 0; dist < 3; ++dist) {
    std::vector<uint64_t> v;
    LogHistogram h;
    for (int i = 0; i < 20000; ++i) {
      uint64_t x = dist == 0 ? uint64_t(lat(rng)) : dist == 1 ? small(rng) : uint64_t(i) * 1'000'003;
      v.push_back(x);
      h.add(x);
    }
    SCOPED_TRACE(dist);
    EXPECT_EQ(h.count(), v.size());
    EXPECT_EQ(h.max(), *std::max_element(v.begin(), v.end()));
    EXPECT_EQ(h.min(), *std::min_element(v.begin(), v.end()));
    for (double q : {0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0}) {
      const uint64_t want = exact_rank(v, q), got = h.percentile(q);
      if (dist == 1) {
        EXPECT_EQ(got, want) << q;  // small values are counted exactly
      }
      EXPECT_LE(std::fabs(double(got) - double(want)), double(want) / 128.0 + 1) << "q=" << q << " want " << want;
    }
    EXPECT_LT(h.buckets(), 2500u);  // bounded by the range, not the number of samples
  }
}

TEST(Percentiles, BucketsTileTheRange) {
  for (size_t i = 0; i + 1 < 2000; ++i) {
    EXPECT_EQ(LogHistogram::highest_of(i) + 1, LogHistogram::lowest_of(i + 1)) << i;
    EXPECT_EQ(LogHistogram::index_of(LogHistogram::lowest_of(i)), i);
    EXPECT_EQ(LogHistogram::index_of(LogHistogram::highest_of(i)), i);
  }
  LogHistogram h;
  h.add(UINT64_MAX);  // past the range: the last bucket, still the exact max
  EXPECT_EQ(h.percentile(0.5), UINT64_MAX);
  LogHistogram empty;
  EXPECT_EQ(empty.percentile(0.5), 0u);
  LogHistogram a, b;
  a.add(10);
  b.add(1000);
  a.merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.percentile(0.5), 10u);
  EXPECT_EQ(a.max(), 1000u);
}

// --- the report and the exports -------------------------------------------------------------

// A client that reuses connections idle 1.5 s against a server that announces timeout=1.
TraceBuilder stale_pool_trace() {
  TraceBuilder b;
  open(b, 1, 0, 3);
  exchange(b, 1, 1, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1");
  exchange(b, 1, 100, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1");  // reused after ~98 ms: fine
  b.send(1, 1602 * ms, 1, 50, 1000, "GET /again HTTP/1.1\r\nHost: api");
  b.recv(1, 1602 * ms + 1000, 1, -ECONNRESET, 1000);
  b.close(1, 1603 * ms, 1, 3);
  open(b, 2, 1604, 3);
  exchange(b, 2, 1605);
  b.close(1, 1610 * ms, 2, 3);
  return b;
}

TEST(WhyReport, StaleReuseBesideTheAnnouncedTimeout) {
  TraceBuilder b = stale_pool_trace();
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  const std::string text = capture_output([&](std::FILE* f) { write_why(ts, f); });
  EXPECT_NE(text.find("new connections: 2  first 1  reset_on_reuse 1"), std::string::npos) << text;
  EXPECT_NE(text.find("reset_on_reuse   1000:2 replaced 1000:1"), std::string::npos) << text;
  EXPECT_NE(text.find("failed reuses: 1 (ECONNRESET 1), idle 1.50s to 1.50s"), std::string::npos) << text;
  EXPECT_NE(text.find("your client reuses connections idle up to 1.50s; the server drops them after 1s"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("10.00ms - 100.00ms"), std::string::npos) << text;
  EXPECT_NE(text.find("1.00s - 2.00s"), std::string::npos) << text;
  EXPECT_NE(text.find("2.0 requests per connection (max 3)"), std::string::npos) << text;
  EXPECT_NE(text.find("connect        2"), std::string::npos) << text;
}

TEST(WhyReport, JsonCarriesReasonReplacedErrorAndEndpointPercentiles) {
  TraceBuilder b = stale_pool_trace();
  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  const auto j = nlohmann::json::parse(capture_output([&](std::FILE* f) { EXPECT_TRUE(write_json(ts, f)); }));
  const auto& conns = j["connections"];
  ASSERT_EQ(conns.size(), 2u);
  EXPECT_EQ(conns[0]["new_reason"], "first");
  EXPECT_TRUE(conns[0]["replaced"].is_null());
  EXPECT_EQ(conns[0]["requests"][2]["error"], "ECONNRESET");
  EXPECT_FALSE(conns[0]["requests"][1].contains("error"));
  EXPECT_EQ(conns[1]["new_reason"], "reset_on_reuse");
  EXPECT_EQ(conns[1]["replaced"], "1000:1");
  const auto& ep = j["summary"]["endpoints"];
  ASSERT_EQ(ep.size(), 1u);
  EXPECT_EQ(ep[0]["port"], 8080);
  EXPECT_EQ(ep[0]["phases"]["connect"]["count"], 2);
  EXPECT_EQ(ep[0]["phases"]["connect"]["max_ns"], 100);
  EXPECT_EQ(ep[0]["phases"]["wait"]["count"], 3);  // the failed request never got a first byte
}

}  // namespace
}  // namespace httptrace::testing
