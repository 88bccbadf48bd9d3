// Every report and export over an opened trace set, as the commands run them; shared by the fuzz
// targets. HTTPTRACE_FUZZ_SKIP=name,name leaves reports out (dump, reuse, timeline, json): a
// known crash not yet fixed would otherwise stop every run at once (scripts/fuzz.sh takes the list
// from tests/fuzz/known_crashes).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "analyzer/reports.h"

namespace httptrace::fuzz {

inline bool wanted(const char* name) {
  static const std::string skip = [] {
    const char* s = std::getenv("HTTPTRACE_FUZZ_SKIP");
    return "," + std::string(s ? s : "") + ",";
  }();
  return skip.find("," + std::string(name) + ",") == std::string::npos;
}

inline void run_reports(httptrace::analyzer::TraceSet& ts) {
  using namespace httptrace::analyzer;
  static std::FILE* sink = std::fopen("/dev/null", "w");
  if (!sink) std::abort();
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
}

}  // namespace httptrace::fuzz
