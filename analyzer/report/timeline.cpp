// `httptrace timeline [--color=auto|always|never] TRACE...`: a waterfall per connection, in the
// spirit of httpstat: one header line per connection, one line per phase (dns, connect, tls) and
// per request, with bars on one time axis shared by the whole trace so gaps and overlaps between
// connections are visible.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

constexpr int kLabelWidth = 34;
constexpr int kDurationWidth = 10;

struct Style {
  bool on;
  std::string wrap(std::string_view s, const char* code) const {
    return on ? fmt::format("\x1b[{}m{}\x1b[0m", code, s) : std::string(s);
  }
};
constexpr const char* kBold = "1";
constexpr const char* kDim = "2";
constexpr const char* kRed = "31";
constexpr const char* kGreen = "32";
constexpr const char* kYellow = "33";
constexpr const char* kBlue = "34";
constexpr const char* kMagenta = "35";
constexpr const char* kCyan = "36";

class Collector : public ConnectionSink {
 public:
  void on_connection(const Connection& c) override { conns.push_back(c); }
  std::vector<Connection> conns;
};

// Maps trace time onto bar columns.
struct Axis {
  uint64_t begin = 0, span = 1;
  int width = 40;
  int col(uint64_t t) const {
    if (t <= begin) return 0;
    long double f = static_cast<long double>(t - begin) / span;
    return std::min(width - 1, static_cast<int>(f * width));
  }
};

// One bar line: segments painted left to right into a width-sized row of cells.
class Bar {
 public:
  Bar(const Axis& axis, const Style& style) : axis_(axis), style_(style), cells_(axis.width, ' '), codes_(axis.width) {}
  void paint(uint64_t from, uint64_t to, char glyph, const char* code) {
    int a = axis_.col(from), b = std::max(axis_.col(to), a + 1);
    for (int i = a; i < b && i < axis_.width; ++i) {
      cells_[i] = glyph;
      codes_[i] = code;
    }
  }
  std::string render() const {
    std::string out = "|";
    for (int i = 0; i < axis_.width;) {
      int j = i;
      while (j < axis_.width && codes_[j] == codes_[i]) ++j;
      std::string_view run(cells_.data() + i, j - i);
      out += codes_[i] ? style_.wrap(run, codes_[i]) : std::string(run);
      i = j;
    }
    return out + "|";
  }

 private:
  const Axis& axis_;
  const Style& style_;
  std::string cells_;
  std::vector<const char*> codes_;
};

// Events of one connection can come from several threads; never let a reordering print a
// wrapped-around duration.
uint64_t span(uint64_t from, uint64_t to) { return to > from ? to - from : 0; }

std::string fit(std::string s, size_t width) {
  if (s.size() > width) s = s.substr(0, width - 1) + "~";
  // Pad by bytes; labels are ASCII except for what the trace gave us (targets), which is rare.
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// Keeps the label printable: captured targets may hold anything.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out.push_back(c >= 0x20 && c < 0x7f ? char(c) : '?');
  return out;
}

uint64_t conn_end(const Connection& c) {
  uint64_t e = c.close_ns.value_or(c.start_ns);
  if (c.has_connect) e = std::max(e, c.connect_start_ns + c.connect_duration_ns);
  if (c.tls) e = std::max(e, c.tls->start_ns + c.tls->duration_ns);
  for (const auto& x : c.requests) e = std::max(e, x.end_ns);
  return e;
}
uint64_t conn_begin(const Connection& c) {
  uint64_t b = c.start_ns;
  if (c.dns) b = std::min(b, c.dns->start_ns);
  if (c.has_connect) b = std::min(b, c.connect_start_ns);
  return b;
}

void phase_line(std::FILE* out, const Axis& axis, const Style& st, const std::string& label, uint64_t start,
                uint64_t dur, const char* code, bool failed = false) {
  Bar bar(axis, st);
  bar.paint(start, start + dur, '=', failed ? kRed : code);
  fmt::print(out, "  {}{:>{}} {}\n", fit(label, kLabelWidth - 2), human_duration(dur), kDurationWidth - 1,
             bar.render());
}

}  // namespace

