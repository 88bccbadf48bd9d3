#include "interpose/record/h2_conn.h"

#include <cstring>

#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"

namespace httptrace::h2 {

namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kPrefaceLen = sizeof kPreface - 1;

enum : uint8_t { kData = 0, kHeaders = 1, kRst = 3, kSettings = 4, kPush = 5, kGoaway = 7, kContinuation = 9 };
enum : uint8_t { kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriority = 0x20 };
constexpr uint32_t kSettingsHeaderTable = 1;

// Zero-initialised .bss; see the header for why a pool.
constinit Conn g_pool[kSlots];
std::atomic<uint32_t> g_h2c_live{0};

bool important(const uint8_t* h) {
  const uint8_t type = h[3];
  if (type == kData) return (h[4] & kEndStream) != 0;
  return type == kHeaders || type == kPush || type == kRst || type == kGoaway;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Whether line[0, n) is "Upgrade:" with the value h2c, in any case and spacing.
bool upgrade_h2c_line(const uint8_t* line, size_t n) {
  static constexpr char kName[] = "upgrade:";
  constexpr size_t kLen = sizeof kName - 1;
  if (n < kLen) return false;
  for (size_t i = 0; i < kLen; ++i)
    if (lower(line[i]) != static_cast<uint8_t>(kName[i])) return false;
  size_t v = kLen, e = n;
  while (v < e && (line[v] == ' ' || line[v] == '\t')) ++v;
  while (e > v && (line[e - 1] == ' ' || line[e - 1] == '\t')) --e;
  return e - v == 3 && lower(line[v]) == 'h' && line[v + 1] == '2' && lower(line[v + 2]) == 'c';
}

}  // namespace

size_t h2c_upgrade_end(const uint8_t* p, size_t n) {
  if (n < 12 || std::memcmp(p, "HTTP/1.1 101", 12) != 0) return 0;
  const void* nl = std::memchr(p, '\n', n);
  if (nl == nullptr) return 0;
  bool h2c = false;
  for (size_t pos = static_cast<size_t>(static_cast<const uint8_t*>(nl) - p) + 1; pos < n;) {
    nl = std::memchr(p + pos, '\n', n - pos);
    if (nl == nullptr) return 0;
    const size_t eol = static_cast<size_t>(static_cast<const uint8_t*>(nl) - p);
    const size_t end = eol > pos && p[eol - 1] == '\r' ? eol - 1 : eol;
    if (end == pos) return h2c ? eol + 1 : 0;  // the blank line: h2 from the next byte
    h2c = h2c || upgrade_h2c_line(p + pos, end - pos);
    pos = eol + 1;
  }
  return 0;
}

void FrameOut::add(const uint8_t* hdr) {
  if (n < max) {
    std::memcpy(buf + n * kFrameHeader, hdr, kFrameHeader);
    ++n;
    return;
  }
  cut = true;
  if (!important(hdr)) return;
  for (size_t i = n; i-- > 0;) {
    if (!important(buf + i * kFrameHeader)) {
      // Shifted, not overwritten in place: the frames keep their order.
      std::memmove(buf + i * kFrameHeader, buf + (i + 1) * kFrameHeader, (n - 1 - i) * kFrameHeader);
      std::memcpy(buf + (n - 1) * kFrameHeader, hdr, kFrameHeader);
      return;
    }
  }
}

void Walk::reset() {
  busy.store(false, std::memory_order_relaxed);
  dead.store(false, std::memory_order_relaxed);
  preface = 0;
  hdr_len = 0;
  type = flags = 0;
  stream = left = frag_left = 0;
  pre_need = pre_have = set_have = 0;
  in_block = false;
  block_stream = 0;
  block_flags = 0;
  table_seen = 4096;
  fields.clear();
  dec.stop();
  arena.reset();
  dec.start(&arena);
}

namespace {

struct Walker {
  Walk& w;
  std::atomic<uint32_t>& other_allow;
  const std::atomic<uint32_t>& my_allow;
  FrameOut& out;
  BlockFn on_block;
  void* ctx;

  void fail() { w.dec.stop(); }  // a protocol error: no more decoding on this direction

  void decode(const uint8_t* p, size_t n, bool final) {
    if (w.dec.broken()) return;
    if (w.dec.feed(p, n, final, w.fields)) {
      w.in_block = false;
      if (w.fields.path_cut) w.block_flags |= format::kH2PathCut;
      on_block(ctx, w);
    } else if (final && !w.dec.broken()) {
      fail();  // final input that did not end the block
    }
  }

