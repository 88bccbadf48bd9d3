// A progress bar for analyses that take a while: drawn on fd only when it is a terminal, only
// once the run has lasted `delay_ns`, and at most every 100 ms; erased when done. Redirected
// stderr (scripts, CI logs) never sees it.
#pragma once

#include <cstdint>

namespace httptrace::analyzer {

class Progress {
 public:
  static constexpr uint64_t kDefaultDelayNs = 500'000'000;
  Progress(uint64_t total, int fd, uint64_t delay_ns = kDefaultDelayNs);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(uint64_t done);
  bool enabled() const { return enabled_; }
  bool shown() const { return shown_; }

 private:
  uint64_t total_, delay_ns_, start_ = 0, last_ = 0;
  int fd_;
  bool enabled_, shown_ = false;
};

}  // namespace httptrace::analyzer
