#include "interpose/record/trace_writer.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "interpose/record/clock.h"
#include "interpose/record/sys.h"

namespace httptrace {

using format::DropCause;
using format::FileHeader;
using format::SegmentHeader;

// The calling thread's position in the file it writes. Trivial and constant-initialised: with
// the initial-exec TLS model reading it never calls into the dynamic loader (or malloc).
// A signal handler on this thread may run between any two instructions of emit(), so fields it
// can change are read through atomic_ref and changed by one instruction each (local_xadd32,
// local_cas64, local_add64); `inflight` needs neither because a nested emit always puts it back
// as it was.
struct WriterCursor {
  uint64_t generation;  // which open() of which writer the segment belongs to
  uint8_t* segment;     // nullptr: claim one before writing
  uint32_t reserved;    // payload bytes handed out in segment (written or being written)
  uint32_t inflight;    // emits under way on this thread, nested ones included
  uint32_t switching;   // 1 while the outermost emit changes segment: nested emits drop
  uint32_t key_armed;   // the thread-exit key holds a value for this thread
  uint64_t next_seq;    // thread_seq for the next segment (or hand-off) this thread takes
  uint64_t uid;         // this thread's thread_uid in this file; 0 until its first segment
  uint8_t* spent;       // full segments [spent, spent + spent_count * kSegmentSize) still mapped
  uint32_t spent_count;
  uint64_t lost_total;                    // sum of lost[]: one load on the hot path
  uint64_t lost[format::kDropCauses];     // events lost since the last LostEvent, by cause
  uint64_t lost_ts[format::kDropCauses];  // when the first of them was lost
};

namespace {
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;  // older headers; the kernel decides whether it exists
#endif

// After a failed growth (disk full), threads wait this long (in event time) before trying again:
// a full disk costs one fallocate per interval, not one per event.
constexpr uint64_t kGrowthRetryNs = 50'000'000;
// The last bytes of a segment, kept for events nested in an emit (see append).
constexpr uint32_t kNestedReserve = 1024;
// An exiting thread's segment with less room than this is not worth handing on.
constexpr uint32_t kParkMinFree = 4096;
// Not a DropCause: the event is not ours to count (a vfork child sharing our memory).
constexpr auto kNotCounted = static_cast<DropCause>(255);
constexpr uint32_t kGlibcKeyFirstLevel = 32;  // PTHREAD_KEY_2NDLEVEL_SIZE: no calloc below it

thread_local constinit WriterCursor t_cursor = {};
// Distinguishes every open() in the process, so a cursor left over from a closed file (or from
// the parent, in a fork child) is never mistaken for a segment of the current one.
std::atomic<uint64_t> g_generation{0};

// The thread-exit hand-off: one key for the process, pointing at the writer that is open.
pthread_key_t g_exit_key;
std::atomic<int> g_key_state{0};  // 0 not made, 1 usable, 2 unusable (would allocate)
std::atomic<TraceWriter*> g_handoff_writer{nullptr};

void on_thread_exit(void*) {
  TraceWriter* w = g_handoff_writer.load(std::memory_order_acquire);
  if (w != nullptr) w->park_thread_segment();
}

bool exit_key_usable() {
  int s = g_key_state.load(std::memory_order_acquire);
  if (s == 0) {
    pthread_key_t k;
    const int made = pthread_key_create(&k, on_thread_exit) == 0 ? 1 : 2;
    s = made;
    // A high key's per-thread slot is calloc'ed at the first pthread_setspecific: not for us.
    if (made == 1 && k >= kGlibcKeyFirstLevel) {
      pthread_key_delete(k);
      s = 2;
    }
    if (s == 1) g_exit_key = k;
    g_key_state.store(s, std::memory_order_release);
  }
  return s == 1;
}

// One instruction each: a signal handler on this thread cannot split them (interrupts land
// between instructions), and no other thread writes these fields, so no lock prefix is needed.
// Returns *p and adds v to it.
inline uint32_t local_xadd32(uint32_t* p, uint32_t v) {
#if defined(__x86_64__)
  asm volatile("xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory", "cc");
  return v;
#else
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#endif
}

inline bool local_cas64(uint64_t* p, uint64_t expect, uint64_t desired) {
#if defined(__x86_64__)
  uint64_t prev;
  asm volatile("cmpxchgq %2, %1" : "=a"(prev), "+m"(*p) : "r"(desired), "0"(expect) : "memory", "cc");
  return prev == expect;
#else
  return __atomic_compare_exchange_n(p, &expect, desired, false, __ATOMIC_RELEASE,
                                     __ATOMIC_RELAXED);
#endif
}

inline void local_add64(uint64_t* p, uint64_t v) {
#if defined(__x86_64__)
  asm volatile("addq %1, %0" : "+m"(*p) : "r"(v) : "memory", "cc");
#else
  __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
#endif
}

template <typename T>
T peek(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}
template <typename T>
void poke(T& field, T v) {
  std::atomic_ref<T>(field).store(v, std::memory_order_relaxed);
}

void fence() { std::atomic_signal_fence(std::memory_order_seq_cst); }

SegmentHeader* seg_header(uint8_t* seg) { return reinterpret_cast<SegmentHeader*>(seg); }

// committed = reserved, for the segment the cursor holds. A signal handler on this thread may
// emit between any two instructions here. It may reserve more: we store again. In the outermost
// emit's last publish (inflight is 0 by then, so the handler's emit is an outermost one too) it
// may also change segment, publishing the old one whole: a value read before that must not land
// in the old segment (it would cut the segment short, or name the new segment's offset). So the
// store is a compare-and-swap from the value read, made only while the segment read is still the
// cursor's; a handler's publish in between makes it fail. (Its release order comes from x86's
// store order and the asm's memory clobber: only this thread writes `committed`.)
void publish(WriterCursor& c) {
  for (int i = 0; i < 16; ++i) {
    uint8_t* seg = peek(c.segment);
    if (seg == nullptr) return;
    uint64_t* committed = &seg_header(seg)->committed;
    const uint64_t was = peek(*committed);
    const uint32_t r = peek(c.reserved);
    fence();
    if (peek(c.segment) != seg || !local_cas64(committed, was, r)) continue;
    fence();
    if (peek(c.segment) == seg && peek(c.reserved) == r) return;
  }
}

int fallocate_range(int fd, uint64_t from, uint64_t len) {
  int rc = EINTR;
  for (int i = 0; i < 16 && rc == EINTR; ++i) {
    rc = posix_fallocate(fd, static_cast<off_t>(from), static_cast<off_t>(len));
  }
  return rc;
}
}  // namespace

uint64_t TraceWriter::fsize_cap() const {
  rlimit rl;
  if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  if (rl.rlim_cur < format::kHeaderSize) return 0;
  return format::kHeaderSize +
         (rl.rlim_cur - format::kHeaderSize) / format::kSegmentSize * format::kSegmentSize;
}

bool TraceWriter::open(const char* path, const WriterOptions& opts) {
  const uint64_t cap = opts.max_bytes;
  if (cap < format::kHeaderSize + format::kSegmentSize) {
    errno = EINVAL;
    return false;
  }
  // Under `ulimit -f` growing the file past the limit would get the program SIGXFSZ. A limit
  // that leaves no room for one segment means no file at all.
  const uint64_t fcap = fsize_cap();
  if (fcap < format::kHeaderSize + format::kSegmentSize) {
    errno = EFBIG;
    return false;
  }
  max_segments_ = (cap - format::kHeaderSize) / format::kSegmentSize;
  map_len_ = format::kHeaderSize + max_segments_ * format::kSegmentSize;
  grow_min_ = opts.grow_min > 0 ? opts.grow_min : format::kSegmentSize;
  grow_max_ = opts.grow_max > grow_min_ ? opts.grow_max : grow_min_;

  int fd = -1;
  const size_t base_len = strnlen(path, sizeof(path_) - 16);
  for (int attempt = 0; attempt < 1000 && fd < 0; ++attempt) {
    if (attempt == 0) {
      snprintf(path_, sizeof(path_), "%.*s", static_cast<int>(base_len), path);
    } else {
      snprintf(path_, sizeof(path_), "%.*s.%d", static_cast<int>(base_len), path, attempt);
    }
    fd = sys::openat(AT_FDCWD, path_, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return false;
  }
  if (fd < 0) return false;

  // Out of the program's way, at a number its descriptor table already has room for (the
  // caller's choice). No room there: keep the file through the mapping alone.
  bool keep_fd = true;
  if (opts.fd_floor > 0 && fd < opts.fd_floor) {
    const int high = sys::fcntl(fd, F_DUPFD_CLOEXEC, opts.fd_floor);
    if (high >= 0) {
      sys::close(fd);
      fd = high;
    } else {
      keep_fd = false;
    }
  }
  // The first segment comes with the header (one fallocate instead of two: the file exists
  // because an event is about to be written); growth steps start at the second. No more than
  // that for a process that may record a handful of events: on tmpfs an allocation is zeroed
  // pages (1 MiB: +0.15 ms per process measured). A file that must live without its descriptor
  // gets grow_min on top of the header. On a disk with less room, the header alone.
  uint64_t initial = keep_fd ? format::kHeaderSize + format::kSegmentSize
                             : format::kHeaderSize + grow_min_;
  if (initial < format::kHeaderSize + format::kSegmentSize) {
    initial = format::kHeaderSize + format::kSegmentSize;
  }
  if (initial > map_len_) initial = map_len_;
  if (initial > fcap) initial = fcap;
  struct stat st;
  int e = 0;
  void* map = MAP_FAILED;
  if (fstat(fd, &st) != 0) {
    e = errno;
  } else {
    e = fallocate_range(fd, 0, initial);
    if (e != 0 && keep_fd) {
      initial = format::kHeaderSize;
      e = fallocate_range(fd, 0, initial);
    }
    if (e == 0) {
      map = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
      if (map == MAP_FAILED) e = errno;
    }
  }
  if (map == MAP_FAILED) {
    // Nothing half-made stays behind: the name is ours (O_EXCL) unless someone replaced it since.
    struct stat now;
    if (lstat(path_, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
      unlink(path_);
    }
    sys::close(fd);
    errno = e;
    return false;
  }
  if (!keep_fd) {
    sys::close(fd);
    fd = -1;
  }
  // Our faults write pages nobody has read: without this, the first write fault in a freshly
  // allocated range reads ahead (zero-fills) up to the readahead window of pages we may never
  // touch, ~0.2 ms per process here (perf: page_cache_ra_unbounded under claim_fresh). Only
  // over the first MiB, where a short-lived process writes everything it writes: further on,
  // the readahead makes MADV_POPULATE_WRITE of a whole segment cheaper (one batch of pages
  // instead of 16 faults that each allocate one; BM_Emit/Data 34 vs 41 ns).
  madvise(map, map_len_ < (1u << 20) ? map_len_ : (1u << 20), MADV_RANDOM);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  base_ = static_cast<uint8_t*>(map);
  header_ = reinterpret_cast<FileHeader*>(base_);
  file_size_.store(initial, std::memory_order_relaxed);
  truncated_.store(false, std::memory_order_relaxed);
  retry_after_ns_.store(0, std::memory_order_relaxed);
  next_uid_.store(1, std::memory_order_relaxed);
  parked_count_.store(0, std::memory_order_relaxed);
  for (auto& slot : parked_) slot.store(0, std::memory_order_relaxed);
  pid_ = opts.pid;
  release_batch_ = opts.release_batch;
  populate_ = opts.populate;
  hand_off_ = opts.hand_off && exit_key_usable();

  FileHeader& h = *header_;
  memcpy(h.magic, format::kMagic, sizeof(h.magic));
  h.version = format::kVersion;
  h.min_reader_version = format::kMinReaderVersion;
  h.byte_order = format::kByteOrderMark;
  h.header_size = format::kHeaderSize;
  h.segment_size = format::kSegmentSize;
  h.flags = opts.flags;
  h.pid = opts.pid;
  h.ppid = opts.ppid;
  h.mono_anchor_ns = clock_ns(CLOCK_MONOTONIC);
  h.real_anchor_ns = clock_ns(CLOCK_REALTIME);
  h.max_segments = max_segments_;
  h.exe_len = static_cast<uint32_t>(opts.exe_len < format::kExeMax ? opts.exe_len : format::kExeMax);
  if (opts.exe != nullptr) memcpy(h.exe, opts.exe, h.exe_len);
  h.argv_len =
      static_cast<uint32_t>(opts.argv_len < format::kArgvMax ? opts.argv_len : format::kArgvMax);
  if (opts.argv != nullptr) memcpy(h.argv, opts.argv, h.argv_len);
  h.argc = opts.argc;

  generation_ = g_generation.fetch_add(1, std::memory_order_relaxed) + 1;
  fd_.store(fd, std::memory_order_relaxed);
  if (hand_off_) g_handoff_writer.store(this, std::memory_order_release);
  active_.store(true, std::memory_order_release);
  return true;
}

void TraceWriter::close() {
  if (!active_.exchange(false, std::memory_order_acq_rel)) return;
  TraceWriter* self = this;
  g_handoff_writer.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel);
  munmap(base_, map_len_);
  base_ = nullptr;
  header_ = nullptr;
  const int fd = fd_.exchange(-1, std::memory_order_relaxed);
  if (fd >= 0) sys::close(fd);
}

void TraceWriter::note_fd_gone(int fd) {
  int mine = fd_.load(std::memory_order_relaxed);
  if (fd >= 0 && fd == mine) fd_.compare_exchange_strong(mine, -1, std::memory_order_relaxed);
}

bool TraceWriter::abandon_mapping_at(const void* addr) {
  const auto* a = static_cast<const uint8_t*>(addr);
  if (base_ == nullptr || a < base_ || a >= base_ + map_len_) return false;
  truncated_.store(true, std::memory_order_relaxed);
  // Same addresses, same protection, no file: nothing can fault here any more.
  return mmap(base_, map_len_, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED;
}

uint64_t TraceWriter::dropped() const {
  if (header_ == nullptr) return 0;
  return std::atomic_ref<uint64_t>(header_->dropped_events).load(std::memory_order_relaxed);
}

uint64_t TraceWriter::dropped(DropCause cause) const {
  if (header_ == nullptr || static_cast<int>(cause) >= format::kDropCauses) return 0;
  return std::atomic_ref<uint64_t>(header_->dropped_by_cause[static_cast<int>(cause)])
      .load(std::memory_order_relaxed);
}

void TraceWriter::fresh_cursor(WriterCursor& c) {
  c.generation = generation_;
  c.segment = nullptr;
  c.reserved = 0;
  c.switching = 0;
  c.key_armed = 0;
  c.next_seq = 0;
  c.uid = 0;
  c.spent = nullptr;  // another file's mapping (or none any more): not ours to drop
  c.spent_count = 0;
  c.lost_total = 0;
  for (int i = 0; i < format::kDropCauses; ++i) c.lost[i] = c.lost_ts[i] = 0;
}

void TraceWriter::drop(DropCause cause, uint64_t ts, uint64_t n) {
  const int i = static_cast<int>(cause);
  if (header_ == nullptr || i >= format::kDropCauses || n == 0) return;
  std::atomic_ref<uint64_t>(header_->dropped_events).fetch_add(n, std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(header_->dropped_by_cause[i]).fetch_add(n, std::memory_order_relaxed);
  WriterCursor& c = t_cursor;
  if (c.generation != generation_) {
    if (peek(c.inflight) != 0) return;  // an emit below us owns the cursor: the header has it
    fresh_cursor(c);
  }
  if (peek(c.lost[i]) == 0) poke(c.lost_ts[i], ts);
  local_add64(&c.lost[i], n);
  local_add64(&c.lost_total, n);
}

bool TraceWriter::ensure_size(uint64_t need, uint64_t ts, DropCause* why) {
  uint64_t have = file_size_.load(std::memory_order_acquire);
  if (need <= have) return true;
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd < 0) {  // no descriptor (lost to the program, or never kept): the file keeps its size
    *why = DropCause::kSizeCap;
    return false;
  }
  if (ts < retry_after_ns_.load(std::memory_order_relaxed)) {
    *why = static_cast<DropCause>(last_growth_cause_.load(std::memory_order_relaxed));
    return false;
  }
  // Geometric growth: a long trace pays for few fallocate calls, a short one keeps a small file.
  const uint64_t step = have < grow_min_ ? grow_min_ : have > grow_max_ ? grow_max_ : have;
  uint64_t target = (need + step - 1) / step * step;
  if (target > map_len_) target = map_len_;
  const uint64_t limit = fsize_cap();
  if (target > limit) target = limit;
  if (target < need) {
    // The program may raise its limit later: asked again after the same interval as a full disk.
    last_growth_cause_.store(static_cast<int>(DropCause::kFileSizeLimit), std::memory_order_relaxed);
    retry_after_ns_.store(ts + kGrowthRetryNs, std::memory_order_relaxed);
    *why = DropCause::kFileSizeLimit;
    return false;
  }
  // Only the new range: the old one is allocated already, and one failure (EINTR, a full disk
  // for a moment) must not stop recording for good.
  const int rc = fallocate_range(fd, have, target - have);
  if (rc != 0) {
    const DropCause cause = rc == EFBIG ? DropCause::kFileSizeLimit : DropCause::kDiskFull;
    last_growth_cause_.store(static_cast<int>(cause), std::memory_order_relaxed);
    retry_after_ns_.store(ts + kGrowthRetryNs, std::memory_order_relaxed);
    *why = cause;
    return false;
  }
  retry_after_ns_.store(0, std::memory_order_relaxed);
  // Growers may race; the file never shrinks, so keeping the largest size seen is enough.
  while (have < target &&
         !file_size_.compare_exchange_weak(have, target, std::memory_order_release)) {
  }
  return true;
}

// Drops a full segment from our page tables (the data stays in the page cache) so the resident
// set stays bounded per thread. Dropping is a TLB flush whose cost is mostly per call, so runs
// of adjacent segments (a thread that writes alone claims consecutive ones) go in one call.
void TraceWriter::release_segment(WriterCursor& c, uint8_t* full) {
  if (release_batch_ == 0) return;  // never dropped (benchmarks only: RSS grows with the file)
  if (c.spent != nullptr &&
      (full != c.spent + c.spent_count * format::kSegmentSize ||
       c.spent_count >= release_batch_)) {
    madvise(c.spent, c.spent_count * format::kSegmentSize, MADV_DONTNEED);
    c.spent = nullptr;
    c.spent_count = 0;
  }
  if (c.spent == nullptr) c.spent = full;
  ++c.spent_count;
}

// A truncated file (logrotate's copytruncate) would SIGBUS the program at our next write past
// its new end. No write into a MAP_SHARED file mapping can be made fault-proof (the kernel unmaps
// the truncated pages from every mapping, however warm), and a truncation cannot be prevented
// (leases and dnotify would signal the program). So, two layers: (1) detection where we make
// syscalls anyway, at every segment claim and hand-off: an fstat that finds the file shorter
// than we allocated stops all recording at once (truncated_, checked by every emit), counted as
// kTruncated; (2) for the window between a truncation and the next claim, the SIGBUS guard (sigbus_guard.h)
// above (installed only over the default action): a fault in our mapping swaps the mapping for
// anonymous memory, so the write in progress completes into nothing and the program goes on.
//
// The slow part (syscalls, page faults of a fresh segment) runs while the old segment is still
// the cursor's: a signal handler's event that fits there is kept. Only the swap itself, a few
// instructions, makes nested emits drop (switching).
bool TraceWriter::start_segment(WriterCursor& c, uint32_t need, uint64_t ts, DropCause* why) {
  // Past the size cap, or while growth waits after a failure, every event of every thread comes
  // here: refuse without a syscall when no parked segment could help.
  if (!hand_off_ || parked_count_.load(std::memory_order_relaxed) == 0) {
    const uint64_t claimed =
        std::atomic_ref<uint64_t>(header_->segments_claimed).load(std::memory_order_relaxed);
    if (claimed >= max_segments_) {
      *why = DropCause::kSizeCap;
      return false;
    }
    if (format::kHeaderSize + (claimed + 1) * format::kSegmentSize >
        file_size_.load(std::memory_order_acquire)) {
      if (fd_.load(std::memory_order_relaxed) < 0) {
        *why = DropCause::kSizeCap;
        return false;
      }
      if (ts < retry_after_ns_.load(std::memory_order_relaxed)) {
        *why = static_cast<DropCause>(last_growth_cause_.load(std::memory_order_relaxed));
        return false;
      }
    }
  }
  // A vfork child runs on our memory with our thread's cursor; it must not take segments.
  if (sys::getpid() != pid_) {
    *why = kNotCounted;
    return false;
  }
  const int fd = fd_.load(std::memory_order_relaxed);
  struct stat st;
  if (fd >= 0) {
    // close_range()/closefrom() can take our descriptor without us seeing it, and the number may
    // now name one of the program's files: never extend that one.
    if (fstat(fd, &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
      note_fd_gone(fd);
    } else if (static_cast<uint64_t>(st.st_size) < file_size_.load(std::memory_order_acquire)) {
      truncated_.store(true, std::memory_order_relaxed);
      poke(c.switching, 1u);
      fence();
      poke(c.segment, static_cast<uint8_t*>(nullptr));  // never touched again: past the end now
      fence();
      poke(c.switching, 0u);
      *why = DropCause::kTruncated;
      return false;
    }
  }
  if (c.uid == 0) c.uid = next_uid_.fetch_add(1, std::memory_order_relaxed);
  uint8_t* seg = nullptr;
  uint32_t start = 0;
  const bool ok = (hand_off_ && parked_count_.load(std::memory_order_relaxed) > 0 &&
                   take_parked(c, need, &seg, &start)) ||
                  claim_fresh(c, ts, why, &seg);
  if (!ok) return false;  // the old segment stays: smaller events may still fit in it
  if (hand_off_ && c.key_armed == 0) {
    // Keys below 32 live in the thread descriptor: this allocates nothing.
    pthread_setspecific(g_exit_key, this);
    c.key_armed = 1;
  }
  poke(c.switching, 1u);
  fence();
  uint8_t* old = peek(c.segment);
  publish(c);  // nested events may have gone in since the outermost emit last published
  poke(c.reserved, start);
  poke(c.segment, seg);
  fence();
  poke(c.switching, 0u);
  if (old != nullptr) release_segment(c, old);
  return true;
}

bool TraceWriter::take_parked(WriterCursor& c, uint32_t need, uint8_t** out, uint32_t* start) {
  for (auto& slot : parked_) {
    uint64_t v = slot.load(std::memory_order_relaxed);
    if (v == 0) continue;
    uint8_t* seg = base_ + format::kHeaderSize + (v - 1) * format::kSegmentSize;
    std::atomic_ref<uint64_t> committed(seg_header(seg)->committed);
    // As append() will see it: the nested reserve stays free unless the event needs it.
    const uint64_t limit = need > format::kSegmentPayload - kNestedReserve
                               ? format::kSegmentPayload
                               : format::kSegmentPayload - kNestedReserve;
    const uint64_t kRoom = limit - sizeof(format::ThreadEvent);
    if (committed.load(std::memory_order_acquire) + need > kRoom) continue;
    if (!slot.compare_exchange_strong(v, 0, std::memory_order_acq_rel)) continue;
    // Read again now that it is ours: between the look and the CAS another thread may have
    // taken it, written, exited and parked it again in the same slot (ABA).
    const uint64_t used = committed.load(std::memory_order_acquire);
    if (used + need > kRoom) {
      uint64_t empty = 0;
      if (!slot.compare_exchange_strong(empty, v, std::memory_order_acq_rel)) {
        parked_count_.fetch_sub(1, std::memory_order_relaxed);  // left unused, as when full
      }
      continue;
    }
    parked_count_.fetch_sub(1, std::memory_order_relaxed);
    format::ThreadEvent te = {};
    te.h.kind = static_cast<uint16_t>(format::EventKind::kThread);
    te.h.size = sizeof(te);
    te.h.ts_ns = clock_ns(CLOCK_MONOTONIC);
    te.tid = sys::gettid();
    te.thread_uid = c.uid;
    te.thread_seq = c.next_seq++;
    memcpy(seg + sizeof(SegmentHeader) + used, &te, sizeof(te));
    *out = seg;
    *start = static_cast<uint32_t>(used + sizeof(te));
    return true;
  }
  return false;
}

bool TraceWriter::claim_fresh(WriterCursor& c, uint64_t ts, DropCause* why, uint8_t** out) {
  std::atomic_ref<uint64_t> claimed(header_->segments_claimed);
  uint64_t index = claimed.load(std::memory_order_relaxed);
  // Grow first, claim second: every claimed segment lies inside the file, so even a reader that
  // maps the file while we run never touches a page past its end. A failed CAS means another
  // thread claimed a segment, so this loop is lock-free.
  do {
    if (index >= max_segments_) {
      *why = DropCause::kSizeCap;
      return false;
    }
    if (!ensure_size(format::kHeaderSize + (index + 1) * format::kSegmentSize, ts, why)) {
      return false;
    }
  } while (!claimed.compare_exchange_weak(index, index + 1, std::memory_order_relaxed));

  const uint64_t offset = format::kHeaderSize + index * format::kSegmentSize;
  uint8_t* seg = base_ + offset;
  // One call instead of 16 page faults (Linux >= 5.14; elsewhere it fails and faults happen as
  // we write). Page faults on a shared file mapping are the writer's largest cost. Not for a
  // thread's first segment: most threads of a many-threaded program record a handful of events,
  // and faulting only what they touch keeps them at a page or one page-cache folio (~32 KiB
  // measured on ext4) instead of 64 KiB. A thread that filled one segment will fill more; from
  // its second one on, it pays one call.
  if (populate_ && c.next_seq > 0) madvise(seg, format::kSegmentSize, kMadvPopulateWrite);
  auto* sh = seg_header(seg);
  sh->tid = sys::gettid();
  sh->thread_seq = c.next_seq++;
  sh->thread_uid = c.uid;
  std::atomic_ref<uint64_t>(sh->committed).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(sh->magic).store(format::kSegmentMagic, std::memory_order_release);
  *out = seg;
  return true;
}

void TraceWriter::park_thread_segment() {
  WriterCursor& c = t_cursor;
  c.key_armed = 0;  // glibc cleared the key's value before calling us
  if (!active() || c.generation != generation_ || c.segment == nullptr || c.inflight != 0) return;
  publish(c);
  if (c.spent != nullptr) {
    madvise(c.spent, c.spent_count * format::kSegmentSize, MADV_DONTNEED);
    c.spent = nullptr;
    c.spent_count = 0;
  }
  uint8_t* seg = c.segment;
  const uint32_t used = c.reserved;
  c.segment = nullptr;
  c.reserved = 0;
  if (format::kSegmentPayload - used < kParkMinFree) return;
  const uint64_t v = static_cast<uint64_t>(seg - base_ - format::kHeaderSize) / format::kSegmentSize + 1;
  for (auto& slot : parked_) {
    uint64_t empty = 0;
    if (slot.compare_exchange_strong(empty, v, std::memory_order_acq_rel)) {
      parked_count_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  // Every slot taken (many threads exited, none started): the rest of this segment stays unused.
}

bool TraceWriter::append(WriterCursor& c, const void* head, size_t head_len, const void* tail,
                         size_t tail_len, uint32_t size, uint64_t ts) {
  const uint32_t depth = peek(c.inflight);
  if (c.generation != generation_) {
    if (depth > 1) {
      drop(DropCause::kNested, ts);
      return false;
    }
    fresh_cursor(c);
  }
  // The losses this thread has to report go in first, by the outermost emit only (a nested one
  // must not consume counters the interrupted one has already read). Rare: kept off the path
  // of an ordinary event.
  uint64_t take[format::kDropCauses];
  uint32_t extra = 0;
  const bool report = depth == 1 && peek(c.lost_total) != 0;
  if (report) {
    for (int i = 0; i < format::kDropCauses; ++i) {
      take[i] = peek(c.lost[i]);
      if (take[i] != 0) extra += sizeof(format::LostEvent);
    }
    if (size + extra > format::kSegmentPayload) extra = 0;  // an event this big goes alone
  }
  const uint32_t need = size + extra;
  // The outermost emit leaves the end of each segment to nested ones: a signal handler's event
  // arriving while we change segment (syscalls, where signals are delivered) still has room.
  const uint32_t limit = depth > 1 || need > format::kSegmentPayload - kNestedReserve
                             ? format::kSegmentPayload
                             : format::kSegmentPayload - kNestedReserve;
  // Each pass either takes its space or changes segment (which leaves room for `need`); the bound
  // only guards against the impossible.
  for (int attempt = 0; attempt < 16; ++attempt) {
    uint8_t* seg = peek(c.segment);
    if (seg != nullptr && peek(c.switching) == 0 && peek(c.reserved) + need <= limit) {
      // One instruction takes the space: a signal handler's events, however many, come before
      // or after ours and never make us try again. They may have used room since the check:
      // past the segment's end the space is given back (every event reserved after ours found
      // no room and was dropped, so nothing lies beyond `off`) and we go on to a new segment.
      const uint32_t off = local_xadd32(&c.reserved, need);
      if (off + need <= format::kSegmentPayload) {
        uint8_t* dst = seg + sizeof(SegmentHeader) + off;
        for (int i = 0; extra != 0 && i < format::kDropCauses; ++i) {
          if (take[i] == 0) continue;
          format::LostEvent lost = {};
          lost.h.kind = static_cast<uint16_t>(format::EventKind::kLost);
          lost.h.size = sizeof(lost);
          lost.h.ts_ns = peek(c.lost_ts[i]);
          lost.count = take[i];
          lost.cause = static_cast<uint8_t>(i);
          memcpy(dst, &lost, sizeof(lost));
          dst += sizeof(lost);
          local_add64(&c.lost[i], ~take[i] + 1);  // minus what was reported; later losses stay
          local_add64(&c.lost_total, ~take[i] + 1);
        }
        // Segments are fresh file blocks (zero), but a crash-recovered reader must never see
        // stale bytes in padding (at most 7), so the last word is cleared first: one store
        // instead of a memset of a size known only here. (size >= sizeof(EventHeader) >= 8.)
        memset(dst + size - 8, 0, 8);
        memcpy(dst, head, head_len);
        reinterpret_cast<format::EventHeader*>(dst)->size = static_cast<uint16_t>(size);
        if (tail_len > 0) memcpy(dst + head_len, tail, tail_len);
        return true;
      }
      poke(c.reserved, off);
    }
    if (depth > 1 || peek(c.switching) != 0) {
      drop(DropCause::kNested, ts);
      return false;
    }
    DropCause why = DropCause::kSizeCap;
    if (!start_segment(c, need, ts, &why)) {
      drop(why, ts);
      return false;
    }
  }
  drop(DropCause::kNested, ts);
  return false;
}

bool TraceWriter::emit(const void* head, size_t head_len, const void* tail, size_t tail_len) {
  if (!active_.load(std::memory_order_acquire)) return false;
  if (head_len < sizeof(format::EventHeader)) {
    drop(DropCause::kTooLarge, 0);
    return false;
  }
  uint64_t ts;
  memcpy(&ts, static_cast<const uint8_t*>(head) + offsetof(format::EventHeader, ts_ns), sizeof(ts));
  const size_t size = format::padded(head_len + tail_len);
  if (size > format::kSegmentPayload || size > 0xffff) {
    drop(DropCause::kTooLarge, ts);
    return false;
  }
  if (truncated_.load(std::memory_order_relaxed)) {
    drop(DropCause::kTruncated, ts);
    return false;
  }
  WriterCursor& c = t_cursor;
  poke(c.inflight, peek(c.inflight) + 1);
  fence();
  const bool ok = append(c, head, head_len, tail, tail_len, static_cast<uint32_t>(size), ts);
  fence();
  const uint32_t left = peek(c.inflight) - 1;
  poke(c.inflight, left);
  fence();
  // Only the outermost emit publishes: every reservation below it is written by now.
  if (left == 0 && c.generation == generation_) publish(c);
  return ok;
}

}  // namespace httptrace
