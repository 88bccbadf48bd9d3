// The OTLP export's pieces: span building from hand-made connections, the protobuf writer (read
// back with a minimal wire-format reader), endpoint and header parsing, refusal messages.
#include <arpa/inet.h>

#include <cerrno>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analyzer/export/otlp_encode.h"
#include "analyzer/export/otlp_http.h"
#include "analyzer/export/otlp_spans.h"

namespace httptrace::analyzer::otlp {
namespace {

tf::Addr v4(const char* ip, uint16_t port) {
  tf::Addr a{};
  a.family = AF_INET;
  a.port = port;
  inet_pton(AF_INET, ip, a.ip);
  return a;
}
tf::Addr v6(const char* ip, uint16_t port) {
  tf::Addr a{};
  a.family = AF_INET6;
  a.port = port;
  inet_pton(AF_INET6, ip, a.ip);
  return a;
}

const Attr* find(const Span& s, std::string_view key) {
  for (size_t i = 0; i < s.n_attrs; ++i)
    if (key == s.attrs[i].key) return &s.attrs[i];
  return nullptr;
}

struct Built {
  std::vector<Span> spans;
  size_t n = 0;
  const Span* named(std::string_view name) const {
    for (size_t i = 0; i < n; ++i)
      if (spans[i].name == name) return &spans[i];
    return nullptr;
  }
};

Built build(const Connection& c) {
  static TraceSet none;
  static Resources res(none, "svc");
  static TimeBase tb{1000, 1'700'000'000'000'000'000ull};
  SpanBuilder b(res, tb);
  Built out;
  b.build(c, out.spans, out.n);
  return out;
}

Exchange request(uint32_t index, const char* method, const char* target, int status, bool answered = true) {
  Exchange x;
  x.index = index;
  x.reused = index > 0;
  if (index > 0) x.idle_ns = 5000;
  x.start_ns = 10'000 + index * 1000;
  x.sent_ns = x.start_ns + 10;
  if (answered) x.first_byte_ns = x.start_ns + 100;
  x.end_ns = x.start_ns + 200;
  x.method = method;
  x.target = target;
  x.status = status;
  return x;
}

TEST(OtlpSpans, TlsConnectionWithRequests) {
  Connection c;
  c.id = "7:1";
  c.pid = 7;
  c.host = "api.example.com";
  c.peer = v4("10.0.0.1", 443);
  c.has_connect = true;
  c.connect_start_ns = 2000;
  c.connect_duration_ns = 500;
  c.tls = TlsInfo{.start_ns = 2600, .duration_ns = 900, .library = "openssl", .version = "TLSv1.3",
                  .cipher = "TLS_AES_128_GCM_SHA256", .sni = "api.example.com", .alpn = "http/1.1"};
  c.protocol = "http/1.1";
  c.requests = {request(0, "GET", "/a", 200), request(1, "POST", "/b", 503), request(2, "GET", "/c", 0, false)};
  const Built b = build(c);
  ASSERT_EQ(b.n, 6u);  // setup, connect, TLS, three requests
  const Span* setup = b.named("HTTP connection_setup");
  ASSERT_TRUE(setup);
  EXPECT_EQ(setup->start_unix_ns, 1'700'000'000'000'000'000ull + 1000);
  EXPECT_EQ(setup->end_unix_ns, 1'700'000'000'000'000'000ull + 2500);
  const Span* tls = b.named("TLS handshake");
  ASSERT_TRUE(tls);
  EXPECT_TRUE(tls->has_parent);
  EXPECT_EQ(tls->parent, setup->span_id);
  EXPECT_EQ(find(*tls, "tls.protocol.version")->s, "1.3");
  EXPECT_EQ(b.named("socket connect")->parent, setup->span_id);

  const Span& get = b.spans[3];
  EXPECT_EQ(get.kind, SpanKind::kClient);
  EXPECT_EQ(get.name, "GET");
  EXPECT_EQ(find(get, "url.full")->s, "https://api.example.com/a");  // 443 is https's default
  EXPECT_EQ(find(get, "server.port")->i, 443);
  EXPECT_EQ(find(get, "network.protocol.version")->s, "1.1");
  EXPECT_EQ(find(get, "http.response.status_code")->i, 200);
  EXPECT_FALSE(find(get, "error.type"));
  EXPECT_EQ(get.status, StatusCode::kUnset);
  ASSERT_EQ(get.links.size(), 1u);
  EXPECT_EQ(get.links[0].span_id, setup->span_id);
  EXPECT_FALSE(find(get, "httptrace.reused")->b);
  EXPECT_FALSE(find(get, "httptrace.idle_ns"));

  const Span& post = b.spans[4];
  EXPECT_EQ(find(post, "error.type")->s, "503");
  EXPECT_EQ(post.status, StatusCode::kError);
  EXPECT_TRUE(find(post, "httptrace.reused")->b);
  EXPECT_EQ(find(post, "httptrace.idle_ns")->i, 5000);

  const Span& unanswered = b.spans[5];
  EXPECT_EQ(find(unanswered, "error.type")->s, "httptrace.no_response");
  EXPECT_FALSE(find(unanswered, "http.response.status_code"));

  // Every id distinct and derived: the same connection gives the same ids again.
  std::map<SpanId, int> ids;
  for (size_t i = 0; i < b.n; ++i) ++ids[b.spans[i].span_id];
  EXPECT_EQ(ids.size(), b.n);
  const Built again = build(c);
  for (size_t i = 0; i < b.n; ++i) EXPECT_EQ(again.spans[i].span_id, b.spans[i].span_id);
  for (size_t i = 0; i < b.n; ++i) EXPECT_EQ(b.spans[i].trace_id, b.spans[0].trace_id);
}

TEST(OtlpSpans, FailedConnectIsAnErrorSetupWithoutRequests) {
  Connection c;
  c.id = "7:2";
  c.pid = 7;
  c.peer = v4("127.0.0.1", 9);
  c.has_connect = true;
  c.connect_start_ns = 2000;
  c.connect_duration_ns = 50;
  c.connect_error = ECONNREFUSED;
  const Built b = build(c);
  ASSERT_EQ(b.n, 2u);
  EXPECT_EQ(b.spans[0].status, StatusCode::kError);
  EXPECT_EQ(find(b.spans[0], "error.type")->s, "ECONNREFUSED");
  EXPECT_EQ(find(b.spans[1], "error.type")->s, "ECONNREFUSED");
}

TEST(OtlpSpans, Ipv6PeerWithoutHostAndNonHttpExchanges) {
  Connection c;
  c.id = "7:3";
  c.pid = 7;
  c.peer = v6("::1", 8080);
  c.protocol = "http/1.1";
  c.requests = {request(0, "GET", "/x", 204)};
  Built b = build(c);  // no connect seen (inherited): no setup span, no link
  ASSERT_EQ(b.n, 1u);
  EXPECT_EQ(find(b.spans[0], "url.full")->s, "http://[::1]:8080/x");
  EXPECT_TRUE(b.spans[0].links.empty());

  c.protocol.reset();
  c.requests = {request(0, "", "", 0)};
  b = build(c);
  ASSERT_EQ(b.n, 1u);
  EXPECT_EQ(b.spans[0].name, "exchange");
  EXPECT_FALSE(find(b.spans[0], "url.full"));
  EXPECT_FALSE(find(b.spans[0], "error.type"));
}

// A protobuf field, read back: number, wire type, and the value (varint, fixed64 or bytes).
struct Field {
  uint32_t number, wire;
  uint64_t v = 0;
  std::string bytes;
};
std::vector<Field> fields(std::string_view b) {
  std::vector<Field> out;
  size_t i = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; i < b.size(); shift += 7) {
      const auto c = static_cast<uint8_t>(b[i++]);
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) break;
    }
    return v;
  };
  while (i < b.size()) {
    const uint64_t key = varint();
    Field f{uint32_t(key >> 3), uint32_t(key & 7)};
    if (f.wire == 0) f.v = varint();
    else if (f.wire == 1) {
      for (int k = 0; k < 8; ++k) f.v |= uint64_t(uint8_t(b[i + k])) << (8 * k);
      i += 8;
    } else if (f.wire == 2) {
      const uint64_t n = varint();
      EXPECT_LE(i + n, b.size());
      f.bytes = std::string(b.substr(i, n));
      i += n;
    } else {
      ADD_FAILURE() << "wire type " << f.wire;
      break;
    }
    out.push_back(f);
  }
  return out;
}

