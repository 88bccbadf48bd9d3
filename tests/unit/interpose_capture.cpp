// The payload sanitiser: what may be kept of a transfer, and above all what may not.
#include "interpose/record/capture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace httptrace::capture {
namespace {

using format::CaptureKind;

struct Captured {
  CaptureKind kind;
  std::string bytes;
  bool target_cut = false;
};

Captured run(const std::string& data) {
  uint8_t scratch[format::kHttpCaptureMax];
  const Result r = sanitize(reinterpret_cast<const uint8_t*>(data.data()), data.size(), scratch);
  return {r.kind, std::string(reinterpret_cast<const char*>(r.data), r.len), r.target_cut};
}

// Through the same path a hook takes: gather from iovecs (limited to what was transferred).
Captured run_iov(const std::vector<std::string>& parts, size_t transferred) {
  std::vector<iovec> iov;
  for (const auto& p : parts) iov.push_back({const_cast<char*>(p.data()), p.size()});
  uint8_t scan[kScanMax];
  const size_t n = gather_prefix(iov.data(), iov.size(), transferred, scan, sizeof(scan));
  uint8_t scratch[format::kHttpCaptureMax];
  const Result r = sanitize(scan, n, scratch);
  return {r.kind, std::string(reinterpret_cast<const char*>(r.data), r.len)};
}

const std::string kRequest =
    "GET /search?q=1 HTTP/1.1\r\n"
    "User-Agent: curl/7.88\r\n"
    "Authorization: Bearer s3cr3t-t0ken\r\n"
    "Cookie: session=abcdef\r\n"
    "host:  example.com:8080 \r\n"
    "X-Amz-Security-Token: tok3n\r\n"
    "Connection: keep-alive\r\n"
    "Accept: */*\r\n\r\n"
    "body-bytes-here";

TEST(Capture, RequestLineAndAllowListedHeadersOnly) {
  const Captured c = run(kRequest);
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(c.bytes, "GET /search?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: keep-alive");
}

TEST(Capture, NoOtherHeaderValueOrBodyEverAppears) {
  for (size_t cut = 1; cut <= kRequest.size(); ++cut) {
    const Captured c = run(kRequest.substr(0, cut));
    for (const char* secret : {"s3cr3t", "Bearer", "session=", "curl/7.88", "body", "*/*", "tok3n"}) {
      ASSERT_EQ(c.bytes.find(secret), std::string::npos) << "cut " << cut << ": " << c.bytes;
    }
  }
}

TEST(Capture, HostAfterTheHeaderBlockIsNotAHeader) {
  const Captured c = run("POST /x HTTP/1.1\r\nA: b\r\n\r\nHost: evil\r\n");
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(c.bytes, "POST /x HTTP/1.1");
}

TEST(Capture, RequestWithoutHost) {
  const Captured c = run("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(c.bytes, "GET / HTTP/1.0");
}

TEST(Capture, RequestLineCutByTheWriteIsStillARequest) {
  const Captured c = run("GET /a/very/long/pa");
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(c.bytes, "GET /a/very/long/pa");
  EXPECT_EQ(run("GET").kind, CaptureKind::kNone);  // not enough to tell
}

TEST(Capture, LongTargetIsCutAndTheLineStaysARequestLine) {
  // A presigned S3 URL: the request line is far over the old 256-byte budget.
  const std::string target = "/bucket/key?X-Amz-Credential=" + std::string(1200, 'c');
  const std::string host = "my-bucket.s3.eu-west-1.amazonaws.com";
  const Captured c = run("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_TRUE(c.target_cut);
  EXPECT_EQ(c.bytes, "GET " + target.substr(0, format::kTargetMax) + " HTTP/1.1\r\nHost: " + host);
}

TEST(Capture, TargetOfExactlyTheLimitIsNotCut) {
  const std::string target = "/" + std::string(format::kTargetMax - 1, 'a');
  const Captured c = run("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_FALSE(c.target_cut);
  EXPECT_EQ(c.bytes, "GET " + target + " HTTP/1.1\r\nHost: h");
  const Captured longer = run("GET " + target + "b HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(longer.target_cut);
  EXPECT_EQ(longer.bytes, "GET " + target + " HTTP/1.1\r\nHost: h");
}

TEST(Capture, LongTargetCutByTheCallKeepsItsPrefix) {
  const std::string target = "/" + std::string(3000, 'a');
  const Captured c = run("PUT " + target.substr(0, 1000));  // the write ended inside the target
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_TRUE(c.target_cut);
  EXPECT_EQ(c.bytes, "PUT " + target.substr(0, format::kTargetMax));
}

TEST(Capture, TheWholeHostOrNoHost) {
  // 230 bytes of Host used to be cut to fit ("s3.e") and then taken for the host.
  const std::string host = std::string(226, 'h') + ".com";
  const Captured c = run("GET /" + std::string(600, 'p') + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  EXPECT_EQ(c.bytes.substr(c.bytes.find("\r\n")), "\r\nHost: " + host);
  // A value that cannot fit is left out entirely, never cut.
  const Captured big = run("GET / HTTP/1.1\r\nHost: " + std::string(1000, 'h') + "\r\n\r\n");
  EXPECT_EQ(big.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(big.bytes, "GET / HTTP/1.1");
}

TEST(Capture, AllowListedRequestHeadersInTheirOrder) {
  const Captured c = run(
      "POST /rpc HTTP/1.1\r\nconnection: keep-alive\r\nX-Secret: hunter2\r\n"
      "TraceParent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
      "Cookie: a=b\r\nHOST: api:8080\r\nConnectionX: no\r\nKeep-Alive: 5\r\n\r\n{\"a\":1}");
  EXPECT_EQ(c.bytes,
            "POST /rpc HTTP/1.1\r\nConnection: keep-alive\r\n"
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
            "Host: api:8080");
}

TEST(Capture, HeaderLineCutByTheCallOrFoldedIsLeftOut) {
  EXPECT_EQ(run("GET / HTTP/1.1\r\nConnection: close\r\nHost: exam").bytes,
            "GET / HTTP/1.1\r\nConnection: close");
  // Without its line end the value may go on in the next call.
  EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: example.com").bytes, "GET / HTTP/1.1");
  EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\n  b\r\nConnection: close\r\n\r\n").bytes,
            "GET / HTTP/1.1\r\nConnection: close");
}

TEST(Capture, EveryByteOutsideTheTargetRangeEndsTheTarget) {
  // The target is checked eight bytes at a time: an odd byte must be found wherever it sits.
  for (int c = 0; c < 256; ++c) {
    const bool ok = c > 0x20 && c < 0x7f;
    for (size_t at = 1; at < 20; ++at) {
      std::string target = "/" + std::string(24, 'a');
      target[at] = static_cast<char>(c);
      const Captured r = run("GET " + target + " HTTP/1.1\r\n\r\n");
      ASSERT_EQ(r.kind, ok ? CaptureKind::kHttpReq : CaptureKind::kNone) << c << " at " << at;
    }
  }
}

TEST(Capture, HeadersAfterALongTargetAreFound) {
  // Over the 2 KiB a split transfer is gathered into; a single buffer is read in place.
  const std::string target = "/" + std::string(4000, 't');
  const Captured c = run("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(c.bytes, "GET " + target.substr(0, format::kTargetMax) + " HTTP/1.1\r\nHost: h");
}

TEST(Capture, ResponseConnectionAndKeepAliveHeaders) {
  const Captured c = run(
      "HTTP/1.1 200 OK\r\nServer: nginx\r\nSet-Cookie: id=secret\r\nConnection: keep-alive\r\n"
      "keep-alive: timeout=5, max=100\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(c.kind, CaptureKind::kHttpResp);
  EXPECT_EQ(c.bytes,
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=100");
  // The header block ends at the blank line: the body is not searched.
  EXPECT_EQ(run("HTTP/1.1 200 OK\r\n\r\nConnection: close\r\n").bytes, "HTTP/1.1 200 OK");
}

// python's http.server answers "Expect: 100-continue" and then, without reading the body, the
// request, in one write: the final head is kept after the interim one. Not after a final head,
// and not after 101 (the bytes after it are another protocol).
TEST(Capture, TheHeadAfterAnInterimOneInTheSameCall) {
  EXPECT_EQ(run("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: s\r\nConnection: close\r\n\r\nbody").bytes,
            "HTTP/1.1 100 Continue\r\nHTTP/1.1 200 OK\r\nConnection: close");
  EXPECT_EQ(run("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                "HTTP/1.1 204 No Content\r\n\r\n").bytes,
            "HTTP/1.1 103 Early Hints\r\nHTTP/1.1 100 Continue\r\nHTTP/1.1 204 No Content");
  EXPECT_EQ(run("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n").bytes, "HTTP/1.1 200 OK");
  EXPECT_EQ(run("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\nHTTP/1.1 200 OK\r\n\r\n").bytes,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade");
  EXPECT_EQ(run("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20").bytes, "HTTP/1.1 100 Continue") << "a cut line";
}

TEST(Capture, StatusLine) {
  const Captured c = run("HTTP/1.1 404 Not Found\r\nSet-Cookie: id=secret\r\n\r\nbody");
  EXPECT_EQ(c.kind, CaptureKind::kHttpResp);
  EXPECT_EQ(c.bytes, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(run("HTTP/1.0 200\r\n").bytes, "HTTP/1.0 200");
}

TEST(Capture, ReadsShorterThanTheBufferCaptureOnlyWhatArrived) {
  // A 4 KiB receive buffer of which the call returned 12 bytes; stale bytes follow.
  std::string buffer = "HTTP/1.1 200 OK\r\nX-Secret: leak\r\n";
  buffer.resize(4096, 'Z');
  const Captured c = run_iov({buffer}, 12);
  EXPECT_EQ(c.kind, CaptureKind::kHttpResp);
  EXPECT_EQ(c.bytes, "HTTP/1.1 200");
  EXPECT_EQ(run_iov({buffer}, 0).kind, CaptureKind::kNone);
}

TEST(Capture, IovecSplitAcrossTheRequestLine) {
  const Captured c =
      run_iov({"GE", "T /in", "dex.html HTTP/1.", "1\r\nAuthorization: Basic Zm9v\r\nHo",
               "st: split.example\r\n\r\n"},
              200);
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(c.bytes, "GET /index.html HTTP/1.1\r\nHost: split.example");
}

TEST(Capture, IovecTransferShorterThanTheIovecs) {
  const Captured c = run_iov({"GET /a HTTP/1.1\r\n", "Host: h\r\n\r\n"}, 10);
  EXPECT_EQ(c.kind, CaptureKind::kHttpReq);
  EXPECT_EQ(c.bytes, "GET /a HTT");
}

std::string client_hello(size_t body_len) {
  std::string rec = {0x16, 0x03, 0x01, static_cast<char>(body_len >> 8),
                     static_cast<char>(body_len & 0xff)};
  std::string body(body_len, '\x42');
  body[0] = 0x01;  // handshake type ClientHello
  return rec + body;
}

TEST(Capture, TlsClientHelloIsKeptWhole) {
  const std::string hello = client_hello(512);
  const Captured c = run(hello + std::string("\x17\x03\x03\x00\x10", 5) + std::string(16, 'E'));
  EXPECT_EQ(c.kind, CaptureKind::kTls);
  EXPECT_EQ(c.bytes, hello);  // the application-data record after it is not
}

TEST(Capture, TlsHandshakeRecordsAreCutAtTheCap) {
  const Captured c = run(client_hello(6000));
  EXPECT_EQ(c.kind, CaptureKind::kTls);
  EXPECT_EQ(c.bytes.size(), format::kTlsCaptureMax);
}

TEST(Capture, TlsApplicationDataKeepsOnlyTheRecordHeader) {
  const std::string rec = std::string("\x17\x03\x03\x01\x00", 5) + std::string(256, 'C');
  const Captured c = run(rec);
  EXPECT_EQ(c.kind, CaptureKind::kTls);
  EXPECT_EQ(c.bytes, rec.substr(0, 5));
}

TEST(Capture, Http2PrefaceIsRecognisedByEightBytes) {
  const Captured c = run("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(c.kind, CaptureKind::kOpaque);
  EXPECT_EQ(c.bytes, "PRI * HT");
}

TEST(Capture, EverythingElseKeepsNothing) {
  for (const std::string& s :
       {std::string("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"), std::string("hello world"),
        std::string("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8), std::string("get / http/1.1\r\n"),
        std::string("GET /a\x01 HTTP/1.1\r\n"), std::string(""), std::string("HTTP/x.1 200")}) {
    const Captured c = run(s);
    EXPECT_EQ(c.kind, CaptureKind::kNone) << s;
    EXPECT_EQ(c.bytes.size(), 0u);
  }
}

}  // namespace
}  // namespace httptrace::capture
