// The recording API for hook files (hook_*.cpp): everything a wrapper needs besides the real
// function. The libc socket hooks use it, and so do the TLS library hooks.
//
// A wrapper has one shape:
//
//   auto real = libc::real_send();               // resolved symbol; nullptr -> errno=ENOSYS, -1
//   if (conn_of_fd(fd) == 0) return real(...);   // the only cost for descriptors we ignore
//   DataStart start = begin_data(fd, dir, false);
//   uint64_t t0 = now_ns();
//   auto r = real(...);
//   uint64_t t1 = now_ns();
//   ErrnoSaver keep;                             // errno back as the real call left it
//   record_data(start, fd, ..., t0, t1, r >= 0 ? r : -keep.saved(), ...);
//   return r;
//
// The record_* functions take the ReentryGuard themselves, around the recording only, not the
// real call: a TLS library's own write() on the socket underneath SSL_write must still be seen,
// and a signal handler doing I/O while the thread sits in a blocking recv() is recorded too. The
// guard counts how deep recording is nested on this thread (a signal handler interrupting the
// recorder, as LTTng-UST does): up to kMaxRecorderDepth levels are recorded (the writer gives a
// nested event its own space), deeper ones are dropped and counted (DropCause::kNested).
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "common/trace_format.h"
#include "interpose/record/clock.h"
#include "interpose/record/fd_table.h"

namespace httptrace {

inline thread_local constinit unsigned t_recorder_depth = 0;
inline constexpr unsigned kMaxRecorderDepth = 4;
// Added to the forking thread's depth from our atfork prepare handler until the parent or
// child handler: the child starts with its parent's writer, which it must never write to, and
// only on_fork_child gives it its own. Past the limit, so the guard's fast path stays one compare.
inline constexpr unsigned kForking = 1u << 16;
inline unsigned recorder_depth() { return t_recorder_depth % kForking; }

// The descriptor of this thread's latest transfer on a tracked socket that began like a TLS
// record (wire bytes, not TLS plaintext), set by record_data. The TLS layer clears it before a
// library call and finds the session's socket there afterwards (tls/record.h); the recorder
// itself knows nothing of TLS.
inline thread_local constinit int t_last_wire_fd = -1;

// At the nesting limit, or inside fork(): whether this event may be recorded all the same (in
// the forking parent, below the limit); if not, it is counted as lost (DropCause::kNested, in
// the fork child's own file for one dropped there). lifecycle.cpp.
bool enter_past_limit();

// Per-thread nesting counter: evaluates to false when recording is already kMaxRecorderDepth
// deep on this thread (the event is then counted as lost). A nested handler always puts the
// counter back as it found it, so plain increments are safe against signals.
class ReentryGuard {
 public:
  ReentryGuard() : entered_(t_recorder_depth < kMaxRecorderDepth) {
    if (!entered_) [[unlikely]] entered_ = enter_past_limit();
    if (entered_) {
      ++t_recorder_depth;
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }
  ~ReentryGuard() {
    if (entered_) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
      --t_recorder_depth;
    }
  }
  ReentryGuard(const ReentryGuard&) = delete;
  ReentryGuard& operator=(const ReentryGuard&) = delete;
  explicit operator bool() const { return entered_; }

 private:
  bool entered_;
};

// Puts errno back to what the real call left when the scope ends.
class ErrnoSaver {
 public:
  ErrnoSaver() : saved_(errno) {}
  ~ErrnoSaver() { errno = saved_; }
  ErrnoSaver(const ErrnoSaver&) = delete;
  ErrnoSaver& operator=(const ErrnoSaver&) = delete;
  int saved() const { return saved_; }

 private:
  int saved_;
};

// True when this process records. Starts the recorder on first use if a hook runs before our
// constructor (another library's constructor doing I/O).
bool recording();

// A zeroed event of kind with its header filled in (size is set by TraceWriter::emit).
template <typename Event>
Event new_event(format::EventKind kind, uint32_t conn, uint64_t ts) {
  Event ev = {};
  ev.h.kind = static_cast<uint16_t>(kind);
  ev.h.conn = conn;
  ev.h.ts_ns = ts;
  return ev;
}

// 0 when fd is not a tracked TCP socket.
inline uint32_t conn_of_fd(int fd) { return FdTable::conn_of(g_fd_table.load(fd)); }

// What a data hook notes before the real call and hands to record_data after it.
struct DataStart {
  uint64_t word = 0;       // fd's slot before the call: the connection the call is really on,
                           // even if another thread closes the number and it is reused meanwhile
  bool begun = false;      // begin_data() ran before the call
  // A write: it is the conversation's turn (decided as it began). A read: begin_transfer()
  // cleared the write direction's turn bit. Either is given back if the call moves nothing.
  bool took_turn = false;
};

// Before the real call of a read or write on fd. A write's turn is decided now, as it begins
// (writes are placed at their start, SPEC §5): decided when a long write returns, it would undo
// the turn of a response read by another thread meanwhile, and the next request would not be
// seen as one (Java's HttpClient: a selector thread reads while the caller's write returns). A
// read tells the other direction it has begun (fd_table.h, the turn bits), so a response read
// while the request is still being sent is captured; its own turn is decided when it returns.
// For an untracked fd, one load.
inline DataStart begin_data(int fd, format::Direction dir, bool plaintext) {
  DataStart s{g_fd_table.load(fd), true, false};
  if (s.word == 0) return s;
  if (dir == format::Direction::kSend) {
    s.took_turn = g_fd_table.note_direction(fd, FdTable::conn_of(s.word), dir, plaintext);
  } else {
    s.took_turn = g_fd_table.begin_transfer(fd, s.word, dir, plaintext);
  }
  return s;
}

// Whether a transfer that returned result is the turn of the conversation (the capture point).
inline bool data_turn(const DataStart& start, int fd, uint32_t conn, format::Direction dir,
                      bool plaintext, int64_t result) {
  if (result <= 0) return false;  // EAGAIN and EOF do not turn the conversation around
  if (dir == format::Direction::kSend && start.begun) return start.took_turn;
  return g_fd_table.note_direction(fd, conn, dir, plaintext);
}

// One read or write on a tracked descriptor. result is the byte count or -errno. The bytes are
// the iovecs as passed; only the first `result` of them are looked at (never past what the call
// really transferred). flags: 0 for socket calls, format::kDataTlsPlaintext for TLS library
// calls (their direction changes are tracked apart from the wire's). Does nothing when the
// descriptor was untracked at the start of the call.
void record_data(const DataStart& start, int fd, format::Direction dir, format::DataCall call,
                 uint8_t flags, uint64_t t0, uint64_t t1, int64_t result, const iovec* iov,
                 size_t iovcnt);

// The same without a begin_data() before the call: the slot is read now, and a transfer that
// completes while the other direction's call is still blocked is not seen as a turn.
inline void record_data(int fd, format::Direction dir, format::DataCall call, uint8_t flags,
                        uint64_t t0, uint64_t t1, int64_t result, const iovec* iov,
                        size_t iovcnt) {
  record_data(DataStart{g_fd_table.load(fd), false, false}, fd, dir, call, flags, t0, t1, result, iov,
              iovcnt);
}

// A finished (or failed) TLS handshake. The caller fills every field after h; h.kind, h.conn
// (from ev.fd) and h.size are set here, h.ts_ns must be set by the caller.
void record_tls_handshake(format::TlsHandshakeEvent& ev);

void record_tls_close(int fd, format::TlsLibrary library, format::TlsCloseHow how, uint64_t ts);

}  // namespace httptrace
