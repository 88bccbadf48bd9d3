// `httptrace timeline [--color=auto|always|never] TRACE...`: a waterfall per connection, in the
// spirit of httpstat: one header line per connection, one line per phase (dns, connect, tls) and
// per request, with bars on one time axis shared by the whole trace so gaps and overlaps between
// connections are visible.
//
// Connections are printed in the order they started, but the model hands them over as they
// close, and the axis (hence every bar) is known only at the end of the trace. So each
// connection's text is rendered as it arrives, on a second thread (ConnectionPipe), with its
// bars kept as times; rows wait in a RowSpool (an external sort by start, bounded memory), and
// the bars are painted when the rows are drained in order at the end.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/report/duration_text.h"
#include "analyzer/report/printable.h"
#include "analyzer/report/row_spool.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

constexpr size_t kLabelWidth = 34;     // two spaces of indent, then the label
constexpr size_t kDurationWidth = 10;  // the duration, right-aligned, and a space
constexpr size_t kPrefixWidth = kLabelWidth + kDurationWidth;

// Bar colours; the legend is drawn from the same table so the two cannot disagree.
enum Color : uint8_t { kPlain, kDns, kConnect, kTls, kSend, kWait, kReceive, kFailed };
const char* const kColorCode[] = {nullptr, "36", "33", "35", "34", "2", "32", "31"};
constexpr char kSetupGlyph = '#', kSendGlyph = '-', kWaitGlyph = '.', kReceiveGlyph = '=';
constexpr const char* kBold = "1";
constexpr const char* kYellow = "33";
constexpr const char* kDim = "2";

struct Style {
  bool on;
  void wrap(std::string& out, std::string_view s, const char* code) const {
    if (!on || !code) {
      out.append(s);
      return;
    }
    out.append("\x1b[").append(code).append("m").append(s).append("\x1b[0m");
  }
  std::string wrap(std::string_view s, const char* code) const {
    std::string out;
    wrap(out, s, code);
    return out;
  }
};

uint64_t add_sat(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }
// Events of one connection can come from several threads; never let a reordering print a
// wrapped-around duration.
uint64_t span(uint64_t from, uint64_t to) { return to > from ? to - from : 0; }

uint64_t conn_end(const Connection& c) {
  uint64_t e = c.close_ns.value_or(c.start_ns);
  if (c.has_connect) e = std::max(e, add_sat(c.connect_start_ns, c.connect_duration_ns));
  if (c.tls) e = std::max(e, add_sat(c.tls->start_ns, c.tls->duration_ns));
  for (const auto& x : c.requests) e = std::max(e, x.end_ns);
  return e;
}
uint64_t conn_begin(const Connection& c) {
  uint64_t b = c.start_ns;
  if (c.dns) b = std::min(b, c.dns->start_ns);
  if (c.has_connect) b = std::min(b, c.connect_start_ns);
  return b;
}

// Pads (or cuts, with '~') printable text to exactly width columns.
void append_fit(std::string& out, std::string_view text, size_t width) {
  const size_t cols = columns(text);
  if (cols > width) {
    out += cut_to_columns(text, width);
    return;
  }
  out.append(text).append(width - cols, ' ');
}

void append_right(std::string& out, std::string_view text, size_t width) {
  const size_t cols = columns(text);
  if (cols < width) out.append(width - cols, ' ');
  out.append(text);
}

template <class T> void put(std::string& out, const T& v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
template <class T> T get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}

struct Segment {
  uint64_t from, to;
  char glyph;
  uint8_t color;
};

// Renders each connection as a row: text items ('T', finished lines) and bar items ('B': the
// line's label and duration, then its segments as times).
class RowBuilder : public ConnectionSink {
 public:
  RowBuilder(RowSpool& spool, const Style& style) : spool_(spool), st_(style) {}

