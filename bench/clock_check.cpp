// Is a timestamp source safe to compare across threads on different cores?
//
// Two threads pinned to different CPUs take turns: one reads the clock and publishes the value
// (release), the other waits for it (acquire) and then reads its own clock. Causality says the
// second reading can never be smaller. A violation means events from two threads of one process
// could be merged out of order on the analyzer's time line. The smallest observed gap also bounds
// the clocks' offset between the two cores from above.
//
//   build/bench/clock_check [rounds]      prints one line per source; exit 1 if any violation
#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

namespace {

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

uint64_t tsc_ordered() {
  // Without the fence, rdtsc may run ahead of the acquire load that tells us the peer's stamp
  // is published, and a correct TSC would look wrong.
  _mm_lfence();
  return __rdtsc();
}

struct Result {
  uint64_t rounds = 0;
  uint64_t violations = 0;
  int64_t min_gap = INT64_MAX;  // in the source's units
  bool stalled = false;
};

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

template <uint64_t (*Now)()>
Result check(uint64_t rounds, int cpu_a, int cpu_b) {
  alignas(64) std::atomic<uint64_t> seq{0};
  alignas(64) std::atomic<uint64_t> stamp{0};
  Result res[2];
  // Round r is written by thread r % 2 and checked by the other one, so each thread alternates
  // between publishing and checking and both directions (a->b, b->a) are covered.
  auto body = [&](int self, int cpu) {
    pin(cpu);
    Result& mine = res[self];
    for (uint64_t r = 0; r < rounds; ++r) {
      if (r % 2 == uint64_t(self)) {
        stamp.store(Now(), std::memory_order_relaxed);
        seq.store(r + 1, std::memory_order_release);
      } else {
        // Bounded: a peer that never answers (e.g. descheduled forever) ends the check.
        uint64_t spins = 0;
        while (seq.load(std::memory_order_acquire) != r + 1) {
          if (++spins > 2'000'000'000u) { mine.stalled = true; return; }
          _mm_pause();
        }
        const uint64_t theirs = stamp.load(std::memory_order_relaxed);
        const uint64_t now = Now();
        const int64_t gap = int64_t(now - theirs);
        if (gap < 0) ++mine.violations;
        if (gap < mine.min_gap) mine.min_gap = gap;
        ++mine.rounds;
      }
    }
  };
  std::thread a(body, 0, cpu_a), b(body, 1, cpu_b);
  a.join();
  b.join();
  Result total;
  for (const Result& r : res) {
    total.rounds += r.rounds;
    total.violations += r.violations;
    total.stalled |= r.stalled;
    if (r.min_gap < total.min_gap) total.min_gap = r.min_gap;
  }
  return total;
}

void report(const char* name, const char* unit, const Result& r) {
  std::printf("%-28s rounds=%llu violations=%llu min_gap=%lld %s%s\n", name,
              (unsigned long long)r.rounds, (unsigned long long)r.violations,
              (long long)r.min_gap, unit, r.stalled ? " (peer stalled)" : "");
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t rounds = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200'000;
  const int ncpu = int(std::thread::hardware_concurrency());
  const int cpu_b = ncpu > 1 ? 1 : 0;
  if (ncpu < 2) std::printf("only one CPU: the cross-core part of this check is vacuous\n");

  const Result mono = check<mono_ns>(rounds, 0, cpu_b);
  const Result tsc = check<tsc_ordered>(rounds, 0, cpu_b);
  report("clock_gettime(MONOTONIC)", "ns", mono);
  report("rdtsc (lfence)", "ticks", tsc);
  return (mono.violations || tsc.violations || mono.stalled || tsc.stalled) ? 1 : 0;
}
