// `httptrace run [-o DIR] [--stacks] [--export FORMAT -o FILE]... [--report FILE.html] [--] CMD
// [ARGS...]`: trace CMD and its children, then print the timeline and the reuse report after the
// program's own output, write the exports and the HTML report asked for, and exit with CMD's
// status. Like a shell: 127 when CMD is not found, 126 when it was found but could not be executed.
//
// `-o` names the trace directory, except right after `--export FORMAT`, where it names that
// export's file (and `--endpoint URL` there pushes an otlp export instead).
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/otlp.h"
#include "analyzer/report/html_report.h"
#include "analyzer/report/printable.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

volatile sig_atomic_t g_child = 0;

// A terminal's ^C already reaches the child (same process group); only signals sent to us alone
// (kill, a supervisor) are passed on, so the child never sees one SIGINT twice.
void forward_signal(int sig, siginfo_t* info, void*) {
  if (g_child > 0 && (info->si_code == SI_USER || info->si_code == SI_QUEUE) && info->si_pid != g_child)
    kill(g_child, sig);
}

std::string dirname_of(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

std::string find_preload_library() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  self[n] = 0;
  std::string dir = dirname_of(self);
  for (const std::string& cand : {dir + "/libhttptrace.so", dir + "/../lib/libhttptrace.so"}) {
    char real[PATH_MAX];
    if (access(cand.c_str(), R_OK) == 0 && realpath(cand.c_str(), real)) return real;
  }
  return "";
}

bool make_output_dir(std::string& dir) {
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = fmt::format("{}/httptrace-run.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(templ.data())) {
      fmt::print(stderr, "httptrace: cannot create {}: {}\n", printable(templ), std::strerror(errno));
      return false;
    }
    dir = templ;
  } else if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fmt::print(stderr, "httptrace: cannot create {}: {}\n", printable(dir), std::strerror(errno));
    return false;
  }
  char real[PATH_MAX];
  struct stat st;
  if (!realpath(dir.c_str(), real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fmt::print(stderr, "httptrace: {}: not a usable directory\n", printable(dir));
    return false;
  }
  dir = real;
  return true;
}

// A directory we made ourselves and nothing was written to: leave no litter in $TMPDIR. rmdir
// removes only an empty directory, so a trace that did arrive is never lost.
void remove_if_empty(const std::string& dir) { rmdir(dir.c_str()); }

// The status a shell gives a command it could not execute.
int exec_failure_status(int err) { return err == ENOENT || err == ENOTDIR ? 127 : 126; }

bool read_all(int fd, void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, static_cast<char*>(buf) + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += size_t(r);
  }
  return true;
}

struct ExportRequest {
  std::string format, out, endpoint;
};