  void on_connection(const Connection& c) override {
    row_.clear();
    begin_ = std::min(begin_, conn_begin(c));
    end_ = std::max(end_, conn_end(c));
    ++rows_;
    header(c);
    if (c.dns) setup_line("dns", c.dns->start_ns, c.dns->duration_ns, kDns, false);
    if (c.has_connect) {
      std::string label = c.failed() ? "connect " + errno_name(c.connect_error) : "connect";
      if (c.connect_pending) label += " (no result seen)";
      setup_line(label, c.connect_start_ns, c.connect_duration_ns, kConnect, c.failed());
    }
    if (c.tls) setup_line("tls", c.tls->start_ns, c.tls->duration_ns, kTls, c.tls->error != 0);
    if (c.protocol && *c.protocol == "h2") {
      line_.assign("  ");
      st_.wrap(line_,
               c.h2_streams ? fmt::format("HTTP/2: {} streams, {} answered, multiplexed (not split into exchanges)",
                                          c.h2_streams, c.h2_responses)
                            : std::string("HTTP/2: requests are multiplexed and not split out"),
               kDim);
      line_ += '\n';
      text(line_);
    }
    for (const auto& x : c.requests) request(x);
    text("\n");
    spool_.add({c.start_ns, c.pid, c.conn}, row_);
  }

  uint64_t rows() const { return rows_; }
  uint64_t begin() const { return begin_; }
  uint64_t end() const { return end_; }

 private:
  void text(std::string_view s) {
    row_ += 'T';
    put(row_, uint32_t(s.size()));
    row_.append(s);
  }
  void bar(std::string_view prefix, const Segment* segs, uint8_t n) {
    row_ += 'B';
    put(row_, uint32_t(prefix.size()));
    row_.append(prefix);
    put(row_, n);
    for (uint8_t i = 0; i < n; ++i) {
      put(row_, segs[i].from);
      put(row_, segs[i].to);
      row_ += segs[i].glyph;
      put(row_, segs[i].color);
    }
  }
  // "  label          duration "
  void prefix(std::string_view label, uint64_t dur) {
    line_.assign("  ");
    append_fit(line_, label, kLabelWidth - 2);
    num_.clear();
    append_duration(num_, dur);
    append_right(line_, num_, kDurationWidth - 1);
    line_ += ' ';
  }

  void header(const Connection& c) {
    line_.clear();
    line_.append("pid ");
    append_uint(line_, uint64_t(uint32_t(c.pid)));
    line_.append("  conn ").append(c.id).append("  ");
    const std::string addr = c.peer.family ? format_addr(c.peer, true) : "";
    if (c.host) {
      const std::string host = printable(*c.host);
      // A host that is the peer's own address (a URL with an IP) needs saying once.
      if (addr.empty()) line_ += host;
      else if (host == format_addr(c.peer, false)) line_ += addr;
      else line_.append(host).append(" (").append(addr).append(")");
    } else {
      line_ += addr.empty() ? "-" : addr;
    }
    const size_t n = c.requests.size();
    line_.append("  ");
    append_uint(line_, n);
    line_.append(n == 1 ? " request" : " requests");
    if (n > 1) {
      line_.append(", ");
      append_uint(line_, n - 1);
      line_.append(" reused");
    }
    if (c.tls) {
      const TlsInfo& t = *c.tls;
      line_.append("  TLS ").append(t.version.empty() ? std::string("?") : printable(t.version));
      line_.append(" via ").append(printable(t.library));
      if (!t.cipher.empty()) line_.append(" ").append(printable(t.cipher));
      if (!t.alpn.empty()) line_.append(" alpn=").append(printable(t.alpn));
      if (t.resumed) line_.append(" resumed");
      if (t.error)
        line_.append(" FAILED(").append(t.error_text.empty() ? std::to_string(t.error) : printable(t.error_text)).append(")");
    }
    if (c.protocol) line_.append("  ").append(printable(*c.protocol));
    if (c.inherited) line_.append("  inherited from ").append(c.parent_id);
    if (!c.close_ns) line_.append("  (still open at the end)");
    std::string out;
    st_.wrap(out, line_, kBold);
    if (c.pool_miss) {
      out += "  ";
      st_.wrap(out, "opened while another connection to it was idle", kYellow);
    }
    out += '\n';
    text(out);
  }

