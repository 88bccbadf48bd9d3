// libFuzzer target: the input is event bytes only; a valid file header and segment headers are put
// around them, so every mutation lands in the events the model and the reports interpret (a
// mutated file header is mostly refused, which fuzz_reports already covers).
//
// Input: one byte, the number of threads (1 + byte % 4), then the events, cut into segments of
// 4032 bytes; segment i belongs to thread 1 + i % threads, in that thread's order.
#include <cstdint>
#include <cstring>
#include <string>

#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/run_reports.h"
#include "tests/support/trace_builder.h"

namespace tf = httptrace::format;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  constexpr uint32_t kSeg = 4096;
  constexpr size_t kPayload = kSeg - sizeof(tf::SegmentHeader);
  const int threads = 1 + data[0] % 4;
  ++data, --size;
  httptrace::testing::TraceBuilder b;
  tf::FileHeader h = b.header();
  h.segment_size = kSeg;
  const size_t segs = (size + kPayload - 1) / kPayload;
  h.segments_claimed = segs;
  std::string file(tf::kHeaderSize + segs * kSeg, '\0');
  std::memcpy(file.data(), &h, sizeof h);
  for (size_t i = 0; i < segs; ++i) {
    const size_t n = std::min(kPayload, size - i * kPayload);
    tf::SegmentHeader sh{};
    sh.magic = tf::kSegmentMagic;
    sh.tid = int32_t(1 + i % threads);
    sh.thread_uid = uint64_t(sh.tid);
    sh.thread_seq = i / threads;
    sh.committed = n;
    char* seg = file.data() + tf::kHeaderSize + i * kSeg;
    std::memcpy(seg, &sh, sizeof sh);
    std::memcpy(seg + sizeof sh, data + i * kPayload, n);
  }
  const std::string& path =
      httptrace::fuzz::as_trace_file(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  httptrace::analyzer::TraceSet ts;
  httptrace::analyzer::OpenError err;
  if (!ts.add(path, err)) return 0;
  httptrace::fuzz::run_reports(ts);
  return 0;
}
