// What recording costs inside the traced program, measured on the real writer
// (interpose/record/trace_writer.h from build/libinterpose_core.a) writing a real file:
//
//   BM_Emit/<kind>          TraceWriter::emit of one event of each kind, already built: the
//                           ring's own cost (cursor, copy, release-store of `committed`, and,
//                           amortised, claiming segments, growing the file, first-touch page
//                           faults and the MADV_DONTNEED of full segments). 1, 2, 8, 64 threads.
//   BM_EmitDataWithClock    the data event as a hook produces it: two CLOCK_MONOTONIC reads
//                           (call start and end) plus the emit.
//   BM_RecordData/...       the recorder's whole path for a data event on a tracked socket, as
//                           hooks/net.cpp calls it: two clock reads, fd-table look-up, direction
//                           bookkeeping, and at a direction change the capture of the request
//                           line. Writes through the process-wide recorder (one file per run).
//   BM_EmitDropped          the cost of an event dropped because the size cap is reached.
//   BM_EmitLatency          the distribution per event (p50/p90/p99/max, one thread): the mean
//                           above mixes ~85 cheap events with one that touches a fresh page of
//                           the file; the median shows what the typical event costs.
//   BM_RecordDataLatency    the same distribution for record_data (same direction, no clock).
//   BM_EmitVariant          the writer's tunables (growth step, DONTNEED batch, populate).
//
// Multi-threaded rows report CPU time per event per thread (Google Benchmark's CPU column), the
// number to compare with one thread: on a 2-core machine 8 or 64 threads share the cores, so
// wall time per event grows with the thread count by construction and says nothing about
// contention.
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <unistd.h>

#include <x86intrin.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/trace_format.h"
#include "interpose/record/clock.h"
#include "interpose/record/fd_table.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"
#include "interpose/record/trace_writer.h"

namespace f = httptrace::format;
using httptrace::TraceWriter;

