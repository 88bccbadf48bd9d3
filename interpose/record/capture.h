// The payload sanitiser: decides which few bytes of a transfer may be kept (CaptureKind rules in
// common/trace_format.h). Pure functions over caller-provided buffers: no allocation, no state,
// usable from any hook and tested directly.
//
// The rule of thumb is "what a network observer learns from the start of a connection, minus
// credentials": an HTTP/1.x request line (its target cut at kTargetMax) and a few whole header
// lines that carry no secret (Host, Connection, traceparent; Connection, Keep-Alive in a
// response), a status line, TLS handshake records (ClientHello/ServerHello are public), a known
// protocol preface. Never any other header value, never a body.
//
// Only the bytes of one call are seen: the first transfer after a direction change. Header lines
// the program writes (or the kernel returns) in a later call are not captured, so a Host sent in
// a second write() is simply absent; a header line that the call cut in two is left out.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "common/trace_format.h"

namespace httptrace::capture {

// How many bytes a hook copies out of a transfer split over several buffers before classifying
// it: the largest capture.
inline constexpr size_t kScanMax = format::kTlsCaptureMax;
// How far into one contiguous buffer the classifier may look (read in place, nothing copied): a
// request with a 2 KiB presigned URL still has its headers found.
inline constexpr size_t kInPlaceScanMax = 16 * 1024;

// Copies the first bytes of a transfer spread over iov[0..iovcnt) into out, stopping after
// `total` bytes (what the call really transferred) or out_cap bytes, whichever is less.
size_t gather_prefix(const struct iovec* iov, size_t iovcnt, size_t total, uint8_t* out,
                     size_t out_cap);

struct Result {
  format::CaptureKind kind = format::CaptureKind::kNone;
  const uint8_t* data = nullptr;  // points into `in` or `scratch`
  uint16_t len = 0;
  bool target_cut = false;  // the request target was cut at kTargetMax (format::kDataCaptureCut)
};

// Classifies the first `len` bytes of a transfer and returns what may be recorded. scratch must
// hold at least format::kHttpCaptureMax bytes (the HTTP request rewrite is assembled there).
Result sanitize(const uint8_t* in, size_t len, uint8_t* scratch);

}  // namespace httptrace::capture
