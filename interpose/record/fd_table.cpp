#include "interpose/record/fd_table.h"

namespace httptrace {

FdTable g_fd_table;

namespace {
// Slot updates race only with another thread operating on the same descriptor, which is already
// a bug in the program; a handful of attempts is plenty, and giving up only loses a flag.
constexpr int kCasAttempts = 16;
}  // namespace

void FdTable::track(int fd, uint32_t conn) {
  if (!in_range(fd) || conn == 0) return;
  slots_[fd].store(conn, std::memory_order_relaxed);
  int hw = high_water_.load(std::memory_order_relaxed);
  while (hw <= fd && !high_water_.compare_exchange_weak(hw, fd + 1, std::memory_order_relaxed)) {
  }
}

uint64_t FdTable::untrack(int fd) {
  if (!in_range(fd)) return 0;
  if (slots_[fd].load(std::memory_order_relaxed) == 0) return 0;
  return slots_[fd].exchange(0, std::memory_order_relaxed);
}

void FdTable::set_pending(int fd, uint32_t conn) {
  if (!in_range(fd)) return;
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && conn_of(cur) == conn && conn != 0; ++i) {
    if (slots_[fd].compare_exchange_weak(cur, cur | kPendingBit, std::memory_order_relaxed)) return;
  }
}

bool FdTable::clear_pending(int fd, uint32_t conn) {
  if (!in_range(fd)) return false;
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && conn_of(cur) == conn && pending(cur); ++i) {
    if (slots_[fd].compare_exchange_weak(cur, cur & ~kPendingBit, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

bool FdTable::note_direction(int fd, uint32_t conn, format::Direction dir, bool plaintext) {
  if (!in_range(fd)) return false;
  const uint64_t mine = turn_bit(dir, plaintext);
  const uint64_t theirs = turn_bit(other(dir), plaintext);
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && conn_of(cur) == conn && conn != 0; ++i) {
    if ((cur & mine) != 0) return false;  // this way was already taken as the turn: the common case
    if (slots_[fd].compare_exchange_weak(cur, (cur & ~theirs) | mine, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void FdTable::set_flag(int fd, uint32_t conn, uint64_t flag) {
  if (!in_range(fd)) return;
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && conn_of(cur) == conn && conn != 0; ++i) {
    if (slots_[fd].compare_exchange_weak(cur, cur | flag, std::memory_order_relaxed)) return;
  }
}

bool FdTable::take_flag(int fd, uint32_t conn, uint64_t flag) {
  if (!in_range(fd)) return false;
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && conn_of(cur) == conn && conn != 0 && (cur & flag); ++i) {
    if (slots_[fd].compare_exchange_weak(cur, cur & ~flag, std::memory_order_relaxed)) return true;
  }
  return false;
}

void FdTable::set_line_reads(int fd, uint32_t conn, unsigned n) {
  if (!in_range(fd)) return;
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && conn_of(cur) == conn && conn != 0; ++i) {
    const uint64_t next = (cur & ~kLineReadsMask) | (uint64_t{n & 0xff} << kLineReadsShift);
    if (slots_[fd].compare_exchange_weak(cur, next, std::memory_order_relaxed)) return;
  }
}

void FdTable::renumber(int fd, uint32_t new_conn) {
  if (!in_range(fd) || new_conn == 0) return;
  uint64_t cur = slots_[fd].load(std::memory_order_relaxed);
  for (int i = 0; i < kCasAttempts && cur != 0; ++i) {
    const uint64_t next = (cur & ~0xffffffffull) | new_conn;
    if (slots_[fd].compare_exchange_weak(cur, next, std::memory_order_relaxed)) return;
  }
}

void FdTable::reset_for_test() {
  const int hw = high_water();
  for (int fd = 0; fd < hw; ++fd) slots_[fd].store(0, std::memory_order_relaxed);
  high_water_.store(0, std::memory_order_relaxed);
}

}  // namespace httptrace
