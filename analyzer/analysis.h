// What every report command does first: open the TRACE arguments and run the model over them.
#pragma once

#include <cstdint>
#include <sys/stat.h>

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

// Where `-o PATH` output goes, without harming what PATH is:
// - a regular file (or a path that does not exist yet) is replaced atomically: written to a
//   temporary file beside it, fsynced and renamed over it, so a failed export leaves nothing
//   partial behind. A file that existed keeps its permission bits (and owner, when we may set
//   it): its owner chose who may read it. A new file is created 0600 less the umask, because
//   what we write is the trace's data and traces are 0600 (SPEC §3).
// - a symlink is followed: a regular target is replaced atomically in its own directory (the
//   link stays a link); any other target is written through.
// - anything else (a FIFO, a character device such as /dev/null or a terminal, /dev/stdout's
//   pipe) is written through, opened as it is: never replaced by a regular file.
// - a dangling symlink: its target is created by writing through (not atomic).
class AtomicOutput {
 public:
  // path "" or "-" means stdout. False (with a message in error()) when PATH can't be written.
  bool open(const std::string& path);
  std::FILE* file() const { return f_; }
  // Flushes; for a replaced file fsyncs and renames into place (on failure removes the temp).
  bool commit();
  void abandon();
  const std::string& error() const { return error_; }
  ~AtomicOutput() { abandon(); }

 private:
  bool open_through(const std::string& path, int flags);
  bool open_replacing(const std::string& target, const struct stat* existing);

  std::string path_, target_, tmp_, error_;
  std::FILE* f_ = nullptr;
  bool is_stdout_ = false;
  bool through_ = false;  // written in place: nothing to rename or remove
};

}  // namespace httptrace::analyzer