  void start_block(uint32_t stream, uint8_t flags) {
    if (w.in_block) return fail();
    const uint32_t allow = my_allow.load(std::memory_order_relaxed);
    if (allow != w.table_seen) {
      w.table_seen = allow;
      w.dec.allow_table(allow);
    }
    w.in_block = true;
    w.block_stream = stream;
    w.block_flags = flags;
    w.fields.clear();
  }

  // The frame header in w.hdr is complete: what of its payload matters.
  void begin_frame() {
    const uint8_t* h = w.hdr;
    w.left = (uint32_t{h[0]} << 16) | (uint32_t{h[1]} << 8) | h[2];
    w.type = h[3];
    w.flags = h[4];
    w.stream = be32(h + 5) & 0x7fffffffu;
    w.pre_need = w.pre_have = 0;
    w.frag_left = 0;
    w.set_have = 0;
    out.add(h);
    if (w.in_block && w.type != kContinuation) return fail();
    switch (w.type) {
      case kHeaders:
        w.pre_need = static_cast<uint8_t>(((w.flags & kPadded) ? 1 : 0) + ((w.flags & kPriority) ? 5 : 0));
        start_block(w.stream, (w.flags & kEndStream) ? format::kH2EndStream : 0);
        break;
      case kPush:
        w.pre_need = static_cast<uint8_t>(((w.flags & kPadded) ? 1 : 0) + 4);
        start_block(0, format::kH2PushPromise);
        break;
      case kContinuation:
        if (!w.in_block || w.stream != w.block_stream) return fail();
        break;
      default:
        return;
    }
    if (w.pre_need > w.left) return fail();
    if (w.pre_need == 0) after_prefix();
  }

  void after_prefix() {
    uint32_t pad = 0;
    if (w.type != kContinuation && (w.flags & kPadded)) pad = w.pre[0];
    if (w.type == kPush) w.block_stream = be32(w.pre + ((w.flags & kPadded) ? 1 : 0)) & 0x7fffffffu;
    if (pad > w.left) return fail();
    w.frag_left = w.left - pad;
    if (w.frag_left == 0 && (w.flags & kEndHeaders)) {
      static const uint8_t kNone = 0;
      decode(&kNone, 0, true);
    }
  }

