#include "analyzer/progress.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

namespace httptrace::analyzer {

namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void write_all(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;  // a progress bar is not worth an error
    off += size_t(n);
  }
}

}  // namespace

Progress::Progress(uint64_t total, int fd, uint64_t delay_ns)
    : total_(total), delay_ns_(delay_ns), fd_(fd), enabled_(total > 0 && isatty(fd)) {
  start_ = now_ns();
}

void Progress::update(uint64_t done) {
  if (!enabled_) return;
  const uint64_t t = now_ns();
  if (t - start_ < delay_ns_ || (shown_ && t - last_ < 100'000'000)) return;
  last_ = t;
  shown_ = true;
  done = std::min(done, total_);
  constexpr int kWidth = 30;
  const int pct = static_cast<int>(done * 100 / total_);
  const int fill = static_cast<int>(done * kWidth / total_);
  write_all(fd_, fmt::format("\r[{:#<{}}{:<{}}] {:3}% {:.1f}/{:.1f} MB", "", fill, "", kWidth - fill, pct,
                             done / 1e6, total_ / 1e6));
}

Progress::~Progress() {
  if (shown_) write_all(fd_, fmt::format("\r{:<70}\r", ""));
}

}  // namespace httptrace::analyzer
