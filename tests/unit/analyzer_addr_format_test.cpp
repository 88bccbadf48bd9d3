// The hand-written address formatter must give inet_ntop's text byte for byte: the export's
// golden output and every consumer of it were made with inet_ntop.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "analyzer/model/addr_format.h"
#include "analyzer/model/model.h"

namespace httptrace::analyzer {
namespace {

tf::Addr make(int family, const uint8_t* ip, uint16_t port) {
  tf::Addr a{};
  a.family = uint16_t(family);
  a.port = port;
  std::memcpy(a.ip, ip, family == AF_INET ? 4 : 16);
  return a;
}

std::string reference(const tf::Addr& a, bool with_port) {
  char buf[INET6_ADDRSTRLEN];
  EXPECT_NE(inet_ntop(a.family, a.ip, buf, sizeof buf), nullptr);
  std::string s = buf;
  if (!with_port) return s;
  return (a.family == AF_INET6 ? "[" + s + "]" : s) + ":" + std::to_string(a.port);
}

void expect_same(const tf::Addr& a) {
  for (bool port : {false, true}) {
    char out[kMaxAddrText];
    const size_t n = format_addr_to(out, a, port);
    ASSERT_LE(n, kMaxAddrText);
    EXPECT_EQ(std::string(out, n), reference(a, port));
    EXPECT_EQ(format_addr(a, port), reference(a, port));
  }
}

void expect_same_v6(const char* text, uint16_t port = 443) {
  uint8_t ip[16];
  ASSERT_EQ(inet_pton(AF_INET6, text, ip), 1) << text;
  SCOPED_TRACE(text);
  expect_same(make(AF_INET6, ip, port));
}

TEST(AddrFormat, Ipv4EdgeCases) {
  const uint8_t cases[][4] = {{0, 0, 0, 0}, {127, 0, 0, 1}, {255, 255, 255, 255}, {10, 0, 100, 9},
                              {1, 2, 3, 4}, {192, 168, 10, 200}, {0, 99, 100, 0}};
  for (const auto& ip : cases)
    for (uint16_t port : {0, 1, 9, 10, 80, 443, 8080, 9999, 10000, 65535}) expect_same(make(AF_INET, ip, port));
}

TEST(AddrFormat, Ipv6EdgeCases) {
  for (const char* t : {"::", "::1", "::2", "1::", "1::1", "::ffff:1.2.3.4", "::ffff:0.0.0.0", "::1.2.3.4",
                        "::0.0.1.0", "::ffff", "::ffff:0:0", "::fffe:1.2.3.4", "::1:ffff:1.2.3.4",
                        "64:ff9b::1.2.3.4", "fe80::1", "fe80::a:b:c:d", "2001:db8::1", "2001:db8:0:0:1:0:0:1",
                        "2001:db8:0:1:1:1:1:1", "2001:0:0:1::1", "1:0:1:0:1:0:1:0", "0:1:0:1:0:1:0:1",
                        "1:2:3:4:5:6:7:8", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1:0:0:2:0:0:0:3",
                        "1:0:0:0:2:0:0:3", "0:0:1:0:0:0:0:0", "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
                        "100::", "1000::f", "f:f0:f00:f000::"})
    expect_same_v6(t);
  expect_same_v6("::1", 0);
  expect_same_v6("::1", 65535);
}

TEST(AddrFormat, UnknownFamily) {
  tf::Addr a{};
  char out[kMaxAddrText];
  EXPECT_EQ(std::string(out, format_addr_to(out, a, false)), "?");
  EXPECT_EQ(std::string(out, format_addr_to(out, a, true)), "?:0");
}

// Random addresses, biased towards zero groups so that runs, ties and the IPv4 tail rules are hit.
TEST(AddrFormat, RandomAgainstInetNtop) {
  std::mt19937_64 rng(12345);
  for (int n = 0; n < 200000; ++n) {
    uint8_t ip[16];
    const unsigned zero_bias = rng() % 4;  // 0: uniform bytes; else: each group zero w.p. bias/4
    for (int g = 0; g < 8; ++g) {
      const uint64_t r = rng();
      const bool zero = zero_bias && (r % 4) < zero_bias;
      const bool small = (r >> 8) % 3 == 0;  // one-, two- and three-digit groups too
      ip[2 * g] = zero || small ? 0 : uint8_t(r >> 16);
      ip[2 * g + 1] = zero ? 0 : uint8_t(r >> 24) >> ((r >> 32) % 8);
    }
    if (n % 7 == 0) std::memcpy(ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);  // IPv4-mapped
    const uint16_t port = uint16_t(rng());
    expect_same(make(AF_INET6, ip, port));
    expect_same(make(AF_INET, ip, port));
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace httptrace::analyzer
