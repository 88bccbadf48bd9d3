// The reports behind the commands, callable on opened traces (so tests and `run` share them).
#pragma once

#include <cstdio>
#include <string>

#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

// SPEC §6. False if writing failed.
bool write_json(TraceSet& traces, std::FILE* out);
// SPEC §7 (HAR 1.2) and §8 (Chrome Trace Event JSON). False if writing failed.
bool write_har(TraceSet& traces, std::FILE* out);
bool write_chrome(TraceSet& traces, std::FILE* out);

struct TimelineOptions {
  bool color = false;
  int width = 100;  // terminal columns
  // Bytes of rendered rows held in memory before they are sorted out to a temporary file; 0 =
  // RowSpool's default. Tests make it small to exercise the merge.
  size_t spool_budget = 0;
  // Weight (1 + exchanges per connection) of connections held back to print them in start order
  // before ordering gives up and sorts through the spool; 0 = StartOrder's default.
  uint64_t max_held_weight = 0;
};
// False (with a message on stderr) if writing failed.
bool write_timeline(TraceSet& traces, std::FILE* out, const TimelineOptions& opt);

void write_reuse(TraceSet& traces, std::FILE* out);
// SPEC §4 `why`: new connections by reason, stale reuse, churn, percentiles, races, DNS habits.
void write_why(TraceSet& traces, std::FILE* out);

void write_dump(TraceSet& traces, std::FILE* out);

// `httptrace sites`: call sites that opened connections (HTTPTRACE_STACKS=1 traces).
void write_sites(TraceSet& traces, std::FILE* out);

}  // namespace httptrace::analyzer

namespace httptrace::analyzer {
// Columns of the terminal on stdout, or 100 when stdout is not a terminal.
int terminal_width();
// --color=auto|always|never, with NO_COLOR (non-empty) winning over everything.
bool want_color(const std::string& mode);
}  // namespace httptrace::analyzer