TEST(OtlpEncode, ProtobufNestsWithWideLengths) {
  ProcessResource r;
  r.pid = 42;
  r.service_name = "svc";
  SpanBatch batch;
  batch.start_group(r);
  batch.spans.resize(1);
  Span& s = batch.spans[0];
  s.trace_id.fill(0xab);
  s.span_id.fill(0xcd);
  s.name = std::string(300, 'n');  // a span body past 127 bytes: a two-byte length
  s.kind = SpanKind::kClient;
  s.start_unix_ns = 1'700'000'000'123'456'789ull;
  s.end_unix_ns = s.start_unix_ns + 1;
  s.add_int("http.response.status_code", 200);
  s.add_int("neg", -1);
  s.add_bool("b", true);
  s.status = StatusCode::kError;
  batch.n = 1;
  batch.close_group();
  std::string out;
  encode_protobuf(batch, 0, 1, out);

  const auto top = fields(out);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].number, 1u);  // resource_spans
  const auto rs = fields(top[0].bytes);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].number, 1u);  // resource
  const auto ss = fields(rs[1].bytes);
  ASSERT_EQ(ss.size(), 2u);     // scope, one span
  const auto span = fields(ss[1].bytes);
  std::map<uint32_t, std::vector<Field>> by;
  for (const Field& f : span) by[f.number].push_back(f);
  EXPECT_EQ(by[1][0].bytes, std::string(16, '\xab'));
  EXPECT_EQ(by[2][0].bytes, std::string(8, '\xcd'));
  EXPECT_EQ(by[5][0].bytes, std::string(300, 'n'));
  EXPECT_EQ(by[6][0].v, 3u);
  EXPECT_EQ(by[7][0].wire, 1u);
  EXPECT_EQ(by[7][0].v, s.start_unix_ns);
  ASSERT_EQ(by[9].size(), 3u);
  const auto neg = fields(fields(by[9][1].bytes)[1].bytes);
  EXPECT_EQ(neg[0].number, 3u);
  EXPECT_EQ(static_cast<int64_t>(neg[0].v), -1);  // int64: ten-byte two's complement varint
  EXPECT_EQ(fields(by[15][0].bytes)[0].v, 2u);    // status.code ERROR
  EXPECT_EQ(by.count(4), 0u);                    // a root span has no parent_span_id
}