namespace {

std::string g_dir;
TraceWriter g_writer;

// One fresh file per benchmark run, opened by thread 0 before the timed loop (Google Benchmark
// holds every thread at a barrier until then), so runs never share a file and the disk holds at
// most one run's events. The previous run's file is closed here, not at the end of its run: its
// other threads may still be exiting then, parking their segments (close() is not safe while
// any thread uses the writer), and by the next run's start they have all been joined.
void close_previous() {
  if (!g_writer.active()) return;
  const std::string path = g_writer.path();
  g_writer.close();
  unlink(path.c_str());
}

bool open_writer(benchmark::State& state, uint64_t max_bytes = 64ull << 30,
                 httptrace::WriterOptions o = {}) {
  if (state.thread_index() != 0) return true;
  close_previous();
  o.max_bytes = max_bytes;
  o.pid = getpid();
  o.ppid = getppid();
  const std::string path = g_dir + "/record.trace";
  if (!g_writer.open(path.c_str(), o)) {
    state.SkipWithError("cannot open the trace file");
    return false;
  }
  return true;
}

void close_writer(benchmark::State& state) {
  if (state.thread_index() != 0) return;
  state.counters["dropped"] = double(g_writer.dropped());
  state.counters["segments"] = double(g_writer.header()->segments_claimed);
}

// An event image: the struct plus the bytes that follow it (host name, capture, path, stack).
struct Image {
  alignas(8) unsigned char head[sizeof(f::TlsHandshakeEvent)];
  size_t head_len = 0;
  unsigned char tail[256];
  size_t tail_len = 0;
};

template <typename E>
E& start(Image& im, f::EventKind kind) {
  static_assert(sizeof(E) <= sizeof(im.head));
  std::memset(im.head, 0, sizeof im.head);
  auto& e = *reinterpret_cast<E*>(im.head);
  e.h.kind = uint16_t(kind);
  e.h.conn = 7;
  e.h.ts_ns = 123456789;
  im.head_len = sizeof(E);
  return e;
}

void tail(Image& im, const char* bytes, size_t n) {
  std::memcpy(im.tail, bytes, n);
  im.tail_len = n;
}

Image make(f::EventKind kind, bool capture = false) {
  Image im;
  switch (kind) {
    case f::EventKind::kDns: {
      auto& e = start<f::DnsEvent>(im, kind);
      e.naddr = 2;
      e.host_len = 15;
      tail(im, "api.example.com", 15);
      break;
    }
    case f::EventKind::kSocket: start<f::SocketEvent>(im, kind).fd = 5; break;
    case f::EventKind::kConnect: start<f::ConnectEvent>(im, kind).fd = 5; break;
    case f::EventKind::kConnectDone: start<f::ConnectDoneEvent>(im, kind).fd = 5; break;
    case f::EventKind::kData: {
      auto& e = start<f::DataEvent>(im, kind);
      e.fd = 5;
      e.result = 89;
      if (capture) {
        static constexpr char kReq[] = "GET /index.html HTTP/1.1\r\nHost: api.example.com";
        e.flags = f::kDataDirChange;
        e.capture_kind = uint8_t(f::CaptureKind::kHttpReq);
        e.cap_len = sizeof kReq - 1;
        tail(im, kReq, sizeof kReq - 1);
      }
      break;
    }
    case f::EventKind::kClose: start<f::CloseEvent>(im, kind).fd = 5; break;
    case f::EventKind::kDup: start<f::DupEvent>(im, kind).newfd = 6; break;
    case f::EventKind::kFork: start<f::ForkEvent>(im, kind).child_pid = 99; break;
    case f::EventKind::kInherit: start<f::InheritEvent>(im, kind).fd = 5; break;
    case f::EventKind::kTlsHandshake: {
      auto& e = start<f::TlsHandshakeEvent>(im, kind);
      std::strcpy(e.cipher, "TLS_AES_256_GCM_SHA384");
      std::strcpy(e.sni, "api.example.com");
      break;
    }
    case f::EventKind::kTlsClose: start<f::TlsCloseEvent>(im, kind).fd = 5; break;
    case f::EventKind::kExec: {
      start<f::ExecEvent>(im, kind).path_len = 12;
      tail(im, "/usr/bin/env", 12);
      break;
    }
    case f::EventKind::kStack: {
      start<f::StackEvent>(im, kind).depth = 16;
      static const uint64_t kFrames[16] = {};
      tail(im, reinterpret_cast<const char*>(kFrames), sizeof kFrames);
      break;
    }
    default: break;  // kinds not benchmarked here (kAccept, the HTTP/2 ones)
  }
  return im;
}

void BM_Emit(benchmark::State& state, f::EventKind kind, bool capture) {
  const Image im = make(kind, capture);
  if (!open_writer(state)) return;
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_writer.emit(im.head, im.head_len, im.tail, im.tail_len));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * int64_t(f::padded(im.head_len + im.tail_len)));
  close_writer(state);
}

// The thread counts the targets are stated for.
#define THREADS ->Threads(1)->Threads(2)->Threads(8)->Threads(64)
#define EMIT(name, kind, capture) \
  BENCHMARK_CAPTURE(BM_Emit, name, f::EventKind::kind, capture) THREADS

EMIT(Data, kData, false);
EMIT(DataWithCapture, kData, true);
EMIT(Socket, kSocket, false);
EMIT(Connect, kConnect, false);
EMIT(ConnectDone, kConnectDone, false);
EMIT(Close, kClose, false);
EMIT(Dns, kDns, false);
EMIT(TlsHandshake, kTlsHandshake, false);
EMIT(TlsClose, kTlsClose, false);
EMIT(Dup, kDup, false);
EMIT(Fork, kFork, false);
EMIT(Inherit, kInherit, false);
EMIT(Exec, kExec, false);
EMIT(Stack, kStack, false);

void BM_EmitDataWithClock(benchmark::State& state) {
  Image im = make(f::EventKind::kData);
  auto& e = *reinterpret_cast<f::DataEvent*>(im.head);
  if (!open_writer(state)) return;
  for (auto _ : state) {
    const uint64_t t0 = httptrace::now_ns();
    const uint64_t t1 = httptrace::now_ns();
    e.h.ts_ns = t0;
    e.dur_ns = t1 - t0;
    benchmark::DoNotOptimize(g_writer.emit(im.head, im.head_len));
  }
  state.SetItemsProcessed(state.iterations());
  close_writer(state);
}
BENCHMARK(BM_EmitDataWithClock) THREADS;

