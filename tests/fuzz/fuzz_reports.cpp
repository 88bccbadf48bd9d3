// libFuzzer target: reader + model + every report and export, over whole trace files.
#include <cstdint>

#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/run_reports.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = httptrace::fuzz::as_trace_file(data, size);
  httptrace::analyzer::TraceSet ts;
  httptrace::analyzer::OpenError err;
  if (!ts.add(path, err)) return 0;
  httptrace::fuzz::run_reports(ts);
  return 0;
}
