// The recorder's view of one HTTP/2 connection (over TLS, or h2c on a plain socket): each
// direction's frame walk, and the HPACK decoding of the header blocks in it (record/hpack.h).
//
// The walk sees every byte the program sends or receives on the connection, in order, so it stays
// in step with frame boundaries across calls (a frame split over reads, many frames in one write).
// Per call it yields the 9-byte headers of the frames that start in it (CaptureKind::kH2Frames) and
// writes one H2HeadersEvent per header block that ends in it. Payload bytes are looked at only to
// decode header blocks and the SETTINGS_HEADER_TABLE_SIZE value; nothing else is kept.
//
// State lives in a fixed pool of kH2Slots connections in .bss (no allocation; pages of slots never
// used are never touched), claimed at the connection's first h2 call with one CAS. A connection
// beyond the pool gets frame headers only (TLS) or nothing (h2c). Each direction is walked by one
// thread at a time; two threads in the same direction at once (their bytes interleave unknowably)
// stop that direction for good rather than wait.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/trace_format.h"
#include "interpose/record/hpack.h"

namespace httptrace::h2 {

inline constexpr size_t kSlots = 64;
inline constexpr size_t kFrameHeader = 9;

// Where the frame headers of one call go. When a call starts more frames than fit, the headers
// the analyzer needs most (HEADERS, PUSH_PROMISE, RST_STREAM, GOAWAY, END_STREAM) replace DATA and
// control frames, and cut is set (format::kDataH2FramesCut).
struct FrameOut {
  uint8_t* buf;
  size_t max;  // in frames
  size_t n = 0;
  bool cut = false;
  void add(const uint8_t* hdr);
};

struct Walk {
  std::atomic<bool> busy{false};
  std::atomic<bool> dead{false};  // lost step (concurrent use): no frames, no decoding
  uint8_t preface;                // bytes of the client preface matched; kPrefaceDone once decided
  uint8_t hdr_len;
  uint8_t hdr[kFrameHeader];
  uint8_t type, flags;
  uint32_t stream;
  uint32_t left;       // payload bytes of the current frame not yet walked
  uint8_t pre_need, pre_have;  // pad length / priority / promised id before a block fragment
  uint8_t pre[6];
  uint32_t frag_left;  // block fragment bytes of the current frame not yet decoded
  uint8_t set_have;    // bytes of a SETTINGS entry split across calls
  uint8_t set[6];
  bool in_block;       // a header block is open (CONTINUATION expected)
  uint32_t block_stream;
  uint8_t block_flags; // format::kH2*
  uint32_t table_seen; // last table size applied from the peer's SETTINGS
  hpack::Fields fields;
  hpack::Decoder dec;
  hpack::HpackArena arena;

  static constexpr uint8_t kPrefaceDone = 0xff;
  void reset();
};

struct Conn {
  std::atomic<uint32_t> owner{0};  // 0 free, else the connection id
  bool h2c = false;                // a plain socket's (released at close) rather than a TLS session's
  Walk dir[2];                     // by format::Direction
  // SETTINGS_HEADER_TABLE_SIZE sent by the receiver of dir's blocks (in the other direction).
  std::atomic<uint32_t> table_allow[2]{};
};

// A slot for connection conn, reset, or nullptr when the pool is full.
Conn* claim(uint32_t conn, bool h2c);
void release(Conn* c);
Conn* slot(size_t index);  // nullptr when out of range
size_t index_of(const Conn* c);
// h2c only: releases conn's slot, if it has one (at close). One load when no h2c slot is live.
void release_conn(uint32_t conn);

// A status line and header block that switch a plain connection to h2 (RFC 7540 §3.2: "101" with
// "Upgrade: h2c"): the offset of the first h2 byte after its blank line, or 0 when p[0, n) is not
// one, or its header block does not end within n bytes.
size_t h2c_upgrade_end(const uint8_t* p, size_t n);

// Walks n bytes moved in direction dir on connection conn (its slot c); frame headers to out;
// finished header blocks become H2HeadersEvents at time ts.
void walk(Conn& c, format::Direction dir, const uint8_t* p, size_t n, FrameOut& out, uint32_t conn,
          uint64_t ts);

// The same over a Walk alone, for tests and benchmarks: blocks go to on_block(ctx, walk).
using BlockFn = void (*)(void* ctx, const Walk& w);
void walk_dir(Walk& w, std::atomic<uint32_t>& other_allow, const std::atomic<uint32_t>& my_allow,
              const uint8_t* p, size_t n, FrameOut& out, BlockFn on_block, void* ctx);

// Builds the H2HeadersEvent of w's finished block into buf (format::kH2HeadersMax bytes);
// returns its length before padding.
size_t build_headers_event(const Walk& w, format::Direction dir, uint32_t conn, uint64_t ts,
                           uint8_t* buf);

}  // namespace httptrace::h2
