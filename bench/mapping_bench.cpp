// Why does an event cost what it costs? The writer's own work per event is a few nanoseconds
// (see BM_EmitDropped in record_bench, which skips only the memory); the rest is the kernel
// providing fresh pages of the MAP_SHARED trace file. This file measures that part alone: one
// iteration claims and fills one 64 KiB segment, the way TraceWriter does, under different ways
// of preparing the file, so the recorder can pick the cheapest. The "per_event_48B" counter is
// the segment time spread over the 1364 data events a segment holds.
//
//   Anon                 private anonymous memory: the floor for a first-touch page fault
//   FileFallocate        what trace_writer.cpp does: posix_fallocate, then page faults on write
//   FileFallocateDontneed  ... plus MADV_DONTNEED of the full segment (also what it does)
//   FileGrow             what trace_writer.cpp really does: the file starts empty and grows by
//                        posix_fallocate 1 MiB at a time, ahead of the segments it claims
//   FileTruncate         sparse file (ftruncate): no unwritten extents to convert
//   FilePopulate         posix_fallocate + MADV_POPULATE_WRITE of the segment when claimed:
//                        one call instead of 16 faults
//   ShmFallocate         the same file on tmpfs (/dev/shm): no block allocation at all
//   FileRewrite          pages already faulted in and mapped: the cost if segments were reused
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

constexpr size_t kSeg = 64 * 1024;

enum class Prep { kAnon, kFallocate, kGrow, kFallocateDontneed, kTruncate, kPopulate, kShm, kRewrite };

void BM_Segment(benchmark::State& state, Prep prep) {
  const size_t segs = size_t(state.max_iterations);
  const size_t len = segs * kSeg;
  int fd = -1;
  std::string path;
  if (prep != Prep::kAnon) {
    char tmpl[64];
    std::strcpy(tmpl, prep == Prep::kShm ? "/dev/shm/httptrace-map.XXXXXX"
                                         : "/tmp/httptrace-map.XXXXXX");
    fd = mkstemp(tmpl);
    if (fd < 0) { state.SkipWithError("mkstemp"); return; }
    path = tmpl;
    const bool sparse = prep == Prep::kTruncate;
    const int rc = prep == Prep::kGrow ? 0
                   : sparse            ? ftruncate(fd, off_t(len))
                                       : posix_fallocate(fd, 0, off_t(len));
    if (rc != 0) {
      state.SkipWithError("cannot size the file");
      close(fd);
      unlink(path.c_str());
      return;
    }
  }
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE,
                 fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (m == MAP_FAILED) { state.SkipWithError("mmap"); return; }
  auto* base = static_cast<unsigned char*>(m);
  if (prep == Prep::kRewrite) std::memset(base, 1, len);

  size_t i = 0;
  for (auto _ : state) {
    if (prep == Prep::kGrow && i % 16 == 0) posix_fallocate(fd, 0, off_t((i + 16) * kSeg));
    unsigned char* seg = base + i++ * kSeg;
    if (prep == Prep::kPopulate) madvise(seg, kSeg, MADV_POPULATE_WRITE);
    std::memset(seg, 0xab, kSeg);
    benchmark::ClobberMemory();
    if (prep == Prep::kFallocateDontneed) madvise(seg, kSeg, MADV_DONTNEED);
  }
  state.counters["per_event_48B"] = benchmark::Counter(
      double(state.iterations()) * double(kSeg / 48),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  munmap(m, len);
  if (fd >= 0) {
    close(fd);
    unlink(path.c_str());
  }
}

BENCHMARK_CAPTURE(BM_Segment, Anon, Prep::kAnon);
BENCHMARK_CAPTURE(BM_Segment, FileFallocate, Prep::kFallocate);
BENCHMARK_CAPTURE(BM_Segment, FileGrow, Prep::kGrow);
BENCHMARK_CAPTURE(BM_Segment, FileFallocateDontneed, Prep::kFallocateDontneed);
BENCHMARK_CAPTURE(BM_Segment, FileTruncate, Prep::kTruncate);
BENCHMARK_CAPTURE(BM_Segment, FilePopulate, Prep::kPopulate);
BENCHMARK_CAPTURE(BM_Segment, ShmFallocate, Prep::kShm);
BENCHMARK_CAPTURE(BM_Segment, FileRewrite, Prep::kRewrite);

}  // namespace

BENCHMARK_MAIN();