  void setup_line(std::string_view label, uint64_t start, uint64_t dur, Color color, bool failed) {
    prefix(label, dur);
    const Segment s{start, add_sat(start, dur), kSetupGlyph, uint8_t(failed ? kFailed : color)};
    bar(line_, &s, 1);
  }

  void request(const Exchange& x) {
    // "#3 GET /path 200": the target gives way, the status stays.
    label_.assign("#");
    append_uint(label_, x.index);
    label_ += ' ';
    if (!x.method.empty()) {
      status_.clear();
      if (x.status) {
        status_ += ' ';
        append_uint(status_, uint64_t(unsigned(x.status)));
      }
      append_printable(label_, x.method);
      label_ += ' ';
      target_.clear();
      append_printable(target_, x.target);
      const size_t room = kLabelWidth - 2, used = columns(label_) + columns(status_);
      if (used + 2 <= room) label_ += cut_to_columns(target_, room - used);
      else label_ = cut_to_columns(label_, room > columns(status_) ? room - columns(status_) : 0);
      label_ += status_;
    } else {
      label_ += "exchange";
    }
    prefix(label_, span(x.start_ns, x.end_ns));
    const uint64_t fb = x.first_byte_ns.value_or(x.end_ns);
    // Later phases first: each gets at least one column, and the short send should stay visible.
    Segment segs[3];
    uint8_t n = 0;
    if (x.first_byte_ns && x.end_ns > fb) segs[n++] = {fb, x.end_ns, kReceiveGlyph, kReceive};
    if (fb > x.sent_ns) segs[n++] = {x.sent_ns, fb, kWaitGlyph, kWait};
    segs[n++] = {x.start_ns, std::max(x.sent_ns, x.start_ns), kSendGlyph, kSend};
    bar(line_, segs, n);

    line_.assign("      ");
    if (x.reused) st_.wrap(line_, "reused", kColorCode[kReceive]);
    else line_ += "new";
    if (x.idle_ns) {
      line_ += " after ";
      append_duration(line_, *x.idle_ns);
      line_ += " idle";
    }
    line_ += "  send ";
    append_duration(line_, span(x.start_ns, x.sent_ns));
    if (x.first_byte_ns) {
      line_ += " + wait ";
      append_duration(line_, span(x.sent_ns, fb));
      // A response that came in one read has no measurable receive time: the read returned
      // everything at once. "0ns" would read as an instant (or a failure).
      if (x.end_ns > fb) {
        line_ += " + receive ";
        append_duration(line_, span(fb, x.end_ns));
      } else {
        line_ += " + receive in 1 read";
      }
    } else {
      line_ += ", no response";
    }
    line_ += "  ";
    append_uint(line_, x.bytes_sent);
    line_ += "B out, ";
    append_uint(line_, x.bytes_received);
    line_ += "B in\n";
    text(line_);
  }

  RowSpool& spool_;
  const Style& st_;
  std::string row_, line_, label_, target_, status_, num_;
  uint64_t rows_ = 0, begin_ = UINT64_MAX, end_ = 0;
};

// Maps trace time onto bar columns.
struct Axis {
  uint64_t begin = 0, span = 1;
  size_t width = 40;
  // Integer arithmetic clamped to the bar: a damaged or hostile timestamp far outside the axis
  // must land on an edge, never outside the row (a float-to-int cast of an out-of-range value
  // is undefined, and gave cells_[INT_MIN]).
  size_t col(uint64_t t) const {
    if (t <= begin) return 0;
    const uint64_t off = t - begin;
    if (off >= span) return width - 1;
    return size_t(static_cast<unsigned __int128>(off) * width / span);
  }
};

