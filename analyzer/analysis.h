// What every report command does first: open the TRACE arguments and run the model over them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "analyzer/model/model.h"
#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

// Adds every argument to traces; on failure prints "httptrace: FILE: why" and returns false.
bool open_traces(const std::vector<std::string>& paths, TraceSet& traces);

// Streams all events through a Model feeding sink; shows a progress bar on a terminal stderr.
// Returns the model (for dns, processes and summary counts).
void analyze(TraceSet& traces, Model& model);

// The time origin of a report: the earliest event (mono) and its wall-clock time.
struct TimeBase {
  uint64_t t0_mono_ns = 0;
  uint64_t t0_unix_ns = 0;
  int64_t rel(uint64_t mono_ns) const { return static_cast<int64_t>(mono_ns - t0_mono_ns); }
};
TimeBase time_base(const TraceSet& traces);  // call after traces.start()

// "850ns", "12.3µs", "4.56ms", "1.23s", "2m03s".
std::string human_duration(uint64_t ns);

// Write-to-temp-then-rename, so a failed export leaves nothing partial behind (a path that is a
// device or FIFO is written in place).
class AtomicOutput {
 public:
  // path "" or "-" means stdout. False (with a message in error()) when the temp can't be made.
  bool open(const std::string& path);
  std::FILE* file() const { return f_; }
  // Flushes, fsyncs and renames into place; on failure removes the temp.
  bool commit();
  void abandon();
  const std::string& error() const { return error_; }
  ~AtomicOutput() { abandon(); }

 private:
  std::string path_, tmp_, error_;
  std::FILE* f_ = nullptr;
  bool is_stdout_ = false;
  bool direct_ = false;  // path is not a regular file: written in place
};

}  // namespace httptrace::analyzer
