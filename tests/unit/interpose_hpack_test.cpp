// The recorder's HPACK glue (record/hpack.h) and h2 walk (record/h2_conn.h) over hand-built
// header blocks: RFC 7541 Appendix C (dynamic table, Huffman), table size updates, blocks split
// across frames and calls, padding and priority, hostile input, and the arena's bound.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "interpose/record/h2_conn.h"
#include "interpose/record/hpack.h"

namespace httptrace::h2 {
namespace {

std::string hex(const char* h) {
  std::string out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (const char* p = h; *p; ++p) {
    if (*p == ' ') continue;
    out.push_back(static_cast<char>(nib(p[0]) << 4 | nib(p[1])));
    ++p;
  }
  return out;
}

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const size_t n = payload.size();
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<char>(stream >> shift));
  return f + payload;
}

constexpr uint8_t kHeaders = 1, kContinuation = 9, kSettings = 4, kData = 0;
constexpr uint8_t kEndStream = 1, kEndHeaders = 4, kPadded = 8, kPriority = 0x20;

struct Block {
  uint32_t stream;
  uint8_t flags;
  std::string method, path, authority, status, traceparent;
};

// One direction's walk, as the recorder runs it, with the blocks it would write.
class Dir {
 public:
  Dir() {
    static Conn conn;  // big (two arenas): not on the stack
    c_ = &conn;
    for (Walk& w : c_->dir) w.reset();
    for (auto& t : c_->table_allow) t.store(4096);
  }
  Walk& walk() { return c_->dir[0]; }
  // Feeds bytes in pieces of step; returns the frame types captured.
  std::vector<int> feed(const std::string& bytes, size_t step = 1 << 20) {
    std::vector<int> types;
    for (size_t off = 0; off < bytes.size(); off += step) {
      uint8_t buf[16 * kFrameHeader];
      FrameOut out{buf, 16};
      const size_t n = std::min(step, bytes.size() - off);
      walk_dir(c_->dir[0], c_->table_allow[1], c_->table_allow[0],
               reinterpret_cast<const uint8_t*>(bytes.data() + off), n, out, &Dir::on_block, this);
      for (size_t i = 0; i < out.n; ++i) types.push_back(buf[i * kFrameHeader + 3]);
    }
    return types;
  }
  std::vector<Block> blocks;
  Conn* c_;

 private:
  static void on_block(void* ctx, const Walk& w) {
    auto* d = static_cast<Dir*>(ctx);
    Block b{w.block_stream, w.block_flags, {}, {}, {}, {}, {}};
    std::string* out[] = {&b.method, &b.path, &b.authority, &b.status, &b.traceparent};
    for (int f = 0; f < hpack::kFields; ++f)
      if (w.fields.present & (1u << f)) out[f]->assign(w.fields.val[f], w.fields.len[f]);
    d->blocks.push_back(b);
  }
};

// RFC 7541 C.3: three requests sharing the dynamic table, no Huffman.
const char* kC3[] = {
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"};
// C.4: the same with Huffman-coded strings.
const char* kC4[] = {"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", "8286 84be 5886 a8eb 1064 9cbf",
                     "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"};

void expect_c_requests(const std::vector<Block>& b) {
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].method, "GET");
  EXPECT_EQ(b[0].path, "/");
  EXPECT_EQ(b[0].authority, "www.example.com");
  EXPECT_EQ(b[1].authority, "www.example.com") << "from the dynamic table (index 62)";
  EXPECT_EQ(b[2].path, "/index.html");
  EXPECT_EQ(b[2].authority, "www.example.com") << "dynamic index 63 after two insertions";
  EXPECT_EQ(b[0].stream, 1u);
  EXPECT_EQ(b[2].stream, 5u);
}

TEST(Hpack, DynamicTableAcrossBlocks) {
  Dir d;
  std::string s = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  for (int i = 0; i < 3; ++i) s += frame(kHeaders, kEndHeaders | kEndStream, 1 + 2 * i, hex(kC3[i]));
  EXPECT_EQ(d.feed(s), (std::vector<int>{1, 1, 1}));
  expect_c_requests(d.blocks);
  EXPECT_EQ(d.blocks[0].flags & format::kH2EndStream, format::kH2EndStream);
}

TEST(Hpack, HuffmanStringsByteByByte) {
  Dir d;
  std::string s;
  for (int i = 0; i < 3; ++i) s += frame(kHeaders, kEndHeaders, 1 + 2 * i, hex(kC4[i]));
  d.feed(s, 1);  // every byte its own call: frame headers and strings split everywhere
  expect_c_requests(d.blocks);
  EXPECT_EQ(d.blocks[0].flags & format::kH2EndStream, 0);
}

