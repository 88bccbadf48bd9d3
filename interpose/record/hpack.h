// HPACK decoding inside the traced process, for the allow-listed fields of HTTP/2 header blocks.
//
// Why here and not in the analyzer: every header block updates the HPACK dynamic table, so the
// only way to name a request's :path without keeping every header value of the connection is to
// decode as the bytes pass and keep just the fields below (SPEC §5). The decoding itself is
// libnghttp2's inflater (nghttp2_hd_inflate_*), linked statically into libhttptrace.so with its
// symbols hidden (Makefile: -Wl,--exclude-libs): a program that loads its own libnghttp2 (curl)
// keeps its own instance and version, we add no DT_NEEDED to every traced process, and neither
// copy can see or interpose the other's functions. Sharing the program's instance would tie us to
// whatever version it loaded (or none) and make us load the library into programs that never use
// HTTP/2.
//
// Memory: the inflater allocates through an nghttp2_mem whose blocks come from a fixed arena per
// direction of a connection (HpackArena), handed out by the connection pool at connection start,
// so decoding makes no malloc call and a connection can never use more than kArenaBytes. A block
// that does not fit (a 60 KiB cookie, a table bigger than kTableCap) or any decoding error makes
// that direction of that connection stop decoding for good (broken()); the program never notices.
#pragma once

#include <cstddef>
#include <cstdint>

#include <nghttp2/nghttp2.h>

namespace httptrace::hpack {

inline constexpr size_t kArenaBytes = 128 * 1024;
inline constexpr uint32_t kTableCap = 16 * 1024;  // largest dynamic table we agree to follow

// Power-of-two size classes over a bump region, each with its own free list: entries leave the
// dynamic table in insertion order, which a single free list would fragment, and a class never
// gives memory back to another, so the worst case is bounded by the arena and ends in NOMEM.
class HpackArena {
 public:
  void reset();  // forget every block (the arena's bytes are reused as they are)
  void* alloc(size_t n);
  void free(void* p);
  void* realloc(void* p, size_t n);
  size_t used() const { return bump_; }

 private:
  static constexpr int kClasses = 14;  // 32 B .. 128 KiB
  struct alignas(16) Block {
    uint32_t cls;
    uint32_t magic;
    Block* next;  // in a free list
  };
  static int class_of(size_t n);
  alignas(16) unsigned char mem_[kArenaBytes];
  size_t bump_ = 0;
  Block* free_[kClasses] = {};
};

// Which allow-listed fields a block carried (format::H2HeadersEvent::fields bits).
enum Field : uint8_t { kMethod = 0, kPath = 1, kAuthority = 2, kStatus = 3, kTraceparent = 4 };
inline constexpr int kFields = 5;
inline constexpr size_t kFieldMax[kFields] = {24, 256, 255, 3, 128};

// The allow-listed fields of one header block, filled as the inflater emits them.
struct Fields {
  uint8_t present = 0;  // 1 << Field
  bool path_cut = false;
  uint16_t len[kFields] = {};
  char val[kFields][256] = {};
  void clear() { present = 0, path_cut = false; }
};

class Decoder {
 public:
  // Starts decoding on arena (which must outlive the decoder's use). False when the inflater could
  // not be set up; the decoder is then broken.
  bool start(HpackArena* arena);
  void stop();  // releases the inflater (its memory is the arena's, reset by the owner)
  bool broken() const { return inf_ == nullptr; }

  // The peer that decodes what this side encodes allowed a table of n bytes (SETTINGS). Only ever
  // raised: SETTINGS take effect when acknowledged, and following a shrink before the encoder
  // does would reject its blocks.
  void allow_table(uint32_t n);

  // One piece of a header block's fragment; final on the piece that ends the block (END_HEADERS).
  // Fields of the block are collected into out; true when the block ended in this call (out then
  // holds all of it). On a decoding error the decoder becomes broken and returns false.
  bool feed(const uint8_t* p, size_t n, bool final, Fields& out);

 private:
  nghttp2_mem mem_ = {};  // the inflater keeps a pointer to it
  nghttp2_hd_inflater* inf_ = nullptr;
  HpackArena* arena_ = nullptr;
  uint32_t table_ = 4096;
  uint32_t wanted_ = 4096;
};

}  // namespace httptrace::hpack
