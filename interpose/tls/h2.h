// HTTP/2 frame boundaries in a TLS plaintext byte stream, tracked across calls.
//
// On an h2 connection the request and status lines the analyzer looks for in HTTP/1.x do not
// exist; what it can count are HEADERS frames. A frame header is 9 bytes (length:24, type:8,
// flags:8, stream:32) and carries no payload, so the recorder keeps the headers of the frames that
// start in each plaintext call and nothing of their contents. The cursor remembers how much of the
// current frame is still to come, so a frame split over several SSL_read calls, or several frames
// in one SSL_write, are both walked exactly. A client's connection preface ("PRI * HTTP/2.0...",
// 24 bytes, not a frame) is skipped when the stream starts with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace httptrace::tls {

inline constexpr size_t kH2FrameHeader = 9;
inline constexpr char kH2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kH2PrefaceLen = sizeof kH2Preface - 1;  // 24
inline constexpr uint8_t kH2FrameHeaders = 0x1;

struct H2Cursor {
  uint32_t payload_left;   // bytes of the current frame's payload not yet seen
  uint8_t preface_seen;    // bytes of the preface matched so far; kPrefaceDone once decided
  uint8_t hdr_len;         // bytes of a frame header split across calls, kept in hdr
  uint8_t hdr[kH2FrameHeader];

  static constexpr uint8_t kPrefaceDone = 0xff;

  // Walks n plaintext bytes; for every frame header completed in them, copies its 9 bytes to
  // out (while room remains, max_headers in all). Returns the number of headers written.
  size_t feed(const uint8_t* p, size_t n, uint8_t* out, size_t max_headers) {
    size_t written = 0;
    while (n > 0) {
      if (preface_seen != kPrefaceDone) {
        if (static_cast<uint8_t>(kH2Preface[preface_seen]) != *p) {
          // Not the preface: frames start here. A stream that began "P..." and then diverged
          // cannot be h2 at all (a frame's first byte is 0 below 64 KiB frames), so the bytes
          // already matched are not worth keeping.
          preface_seen = kPrefaceDone;
          continue;
        }
        ++p, --n;
        if (++preface_seen == kH2PrefaceLen) preface_seen = kPrefaceDone;
        continue;
      }
      if (payload_left > 0) {
        size_t skip = n < payload_left ? n : payload_left;
        p += skip, n -= skip, payload_left -= static_cast<uint32_t>(skip);
        continue;
      }
      size_t take = kH2FrameHeader - hdr_len;
      if (take > n) take = n;
      std::memcpy(hdr + hdr_len, p, take);
      hdr_len = static_cast<uint8_t>(hdr_len + take);
      p += take, n -= take;
      if (hdr_len < kH2FrameHeader) break;
      hdr_len = 0;
      payload_left = (uint32_t{hdr[0]} << 16) | (uint32_t{hdr[1]} << 8) | hdr[2];
      if (written < max_headers) {
        std::memcpy(out + written * kH2FrameHeader, hdr, kH2FrameHeader);
        ++written;
      }
    }
    return written;
  }
};

}  // namespace httptrace::tls
