#include "interpose/tls/record.h"

#include <sys/uio.h>

#include <cstring>

#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"

namespace httptrace::tls {

bool bind_socket(Session& s, int lib_fd) {
  if (s.conn != 0) {
    if (conn_of_fd(s.fd) == s.conn) return true;
    // The socket is no longer that connection: closed (its number perhaps reused), or renumbered
    // in a fork child. Bind afresh, from what this call shows.
    s.conn = 0;
  }
  int fd = lib_fd;
  if (conn_of_fd(fd) == 0) fd = t_last_wire_fd;
  const uint32_t conn = conn_of_fd(fd);
  if (conn == 0) return false;
  s.fd = fd;
  s.conn = conn;
  return true;
}

void finish_handshake(Session& s, format::TlsHandshakeEvent& ev, format::TlsLibrary lib,
                      uint64_t t1) {
  s.hs = HandshakeState::kDone;
  ev.h.ts_ns = s.hs_start_ns;
  ev.dur_ns = t1 - s.hs_start_ns;
  ev.fd = s.fd;
  ev.library = static_cast<uint8_t>(lib);
  s.h2 = ev.error == 0 && std::strcmp(ev.alpn, "h2") == 0;
  record_tls_handshake(ev);
}

namespace {

// record_data's twin for h2 sessions: every call carries the headers of the frames starting in
// it (format::CaptureKind::kH2Frames) instead of a capture at direction changes only, because
// HTTP/2 has no request line to catch; the frame walk must see every byte to stay in step.
void record_h2(const DataStart& start, Session& s, format::Direction dir, format::DataCall call,
               uint64_t t0, uint64_t t1, int64_t result, const void* buf) {
  if (start.took_turn && result <= 0) g_fd_table.undo_begin(s.fd, s.conn, dir, true);
  uint8_t headers[format::kH2CaptureMaxFrames * kH2FrameHeader];
  h2::FrameOut out{headers, format::kH2CaptureMaxFrames};
  if (!s.h2_claimed) {
    // The connection's first h2 call: its decoding state comes from the pool now, not mid-stream.
    s.h2_claimed = true;
    s.h2_conn = h2::claim(s.conn, false);
  }
  h2::Conn* hc = s.h2_conn;
  if (hc != nullptr && hc->owner.load(std::memory_order_relaxed) != s.conn) {
    // Renumbered (a fork child) or released: the fallback cursor never saw the earlier bytes.
    hc = s.h2_conn = nullptr;
    s.h2_lost = true;
  }
  if (result > 0) {
    const auto* p = static_cast<const uint8_t*>(buf);
    const size_t len = static_cast<size_t>(result);
    if (hc != nullptr) {
      // A read's blocks happened when its bytes were there; a write's when it began (SPEC §5).
      h2::walk(*hc, dir, p, len, out, s.conn, dir == format::Direction::kRecv ? t1 : t0);
    } else if (!s.h2_lost) {
      out.n = s.h2_dir[static_cast<int>(dir)].feed(p, len, headers, format::kH2CaptureMaxFrames);
    }
  }
  const size_t n = out.n;
  if (!recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  auto ev = new_event<format::DataEvent>(format::EventKind::kData, s.conn, t0);
  ev.result = result;
  ev.dur_ns = t1 - t0;
  ev.fd = s.fd;
  ev.dir = static_cast<uint8_t>(dir);
  ev.call = static_cast<uint8_t>(call);
  ev.flags = format::kDataTlsPlaintext;
  if (out.cut) ev.flags |= format::kDataH2FramesCut;
  if (data_turn(start, s.fd, s.conn, dir, true, result)) ev.flags |= format::kDataDirChange;
  if (n > 0) {
    ev.capture_kind = static_cast<uint8_t>(format::CaptureKind::kH2Frames);
    ev.cap_len = static_cast<uint16_t>(n * kH2FrameHeader);
  }
  trace_writer().emit(&ev, sizeof ev, headers, ev.cap_len);
}

}  // namespace

void record_plaintext(const DataStart& start, Session& s, format::Direction dir,
                      format::DataCall call, uint64_t t0, uint64_t t1, int64_t result,
                      const void* buf) {
  // A session bound (or bound again) during the call had no begin: its slot is read now.
  const DataStart at = FdTable::conn_of(start.word) == s.conn
                           ? start
                           : DataStart{g_fd_table.load(s.fd), false, false};
  if (s.h2) return record_h2(at, s, dir, call, t0, t1, result, buf);
  iovec iov = {const_cast<void*>(buf), result > 0 ? static_cast<size_t>(result) : 0};
  record_data(at, s.fd, dir, call, format::kDataTlsPlaintext, t0, t1, result, &iov, 1);
}

void record_close(Session& s, format::TlsLibrary lib, format::TlsCloseHow how, uint64_t ts) {
  if (s.conn != 0 && conn_of_fd(s.fd) == s.conn) record_tls_close(s.fd, lib, how, ts);
}

void record_session_end(const void* key, format::TlsLibrary lib, format::TlsCloseHow how,
                        uint64_t ts) {
  Session* s = session_find(key);
  if (s == nullptr) return;
  record_close(*s, lib, how, ts);
  if (how == format::TlsCloseHow::kFree) {
    if (s->h2_conn != nullptr && s->h2_conn->owner.load(std::memory_order_relaxed) == s->conn &&
        !s->h2_conn->h2c) {
      h2::release(s->h2_conn);
    }
    s->h2_conn = nullptr;
    session_release(s);
  }
}

void copy_field(char* dst, size_t cap, const char* src, size_t len) {
  if (cap == 0) return;
  if (len > cap - 1) len = cap - 1;
  if (len > 0) std::memcpy(dst, src, len);
  dst[len] = '\0';
}

}  // namespace httptrace::tls
