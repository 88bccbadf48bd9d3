// Instructions spent classifying one captured transfer (capture::sanitize), for callgrind: the
// scan runs at every direction change of every tracked connection, so its cost is per request.
//
//   valgrind --tool=callgrind build/bench/capture_cost [N]
//
// Each input has its own noinline loop so callgrind reports it separately; divide a loop's
// inclusive count by N:
//   loop_small_request   hook_cost's request: a short request line and Host
//   loop_curl_request    what curl sends: request line, Host, User-Agent, Accept
//   loop_browser_request 12 header lines (cookies, accept-*, traceparent), Host last
//   loop_s3_request      a presigned S3 GET: 1.3 KB target, then 6 headers
//   loop_response        a status line and 8 header lines, Connection/Keep-Alive among them
//
// Run directly it also prints the CPU time per call of each input: instruction counts alone
// mislead here (a `rep movsq` is one instruction and costs more than a 40-byte line scan).
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <string>

#include "interpose/record/capture.h"

namespace {

using httptrace::capture::sanitize;

const std::string kSmall = "GET /items/42 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const std::string kCurl =
    "GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api.example.com:8080\r\n"
    "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
const std::string kBrowser =
    "GET /static/app.js HTTP/1.1\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"119\"\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n"
    "Accept: */*\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
    "Host: www.example.com\r\n\r\n";
const std::string kResponse =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 20:00:00 GMT\r\n"
    "Content-Type: application/json\r\nContent-Length: 1234\r\nConnection: keep-alive\r\n"
    "Keep-Alive: timeout=5, max=100\r\nCache-Control: no-cache\r\nETag: \"abc\"\r\n\r\n{}";

std::string s3_request() {
  std::string t = "/bucket/some/object/key.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                  "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261201%2Fus-east-1%2Fs3%2Faws4_request"
                  "&X-Amz-Date=20261201T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
                  "&X-Amz-Security-Token=";
  t += std::string(700, 'T');
  t += "&X-Amz-Signature=" + std::string(64, 'f');
  return "GET " + t + " HTTP/1.1\r\nHost: my-bucket.s3.eu-west-1.amazonaws.com\r\n"
         "User-Agent: aws-sdk\r\nAccept: */*\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
         "Connection: keep-alive\r\n\r\n";
}

#define HTTPTRACE_LOOP(name)                                                 \
  __attribute__((noinline, noipa)) size_t name(const std::string& in, long n) {    \
    uint8_t scratch[httptrace::format::kHttpCaptureMax];                     \
    size_t total = 0;                                                        \
    for (long i = 0; i < n; ++i) {                                           \
      total += sanitize(reinterpret_cast<const uint8_t*>(in.data()), in.size(), scratch).len; \
      asm volatile("" ::: "memory");                                         \
    }                                                                        \
    return total;                                                            \
  }
HTTPTRACE_LOOP(loop_small_request)
HTTPTRACE_LOOP(loop_curl_request)
HTTPTRACE_LOOP(loop_browser_request)
HTTPTRACE_LOOP(loop_s3_request)
HTTPTRACE_LOOP(loop_response)

double cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 10000;
  const std::string s3 = s3_request();
  const struct {
    const char* name;
    size_t (*loop)(const std::string&, long);
    const std::string& in;
  } inputs[] = {{"small_request", loop_small_request, kSmall},
                {"curl_request", loop_curl_request, kCurl},
                {"browser_request", loop_browser_request, kBrowser},
                {"s3_request", loop_s3_request, s3},
                {"response", loop_response, kResponse}};
  size_t t = 0;
  for (const auto& in : inputs) {
    const double start = cpu_ns();
    t += in.loop(in.in, n);
    std::printf("%-16s %6.1f ns/call\n", in.name, (cpu_ns() - start) / static_cast<double>(n));
  }
  std::printf("(checksum %zu)\n", t);
  return 0;
}