// One export of the run's traces; false (with a message on stderr) when it failed.
bool write_export(TraceSet& traces, const std::string& dir, const ExportRequest& e) {
  if (e.format == "otlp") return export_otlp({dir}, e.out, e.endpoint) == 0;
  bool (*write)(TraceSet&, std::FILE*) = e.format == "json" ? write_json : e.format == "har" ? write_har : write_chrome;
  AtomicOutput out;
  if (!out.open(e.out)) {
    fmt::print(stderr, "httptrace: {}\n", out.error());
    return false;
  }
  traces.start();
  if (!write(traces, out.file())) {
    out.abandon();
    fmt::print(stderr, "httptrace: {}: write failed\n", printable(e.out));
    return false;
  }
  if (!out.commit()) {
    fmt::print(stderr, "httptrace: {}\n", out.error());
    return false;
  }
  return true;
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int cmd_run(const Args& args) {
  std::string dir, report_path;
  bool stacks = false;
  std::vector<ExportRequest> exports;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--export" || a.starts_with("--export=")) {
      ExportRequest e;
      if (a == "--export") {
        if (i + 1 >= args.size()) return usage_error("run: --export needs a FORMAT");
        e.format = args[++i];
      } else {
        e.format = a.substr(9);
      }
      if (e.format != "json" && e.format != "har" && e.format != "chrome" && e.format != "otlp")
        return usage_error(
            fmt::format("run: unknown export format '{}' (supported: json, har, chrome, otlp)", printable(e.format)));
      for (bool more = true; more && i + 1 < args.size();) {
        const std::string& b = args[i + 1];
        more = false;
        if ((b == "-o" || b == "--output" || b == "--endpoint") && i + 2 >= args.size())
          return usage_error(fmt::format("run: {} needs a value", b));
        if (b == "-o" || b == "--output") e.out = args[i + 2], i += 2, more = true;
        else if (b.starts_with("--output=")) e.out = b.substr(9), i += 1, more = true;
        else if (b == "--endpoint" && e.format == "otlp") e.endpoint = args[i + 2], i += 2, more = true;
        else if (b.starts_with("--endpoint=") && e.format == "otlp") e.endpoint = b.substr(11), i += 1, more = true;
      }
      // stdout carries the program's output and the reports: an export needs a place of its own.
      if (e.out.empty() && e.endpoint.empty())
        return usage_error(fmt::format("run: --export {} needs -o FILE right after it{}", e.format,
                                       e.format == "otlp" ? " (or --endpoint URL)" : ""));
      exports.push_back(std::move(e));
    } else if (a == "--report") {
      if (i + 1 >= args.size()) return usage_error("run: --report needs a file");
      report_path = args[++i];
    } else if (a.starts_with("--report=")) {
      report_path = a.substr(9);
    } else if (a == "-o" || a == "--output") {
      if (i + 1 >= args.size()) return usage_error("run: -o needs a directory");
      dir = args[++i];
    } else if (a.starts_with("--output=")) {
      dir = a.substr(9);
    } else if (a == "--stacks") {
      stacks = true;
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error(fmt::format("run: unknown option {}", printable(a)));
    } else {
      break;
    }
  }
  if (i >= args.size()) return usage_error("run: no command given");

  const std::string lib = find_preload_library();
  if (lib.empty()) {
    fmt::print(stderr, "httptrace: cannot find libhttptrace.so next to this program or in ../lib\n");
    return 1;
  }
  const bool chose_dir = !dir.empty();
  if (!make_output_dir(dir)) return 1;

  setenv("HTTPTRACE_OUTPUT", (dir + "/httptrace.%p.trace").c_str(), 1);
  const char* old = std::getenv("LD_PRELOAD");
  setenv("LD_PRELOAD", (old && *old ? lib + ":" + old : lib).c_str(), 1);
  if (stacks) setenv("HTTPTRACE_STACKS", "1", 1);

  std::vector<char*> argv;
  for (size_t k = i; k < args.size(); ++k) argv.push_back(const_cast<char*>(args[k].c_str()));
  argv.push_back(nullptr);

  // The child reports a failed exec through a close-on-exec pipe: EOF means the program is
  // running, so its own exit status 126 or 127 is never mistaken for ours.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    fmt::print(stderr, "httptrace: pipe: {}\n", std::strerror(errno));
    if (!chose_dir) remove_if_empty(dir);
    return 1;
  }
  std::fflush(nullptr);
  pid_t child = fork();
  if (child < 0) {
    fmt::print(stderr, "httptrace: fork: {}\n", std::strerror(errno));
    close(report[0]);
    close(report[1]);
    if (!chose_dir) remove_if_empty(dir);
    return 1;
  }
  if (child == 0) {
    close(report[0]);
    execvp(argv[0], argv.data());
    int err = errno;
    ssize_t ignored = write(report[1], &err, sizeof err);
    (void)ignored;
    _exit(exec_failure_status(err));
  }
  close(report[1]);
  int exec_errno = 0;
  const bool exec_failed = read_all(report[0], &exec_errno, sizeof exec_errno);
  close(report[0]);
  g_child = child;
  struct sigaction sa {};
  sa.sa_sigaction = forward_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int, old_term;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  const int rc = exit_status(status);
  if (exec_failed) {
    fmt::print(stderr, "httptrace: cannot run {}: {}\n", printable(argv[0]), std::strerror(exec_errno));
    if (!chose_dir) remove_if_empty(dir);
    return exec_failure_status(exec_errno);
  }
  TraceSet traces;
  OpenError err;
  traces.set_echo_warnings(true);
  if (!traces.add(dir, err)) {
    fmt::print(stderr,
               "httptrace: no trace was written{}: the program made no network calls through libc (or it is "
               "statically linked or setuid)\n",
               chose_dir ? " in " + printable(dir) : std::string());
    if (!chose_dir) remove_if_empty(dir);
    return rc;
  }
  // After the program's own output, so it is next to the report it belongs to.
  fmt::print(stderr, "httptrace: {} trace file{} in {}\n", traces.files().size(), traces.files().size() == 1 ? "" : "s",
             printable(dir));
  std::fflush(stderr);
  traces.start();
  TimelineOptions opt;
  opt.color = want_color("auto");
  opt.width = terminal_width();
  std::fflush(stdout);
  const bool wrote = write_timeline(traces, stdout, opt);
  traces.start();
  write_reuse(traces, stdout);
  if (std::fflush(stdout) != 0 || !wrote) fmt::print(stderr, "httptrace: writing the report failed\n");
  // Failures here are reported but do not replace CMD's status: that is what run returns.
  for (const ExportRequest& e : exports)
    if (write_export(traces, dir, e) && !e.out.empty())
      fmt::print(stderr, "httptrace: wrote the {} export to {}\n", e.format, printable(e.out));
  if (!report_path.empty()) {
    traces.start();
    if (write_report_file(traces, report_path))
      fmt::print(stderr, "httptrace: wrote the report to {}\n", printable(report_path));
  }
  return rc;
}

}  // namespace httptrace::analyzer