TEST(Hpack, ResponsesWithTableSizeUpdate) {
  // C.5.1 / C.5.2 (:status 302 then 307), preceded by a dynamic table size update to 256 (0x3f e1 01).
  Dir d;
  const std::string r1 = hex("3fe1 01") + hex(
      "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a"
      "3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
  const std::string r2 = hex("4803 3330 37c1 c0bf");
  d.feed(frame(kHeaders, kEndHeaders, 1, r1) + frame(kHeaders, kEndHeaders | kEndStream, 3, r2));
  ASSERT_EQ(d.blocks.size(), 2u);
  EXPECT_EQ(d.blocks[0].status, "302");
  EXPECT_EQ(d.blocks[1].status, "307");
  EXPECT_FALSE(d.walk().dec.broken());
}

TEST(Hpack, TableLargerThanAllowedStopsDecoding) {
  Dir d;
  // Size update to 8192 while the peer allowed the default 4096: a protocol error.
  d.feed(frame(kHeaders, kEndHeaders, 1, hex("3fe1 3f 82")) + frame(kHeaders, kEndHeaders, 3, hex("82 84")));
  EXPECT_TRUE(d.blocks.empty());
  EXPECT_TRUE(d.walk().dec.broken());
}

TEST(Hpack, PeerSettingsRaiseTheTable) {
  Dir d;
  // The other direction's SETTINGS (HEADER_TABLE_SIZE = 8192) lands in table_allow[0].
  Walk& other = d.c_->dir[1];
  uint8_t buf[16 * kFrameHeader];
  FrameOut out{buf, 16};
  const std::string settings = frame(kSettings, 0, 0, hex("0001 0000 2000 0004 0000 ffff"));
  walk_dir(other, d.c_->table_allow[0], d.c_->table_allow[1],
           reinterpret_cast<const uint8_t*>(settings.data()), settings.size(), out,
           [](void*, const Walk&) {}, nullptr);
  EXPECT_EQ(d.c_->table_allow[0].load(), 8192u);
  d.feed(frame(kHeaders, kEndHeaders, 1, hex("3fe1 3f 82")));
  ASSERT_EQ(d.blocks.size(), 1u);
  EXPECT_EQ(d.blocks[0].method, "GET");
}

TEST(Hpack, BlockSplitOverContinuationPaddingAndPriority) {
  Dir d;
  const std::string b = hex(kC3[0]);
  // HEADERS (padded, with priority) carrying the first 5 bytes, then two CONTINUATIONs.
  std::string h = std::string(1, '\x03') + hex("0000 0000 10") + b.substr(0, 5) + std::string(3, '\0');
  std::string s = frame(kHeaders, kPadded | kPriority | kEndStream, 1, h) +
                  frame(kContinuation, 0, 1, b.substr(5, 4)) +
                  frame(kContinuation, kEndHeaders, 1, b.substr(9)) + frame(kData, kEndStream, 1, "abc");
  for (size_t step : {size_t{1}, size_t{7}, s.size()}) {
    Dir e;
    EXPECT_EQ(e.feed(s, step), (std::vector<int>{1, 9, 9, 0})) << step;
    ASSERT_EQ(e.blocks.size(), 1u) << step;
    EXPECT_EQ(e.blocks[0].authority, "www.example.com");
    EXPECT_EQ(e.blocks[0].flags & format::kH2EndStream, format::kH2EndStream);
  }
}

TEST(Hpack, OnlyAllowListedFieldsAndPathCut) {
  Dir d;
  // :method POST (index 3), cookie (name index 32) "secret=1", :path literal of 300 bytes,
  // traceparent literal name.
  std::string path = "/" + std::string(299, 'p');
  std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  std::string blk = hex("83") + hex("60 08") + "secret=1" + hex("04 7f ad 01") + path + hex("00 0b") +
                    "traceparent" + std::string(1, static_cast<char>(tp.size())) + tp;
  d.feed(frame(kHeaders, kEndHeaders, 1, blk));
  ASSERT_EQ(d.blocks.size(), 1u);
  const Block& b = d.blocks[0];
  EXPECT_EQ(b.method, "POST");
  EXPECT_EQ(b.path, path.substr(0, 256));
  EXPECT_TRUE(b.flags & format::kH2PathCut);
  EXPECT_EQ(b.traceparent, tp);
  // The event the recorder writes holds exactly those bytes and no cookie.
  uint8_t ev[format::kH2HeadersMax];
  const size_t n = build_headers_event(d.walk(), format::Direction::kSend, 7, 1000, ev);
  const std::string bytes(reinterpret_cast<char*>(ev), n);
  EXPECT_EQ(bytes.find("secret"), std::string::npos);
  EXPECT_EQ(n, sizeof(format::H2HeadersEvent) + 4 + 256 + tp.size());
}

TEST(Hpack, HostileBlockStopsOnlyDecoding) {
  Dir d;
  // An index far past both tables, then a well-formed block: decoding is over for this
  // direction, but the frame walk stays in step.
  const std::string s = frame(kHeaders, kEndHeaders, 1, hex("ff ff ff ff 0f")) +
                        frame(kHeaders, kEndHeaders, 3, hex(kC3[0])) + frame(kData, kEndStream, 3, "xy");
  EXPECT_EQ(d.feed(s, 3), (std::vector<int>{1, 1, 0}));
  EXPECT_TRUE(d.blocks.empty());
  EXPECT_TRUE(d.walk().dec.broken());
}

TEST(Hpack, ContinuationWithoutHeadersIsAProtocolError) {
  Dir d;
  d.feed(frame(kContinuation, kEndHeaders, 1, hex(kC3[0])) + frame(kHeaders, kEndHeaders, 3, hex(kC3[0])));
  EXPECT_TRUE(d.blocks.empty());
  EXPECT_TRUE(d.walk().dec.broken());
}

// A literal of `len` bytes with name index 32 (cookie), not indexed, in 16 KiB frames on stream 1,
// followed by :method GET (index 2) in the same block.
std::string big_cookie_block(size_t len) {
  std::string blk = hex("0f 11") + hex("7f");
  size_t n = len - 127;
  while (n >= 128) blk.push_back(static_cast<char>(0x80 | (n & 0x7f))), n >>= 7;
  blk.push_back(static_cast<char>(n));
  blk += std::string(len, 'c') + hex("82");
  std::string s;
  for (size_t off = 0; off < blk.size(); off += 16384) {
    const bool last = off + 16384 >= blk.size();
    s += frame(off == 0 ? kHeaders : kContinuation, last ? kEndHeaders : 0, 1, blk.substr(off, 16384));
  }
  return s;
}

TEST(Hpack, LargeCookieDecodesFromTheArena) {
  Dir d;
  d.feed(big_cookie_block(50 * 1024), 4096);
  ASSERT_EQ(d.blocks.size(), 1u);
  EXPECT_EQ(d.blocks[0].method, "GET");
  EXPECT_GT(d.walk().arena.used(), 50u * 1024) << "the value was buffered in the arena";
  EXPECT_LE(d.walk().arena.used(), hpack::kArenaBytes);
}

TEST(Hpack, HugeFieldStopsDecodingWithinBounds) {
  Dir d;
  d.feed(big_cookie_block(200 * 1024), 4096);
  EXPECT_TRUE(d.blocks.empty());
  EXPECT_TRUE(d.walk().dec.broken());
  EXPECT_LE(d.walk().arena.used(), hpack::kArenaBytes);
}

TEST(H2Pool, ClaimReleaseClaimStartsClean) {
  Conn* a = claim(41, true);
  ASSERT_NE(a, nullptr);
  a->dir[0].dec.stop();  // as after a decoding error
  release_conn(41);
  EXPECT_EQ(a->owner.load(), 0u);
  Conn* b = claim(42, false);
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(b->dir[0].dec.broken());
  EXPECT_EQ(b->dir[0].arena.used() > 0, true) << "the inflater's own state comes from the arena";
  release_conn(42);  // not h2c: left to its TLS session
  EXPECT_EQ(b->owner.load(), 42u);
  release(b);
}

TEST(Hpack, FrameCaptureKeepsWhatTheModelNeeds) {
  uint8_t buf[2 * kFrameHeader];
  FrameOut out{buf, 2};
  const std::string a = frame(kData, 0, 1, ""), b = frame(kData, 0, 3, ""), c = frame(kHeaders, 4, 5, "");
  out.add(reinterpret_cast<const uint8_t*>(a.data()));
  out.add(reinterpret_cast<const uint8_t*>(b.data()));
  out.add(reinterpret_cast<const uint8_t*>(c.data()));
  EXPECT_TRUE(out.cut);
  ASSERT_EQ(out.n, 2u);
  EXPECT_EQ(buf[kFrameHeader + 3], kHeaders) << "the HEADERS frame displaced a plain DATA frame";
  EXPECT_EQ(buf[8], 1) << "and the one kept is still first";
}

TEST(HpackArena, ReusesFreedBlocksAndRefusesBeyondItsSize) {
  static hpack::HpackArena a;
  a.reset();
  void* p = a.alloc(100);
  ASSERT_NE(p, nullptr);
  a.free(p);
  EXPECT_EQ(a.alloc(90), p) << "same size class: the freed block comes back";
  EXPECT_EQ(a.alloc(hpack::kArenaBytes), nullptr);
  void* q = a.alloc(20);
  void* r = a.realloc(q, 4000);
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r, q);
}

}  // namespace
}  // namespace httptrace::h2
