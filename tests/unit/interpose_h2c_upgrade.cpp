// The recorder's recognition of the 101 that switches a plain connection to h2c
// (h2::h2c_upgrade_end): where the h2 bytes begin, and what is not such a 101.
#include <gtest/gtest.h>

#include <string>

#include "interpose/record/h2_conn.h"

namespace httptrace::h2 {
namespace {

size_t end_of(const std::string& s) { return h2c_upgrade_end(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(H2cUpgrade, H2BytesStartAfterTheBlankLine) {
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  EXPECT_EQ(end_of(head), head.size());
  EXPECT_EQ(end_of(head + std::string("\0\0\0\x04\0\0\0\0\0", 9)), head.size());
  EXPECT_EQ(end_of("HTTP/1.1 101 OK\nupgrade:H2C \n\n"), 30u) << "any case, bare newlines, spaces";
}

TEST(H2cUpgrade, OtherResponsesAreNot) {
  EXPECT_EQ(end_of("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), 0u);
  EXPECT_EQ(end_of("HTTP/1.1 200 OK\r\nUpgrade: h2c\r\n\r\n"), 0u);
  EXPECT_EQ(end_of("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"), 0u) << "header block not ended";
  EXPECT_EQ(end_of("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2cx\r\n\r\n"), 0u);
  EXPECT_EQ(end_of("HTTP/1.1 101"), 0u);
  EXPECT_EQ(end_of(""), 0u);
}

}  // namespace
}  // namespace httptrace::h2