// The writer's tunables, one at a time against the defaults (first row), for a data event:
// args are grow_max MiB (grow_min is 1 MiB, or grow_max if smaller), release_batch (0 = never
// MADV_DONTNEED), populate (1 = MADV_POPULATE_WRITE at claim). Defaults: 32, 16, 1.
void BM_EmitVariant(benchmark::State& state) {
  const Image im = make(f::EventKind::kData);
  httptrace::WriterOptions o;
  o.grow_max = uint64_t(state.range(0)) << 20;
  o.grow_min = std::min<uint64_t>(o.grow_min, o.grow_max);
  o.release_batch = uint32_t(state.range(1));
  o.populate = state.range(2) != 0;
  if (!open_writer(state, 64ull << 30, o)) return;
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_writer.emit(im.head, im.head_len));
  }
  state.SetItemsProcessed(state.iterations());
  close_writer(state);
}
BENCHMARK(BM_EmitVariant)
    ->ArgNames({"grow_max_mb", "batch", "populate"})
    ->Args({32, 16, 1})
    ->Args({1, 16, 1})   // the old fixed 1 MiB growth step
    ->Args({32, 1, 1})   // MADV_DONTNEED every full segment on its own
    ->Args({32, 64, 1})  // bigger DONTNEED runs (4 MiB resident per thread)
    ->Args({32, 0, 1})   // never drop: resident set grows with the file
    ->Args({32, 16, 0})  // page faults instead of populate
    ->Args({1, 1, 0});   // the writer as the previous helper measured it

// fd numbers far above anything this process opens: tracked in the table, never used for I/O.
constexpr int kFakeFd = 900000;

void BM_RecordData(benchmark::State& state, bool alternate) {
  if (!httptrace::recording()) {
    state.SkipWithError("the recorder did not start");
    return;
  }
  const int fd = kFakeFd + state.thread_index();
  httptrace::g_fd_table.track(fd, 1000 + uint32_t(state.thread_index()));
  static constexpr char kReq[] = "GET /index.html HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
  static constexpr char kResp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
  iovec req{const_cast<char*>(kReq), sizeof kReq - 1};
  iovec resp{const_cast<char*>(kResp), sizeof kResp - 1};
  bool send = true;
  for (auto _ : state) {
    const uint64_t t0 = httptrace::now_ns();
    const uint64_t t1 = httptrace::now_ns();
    const iovec* iov = send ? &req : &resp;
    httptrace::record_data(fd, send ? f::Direction::kSend : f::Direction::kRecv,
                           send ? f::DataCall::kSend : f::DataCall::kRecv, 0, t0, t1,
                           int64_t(iov->iov_len), iov, 1);
    if (alternate) send = !send;
  }
  httptrace::g_fd_table.untrack(fd);
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0)
    state.counters["dropped_total"] = double(httptrace::trace_writer().dropped());
}
BENCHMARK_CAPTURE(BM_RecordData, SameDirection, false)->Threads(1)->Threads(8);
BENCHMARK_CAPTURE(BM_RecordData, DirectionChange, true)->Threads(1)->Threads(8);

// A file capped at one segment: after the first ~1300 events every emit is a drop, which
// increments the shared FileHeader::dropped_events.
void BM_EmitDropped(benchmark::State& state) {
  const Image im = make(f::EventKind::kData);
  if (!open_writer(state, f::kHeaderSize + f::kSegmentSize)) return;
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_writer.emit(im.head, im.head_len));
  }
  state.SetItemsProcessed(state.iterations());
  close_writer(state);
}
BENCHMARK(BM_EmitDropped)->Threads(1)->Threads(8);

