// Timestamp sources a hook could stamp events with. Every recorded event pays for one (data events
// two: start and end of the call), so this is a large share of the per-event budget.
//
// What "correct" means here is checked separately by build/bench/clock_check (cross-core
// ordering); this file only says what each source costs.
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <cstdint>
#include <ctime>

namespace {

void BM_ClockGettimeMonotonic(benchmark::State& state) {
  timespec ts;
  for (auto _ : state) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(BM_ClockGettimeMonotonic);

// Coarse is jiffy-resolution (4 ms at HZ=250): too coarse to time a loopback round trip, listed
// only to show what "no hardware read at all" costs.
void BM_ClockGettimeMonotonicCoarse(benchmark::State& state) {
  timespec ts;
  for (auto _ : state) {
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(BM_ClockGettimeMonotonicCoarse);

void BM_ClockGettimeRealtime(benchmark::State& state) {
  timespec ts;
  for (auto _ : state) {
    clock_gettime(CLOCK_REALTIME, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(BM_ClockGettimeRealtime);

void BM_Rdtsc(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(BM_Rdtsc);

// rdtsc may execute before earlier loads retire; lfence orders it, which is what a start stamp
// taken right before a real call would need to be meaningful.
void BM_RdtscLfence(benchmark::State& state) {
  for (auto _ : state) {
    _mm_lfence();
    benchmark::DoNotOptimize(__rdtsc());
  }
}
BENCHMARK(BM_RdtscLfence);

// TSC ticks are not nanoseconds: the trace needs CLOCK_MONOTONIC ns, so a TSC writer would also
// pay a multiply-shift conversion (here with a fixed 2^32 scale as the kernel's vDSO does).
void BM_RdtscToNs(benchmark::State& state) {
  const uint64_t mult = (uint64_t{1} << 32) / 3;  // ~3 GHz; the value does not change the cost
  const uint64_t base = __rdtsc();
  for (auto _ : state) {
    _mm_lfence();
    const uint64_t d = __rdtsc() - base;
    const uint64_t ns = static_cast<uint64_t>((static_cast<unsigned __int128>(d) * mult) >> 32);
    benchmark::DoNotOptimize(ns);
  }
}
BENCHMARK(BM_RdtscToNs);

}  // namespace

BENCHMARK_MAIN();
