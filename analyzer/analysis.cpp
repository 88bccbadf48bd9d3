#include "analyzer/analysis.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace httptrace::analyzer {

bool open_traces(const std::vector<std::string>& paths, TraceSet& traces) {
  // A process tree can leave more trace files than the default soft limit of descriptors; the
  // reader reopens what does not fit, but fewer reopenings is faster.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
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

void analyze(TraceSet& traces, Model& model, Reading how) {
  each_event(traces, how, [&](const Event& ev) { model.on_event(ev); });
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
  auto fail = [&](int err) {
    error_ = fmt::format("{}: cannot write: {}", path, std::strerror(err));
    return false;
  };
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail(errno);
    return open_replacing(path, nullptr);
  }
  if (S_ISLNK(st.st_mode)) {
    if (stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) return fail(errno);
      return open_through(path, O_CREAT | O_TRUNC);  // dangling: create the target, as `>` would
    }
    if (!S_ISREG(st.st_mode)) return S_ISDIR(st.st_mode) ? fail(EISDIR) : open_through(path, 0);
    char* real = realpath(path.c_str(), nullptr);
    if (!real) return fail(errno);
    std::string target = real;
    std::free(real);
    return open_replacing(target, &st);
  }
  if (S_ISDIR(st.st_mode)) return fail(EISDIR);
  if (!S_ISREG(st.st_mode)) return open_through(path, 0);
  return open_replacing(path, &st);
}

bool AtomicOutput::open_through(const std::string& path, int flags) {
  // No O_NONBLOCK: a FIFO waits for its reader, as the shell's `>` does.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | flags, 0600);
  if (fd < 0 || !(f_ = fdopen(fd, "w"))) {
    error_ = fmt::format("{}: cannot write: {}", path, std::strerror(errno));
    if (fd >= 0) close(fd);
    return false;
  }
  through_ = true;
  return true;
}

bool AtomicOutput::open_replacing(const std::string& target, const struct stat* existing) {
  target_ = target;
  tmp_ = target + ".tmp.XXXXXX";
  // mkostemp creates the file 0600, less the umask.
  int fd = mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd < 0) {
    error_ = fmt::format("{}: cannot write: {}", path_, std::strerror(errno));
    tmp_.clear();
    return false;
  }
  if (existing) {
    if (fchown(fd, existing->st_uid, existing->st_gid) != 0) {
      // Not ours to give away: the file becomes ours, with its old mode.
    }
    fchmod(fd, existing->st_mode & 07777);
  }
  f_ = fdopen(fd, "w");
  if (!f_) {
    error_ = fmt::format("{}: cannot write: {}", path_, std::strerror(errno));
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
  if (through_) {
    bool ok = std::fflush(f_) == 0 && !std::ferror(f_);
    int err = errno;
    ok = std::fclose(f_) == 0 && ok;
    if (!ok && err == 0) err = errno;
    f_ = nullptr;
    if (!ok) error_ = fmt::format("{}: write failed: {}", path_, std::strerror(err));
    return ok;
  }
  bool ok = std::fflush(f_) == 0 && !std::ferror(f_) && fsync(fileno(f_)) == 0;
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (ok && rename(tmp_.c_str(), target_.c_str()) != 0) {
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
    if (!through_) unlink(tmp_.c_str());
  }
  f_ = nullptr;
  tmp_.clear();
}

}  // namespace httptrace::analyzer