TEST(OtlpEncode, GroupsSplitAcrossABatchRange) {
  ProcessResource a, b;
  a.pid = 1;
  b.pid = 2;
  SpanBatch batch;
  batch.spans.resize(4);
  batch.start_group(a);
  batch.n = 2;
  batch.close_group();
  batch.start_group(b);
  batch.n = 4;
  batch.close_group();
  std::string out;
  encode_protobuf(batch, 1, 3, out);  // one span of each process
  const auto top = fields(out);
  ASSERT_EQ(top.size(), 2u);
  for (const Field& rs : top) EXPECT_EQ(fields(fields(rs.bytes)[1].bytes).size(), 2u);  // scope + 1 span
  encode_json(batch, 2, 4, out);
  EXPECT_EQ(out.find("\"process.pid\",\"value\":{\"intValue\":\"1\"}"), std::string::npos) << out;
  EXPECT_NE(out.find("\"process.pid\",\"value\":{\"intValue\":\"2\"}"), std::string::npos) << out;
}

// Captured bytes are arbitrary: quotes, controls and invalid UTF-8 in a value still give valid
// JSON (invalid UTF-8 as U+FFFD), and the OTLP/JSON shapes (hex ids, int64 strings) hold.
TEST(OtlpEncode, JsonEscapesCapturedBytes) {
  ProcessResource r;
  r.pid = 9;
  r.service_name = "svc";
  SpanBatch batch;
  batch.start_group(r);
  batch.spans.resize(1);
  Span& s = batch.spans[0];
  s.span_id.fill(1);
  s.trace_id.fill(2);
  s.name = "GET";
  s.add_str("url.full", "http://h/a\"b\\c\x01\xff");
  s.add_int("n", -5);
  s.add_bool("t", true);
  batch.n = 1;
  batch.close_group();
  std::string out;
  encode_json(batch, 0, 1, out);
  const nlohmann::json j = nlohmann::json::parse(out);
  const auto& span = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  std::string trace_hex;
  for (int i = 0; i < 16; ++i) trace_hex += "02";
  EXPECT_EQ(span["traceId"], trace_hex);
  EXPECT_EQ(span["spanId"], "0101010101010101");
  EXPECT_EQ(span["kind"], 1);
  EXPECT_EQ(span["attributes"][0]["value"]["stringValue"], "http://h/a\"b\\c\x01\xef\xbf\xbd");
  EXPECT_EQ(span["attributes"][1]["value"]["intValue"], "-5");
  EXPECT_EQ(span["attributes"][2]["value"]["boolValue"], true);
  EXPECT_EQ(j["resourceSpans"][0]["resource"]["attributes"][1]["value"]["intValue"], "9");
}

