#include "analyzer/analysis.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "analyzer/progress.h"

namespace httptrace::analyzer {

bool open_traces(const std::vector<std::string>& paths, TraceSet& traces) {
  traces.set_echo_warnings(true);
  for (const auto& p : paths) {
    OpenError err;
    if (!traces.add(p, err)) {
      fmt::print(stderr, "httptrace: {}\n", err.message);
      return false;
    }
  }
  traces.start();
  return true;
}

void analyze(TraceSet& traces, Model& model) {
  Progress progress(traces.total_bytes(), STDERR_FILENO);
  Event ev;
  uint32_t n = 0;
  while (traces.next(ev)) {
    model.on_event(ev);
    if ((++n & 0xFFFF) == 0) progress.update(traces.consumed_bytes());
  }
  model.finish();
}

TimeBase time_base(const TraceSet& traces) {
  TimeBase b;
  uint32_t file = 0;
  if (traces.earliest(b.t0_mono_ns, file)) {
    b.t0_unix_ns = traces.files()[file].to_unix_ns(b.t0_mono_ns);
  } else if (!traces.files().empty()) {
    b.t0_mono_ns = traces.files()[0].mono_anchor_ns;
    b.t0_unix_ns = traces.files()[0].real_anchor_ns;
  }
  return b;
}

std::string human_duration(uint64_t ns) {
  if (ns < 1000) return fmt::format("{}ns", ns);
  if (ns < 1000'000) return fmt::format("{:.1f}µs", ns / 1e3);
  if (ns < 1000'000'000) return fmt::format("{:.2f}ms", ns / 1e6);
  if (ns < 60'000'000'000) return fmt::format("{:.2f}s", ns / 1e9);
  uint64_t s = ns / 1000'000'000;
  return fmt::format("{}m{:02}s", s / 60, s % 60);
}

bool AtomicOutput::open(const std::string& path) {
  if (path.empty() || path == "-") {
    is_stdout_ = true;
    f_ = stdout;
    return true;
  }
  path_ = path;
  // A device, FIFO or socket (-o /dev/null, -o >(gzip)) is written in place: a temporary file
  // renamed over it would replace /dev/null with a regular file.
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    f_ = std::fopen(path.c_str(), "we");
    if (!f_) {
      error_ = fmt::format("{}: cannot write: {}", path, std::strerror(errno));
      return false;
    }
    direct_ = true;
    return true;
  }
  tmp_ = path + ".tmp.XXXXXX";
  int fd = mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd < 0) {
    error_ = fmt::format("{}: cannot write: {}", path, std::strerror(errno));
    tmp_.clear();
    return false;
  }
  fchmod(fd, 0644);
  f_ = fdopen(fd, "w");
  if (!f_) {
    error_ = fmt::format("{}: cannot write: {}", path, std::strerror(errno));
    close(fd);
    unlink(tmp_.c_str());
    tmp_.clear();
    return false;
  }
  return true;
}

bool AtomicOutput::commit() {
  if (is_stdout_) {
    bool ok = std::fflush(stdout) == 0 && !std::ferror(stdout);
    if (!ok) error_ = fmt::format("stdout: write failed: {}", std::strerror(errno));
    return ok;
  }
  if (!f_) return false;
  if (direct_) {
    bool ok = std::fflush(f_) == 0 && !std::ferror(f_);
    int err = errno;
    ok = std::fclose(f_) == 0 && ok;
    f_ = nullptr;
    if (!ok) error_ = fmt::format("{}: write failed: {}", path_, std::strerror(err));
    return ok;
  }
  bool ok = std::fflush(f_) == 0 && !std::ferror(f_) && fsync(fileno(f_)) == 0;
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (ok && rename(tmp_.c_str(), path_.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    error_ = fmt::format("{}: write failed: {}", path_, std::strerror(err));
    unlink(tmp_.c_str());
  }
  tmp_.clear();
  return ok;
}

void AtomicOutput::abandon() {
  if (f_ && !is_stdout_) {
    std::fclose(f_);
    if (!direct_) unlink(tmp_.c_str());
  }
  f_ = nullptr;
  tmp_.clear();
}

}  // namespace httptrace::analyzer
