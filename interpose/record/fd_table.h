// fd -> connection state, one 64-bit atomic word per descriptor number.
//
// The table is a fixed array of 2^20 words in .bss: pages nobody touches are never faulted in, so
// the table costs memory only around descriptor numbers that were really used. Descriptors at or
// beyond kCapacity are simply untracked. A lookup for an untracked descriptor is one relaxed load
// and a compare against zero, which is what every read()/write() on a regular file pays.
//
// Word layout (0 = untracked):
//   bits  0..31  connection id (never 0 for a tracked fd)
//   bit  32      connect pending (connect returned EINPROGRESS/EINTR, completion not yet seen)
//   bits 33..34  wire turns: bit 33 (send) / 34 (recv) is set once a transfer in that direction
//                was taken as the turn of the conversation, and cleared when a transfer in the
//                other direction begins (before its call) or completes. So the first transfer in
//                a direction after the other direction started is the turn, whatever the order
//                the two threads' calls return in: a response read while the request's send()
//                is still blocked is a turn too.
//   bits 35..36  the same for TLS plaintext (kept apart so the TLS hooks and the socket hooks
//                below them each see their own direction changes)
//   bit  37      the last read returned only a TLS handshake record header: capture the next
//                read too (the record's body: a ServerHello tells the TLS version on the wire)
//   bit  38      h2c: the connection began with the HTTP/2 preface; bits 40..47 hold its slot in
//                the h2 pool (record/h2_conn.h). Set on the descriptor that carried the preface.
//   bit  39      the last wire read ended after an interim response's head (103 Early Hints):
//                capture the next read too (the final head); bit 56 the same for TLS plaintext
//   bits 48..55  reads left that may finish a status line a read cut (curl reads CONNECT's answer
//                a byte at a time)
//   bit  57      the last wire write was a ChangeCipherSpec alone (java's TLS 1.3): capture the
//                next write too (the Finished record's header: where the request behind it begins)
// Every update is a compare-and-swap that re-checks the connection id, so a slot that was closed
// and reused by another thread in between is never modified on behalf of the old connection.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/trace_format.h"

namespace httptrace {

class FdTable {
 public:
  static constexpr int kCapacity = 1 << 20;

  static constexpr uint64_t kPendingBit = 1ull << 32;
  static constexpr int kWireTurnShift = 33;
  static constexpr int kPlainTurnShift = 35;
  static uint64_t turn_bit(format::Direction dir, bool plaintext) {
    return 1ull << ((plaintext ? kPlainTurnShift : kWireTurnShift) +
                    (dir == format::Direction::kSend ? 0 : 1));
  }
  static format::Direction other(format::Direction dir) {
    return dir == format::Direction::kSend ? format::Direction::kRecv : format::Direction::kSend;
  }
  static constexpr uint64_t kTlsHeaderBit = 1ull << 37;
  static constexpr uint64_t kH2cBit = 1ull << 38;
  // The last read ended after an interim response's head: the next read's head is the final one.
  // One bit per layer: under a TLS library the socket's own reads (records) come in between.
  static constexpr uint64_t kFinalHeadBit = 1ull << 39, kFinalHeadPlainBit = 1ull << 56;
  static uint64_t final_head_bit(bool plaintext) { return plaintext ? kFinalHeadPlainBit : kFinalHeadBit; }
  // The last wire write was a TLS ChangeCipherSpec record alone: capture the next write too.
  static constexpr uint64_t kCcsSentBit = 1ull << 57;
  static constexpr int kH2cSlotShift = 40;
  static uint64_t h2c_bits(size_t slot) { return kH2cBit | (uint64_t{slot & 0xff} << kH2cSlotShift); }
  static size_t h2c_slot(uint64_t word) { return static_cast<size_t>((word >> kH2cSlotShift) & 0xff); }

  // Reads left that may still carry a status line cut by a read's end (format::kDataStatusLineMore).
  static constexpr int kLineReadsShift = 48;
  static constexpr uint64_t kLineReadsMask = uint64_t{0xff} << kLineReadsShift;
  static unsigned line_reads(uint64_t word) { return static_cast<unsigned>((word >> kLineReadsShift) & 0xff); }

  static uint32_t conn_of(uint64_t word) { return static_cast<uint32_t>(word); }
  static bool pending(uint64_t word) { return (word & kPendingBit) != 0; }

  static bool in_range(int fd) { return fd >= 0 && fd < kCapacity; }

  // The hot-path check: 0 when fd is not a tracked TCP socket.
  uint64_t load(int fd) const {
    if (!in_range(fd)) return 0;
    return slots_[fd].load(std::memory_order_relaxed);
  }

  // Starts tracking fd as connection conn (replacing whatever the slot held).
  void track(int fd, uint32_t conn);
  // Stops tracking fd; returns the word it held (0 if it was untracked).
  uint64_t untrack(int fd);

  void set_pending(int fd, uint32_t conn);
  // True for exactly one caller: the one that saw the pending flag and cleared it.
  bool clear_pending(int fd, uint32_t conn);

  // Before a transfer in direction dir on fd, whose word (read before the call) is word: the
  // next transfer the other way is a turn. True when this call cleared a bit: the caller gives it
  // back with undo_begin() if the transfer moved nothing (EAGAIN must not make the next write of
  // the same body look like a new request). Usually one test of word, no store.
  bool begin_transfer(int fd, uint64_t word, format::Direction dir, bool plaintext) {
    const uint64_t bit = turn_bit(other(dir), plaintext);
    if ((word & bit) == 0) return false;
    return take_flag(fd, conn_of(word), bit);
  }
  // A call whose begin_data() took a turn moved nothing: as if it had not happened. (A write
  // took its own direction's turn; a read cleared the write's.)
  void undo_begin(int fd, uint32_t conn, format::Direction dir, bool plaintext) {
    if (dir == format::Direction::kSend) take_flag(fd, conn, turn_bit(dir, plaintext));
    set_flag(fd, conn, turn_bit(other(dir), plaintext));
  }

  // A transfer in direction dir moved bytes: true when it is the turn of the conversation (the
  // first transfer this way since the other way began, or the first ever). plaintext selects the
  // TLS-plaintext bits.
  bool note_direction(int fd, uint32_t conn, format::Direction dir, bool plaintext);

  // Sets flag (a k*Bit) in fd's word, or clears it and says whether it was set.
  void set_flag(int fd, uint32_t conn, uint64_t flag);
  bool take_flag(int fd, uint32_t conn, uint64_t flag);

  // Sets line_reads() of fd's word to n (0..255).
  void set_line_reads(int fd, uint32_t conn, unsigned n);

  // Gives fd a new connection id and keeps its other bits (fork child renumbering).
  void renumber(int fd, uint32_t new_conn);

  // One past the highest descriptor ever tracked: bounds whole-table walks (fork, close_range).
  int high_water() const { return high_water_.load(std::memory_order_relaxed); }

  // Forgets every slot (tests only: the real table lives for the whole process).
  void reset_for_test();

 private:
  std::atomic<uint64_t> slots_[kCapacity] = {};
  std::atomic<int> high_water_{0};
};

// The process-wide table used by the hooks.
extern FdTable g_fd_table;

}  // namespace httptrace
