// The HTTP/2 frame cursor: preface skipping, frames split across calls, several frames per call,
// and the cap on headers reported per call.
#include "interpose/tls/h2.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace httptrace::tls {
namespace {

std::string frame(uint8_t type, uint32_t stream, size_t payload_len, char fill = 'x') {
  std::string f;
  f.push_back(static_cast<char>(payload_len >> 16));
  f.push_back(static_cast<char>(payload_len >> 8));
  f.push_back(static_cast<char>(payload_len));
  f.push_back(static_cast<char>(type));
  f.push_back(0x4);  // END_HEADERS / ignored for other types
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<char>(stream >> shift));
  f.append(payload_len, fill);
  return f;
}

// Feeds bytes in pieces of `step` and returns the types of all headers reported, in order.
std::vector<int> types_fed(const std::string& bytes, size_t step, size_t max_per_call = 16) {
  H2Cursor c{};
  std::vector<int> types;
  uint8_t out[16 * kH2FrameHeader];
  for (size_t off = 0; off < bytes.size(); off += step) {
    size_t n = std::min(step, bytes.size() - off);
    size_t got = c.feed(reinterpret_cast<const uint8_t*>(bytes.data() + off), n, out, max_per_call);
    for (size_t i = 0; i < got; ++i) types.push_back(out[i * kH2FrameHeader + 3]);
  }
  return types;
}

TEST(TlsH2Cursor, ClientStreamSkipsPrefaceAndFindsEveryFrame) {
  std::string s = std::string(kH2Preface) + frame(0x4, 0, 18) + frame(0x8, 0, 4) +
                  frame(kH2FrameHeaders, 1, 40) + frame(kH2FrameHeaders, 3, 35) + frame(0x0, 3, 300);
  const std::vector<int> want = {0x4, 0x8, 1, 1, 0};
  for (size_t step : {s.size(), size_t{1}, size_t{5}, size_t{9}, size_t{10}, size_t{64}}) {
    EXPECT_EQ(types_fed(s, step), want) << "step " << step;
  }
}

TEST(TlsH2Cursor, ServerStreamHasNoPreface) {
  std::string s = frame(0x4, 0, 6) + frame(kH2FrameHeaders, 1, 20) + frame(0x0, 1, 16384, 'P');
  EXPECT_EQ(types_fed(s, 7), (std::vector<int>{0x4, 1, 0}));
}

TEST(TlsH2Cursor, StreamIdAndLengthAreKeptExactly) {
  H2Cursor c{};
  std::string s = frame(kH2FrameHeaders, 0x01020305, 0x10203);
  uint8_t out[kH2FrameHeader];
  ASSERT_EQ(c.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out, 1), 1u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), kH2FrameHeader), s.substr(0, 9));
  EXPECT_EQ(c.payload_left, 0u);
}

TEST(TlsH2Cursor, CapPerCallStillAdvancesPastUnreportedFrames) {
  std::string s;
  for (int i = 0; i < 6; ++i) s += frame(kH2FrameHeaders, 2 * i + 1, 10);
  s += frame(0x0, 1, 5);
  H2Cursor c{};
  uint8_t out[2 * kH2FrameHeader];
  EXPECT_EQ(c.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out, 2), 2u);
  // The next call starts at a frame boundary, proving the capped frames were walked.
  std::string next = frame(0x3, 9, 4);
  ASSERT_EQ(c.feed(reinterpret_cast<const uint8_t*>(next.data()), next.size(), out, 2), 1u);
  EXPECT_EQ(out[3], 0x3);
}

}  // namespace
}  // namespace httptrace::tls