void write_timeline(TraceSet& traces, std::FILE* out, const TimelineOptions& opt) {
  const TimeBase tb = time_base(traces);
  Collector col;
  Model model(traces, col, /*keep_dns=*/false);
  analyze(traces, model);
  auto& conns = col.conns;
  std::sort(conns.begin(), conns.end(), [](const Connection& a, const Connection& b) {
    return std::tie(a.start_ns, a.pid, a.conn) < std::tie(b.start_ns, b.pid, b.conn);
  });
  const Style st{opt.color};
  if (conns.empty()) {
    fmt::print(out, "no connections in the trace\n");
    return;
  }
  Axis axis;
  axis.width = std::max(10, opt.width - kLabelWidth - kDurationWidth - 2);
  axis.begin = conn_begin(conns.front());
  uint64_t end = 0;
  for (const auto& c : conns) {
    axis.begin = std::min(axis.begin, conn_begin(c));
    end = std::max(end, conn_end(c));
  }
  axis.span = std::max<uint64_t>(1, span(axis.begin, end));
  fmt::print(out, "{} connections, {} requests ({} reused) over {}", model.connections(), model.requests(),
             model.reused_requests(), human_duration(axis.span));
  if (axis.begin > tb.t0_mono_ns) fmt::print(out, ", from {} after the first event", human_duration(axis.begin - tb.t0_mono_ns));
  fmt::print(out, "\n");
  fmt::print(out, "bars: {} dns/connect/tls, request {} send {} wait {} receive\n\n", st.wrap("=", kCyan),
             st.wrap("-", kBlue), st.wrap(".", kDim), st.wrap("=", kGreen));

  for (const auto& c : conns) {
    std::string head = fmt::format("pid {}  conn {}  {}", c.pid, c.id, c.host ? printable(*c.host) : "-");
    if (c.peer.family) head += fmt::format(" ({})", format_addr(c.peer, true));
    head += c.requests.size() > 1 ? fmt::format("  {} requests, {} reused", c.requests.size(), c.requests.size() - 1)
                                  : fmt::format("  {} request{}", c.requests.size(), c.requests.size() == 1 ? "" : "s");
    if (c.tls) {
      const TlsInfo& t = *c.tls;
      std::string tls = fmt::format("  TLS {} via {}", t.version.empty() ? "?" : t.version, t.library);
      if (!t.cipher.empty()) tls += " " + t.cipher;
      if (!t.alpn.empty()) tls += " alpn=" + printable(t.alpn);
      if (t.resumed) tls += " resumed";
      if (t.error) tls += fmt::format(" FAILED({})", t.error_text.empty() ? std::to_string(t.error) : t.error_text);
      head += tls;
    }
    if (c.protocol) head += "  " + *c.protocol;
    if (c.inherited) head += fmt::format("  inherited from {}", c.parent_id);
    if (c.pool_miss) head += "  " + st.wrap("opened while another connection to it was idle", kYellow);
    if (!c.close_ns) head += "  (still open at the end)";
    fmt::print(out, "{}\n", st.wrap(head, kBold));

    if (c.dns) phase_line(out, axis, st, "dns", c.dns->start_ns, c.dns->duration_ns, kCyan);
    if (c.has_connect) {
      std::string label = c.failed() ? "connect " + errno_name(c.connect_error) : "connect";
      if (c.connect_pending) label += " (no result seen)";
      phase_line(out, axis, st, label, c.connect_start_ns, c.connect_duration_ns, kYellow, c.failed());
    }
    if (c.tls) phase_line(out, axis, st, "tls", c.tls->start_ns, c.tls->duration_ns, kMagenta, c.tls->error != 0);
    if (c.protocol && *c.protocol == "h2")
      fmt::print(out, "  {}\n",
                 st.wrap(c.h2_streams ? fmt::format("HTTP/2: {} streams, {} answered, multiplexed (not split into exchanges)", c.h2_streams, c.h2_responses)
                                      : std::string("HTTP/2: requests are multiplexed and not split out"),
                         kDim));
    for (const auto& x : c.requests) {
      std::string label = fmt::format("#{} ", x.index);
      if (!x.method.empty()) label += printable(x.method) + " " + printable(x.target);
      else label += "exchange";
      if (x.status) label += fmt::format(" {}", x.status);
      Bar bar(axis, st);
      const uint64_t fb = x.first_byte_ns.value_or(x.end_ns);
      // Later phases first: each gets at least one column, and the short send should stay visible.
      if (x.first_byte_ns && x.end_ns > fb) bar.paint(fb, x.end_ns, '=', kGreen);
      if (fb > x.sent_ns) bar.paint(x.sent_ns, fb, '.', kDim);
      bar.paint(x.start_ns, x.sent_ns, '-', kBlue);
      fmt::print(out, "  {}{:>{}} {}\n", fit(label, kLabelWidth - 2), human_duration(span(x.start_ns, x.end_ns)),
                 kDurationWidth - 1, bar.render());
      std::string how = x.reused ? st.wrap("reused", kGreen) : std::string("new");
      if (x.idle_ns) how += fmt::format(" after {} idle", human_duration(*x.idle_ns));
      std::string phases = fmt::format("send {}  wait {}  receive {}", human_duration(span(x.start_ns, x.sent_ns)),
                                       x.first_byte_ns ? human_duration(span(x.sent_ns, fb)) : "-",
                                       x.first_byte_ns ? human_duration(span(fb, x.end_ns)) : "-");
      fmt::print(out, "      {}  {}  {}B out, {}B in\n", how, phases, x.bytes_sent, x.bytes_received);
    }
    fmt::print(out, "\n");
  }
}

int terminal_width() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
  return 100;
}

bool want_color(const std::string& mode) {
  const char* no = std::getenv("NO_COLOR");
  if (no && *no) return false;
  if (mode == "always") return true;
  if (mode == "never") return false;
  return isatty(STDOUT_FILENO);
}

int cmd_timeline(const Args& args) {
  std::string color = "auto";
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.starts_with("--color=")) color = a.substr(8);
    else if (a == "--color" && i + 1 < args.size()) color = args[++i];
    else if (a == "--") paths.insert(paths.end(), args.begin() + i + 1, args.end()), i = args.size();
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("timeline: unknown option {}", a));
    else paths.push_back(a);
  }
  if (color != "auto" && color != "always" && color != "never")
    return usage_error(fmt::format("timeline: --color must be auto, always or never, not '{}'", color));
  if (paths.empty()) return usage_error("timeline: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  TimelineOptions opt;
  opt.color = want_color(color);
  opt.width = isatty(STDOUT_FILENO) ? terminal_width() : 100;
  write_timeline(traces, stdout, opt);
  return 0;
}

}  // namespace httptrace::analyzer
