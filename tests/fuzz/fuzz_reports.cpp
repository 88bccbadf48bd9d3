// libFuzzer target: reader + model + every report and export, as the commands run them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "analyzer/reports.h"
#include "tests/fuzz/fuzz_input.h"

using namespace httptrace::analyzer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::FILE* sink = std::fopen("/dev/null", "w");
  if (!sink) std::abort();
  const std::string& path = httptrace::fuzz::as_trace_file(data, size);
  TraceSet ts;
  OpenError err;
  if (!ts.add(path, err)) return 0;
  ts.start();
  write_dump(ts, sink);
  ts.start();
  write_reuse(ts, sink);
  for (bool color : {false, true}) {
    ts.start();
    write_timeline(ts, sink, TimelineOptions{color, color ? 40 : 100});
  }
  ts.start();
  write_json(ts, sink);
  return 0;
}
