#include "interpose/record/trace_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "interpose/record/clock.h"
#include "interpose/record/sys.h"

namespace httptrace {

using format::FileHeader;
using format::SegmentHeader;

// The calling thread's position in the file it writes. Trivial and constant-initialised: with
// the initial-exec TLS model reading it never calls into the dynamic loader (or malloc).
struct WriterCursor {
  uint64_t generation;  // which open() of which writer the segment belongs to
  uint8_t* segment;     // nullptr: claim one before writing
  uint32_t used;        // payload bytes committed in segment
  uint64_t next_seq;    // thread_seq for the next segment this thread claims
  uint8_t* spent;       // full segments [spent, spent + spent_count * kSegmentSize) still mapped
  uint32_t spent_count;
};

namespace {
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;  // older headers; the kernel decides whether it exists
#endif

thread_local constinit WriterCursor t_cursor = {};
// Distinguishes every open() in the process, so a cursor left over from a closed file (or from
// the parent, in a fork child) is never mistaken for a segment of the current one.
std::atomic<uint64_t> g_generation{0};
}  // namespace

bool TraceWriter::open(const char* path, const WriterOptions& opts) {
  const uint64_t cap = opts.max_bytes;
  if (cap < format::kHeaderSize + format::kSegmentSize) {
    errno = EINVAL;
    return false;
  }
  max_segments_ = (cap - format::kHeaderSize) / format::kSegmentSize;
  map_len_ = format::kHeaderSize + max_segments_ * format::kSegmentSize;

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

  if (opts.fd_floor > 0 && fd < opts.fd_floor) {
    const int high = sys::fcntl(fd, F_DUPFD_CLOEXEC, opts.fd_floor);
    if (high >= 0) {
      sys::close(fd);
      fd = high;
    }
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || posix_fallocate(fd, 0, format::kHeaderSize) != 0) {
    const int e = errno;
    sys::close(fd);
    errno = e;
    return false;
  }
  void* map = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (map == MAP_FAILED) {
    const int e = errno;
    sys::close(fd);
    errno = e;
    return false;
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  base_ = static_cast<uint8_t*>(map);
  header_ = reinterpret_cast<FileHeader*>(base_);
  file_size_.store(format::kHeaderSize, std::memory_order_relaxed);
  growth_failed_.store(false, std::memory_order_relaxed);
  pid_ = opts.pid;
  grow_min_ = opts.grow_min > 0 ? opts.grow_min : format::kSegmentSize;
  grow_max_ = opts.grow_max > grow_min_ ? opts.grow_max : grow_min_;
  release_batch_ = opts.release_batch;
  populate_ = opts.populate;

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
  active_.store(true, std::memory_order_release);
  return true;
}

void TraceWriter::close() {
  if (!active_.exchange(false, std::memory_order_acq_rel)) return;
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

uint64_t TraceWriter::dropped() const {
  if (header_ == nullptr) return 0;
  return std::atomic_ref<uint64_t>(header_->dropped_events).load(std::memory_order_relaxed);
}

void TraceWriter::drop() {
  if (header_ == nullptr) return;
  std::atomic_ref<uint64_t>(header_->dropped_events).fetch_add(1, std::memory_order_relaxed);
}

bool TraceWriter::ensure_size(uint64_t need) {
  uint64_t have = file_size_.load(std::memory_order_acquire);
  if (need <= have) return true;
  if (growth_failed_.load(std::memory_order_relaxed)) return false;
  const int fd = fd_.load(std::memory_order_relaxed);
  // close_range()/closefrom() can take our descriptor without us seeing it, and the number may
  // now name one of the program's files: check it is still our file before extending it.
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
    growth_failed_.store(true, std::memory_order_relaxed);
    return false;
  }
  // Geometric growth: a long trace pays for few fallocate calls, a short one keeps a small file.
  const uint64_t step = have < grow_min_ ? grow_min_ : have > grow_max_ ? grow_max_ : have;
  uint64_t target = (need + step - 1) / step * step;
  if (target > map_len_) target = map_len_;
  // posix_fallocate reports through its return value; errno is restored by our callers anyway.
  if (posix_fallocate(fd, 0, static_cast<off_t>(target)) != 0) {
    growth_failed_.store(true, std::memory_order_relaxed);
    return false;
  }
  // Growers may race; the file never shrinks, so keeping the largest size seen is enough.
  while (have < target &&
         !file_size_.compare_exchange_weak(have, target, std::memory_order_release)) {
  }
  return true;
}

// Drops a full segment from our page tables (the data stays in the page cache) so the resident
// set stays bounded per thread. Dropping is a TLB flush whose cost is mostly per call, so runs
// of adjacent segments (a thread that writes alone claims consecutive ones) go in one call.
void TraceWriter::release_segment(WriterCursor& c) {
  if (release_batch_ == 0) return;  // never dropped (benchmarks only: RSS grows with the file)
  uint8_t* full = c.segment;
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

bool TraceWriter::start_segment(WriterCursor& c) {
  if (c.generation == generation_ && c.segment != nullptr) release_segment(c);
  if (c.generation != generation_) {
    c.next_seq = 0;
    c.spent = nullptr;  // another file's mapping (or none any more): not ours to drop
    c.spent_count = 0;
  }
  c.generation = generation_;
  c.segment = nullptr;
  c.used = 0;
  if (growth_failed_.load(std::memory_order_relaxed)) return false;

  std::atomic_ref<uint64_t> claimed(header_->segments_claimed);
  uint64_t index = claimed.load(std::memory_order_relaxed);
  if (index >= max_segments_) return false;
  // A vfork child runs on our memory with our thread's cursor; it must not take segments.
  if (sys::getpid() != pid_) return false;
  // Grow first, claim second: every claimed segment lies inside the file, so even a reader that
  // maps the file while we run never touches a page past its end. A failed CAS means another
  // thread claimed a segment, so this loop is lock-free.
  do {
    if (index >= max_segments_) return false;
    if (!ensure_size(format::kHeaderSize + (index + 1) * format::kSegmentSize)) return false;
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
  auto* sh = reinterpret_cast<SegmentHeader*>(seg);
  sh->tid = sys::gettid();
  sh->thread_seq = c.next_seq++;
  std::atomic_ref<uint64_t>(sh->committed).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(sh->magic).store(format::kSegmentMagic, std::memory_order_release);
  c.segment = seg;
  return true;
}

bool TraceWriter::emit(const void* head, size_t head_len, const void* tail, size_t tail_len) {
  if (!active_.load(std::memory_order_acquire) && (opener_ == nullptr || !opener_())) return false;
  const size_t size = format::padded(head_len + tail_len);
  if (head_len < sizeof(format::EventHeader) || size > format::kSegmentPayload || size > 0xffff) {
    drop();
    return false;
  }
  WriterCursor& c = t_cursor;
  if (c.generation != generation_ || c.segment == nullptr ||
      c.used + size > format::kSegmentPayload) {
    if (!start_segment(c)) {
      drop();
      return false;
    }
  }
  uint8_t* dst = c.segment + sizeof(SegmentHeader) + c.used;
  memcpy(dst, head, head_len);
  reinterpret_cast<format::EventHeader*>(dst)->size = static_cast<uint16_t>(size);
  if (tail_len > 0) memcpy(dst + head_len, tail, tail_len);
  // Segments are fresh file blocks (zero), but a crash-recovered reader must never see stale
  // bytes in padding, so write it anyway: at most 7 bytes.
  if (size != head_len + tail_len) memset(dst + head_len + tail_len, 0, size - head_len - tail_len);
  c.used += static_cast<uint32_t>(size);
  std::atomic_ref<uint64_t>(reinterpret_cast<SegmentHeader*>(c.segment)->committed)
      .store(c.used, std::memory_order_release);
  return true;
}

}  // namespace httptrace
