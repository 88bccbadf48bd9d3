#include "interpose/record/hpack.h"

#include <cstring>

namespace httptrace::hpack {

namespace {
constexpr uint32_t kLive = 0x4c495645;  // "LIVE": catches a free of something not ours
constexpr uint32_t kFree = 0x46524545;
}  // namespace

void HpackArena::reset() {
  bump_ = 0;
  for (Block*& b : free_) b = nullptr;
}

int HpackArena::class_of(size_t n) {
  size_t need = n + sizeof(Block);
  int c = 0;
  size_t sz = 32;
  while (sz < need) {
    sz <<= 1;
    if (++c >= kClasses) return -1;
  }
  return c;
}

void* HpackArena::alloc(size_t n) {
  const int c = class_of(n);
  if (c < 0) return nullptr;
  Block* b = free_[c];
  if (b != nullptr) {
    free_[c] = b->next;
  } else {
    const size_t sz = size_t{32} << c;
    if (sz > kArenaBytes - bump_) return nullptr;
    b = reinterpret_cast<Block*>(mem_ + bump_);
    bump_ += sz;
    b->cls = static_cast<uint32_t>(c);
  }
  b->magic = kLive;
  b->next = nullptr;
  return b + 1;
}

void HpackArena::free(void* p) {
  if (p == nullptr) return;
  Block* b = static_cast<Block*>(p) - 1;
  if (b->magic != kLive || b->cls >= kClasses) return;
  b->magic = kFree;
  b->next = free_[b->cls];
  free_[b->cls] = b;
}

void* HpackArena::realloc(void* p, size_t n) {
  if (p == nullptr) return alloc(n);
  Block* b = static_cast<Block*>(p) - 1;
  if (b->magic != kLive) return nullptr;
  const size_t cap = (size_t{32} << b->cls) - sizeof(Block);
  if (n <= cap) return p;
  void* q = alloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, cap);
  free(p);
  return q;
}

namespace {

void* arena_malloc(size_t n, void* ud) { return static_cast<HpackArena*>(ud)->alloc(n); }
void arena_free(void* p, void* ud) { static_cast<HpackArena*>(ud)->free(p); }
void* arena_calloc(size_t k, size_t n, void* ud) {
  if (n != 0 && k > kArenaBytes / n) return nullptr;
  void* p = static_cast<HpackArena*>(ud)->alloc(k * n);
  if (p != nullptr) std::memset(p, 0, k * n);
  return p;
}
void* arena_realloc(void* p, size_t n, void* ud) { return static_cast<HpackArena*>(ud)->realloc(p, n); }

struct Name {
  const char* s;
  uint8_t len;
};
constexpr Name kNames[kFields] = {{":method", 7}, {":path", 5}, {":authority", 10}, {":status", 7},
                                  {"traceparent", 11}};

void keep(const nghttp2_nv& nv, Fields& out) {
  for (int f = 0; f < kFields; ++f) {
    if (nv.namelen != kNames[f].len || std::memcmp(nv.name, kNames[f].s, nv.namelen) != 0) continue;
    if (out.present & (1u << f)) return;  // the first one counts, as HTTP/1 captures do
    size_t n = nv.valuelen;
    if (n > kFieldMax[f]) {
      // Only a path is worth its start (the HTTP/1 target rule); a cut authority or traceparent
      // would be a wrong value.
      if (f != kPath) return;
      n = kFieldMax[f];
      out.path_cut = true;
    }
    std::memcpy(out.val[f], nv.value, n);
    out.len[f] = static_cast<uint16_t>(n);
    out.present |= static_cast<uint8_t>(1u << f);
    return;
  }
}

}  // namespace

bool Decoder::start(HpackArena* arena) {
  stop();
  arena_ = arena;
  mem_ = nghttp2_mem{arena, arena_malloc, arena_free, arena_calloc, arena_realloc};
  table_ = wanted_ = 4096;
  if (nghttp2_hd_inflate_new2(&inf_, &mem_) != 0) inf_ = nullptr;
  return inf_ != nullptr;
}

void Decoder::stop() {
  if (inf_ != nullptr) nghttp2_hd_inflate_del(inf_);
  inf_ = nullptr;
}

void Decoder::allow_table(uint32_t n) {
  if (n > wanted_) wanted_ = n < kTableCap ? n : kTableCap;
}

bool Decoder::feed(const uint8_t* p, size_t n, bool final, Fields& out) {
  if (inf_ == nullptr) return false;
  if (wanted_ != table_) {
    // Between blocks only (a raise never makes the inflater demand an update mid-block).
    if (nghttp2_hd_inflate_change_table_size(inf_, wanted_) != 0) return stop(), false;
    table_ = wanted_;
  }
  const size_t n0 = n;
  for (size_t rounds = 0;; ++rounds) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t r = nghttp2_hd_inflate_hd2(inf_, &nv, &flags, p, n, final ? 1 : 0);
    // A block emits one field per round and consumes at least a byte for it: more rounds than
    // bytes (plus the final one) means something is wrong with the inflater, not the input.
    if (r < 0 || static_cast<size_t>(r) > n || rounds > n0 + 2) return stop(), false;
    p += r, n -= static_cast<size_t>(r);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) keep(nv, out);
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf_);
      return true;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && n == 0) return false;
  }
}

}  // namespace httptrace::hpack
