#include "interpose/record/recorder.h"

#include <sys/socket.h>

#include <cstring>
#include <string_view>

#include "interpose/record/capture.h"
#include "interpose/record/events.h"
#include "interpose/record/h2_conn.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/sys.h"

namespace httptrace {

using format::Direction;
using format::EventKind;

namespace {

bool connect_failure(int err) {
  return err == ECONNREFUSED || err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH ||
         err == ECONNRESET || err == ECONNABORTED;
}

// The first transfer on a socket whose connect() returned EINPROGRESS tells how it ended.
void finish_pending_connect(int fd, uint32_t conn, Direction dir, int64_t result, uint64_t ts) {
  if (result < 0 && !connect_failure(static_cast<int>(-result))) return;  // EAGAIN: still pending
  if (!g_fd_table.clear_pending(fd, conn)) return;
  auto ev = new_event<format::ConnectDoneEvent>(format::EventKind::kConnectDone, conn, ts);
    ev.fd = fd;
  ev.error = result < 0 ? static_cast<int32_t>(-result) : 0;
  ev.how = static_cast<uint8_t>(dir == Direction::kSend ? format::ConnectDoneHow::kFirstWrite
                                                        : format::ConnectDoneHow::kFirstRead);
  if (ev.error == 0) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (sys::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      to_addr(reinterpret_cast<sockaddr*>(&ss), len, ev.local);
    }
  }
  trace_writer().emit(&ev, sizeof(ev));
}

// What the caller of emit_with_capture learns of the capture (its bytes may have been in that
// function's own buffers, gone once it returns).
struct Captured {
  format::CaptureKind kind;
  uint16_t len;
  uint8_t bare_record_type;    // the capture is exactly one TLS record's header: its type; else 0
  bool awaiting_final;         // its last head is an interim one: the final head is still to come
};

// A response capture ("HTTP/1.1 103 ...", then "\r\n" and each further head's status line and
// allow-listed lines: capture.h) whose last head is an interim one (1xx but 101: 103 Early
// Hints, 100 Continue): the final response's head starts a later read.
// (No std::string_view::substr here: its out_of_range throw would make the library need
// libstdc++, a DT_NEEDED every C program would load.)
__attribute__((noinline, cold)) bool ends_with_interim_head(const uint8_t* cap, size_t len) {
  const std::string_view c(reinterpret_cast<const char*>(cap), len);
  const size_t at = c.rfind("\r\nHTTP/");
  const size_t line = at == std::string_view::npos ? 0 : at + 2;  // "HTTP/1.1 103" or "HTTP/2 103"
  if (len < line + 12) return false;
  const char* code = c.data() + line + (c[line + 6] == '.' ? 9 : 7);
  return code[0] == '1' && !(code[1] == '0' && code[2] == '1');
}

// Kept out of line: the 2 KiB scan buffer is only paid for at a direction change.
__attribute__((noinline)) Captured emit_with_capture(format::DataEvent& ev, const iovec* iov, size_t iovcnt,
                                                     int64_t result, bool tls_body = false) {
  uint8_t scan[capture::kScanMax];
  uint8_t scratch[format::kHttpCaptureMax];
  const size_t total = static_cast<size_t>(result);
  // The usual case, one buffer holding everything to classify: read it where it is rather than
  // copy up to 2 KiB (32 cache lines) first, and look further (a long target's headers). Split
  // buffers are gathered.
  const uint8_t* in = scan;
  size_t n;
  if (iovcnt > 0 && iov[0].iov_base != nullptr &&
      iov[0].iov_len >= (total < sizeof(scan) ? total : sizeof(scan))) {
    in = static_cast<const uint8_t*>(iov[0].iov_base);
    n = total < iov[0].iov_len ? total : iov[0].iov_len;
    if (n > capture::kInPlaceScanMax) n = capture::kInPlaceScanMax;
  } else {
    n = capture::gather_prefix(iov, iovcnt, static_cast<size_t>(result), scan, sizeof(scan));
  }
  const capture::Result c =
      tls_body ? capture::Result{format::CaptureKind::kTlsBody, in,
                                 static_cast<uint16_t>(n < format::kTlsCaptureMax
                                                           ? n : format::kTlsCaptureMax)}
               : capture::sanitize(in, n, scratch);
  ev.capture_kind = static_cast<uint8_t>(c.kind);
  ev.cap_len = c.len;
  if (c.target_cut) ev.flags |= format::kDataCaptureCut;
  trace_writer().emit(&ev, sizeof(ev), c.data, c.len);
  // A response capture whose status begins with 1 is rare: looked at out of line.
  const bool interim = c.kind == format::CaptureKind::kHttpResp && c.len > 12 && c.data[c.data[6] == '.' ? 9 : 7] == '1';
  return {c.kind, c.len, c.kind == format::CaptureKind::kTls && c.len == 5 ? c.data[0] : uint8_t{0},
          interim && ends_with_interim_head(c.data, c.len)};
}

// More of a status line the previous reads cut: this read's bytes up to and including the "\n"
// that ends it, printable ASCII only. Another byte, or no line end within the reads allowed,
// ends the capture.
__attribute__((noinline, cold)) void emit_status_line_more(int fd, uint32_t conn, unsigned reads_left,
                                                           format::DataEvent& ev, const iovec* iov,
                                                           size_t iovcnt, int64_t result) {
  uint8_t line[64];
  const size_t n = capture::gather_prefix(iov, iovcnt, static_cast<size_t>(result), line, sizeof(line));
  size_t kept = 0;
  bool more = reads_left > 1;
  while (kept < n) {
    const uint8_t b = line[kept];
    if (b == '\n') {
      ++kept;
      more = false;
      break;
    }
    if (b != '\r' && (b < 0x20 || b > 0x7e)) {
      more = false;
      break;
    }
    ++kept;
  }
  if (kept == sizeof(line) && n < static_cast<size_t>(result)) more = false;
  ev.flags |= format::kDataStatusLineMore;
  ev.capture_kind = static_cast<uint8_t>(format::CaptureKind::kHttpResp);
  ev.cap_len = static_cast<uint16_t>(kept);
  trace_writer().emit(&ev, sizeof(ev), line, kept);
  g_fd_table.set_line_reads(fd, conn, more ? reads_left - 1 : 0);
}

// A read that ended after an interim response's head has the next read on its layer captured
// (the final head); any other read ends that wait.
void await_final_head(int fd, uint32_t conn, bool plaintext, bool awaiting) {
  if (awaiting) g_fd_table.set_flag(fd, conn, FdTable::final_head_bit(plaintext));
  else g_fd_table.take_flag(fd, conn, FdTable::final_head_bit(plaintext));
}

// The client preface opens h2c (prior knowledge): sent by a client, received by a server.
bool h2c_preface(const iovec* iov, size_t iovcnt, int64_t result) {
  if (iovcnt == 0 || result < 16 || iov[0].iov_base == nullptr || iov[0].iov_len < 16) return false;
  const auto* p = static_cast<const uint8_t*>(iov[0].iov_base);
  return p[0] == 'P' && memcmp(p, "PRI * HTTP/2.0\r\n", 16) == 0;
}

// tls/record.cpp's record_h2 for h2c: every call is walked (its frame headers captured, its
// header blocks decoded), not only direction changes. The call that carried only the preface
// keeps the usual kOpaque capture.
void emit_h2c(h2::Conn& hc, format::DataEvent& ev, const iovec* iov, size_t iovcnt, int64_t result,
              uint64_t t1, bool preface) {
  uint8_t headers[format::kH2CaptureMaxFrames * h2::kFrameHeader];
  h2::FrameOut out{headers, format::kH2CaptureMaxFrames};
  const auto dir = static_cast<Direction>(ev.dir);
  const uint64_t ts = dir == Direction::kRecv ? t1 : ev.h.ts_ns;
  size_t left = result > 0 ? static_cast<size_t>(result) : 0;
  for (size_t i = 0; i < iovcnt && left > 0; ++i) {
    size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
    if (n == 0 || iov[i].iov_base == nullptr) continue;
    h2::walk(hc, dir, static_cast<const uint8_t*>(iov[i].iov_base), n, out, ev.h.conn, ts);
    left -= n;
  }
  if (out.n == 0 && preface) {
    emit_with_capture(ev, iov, iovcnt, result);
    return;
  }
  if (out.cut) ev.flags |= format::kDataH2FramesCut;
  if (out.n > 0) {
    ev.capture_kind = static_cast<uint8_t>(format::CaptureKind::kH2Frames);
    ev.cap_len = static_cast<uint16_t>(out.n * h2::kFrameHeader);
  }
  trace_writer().emit(&ev, sizeof(ev), headers, ev.cap_len);
}

// A 101 that switched a plain connection to h2c (the Upgrade's answer): the connection is walked
// as h2 from the byte after its header block, so the rest of this call (the server's SETTINGS,
// often stream 1's response already) is decoded too; this call's capture stays the 101's.
void upgrade_to_h2c(int fd, uint32_t conn, const format::DataEvent& ev, const iovec* iov, size_t iovcnt,
                    int64_t result, uint64_t t1) {
  if (iovcnt == 0 || result <= 0 || iov[0].iov_base == nullptr) return;
  const size_t first = iov[0].iov_len < static_cast<size_t>(result) ? iov[0].iov_len : static_cast<size_t>(result);
  const size_t at = h2::h2c_upgrade_end(static_cast<const uint8_t*>(iov[0].iov_base), first);
  if (at == 0) return;
  h2::Conn* hc = h2::claim(conn, true);
  if (hc == nullptr) return;
  g_fd_table.set_flag(fd, conn, FdTable::h2c_bits(h2::index_of(hc)));
  uint8_t headers[format::kH2CaptureMaxFrames * h2::kFrameHeader];
  h2::FrameOut out{headers, format::kH2CaptureMaxFrames};
  const auto dir = static_cast<Direction>(ev.dir);
  const uint64_t ts = dir == Direction::kRecv ? t1 : ev.h.ts_ns;
  size_t left = static_cast<size_t>(result);
  for (size_t i = 0; i < iovcnt && left > 0; ++i) {
    size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
    left -= n;
    if (n == 0 || iov[i].iov_base == nullptr) continue;
    const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
    if (i == 0) {
      p += at;
      n -= at;
    }
    if (n > 0) h2::walk(*hc, dir, p, n, out, conn, ts);
  }
}

// The transfer begins like a TLS record (content type 20..24, major version 3), as every wire
// transfer a TLS library starts a call with does (the record's header, or whole records). Only
// those name a session's socket (t_last_wire_fd): other bytes moved on this thread during a TLS
// call (a signal handler's, a BIO callback that logs over TCP) are another socket's.
bool starts_tls_record(const iovec* iov, size_t iovcnt, int64_t result) {
  if (result < 2 || iovcnt == 0 || iov[0].iov_base == nullptr) return false;
  const auto* p = static_cast<const uint8_t*>(iov[0].iov_base);
  if (p[0] < 20 || p[0] > 24) return false;  // most calls end here: HTTP's first byte is a letter
  if (iov[0].iov_len >= 2) return p[1] == 3;
  // A record header split across iovecs (writev of a 1-byte first element; not seen in practice).
  for (size_t i = 1; i < iovcnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    return iov[i].iov_base != nullptr && *static_cast<const uint8_t*>(iov[i].iov_base) == 3;
  }
  return false;
}

}  // namespace

