// The trace file writer: one file per process, mapped MAP_SHARED, filled by per-thread segments.
//
// Life-cycle: open() creates the file exclusively, maps HTTPTRACE_MAX_MB of address space over it
// once and writes the FileHeader; emit() appends events from any thread; close() unmaps (used by
// tests and by a fork child dropping its parent's file). Nothing is ever flushed: the mapping is
// the page cache, so an event is durable against kill -9 the moment emit() returns.
//
// Threads. Each thread owns the segment it writes (a thread-local cursor: segment pointer, bytes
// used). It claims a segment with one CAS on FileHeader::segments_claimed, writes events into it,
// and publishes each with a release store of SegmentHeader::committed. When the segment is full
// it claims the next, and madvise(MADV_DONTNEED)s full segments in runs of up to 16 adjacent ones
// (the data stays in the page cache; our resident set stays bounded per thread). Claiming is the
// only place with syscalls: growing the file with posix_fallocate (blocks really allocated, so a
// full disk means dropped events, not SIGBUS) by its own size so far, between 1 and 32 MiB; a
// MADV_POPULATE_WRITE of the new segment from a thread's second one on (one call instead of 16
// page faults); and a getpid() that keeps a vfork child, which shares our memory, from claiming
// segments.
//
// Not re-entrant on one thread: callers (the recorder) hold the re-entrancy guard, so a signal
// handler that interrupts an emit() cannot start another one on the same cursor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/trace_format.h"

namespace httptrace {

struct WriterCursor;

struct WriterOptions {
  uint64_t max_bytes = 1024ull << 20;  // file size cap (HTTPTRACE_MAX_MB)
  uint32_t flags = 0;                  // format::kFileFlag*
  int32_t pid = 0;
  int32_t ppid = 0;
  const char* exe = nullptr;
  size_t exe_len = 0;
  const char* argv = nullptr;  // NUL-separated, as in /proc/self/cmdline
  size_t argv_len = 0;
  uint32_t argc = 0;
  int fd_floor = 0;  // move our descriptor to >= this number, out of the program's way (0: don't)
  // How the file grows and how segments are prepared and let go. The defaults are the measured
  // best (bench/RESULTS.md); record_bench varies them to show why.
  uint64_t grow_min = 1ull << 20;   // first growth step; later steps are the file's size so far,
  uint64_t grow_max = 32ull << 20;  // ... at most this: few fallocate calls, little unused disk
  uint32_t release_batch = 16;      // full segments dropped from our page tables per madvise
  bool populate = true;             // MADV_POPULATE_WRITE a segment when it is claimed
};

class TraceWriter {
 public:
  // Creates `path`, or path.1, path.2, ... when the name is taken: O_EXCL|O_NOFOLLOW, mode 0600,
  // so an existing file or symlink is never written through. False (errno set) on failure.
  bool open(const char* path, const WriterOptions& opts);
  // Unmaps and closes. Not safe while other threads emit (tests, fork child only).
  void close();

  // Appends one event: head (starting with an EventHeader whose size field is filled in here),
  // then tail, padded to 8 bytes. False when the event was dropped (and counted). Before the
  // file exists, the first emit() calls the opener (set_opener) to create it.
  bool emit(const void* head, size_t head_len, const void* tail = nullptr, size_t tail_len = 0);
  // Creates the file on first need (the recorder's lazy start): returns whether it is open.
  void set_opener(bool (*opener)()) { opener_ = opener; }

  bool active() const { return active_.load(std::memory_order_acquire); }
  const char* path() const { return path_; }
  int fd() const { return fd_.load(std::memory_order_relaxed); }
  // The program closed or replaced descriptor number fd: if it was ours, never touch it again.
  void note_fd_gone(int fd);
  format::FileHeader* header() const { return header_; }
  uint64_t dropped() const;

 private:
  bool start_segment(WriterCursor& c);
  void release_segment(WriterCursor& c);
  bool ensure_size(uint64_t need);
  void drop();

  std::atomic<bool> active_{false};
  bool (*opener_)() = nullptr;
  std::atomic<int> fd_{-1};
  std::atomic<bool> growth_failed_{false};
  std::atomic<uint64_t> file_size_{0};
  uint64_t generation_ = 0;
  uint8_t* base_ = nullptr;
  format::FileHeader* header_ = nullptr;
  size_t map_len_ = 0;
  uint64_t max_segments_ = 0;
  uint64_t grow_min_ = 0;
  uint64_t grow_max_ = 0;
  uint32_t release_batch_ = 0;
  bool populate_ = true;
  int32_t pid_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  char path_[4096] = {};
};

}  // namespace httptrace