// A tick every 1, 2 or 5 x 10^k ns, at least 10 columns apart, labelled in the unit of the step.
struct Ticks {
  uint64_t step = 1, unit = 1;
  const char* suffix = "ns";
};
Ticks ticks_for(const Axis& axis) {
  const uint64_t want = static_cast<uint64_t>(static_cast<unsigned __int128>(axis.span) * 10 / axis.width) + 1;
  Ticks t;
  t.step = UINT64_MAX;
  for (uint64_t mag = 1; t.step == UINT64_MAX; mag *= 10) {
    for (uint64_t m : {1, 2, 5}) {
      if (mag * m >= want) {
        t.step = mag * m;
        break;
      }
    }
    if (mag > UINT64_MAX / 100) break;
  }
  if (t.step >= 1'000'000'000) t.unit = 1'000'000'000, t.suffix = "s";
  else if (t.step >= 1'000'000) t.unit = 1'000'000, t.suffix = "ms";
  else if (t.step >= 1'000) t.unit = 1'000, t.suffix = "µs";
  return t;
}

void append_axis(std::string& out, const Axis& axis) {
  const Ticks t = ticks_for(axis);
  std::string labels(kPrefixWidth, ' '), ruler(kPrefixWidth, ' ');
  labels.replace(kLabelWidth, kDurationWidth - 1, " duration");
  std::string cells(axis.width, '-');
  size_t cur = kPrefixWidth;  // columns of labels so far
  const size_t total = kPrefixWidth + 1 + axis.width + 1;
  for (uint64_t v = 0;; v += t.step) {
    const size_t c = axis.col(axis.begin + v);
    cells[c] = '+';
    std::string text = v == 0 ? std::string("0") : std::to_string(v / t.unit) + t.suffix;
    const size_t pos = kPrefixWidth + 1 + c;
    if (pos >= cur + (cur > kPrefixWidth ? 1 : 0) && pos + columns(text) <= total) {
      labels.append(pos - cur, ' ').append(text);
      cur = pos + columns(text);
    }
    if (v > axis.span - std::min(axis.span, t.step) || t.step == UINT64_MAX) break;
  }
  out.append(labels).append("\n");
  out.append(ruler).append("|").append(cells).append("|\n");
}

class Painter {
 public:
  Painter(const Axis& axis, const Style& style) : axis_(axis), st_(style), cells_(axis.width, ' '), colors_(axis.width) {}

  // Appends the rendered row to out.
  bool render(std::string_view row, std::string& out) {
    const char* p = row.data();
    const char* end = p + row.size();
    while (p < end) {
      const char kind = *p++;
      const uint32_t len = get<uint32_t>(p);
      out.append(p, len);
      p += len;
      if (kind == 'T') continue;
      if (kind != 'B') return false;
      std::fill(cells_.begin(), cells_.end(), ' ');
      std::fill(colors_.begin(), colors_.end(), kPlain);
      const uint8_t n = get<uint8_t>(p);
      for (uint8_t i = 0; i < n; ++i) {
        const uint64_t from = get<uint64_t>(p), to = std::max(from, get<uint64_t>(p));
        const char glyph = *p++;
        const uint8_t color = get<uint8_t>(p);
        const size_t a = axis_.col(from), b = std::min(axis_.width, std::max(axis_.col(to), a + 1));
        for (size_t k = a; k < b; ++k) {
          cells_[k] = glyph;
          colors_[k] = color;
        }
      }
      out += '|';
      for (size_t i = 0; i < axis_.width;) {
        size_t j = i;
        while (j < axis_.width && colors_[j] == colors_[i]) ++j;
        st_.wrap(out, std::string_view(cells_).substr(i, j - i), kColorCode[colors_[i]]);
        i = j;
      }
      out += "|\n";
    }
    return true;
  }

 private:
  const Axis& axis_;
  const Style& st_;
  std::string cells_;
  std::vector<uint8_t> colors_;
};

std::string legend(const Style& st) {
  std::string out = "legend: ";
  const struct {
    char glyph;
    Color color;
    const char* name;
  } items[] = {{kSetupGlyph, kDns, "dns"},       {kSetupGlyph, kConnect, "connect"}, {kSetupGlyph, kTls, "tls"},
               {kSetupGlyph, kFailed, "failed"}, {kSendGlyph, kSend, "send"},        {kWaitGlyph, kWait, "wait"},
               {kReceiveGlyph, kReceive, "receive"}};
  bool first = true;
  for (const auto& it : items) {
    if (!st.on && it.color == kFailed) continue;  // without colour a failure shows in its label
    if (!first) out += "  ";
    first = false;
    st.wrap(out, std::string(3, it.glyph), kColorCode[it.color]);
    out.append(" ").append(it.name);
  }
  return out + "\n";
}

}  // namespace

bool write_timeline(TraceSet& traces, std::FILE* out, const TimelineOptions& opt) {
  const TimeBase tb = time_base(traces);
  const Style st{opt.color};
  RowSpool spool(opt.spool_budget ? opt.spool_budget : RowSpool::kDefaultBudget);
  RowBuilder rows(spool, st);
  uint64_t n_conns = 0, n_requests = 0, n_reused = 0, dropped = 0;
  {
    ConnectionPipe pipe(rows);
    Model model(traces, pipe, /*keep_dns=*/false);
    analyze(traces, model);
    pipe.close();
    n_conns = model.connections();
    n_requests = model.requests();
    n_reused = model.reused_requests();
    dropped = model.dropped_events();
  }
  if (rows.rows() == 0) {
    fmt::print(out, "no connections in the trace\n");
    return std::ferror(out) == 0;
  }
  Axis axis;
  axis.width = size_t(std::max<int>(10, opt.width - int(kPrefixWidth) - 2));
  axis.begin = rows.begin();
  axis.span = std::max<uint64_t>(1, span(axis.begin, rows.end()));

  std::string text = fmt::format("total: {} connection{}, {} request{} ({} reused) over {}", n_conns,
                                 n_conns == 1 ? "" : "s", n_requests, n_requests == 1 ? "" : "s", n_reused,
                                 duration_text(axis.span));
  if (axis.begin > tb.t0_mono_ns) text += ", from " + duration_text(axis.begin - tb.t0_mono_ns) + " after the first event";
  text += "\n";
  if (dropped) text += fmt::format("warning: {} events were dropped while recording; rows may be incomplete\n", dropped);
  text += legend(st);
  text += "\n";
  append_axis(text, axis);
  text += "\n";

  Painter painter(axis, st);
  bool ok = true;
  const bool drained = spool.drain([&](std::string_view row) {
    ok = painter.render(row, text) && ok;
    if (text.size() >= (1u << 20)) {
      std::fwrite(text.data(), 1, text.size(), out);
      text.clear();
    }
  });
  std::fwrite(text.data(), 1, text.size(), out);
  if (!drained) fmt::print(stderr, "httptrace: timeline: {}\n", spool.error());
  return drained && ok && std::fflush(out) == 0 && std::ferror(out) == 0;
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
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("timeline: unknown option {}", printable(a)));
    else paths.push_back(a);
  }
  if (color != "auto" && color != "always" && color != "never")
    return usage_error(fmt::format("timeline: --color must be auto, always or never, not '{}'", printable(color)));
  if (paths.empty()) return usage_error("timeline: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  TimelineOptions opt;
  opt.color = want_color(color);
  opt.width = isatty(STDOUT_FILENO) ? terminal_width() : 100;
  return write_timeline(traces, stdout, opt) ? 0 : 1;
}

}  // namespace httptrace::analyzer
