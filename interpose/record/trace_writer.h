// The trace file writer: one file per process, mapped MAP_SHARED, filled by per-thread segments.
// It knows nothing about the recorder above it: lifecycle.h decides when a file is created.
//
// Life-cycle: open() creates the file exclusively, maps HTTPTRACE_MAX_MB of address space over it
// once and writes the FileHeader; emit() appends events from any thread; close() unmaps (used by
// tests and by a fork child dropping its parent's file). Nothing is ever flushed: the mapping is
// the page cache, so an event is durable against kill -9 the moment emit() returns. A failed
// open() leaves no file behind.
//
// Threads. Each thread owns the segment it writes (a thread-local cursor: segment pointer, bytes
// reserved). It claims a segment with one CAS on FileHeader::segments_claimed, writes events into
// it, and publishes them with a release store of SegmentHeader::committed. When the segment is
// full it claims the next, and madvise(MADV_DONTNEED)s full segments in runs of up to 16 adjacent
// ones (the data stays in the page cache; our resident set stays bounded per thread). A thread
// that exits parks the unfilled rest of its segment (a pthread key destructor; the key is one of
// the first 32, whose slots need no allocation) in a small lock-free pool; the next thread that
// needs a segment takes it and writes a ThreadEvent first, so a thread per task does not burn a
// segment per thread. Every thread gets a unique thread_uid (tids are reused).
//
// Claiming is the only place with syscalls: growing the file with posix_fallocate (blocks really
// allocated, so a full disk means dropped events, not SIGBUS) by its own size so far, between 1
// and 32 MiB, never past RLIMIT_FSIZE (the kernel would send SIGXFSZ); a failed growth is retried
// later (EINTR at once), so recording resumes when space returns. A MADV_POPULATE_WRITE of the
// new segment from a thread's second one on (one call instead of 16 page faults); an fstat that
// notices a file truncated under us; and a getpid() that keeps a vfork child, which shares our
// memory, from claiming segments.
//
// Re-entrancy. A signal handler may interrupt emit() and emit on the same thread (the recorder's
// ReentryGuard allows a few levels). The nested event takes its own space after the interrupted
// one's reservation (a fetch-and-add on the thread's reserved count: one instruction, which a
// signal cannot split, so no number of handlers can make an emit lose its turn) and only the
// outermost emit publishes `committed`, once every reservation below it is written, so a reader
// never sees a reserved but unwritten event. A nested emit that would need a new segment is
// dropped (DropCause::kNested): claiming is not re-entrant.
//
// Losses are counted by cause in the header (dropped_by_cause, total in dropped_events) and, on
// the losing thread, written in-stream as LostEvents just before its next recorded event.
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
  // Move our descriptor to >= this number, out of the program's way (0: leave it where open()
  // put it). The caller picks a number the descriptor table already covers (lifecycle.cpp): a
  // table that must grow in a multi-threaded process waits for an RCU grace period (10-25 ms).
  // When no number there is free, the file is allocated once (grow_min) and the descriptor closed:
  // recording goes on through the mapping until that space is used.
  int fd_floor = 0;
  // How the file grows and how segments are prepared and let go. The defaults are the measured
  // best (bench/RESULTS.md); record_bench varies them to show why.
  uint64_t grow_min = 1ull << 20;   // first growth step; later steps are the file's size so far,
  uint64_t grow_max = 32ull << 20;  // ... at most this: few fallocate calls, little unused disk
  uint32_t release_batch = 16;      // full segments dropped from our page tables per madvise
  bool populate = true;             // MADV_POPULATE_WRITE a segment when it is claimed
  bool hand_off = true;             // park an exiting thread's segment for the next thread
};

class TraceWriter {
 public:
  // Creates `path`, or path.1, path.2, ... when the name is taken: O_EXCL|O_NOFOLLOW, mode 0600,
  // so an existing file or symlink is never written through. False (errno set) on failure, and
  // then nothing is left on disk.
  bool open(const char* path, const WriterOptions& opts);
  // Unmaps and closes. Not safe while other threads emit (tests, fork child only).
  void close();

  // Appends one event: head (starting with an EventHeader whose size field is filled in here),
  // then tail, padded to 8 bytes. False when the event was dropped (and counted), or when no file
  // is open (not counted: there is nowhere to count it).
  bool emit(const void* head, size_t head_len, const void* tail = nullptr, size_t tail_len = 0);
  // Counts n events lost for `cause`, the first at time ts (the recorder's nesting limit uses it).
  void drop(format::DropCause cause, uint64_t ts, uint64_t n = 1);

  bool active() const { return active_.load(std::memory_order_acquire); }
  const char* path() const { return path_; }
  int fd() const { return fd_.load(std::memory_order_relaxed); }
  // The program closed or replaced descriptor number fd: if it was ours, never touch it again.
  void note_fd_gone(int fd);
  format::FileHeader* header() const { return header_; }
  uint64_t dropped() const;
  uint64_t dropped(format::DropCause cause) const;

  // The thread-exit hand-off (pthread key destructor); public for the destructor only.
  void park_thread_segment();
  // The SIGBUS handler: addr lies in our mapping (the file was truncated): stop recording and
  // put anonymous memory under the mapping so the faulting write can complete. False otherwise.
  bool abandon_mapping_at(const void* addr);

 private:
  bool append(WriterCursor& c, const void* head, size_t head_len, const void* tail,
              size_t tail_len, uint32_t size, uint64_t ts);
  bool start_segment(WriterCursor& c, uint32_t need, uint64_t ts, format::DropCause* why);
  bool take_parked(WriterCursor& c, uint32_t need, uint8_t** seg, uint32_t* start);
  bool claim_fresh(WriterCursor& c, uint64_t ts, format::DropCause* why, uint8_t** seg);
  void release_segment(WriterCursor& c, uint8_t* full);
  bool ensure_size(uint64_t need, uint64_t ts, format::DropCause* why);
  uint64_t fsize_cap() const;
  void fresh_cursor(WriterCursor& c);

  static constexpr int kParkSlots = 64;

  std::atomic<bool> active_{false};
  std::atomic<bool> truncated_{false};  // the file shrank under us: nothing more is written
  std::atomic<int> fd_{-1};
  std::atomic<uint64_t> file_size_{0};
  std::atomic<uint64_t> retry_after_ns_{0};  // no growth attempt before this (after a failure)
  std::atomic<int> last_growth_cause_{0};    // the DropCause of that failure
  std::atomic<uint64_t> next_uid_{1};
  std::atomic<int> parked_count_{0};
  std::atomic<uint64_t> parked_[kParkSlots] = {};  // segment index + 1; 0 = empty slot
  uint64_t generation_ = 0;
  uint8_t* base_ = nullptr;
  format::FileHeader* header_ = nullptr;
  size_t map_len_ = 0;
  uint64_t max_segments_ = 0;
  uint64_t grow_min_ = 0;
  uint64_t grow_max_ = 0;
  uint32_t release_batch_ = 0;
  bool populate_ = true;
  bool hand_off_ = true;
  int32_t pid_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  char path_[4096] = {};
};

}  // namespace httptrace
