// libFuzzer target: reader + model + every report and export, as the commands run them.
// HTTPTRACE_FUZZ_SKIP=name,name leaves reports out (dump, reuse, timeline, json): a known crash
// not yet fixed would otherwise stop every run at once (scripts/fuzz.sh takes the list from
// tests/fuzz/known_crashes).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "analyzer/reports.h"
#include "tests/fuzz/fuzz_input.h"

using namespace httptrace::analyzer;

namespace {

bool wanted(const char* name) {
  static const std::string skip = [] {
    const char* s = std::getenv("HTTPTRACE_FUZZ_SKIP");
    return "," + std::string(s ? s : "") + ",";
  }();
  return skip.find("," + std::string(name) + ",") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::FILE* sink = std::fopen("/dev/null", "w");
  if (!sink) std::abort();
  const std::string& path = httptrace::fuzz::as_trace_file(data, size);
  TraceSet ts;
  OpenError err;
  if (!ts.add(path, err)) return 0;
  if (wanted("dump")) {
    ts.start();
    write_dump(ts, sink);
  }
  if (wanted("reuse")) {
    ts.start();
    write_reuse(ts, sink);
  }
  if (wanted("timeline"))
    for (bool color : {false, true}) {
      ts.start();
      write_timeline(ts, sink, TimelineOptions{color, color ? 40 : 100});
    }
  if (wanted("json")) {
    ts.start();
    write_json(ts, sink);
  }
  return 0;
}