void record_data(const DataStart& start, int fd, Direction dir, format::DataCall call,
                 uint8_t flags, uint64_t t0, uint64_t t1, int64_t result, const iovec* iov,
                 size_t iovcnt) {
  // The connection the call began on: reading the slot now could find another thread's new
  // socket under the same number (the old one closed during a blocking read).
  const uint64_t word = start.word;
  const uint32_t conn = FdTable::conn_of(word);
  if (conn == 0) return;
  const bool plaintext = (flags & format::kDataTlsPlaintext) != 0;
  if (start.took_turn && result <= 0) g_fd_table.undo_begin(fd, conn, dir, plaintext);
  if (!recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  if (!plaintext && starts_tls_record(iov, iovcnt, result)) t_last_wire_fd = fd;
  if (!plaintext && FdTable::pending(word)) finish_pending_connect(fd, conn, dir, result, t1);

  auto ev = new_event<format::DataEvent>(format::EventKind::kData, conn, t0);
    ev.result = result;
  ev.dur_ns = t1 - t0;
  ev.fd = fd;
  ev.dir = static_cast<uint8_t>(dir);
  ev.call = static_cast<uint8_t>(call);
  ev.flags = flags;
  if (!plaintext && (word & FdTable::kH2cBit)) {
    h2::Conn* hc = h2::slot(FdTable::h2c_slot(word));
    if (hc != nullptr && hc->owner.load(std::memory_order_relaxed) == conn) {
      if (data_turn(start, fd, conn, dir, plaintext, result)) ev.flags |= format::kDataDirChange;
      return emit_h2c(*hc, ev, iov, iovcnt, result, t1, false);
    }
  }
  // Only a transfer that moved bytes turns the conversation around: EAGAIN and EOF do not.
  if (data_turn(start, fd, conn, dir, plaintext, result)) {
    ev.flags |= format::kDataDirChange;
    if (!plaintext && h2c_preface(iov, iovcnt, result)) {
      if (h2::Conn* hc = h2::claim(conn, true)) {
        g_fd_table.set_flag(fd, conn, FdTable::h2c_bits(h2::index_of(hc)));
        return emit_h2c(*hc, ev, iov, iovcnt, result, t1, true);
      }
    }
    const Captured c = emit_with_capture(ev, iov, iovcnt, result);
    if (dir == Direction::kRecv && (c.awaiting_final || (word & (FdTable::kFinalHeadBit | FdTable::kFinalHeadPlainBit)))) {
      await_final_head(fd, conn, plaintext, c.awaiting_final);
    }
    if (!plaintext && dir == Direction::kRecv) {
      if (c.bare_record_type == 0x16) g_fd_table.set_flag(fd, conn, FdTable::kTlsHeaderBit);
      // All the read returned was the start of a status line: the next reads may finish it.
      const bool cut = c.kind == format::CaptureKind::kHttpResp && c.len == result;
      if (cut || FdTable::line_reads(word) != 0) {
        g_fd_table.set_line_reads(fd, conn, cut ? format::kStatusLineReads : 0);
      }
    }
    // A ChangeCipherSpec sent on its own (java's TLS 1.3): its Finished follows in the next write,
    // whose record header tells where the request behind it begins.
    if (!plaintext && dir == Direction::kSend && c.bare_record_type == 0x14 && result == 6) {
      g_fd_table.set_flag(fd, conn, FdTable::kCcsSentBit);
    }
    if (!plaintext && c.kind == format::CaptureKind::kHttpResp) upgrade_to_h2c(fd, conn, ev, iov, iovcnt, result, t1);
    return;
  }
  // Rare, hence one test of the word first: a read right after one that ended inside a status
  // line (curl's CONNECT), after an interim response's head (103 Early Hints), or that returned a
  // TLS record's bare header (a BIO that splits header and body, once per TLS connection); a
  // write right after a ChangeCipherSpec written alone.
  constexpr uint64_t kRare = FdTable::kTlsHeaderBit | FdTable::kLineReadsMask | FdTable::kFinalHeadBit |
                             FdTable::kFinalHeadPlainBit | FdTable::kCcsSentBit;
  if ((word & kRare) != 0 && result > 0 && dir == Direction::kSend) {
    if (!plaintext && (word & FdTable::kCcsSentBit) && g_fd_table.take_flag(fd, conn, FdTable::kCcsSentBit)) {
      emit_with_capture(ev, iov, iovcnt, result);
      return;
    }
  } else if ((word & kRare) != 0 && result > 0) {
    if (word & FdTable::final_head_bit(plaintext)) {
      await_final_head(fd, conn, plaintext, emit_with_capture(ev, iov, iovcnt, result).awaiting_final);
      return;
    }
    if (!plaintext) {
      if (const unsigned left = FdTable::line_reads(word); left != 0) {
        return emit_status_line_more(fd, conn, left, ev, iov, iovcnt, result);
      }
      if (g_fd_table.take_flag(fd, conn, FdTable::kTlsHeaderBit)) {
        emit_with_capture(ev, iov, iovcnt, result, true);
        return;
      }
    }
  }
  trace_writer().emit(&ev, sizeof(ev));
}

void record_tls_handshake(format::TlsHandshakeEvent& ev) {
  if (!recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  ev.h.kind = static_cast<uint16_t>(EventKind::kTlsHandshake);
  ev.h.conn = conn_of_fd(ev.fd);
  trace_writer().emit(&ev, sizeof(ev));
}

void record_tls_close(int fd, format::TlsLibrary library, format::TlsCloseHow how, uint64_t ts) {
  if (!recording()) return;
  ReentryGuard guard;
  if (!guard) return;
  auto ev = new_event<format::TlsCloseEvent>(format::EventKind::kTlsClose, conn_of_fd(fd), ts);
    ev.fd = fd;
  ev.library = static_cast<uint8_t>(library);
  ev.how = static_cast<uint8_t>(how);
  trace_writer().emit(&ev, sizeof(ev));
}

}  // namespace httptrace