TEST(OtlpHttp, Endpoints) {
  Endpoint e;
  std::string err;
  ASSERT_TRUE(parse_endpoint("http://collector:4318", false, e, err)) << err;
  EXPECT_EQ(e.host, "collector");
  EXPECT_EQ(e.port, "4318");
  EXPECT_EQ(e.path, "/v1/traces");
  ASSERT_TRUE(parse_endpoint("http://collector/otlp/", false, e, err));
  EXPECT_EQ(e.port, "80");
  EXPECT_EQ(e.path, "/otlp/v1/traces");
  ASSERT_TRUE(parse_endpoint("http://[::1]:4318/custom/traces", true, e, err));
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.path, "/custom/traces");
  EXPECT_EQ(e.host_header, "[::1]:4318");
  EXPECT_FALSE(parse_endpoint("https://collector:4318", false, e, err));
  EXPECT_NE(err.find("https is not supported yet"), std::string::npos);
  EXPECT_FALSE(parse_endpoint("collector:4318", false, e, err));
  EXPECT_FALSE(parse_endpoint("http://collector:99999", false, e, err));
  EXPECT_FALSE(parse_endpoint("http://:4318", false, e, err));
}

TEST(OtlpHttp, Headers) {
  std::vector<std::pair<std::string, std::string>> h;
  std::string err;
  ASSERT_TRUE(parse_headers(" api-key = s%3Dcret , x-b=two%20words,", h, err)) << err;
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], (std::pair<std::string, std::string>{"api-key", "s=cret"}));
  EXPECT_EQ(h[1].second, "two words");
  EXPECT_FALSE(parse_headers("novalue", h, err));
  EXPECT_FALSE(parse_headers("k=a%0d%0aInjected: 1", h, err));  // no header injection
  EXPECT_FALSE(parse_headers("k=%zz", h, err));
}

TEST(OtlpHttp, RefusalExcerpts) {
  HttpResponse r;
  r.content_type = "application/x-protobuf";
  r.body = std::string("\x08\x03\x12\x05hello", 9);
  EXPECT_EQ(body_excerpt(r), "hello");
  r.content_type = "application/json";
  r.body = R"({"code":3,"message":"bad \"trace\" id"})";
  EXPECT_EQ(body_excerpt(r), "bad \"trace\" id");
  r.content_type = "text/plain";
  r.body = "line one\nline two\x01";
  EXPECT_EQ(body_excerpt(r), "line one line two?");
  r.body = std::string(1000, 'x');
  EXPECT_EQ(body_excerpt(r).size(), 303u);
  EXPECT_TRUE(retryable_status(429) && retryable_status(503) && retryable_status(502) && retryable_status(504));
  EXPECT_FALSE(retryable_status(400) || retryable_status(413) || retryable_status(500));
}

}  // namespace
}  // namespace httptrace::analyzer::otlp