uint64_t ticks() {
  _mm_lfence();
  const uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

// TSC ticks per nanosecond, measured against CLOCK_MONOTONIC over ~20 ms of spinning.
double tsc_per_ns() {
  const uint64_t c0 = ticks(), n0 = httptrace::now_ns();
  uint64_t n1 = n0;
  for (int i = 0; i < 100'000'000 && n1 - n0 < 20'000'000; ++i) n1 = httptrace::now_ns();
  return double(ticks() - c0) / double(n1 - n0);
}

// Times every call of one() with lfence+rdtsc and reports the distribution; the cost of the
// timer itself (median of back-to-back reads) is subtracted from each sample.
template <typename One>
void latency_distribution(benchmark::State& state, One&& one) {
  static const double kTscPerNs = tsc_per_ns();
  std::vector<uint64_t> empty(100'000);
  for (auto& e : empty) {
    const uint64_t t0 = ticks();
    e = ticks() - t0;
  }
  std::nth_element(empty.begin(), empty.begin() + empty.size() / 2, empty.end());
  const uint64_t overhead = empty[empty.size() / 2];

  std::vector<uint64_t> samples;
  samples.reserve(size_t(state.max_iterations));
  for (auto _ : state) {
    const uint64_t t0 = ticks();
    one();
    const uint64_t d = ticks() - t0;
    samples.push_back(d > overhead ? d - overhead : 0);
  }
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double p) {
    return double(samples[std::min(samples.size() - 1, size_t(p * double(samples.size())))]) /
           kTscPerNs;
  };
  // With several threads each reports its own distribution; the counters show their average.
  auto avg = [](double v) { return benchmark::Counter(v, benchmark::Counter::kAvgThreads); };
  state.counters["p50_ns"] = avg(pct(0.50));
  state.counters["p90_ns"] = avg(pct(0.90));
  state.counters["p99_ns"] = avg(pct(0.99));
  state.counters["p999_ns"] = avg(pct(0.999));
  state.counters["max_ns"] = avg(pct(1.0));
  state.counters["timer_ns"] = avg(double(overhead) / kTscPerNs);
}

void BM_EmitLatency(benchmark::State& state) {
  const Image im = make(f::EventKind::kData);
  if (!open_writer(state)) return;
  latency_distribution(state, [&] {
    benchmark::DoNotOptimize(g_writer.emit(im.head, im.head_len));
  });
  close_writer(state);
}
BENCHMARK(BM_EmitLatency)->Threads(1)->Threads(8);

// The recorder's whole per-event work for a data call on a tracked socket (fd-table look-up,
// direction check, event build, emit), without the two clock reads that time the real call.
void BM_RecordDataLatency(benchmark::State& state) {
  if (!httptrace::recording()) {
    state.SkipWithError("the recorder did not start");
    return;
  }
  const int fd = kFakeFd + 100 + state.thread_index();
  httptrace::g_fd_table.track(fd, 2000 + uint32_t(state.thread_index()));
  static constexpr char kResp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
  iovec resp{const_cast<char*>(kResp), sizeof kResp - 1};
  const uint64_t t0 = httptrace::now_ns();
  latency_distribution(state, [&] {
    httptrace::record_data(fd, f::Direction::kRecv, f::DataCall::kRecv, 0, t0, t0 + 1000,
                           int64_t(resp.iov_len), &resp, 1);
  });
  httptrace::g_fd_table.untrack(fd);
}
BENCHMARK(BM_RecordDataLatency)->Threads(1)->Threads(8);

}  // namespace

int main(int argc, char** argv) {
  char tmpl[] = "/tmp/httptrace-record-bench.XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  g_dir = tmpl;
  // The process-wide recorder (BM_RecordData) writes its file here too, uncapped in practice.
  const std::string rec = g_dir + "/recorder.%p.trace";
  setenv("HTTPTRACE_OUTPUT", rec.c_str(), 1);
  setenv("HTTPTRACE_MAX_MB", "262144", 1);
  unsetenv("HTTPTRACE_DISABLE");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  close_previous();
  const std::string mine = g_dir + "/recorder." + std::to_string(getpid()) + ".trace";
  unlink(mine.c_str());
  rmdir(tmpl);
  return 0;
}
