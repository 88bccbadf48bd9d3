// What every report command does first: open the TRACE arguments and run the model over them.
#pragma once

#include <cstdint>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "analyzer/model/model.h"
#include "analyzer/progress.h"
#include "analyzer/read/read_ahead.h"
#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

// Adds every argument to traces; on failure prints "httptrace: FILE: why" and returns false.
bool open_traces(const std::vector<std::string>& paths, TraceSet& traces);

// Where the events are read. A command whose sink already works on a thread of its own (a
// ConnectionPipe) reads on the calling thread: on two cores a third thread only adds the cost of
// handing the events over (measured in bench/RESULTS.md).
enum class Reading { ahead, inline_ };

// Hands every event, in order, to f, reading ahead on a second thread (read_ahead.h) or not;
// shows a progress bar on a terminal stderr.
template <class F>
void each_event(TraceSet& traces, Reading how, F&& f) {
  Progress progress(traces.total_bytes(), STDERR_FILENO);
  if (how == Reading::inline_) {
    Event ev;
    for (uint32_t n = 1; traces.next(ev); ++n) {
      f(ev);
      if ((n & 0xFFFF) == 0) progress.update(traces.consumed_bytes());
    }
    return;
  }
  ReadAhead reader(traces);
  for (auto batch = reader.next_batch(); !batch.empty(); batch = reader.next_batch()) {
    for (const Event& ev : batch) f(ev);
    progress.update(reader.consumed_bytes());
  }
}

// Streams all events through a Model feeding sink, then finishes it.
void analyze(TraceSet& traces, Model& model, Reading how);

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
