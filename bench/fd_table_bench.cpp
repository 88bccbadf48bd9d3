// The check every hooked read()/write()/send()/recv() pays before anything else: is this
// descriptor a tracked socket? (interpose/record/fd_table.h, the real table from the interpose core.)
// For a non-socket descriptor this is the whole cost the library adds besides the extra call.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "interpose/record/fd_table.h"

using httptrace::FdTable;
using httptrace::g_fd_table;

namespace {

// The common case: a pipe or file descriptor nobody tracks; the slot's page is hot.
void BM_LookupUntracked(benchmark::State& state) {
  int fd = 5;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fd);
    benchmark::DoNotOptimize(FdTable::conn_of(g_fd_table.load(fd)));
  }
}
BENCHMARK(BM_LookupUntracked);

void BM_LookupTracked(benchmark::State& state) {
  g_fd_table.reset_for_test();
  g_fd_table.track(7, 42);
  int fd = 7;
  for (auto _ : state) {
    benchmark::DoNotOptimize(fd);
    benchmark::DoNotOptimize(FdTable::conn_of(g_fd_table.load(fd)));
  }
  g_fd_table.reset_for_test();
}
BENCHMARK(BM_LookupTracked);

// A program with many descriptors in use, touched in no particular order: the slot is often
// not in L1. Range is the spread of descriptor numbers.
void BM_LookupScattered(benchmark::State& state) {
  const int range = int(state.range(0));
  std::vector<int> fds(4096);
  std::mt19937 rng(1);
  for (int& fd : fds) fd = int(rng() % unsigned(range));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(FdTable::conn_of(g_fd_table.load(fds[i++ & 4095])));
  }
}
BENCHMARK(BM_LookupScattered)->Arg(64)->Arg(1 << 14)->Arg(1 << 20);

// The only write on the data path for an already-tracked socket: direction bookkeeping.
void BM_NoteDirection(benchmark::State& state) {
  g_fd_table.reset_for_test();
  g_fd_table.track(7, 42);
  auto dir = httptrace::format::Direction::kSend;
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_fd_table.note_direction(7, 42, dir, false));
    dir = dir == httptrace::format::Direction::kSend ? httptrace::format::Direction::kRecv
                                                     : httptrace::format::Direction::kSend;
  }
  g_fd_table.reset_for_test();
}
BENCHMARK(BM_NoteDirection);

}  // namespace

BENCHMARK_MAIN();