  void settings_entry(const uint8_t* e) {
    const uint32_t id = (uint32_t{e[0]} << 8) | e[1];
    if (id != kSettingsHeaderTable) return;
    const uint32_t v = be32(e + 2);
    // Raised only (hpack.h: Decoder::allow_table); read by the other direction's walk.
    uint32_t cur = other_allow.load(std::memory_order_relaxed);
    while (v > cur && !other_allow.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
  }

  // n payload bytes of the current frame.
  size_t payload(const uint8_t* p, size_t n) {
    if (n > w.left) n = w.left;
    size_t used = 0;
    if (w.pre_have < w.pre_need) {
      size_t take = w.pre_need - w.pre_have;
      if (take > n) take = n;
      std::memcpy(w.pre + w.pre_have, p, take);
      w.pre_have = static_cast<uint8_t>(w.pre_have + take);
      w.left -= static_cast<uint32_t>(take);
      if (w.pre_have == w.pre_need) after_prefix();
      return take;
    }
    if (w.frag_left > 0) {
      size_t take = w.frag_left < n ? w.frag_left : n;
      w.frag_left -= static_cast<uint32_t>(take);
      w.left -= static_cast<uint32_t>(take);
      decode(p, take, w.frag_left == 0 && (w.flags & kEndHeaders));
      return take;
    }
    if (w.type == kSettings && !(w.flags & kAck) && w.stream == 0) {
      while (used < n) {
        w.set[w.set_have++] = p[used++];
        if (w.set_have == 6) {
          settings_entry(w.set);
          w.set_have = 0;
        }
      }
      w.left -= static_cast<uint32_t>(used);
      return used;
    }
    w.left -= static_cast<uint32_t>(n);  // DATA, padding, and everything else: skipped
    return n;
  }

  void feed(const uint8_t* p, size_t n) {
    while (n > 0) {
      if (w.preface != Walk::kPrefaceDone) {
        if (static_cast<uint8_t>(kPreface[w.preface]) != *p) {
          // Not the preface (the server's side, or bytes already past it): frames from here.
          w.preface = Walk::kPrefaceDone;
          continue;
        }
        ++p, --n;
        if (++w.preface == kPrefaceLen) w.preface = Walk::kPrefaceDone;
        continue;
      }
      if (w.left > 0 || w.hdr_len == kFrameHeader) {
        const size_t used = payload(p, n);
        p += used, n -= used;
        if (w.left == 0) w.hdr_len = 0;
        continue;
      }
      size_t take = kFrameHeader - w.hdr_len;
      if (take > n) take = n;
      std::memcpy(w.hdr + w.hdr_len, p, take);
      w.hdr_len = static_cast<uint8_t>(w.hdr_len + take);
      p += take, n -= take;
      if (w.hdr_len < kFrameHeader) break;
      begin_frame();
      if (w.left == 0) w.hdr_len = 0;
    }
  }
};

}  // namespace

void walk_dir(Walk& w, std::atomic<uint32_t>& other_allow, const std::atomic<uint32_t>& my_allow,
              const uint8_t* p, size_t n, FrameOut& out, BlockFn on_block, void* ctx) {
  Walker{w, other_allow, my_allow, out, on_block, ctx}.feed(p, n);
}

size_t build_headers_event(const Walk& w, format::Direction dir, uint32_t conn, uint64_t ts,
                           uint8_t* buf) {
  auto ev = new_event<format::H2HeadersEvent>(format::EventKind::kH2Headers, conn, ts);
  ev.stream = w.block_stream;
  ev.dir = static_cast<uint8_t>(dir);
  ev.flags = w.block_flags;
  ev.fields = w.fields.present;
  size_t n = sizeof ev;
  for (int f = 0; f < hpack::kFields; ++f) {
    if (!(w.fields.present & (1u << f))) continue;
    ev.len[f] = w.fields.len[f];
    std::memcpy(buf + n, w.fields.val[f], w.fields.len[f]);
    n += w.fields.len[f];
  }
  std::memcpy(buf, &ev, sizeof ev);
  return n;
}

namespace {

struct EmitCtx {
  format::Direction dir;
  uint32_t conn;
  uint64_t ts;
};

void emit_block(void* ctx, const Walk& w) {
  const auto& e = *static_cast<const EmitCtx*>(ctx);
  if (!recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  uint8_t buf[format::kH2HeadersMax];
  const size_t n = build_headers_event(w, e.dir, e.conn, e.ts, buf);
  trace_writer().emit(buf, n);
}

}  // namespace

void walk(Conn& c, format::Direction dir, const uint8_t* p, size_t n, FrameOut& out, uint32_t conn,
          uint64_t ts) {
  const int d = static_cast<int>(dir);
  Walk& w = c.dir[d];
  if (w.dead.load(std::memory_order_relaxed)) return;
  if (w.busy.exchange(true, std::memory_order_acquire)) {
    w.dead.store(true, std::memory_order_relaxed);
    return;
  }
  EmitCtx ctx{dir, conn, ts};
  walk_dir(w, c.table_allow[1 - d], c.table_allow[d], p, n, out, emit_block, &ctx);
  w.busy.store(false, std::memory_order_release);
}

Conn* claim(uint32_t conn, bool h2c) {
  if (conn == 0) return nullptr;
  for (Conn& c : g_pool) {
    uint32_t expected = 0;
    if (c.owner.load(std::memory_order_relaxed) != 0) continue;
    if (!c.owner.compare_exchange_strong(expected, conn, std::memory_order_acquire)) continue;
    for (Walk& w : c.dir) w.reset();
    for (auto& t : c.table_allow) t.store(4096, std::memory_order_relaxed);
    c.h2c = h2c;
    if (h2c) g_h2c_live.fetch_add(1, std::memory_order_relaxed);
    return &c;
  }
  return nullptr;
}

void release(Conn* c) {
  if (c == nullptr) return;
  c->h2c = false;
  for (Walk& w : c->dir) w.dec.stop();
  c->owner.store(0, std::memory_order_release);
}

Conn* slot(size_t index) { return index < kSlots ? &g_pool[index] : nullptr; }
size_t index_of(const Conn* c) { return static_cast<size_t>(c - g_pool); }

void release_conn(uint32_t conn) {
  if (g_h2c_live.load(std::memory_order_relaxed) == 0 || conn == 0) return;
  for (Conn& c : g_pool) {
    if (c.h2c && c.owner.load(std::memory_order_acquire) == conn) {
      release(&c);
      g_h2c_live.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

}  // namespace httptrace::h2
