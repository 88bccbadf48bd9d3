// `httptrace timeline [--color=auto|always|never] TRACE...`: a waterfall per connection, in the
// spirit of httpstat: one header line per connection, one line per phase (dns, connect, tls) and
// per request, with bars on one time axis shared by the whole trace so gaps and overlaps between
// connections are visible.
//
// Streaming, in memory bounded by the connections open at once: a second reader of the same files
// finds where the trace ends (for the axis; no model) on its own thread while the model runs;
// the first row waits for it. The model's connections come out in close order; StartOrder (on
// the model's thread) puts them back in start order, holding only those that could still be
// preceded, and a ConnectionPipe hands them to a second thread that renders and writes each one. If ordering must give up (one connection open for the whole
// trace holds back everything), the rest is sorted through a RowSpool (an external sort on disk).
// Totals are known at the end, so they close the report.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/report/duration_text.h"
#include "analyzer/report/printable.h"
#include "analyzer/report/row_spool.h"
#include "analyzer/report/start_order.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

// The most HTTP/2 streams open at one moment (a stream is open from start_ns to end_ns).
size_t max_concurrent(const std::vector<Exchange>& xs) {
  std::vector<std::pair<uint64_t, int>> edges;
  edges.reserve(xs.size() * 2);
  for (const Exchange& x : xs) edges.emplace_back(x.start_ns, 1), edges.emplace_back(x.end_ns, -1);
  std::sort(edges.begin(), edges.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;  // an end before a start
  });
  size_t open = 0, most = 0;
  for (const auto& [t, d] : edges) {
    open = d > 0 ? open + 1 : (open > 0 ? open - 1 : 0);
    most = std::max(most, open);
  }
  return most;
}

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
};

uint64_t add_sat(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }
// Events of one connection can come from several threads; never let a reordering print a
// wrapped-around duration.
uint64_t span(uint64_t from, uint64_t to) { return to > from ? to - from : 0; }

struct Segment {
  uint64_t from, to;
  char glyph;
  uint8_t color;
};

// One output line built in place: a request's two lines are most of a large timeline, and
// appending them piece by piece to a std::string was a third of the rendering thread. Numbers
// are formatted straight into the buffer; kSlack bytes past kCap leave room for one number or
// duration, so those need no bounds check of their own beyond n_ <= kCap.
class Line {
 public:
  void clear() { n_ = 0; }
  void put(std::string_view s) {
    const size_t k = std::min(s.size(), kCap - n_);
    std::memcpy(buf_ + n_, s.data(), k);
    n_ += k;
  }
  // A literal: its length is a constant, so the copy is inlined.
  template <size_t N> void lit(const char (&s)[N]) {
    if (n_ + N - 1 > kCap) return put(std::string_view(s, N - 1));
    std::memcpy(buf_ + n_, s, N - 1);
    n_ += N - 1;
  }
  void put(char c) {
    if (n_ < kCap) buf_[n_++] = c;
  }
  void spaces(size_t k) {
    k = std::min(k, kCap - n_);
    std::memset(buf_ + n_, ' ', k);
    n_ += k;
  }
  void put_uint(uint64_t v) { n_ = std::min(kCap, size_t(std::to_chars(buf_ + n_, buf_ + n_ + 24, v).ptr - buf_)); }
  void put_duration(uint64_t ns) { n_ = std::min(kCap, n_ + format_duration(buf_ + n_, ns)); }
  // width <= 16: the padded text still fits the slack.
  void put_duration_right(uint64_t ns, size_t width) {
    char* at = buf_ + n_;
    size_t len = format_duration(at, ns);
    const size_t cols = columns(std::string_view(at, len));
    if (cols < width) {
      const size_t pad = std::min<size_t>(width - cols, 16);
      std::memmove(at + pad, at, len);
      std::memset(at, ' ', pad);
      len += pad;
    }
    n_ = std::min(kCap, n_ + len);
  }
  // Printable text padded or cut (with '~') to exactly width columns.
  void put_fit(std::string_view text, size_t width) {
    const size_t cols = columns(text);
    if (cols <= width) {
      put(text);
      spaces(width - cols);
    } else {
      put(cut_to_columns(text, width));
    }
  }
  void wrap(const Style& st, std::string_view s, const char* code) {
    if (!st.on || !code) return put(s);
    lit("\x1b[");
    put(std::string_view(code));
    put('m');
    put(s);
    lit("\x1b[0m");
  }
  std::string_view view() const { return {buf_, n_}; }

 private:
  static constexpr size_t kCap = 1024, kSlack = 32;
  static_assert(kSlack >= 24 && kSlack >= kMaxDurationText + 16);
  char buf_[kCap + kSlack];
  size_t n_ = 0;
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
    if (off <= UINT64_MAX / width) return size_t(off * width / span);  // no 128-bit division
    return size_t(static_cast<unsigned __int128>(off) * width / span);
  }
};

// Paints segments, in order (later ones over earlier ones, each at least one column), into
// "|...|\n".
class Painter {
 public:
  Painter(const Axis& axis, const Style& style) : axis_(axis), st_(style), cells_(axis.width, ' '), colors_(axis.width) {}

  void paint(const Segment* segs, size_t n, std::string& out) {
    std::fill(cells_.begin(), cells_.end(), ' ');
    std::fill(colors_.begin(), colors_.end(), kPlain);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t from = segs[i].from, to = std::max(from, segs[i].to);
      const size_t a = axis_.col(from), b = std::min(axis_.width, std::max(axis_.col(to), a + 1));
      std::fill(cells_.begin() + a, cells_.begin() + b, segs[i].glyph);
      std::fill(colors_.begin() + a, colors_.begin() + b, segs[i].color);
    }
    out += '|';
    if (!st_.on) {
      out += cells_;
    } else {
      for (size_t i = 0; i < axis_.width;) {
        size_t j = i;
        while (j < axis_.width && colors_[j] == colors_[i]) ++j;
        st_.wrap(out, std::string_view(cells_).substr(i, j - i), kColorCode[colors_[i]]);
        i = j;
      }
    }
    out += "|\n";
  }

 private:
  const Axis& axis_;
  const Style& st_;
  std::string cells_;
  std::vector<uint8_t> colors_;
};

// Renders each connection as a block of lines; on the pipe's thread.
class RowBuilder {
 public:
  RowBuilder(const Axis& axis, const Style& style) : st_(style), painter_(axis, style) {}

  // Appends the rendered block to out.
  void render(const Connection& c, std::string& out) {
    row_ = &out;
    header(c);
    if (c.dns) setup_line("dns", c.dns->start_ns, c.dns->duration_ns, kDns, false);
    // The connects that lost before (or beside) this one, where they happened in its setup.
    for (const ConnectAttempt& a : c.attempts) {
      std::string label = "lost " + (a.peer.family ? format_addr(a.peer, true) : std::string("?"));
      label += a.error ? " " + errno_name(a.error) : std::string(" abandoned");
      setup_line(label, a.start_ns, a.duration_ns, kConnect, true);
    }
    if (c.has_connect) {
      std::string label = c.failed() ? "connect " + errno_name(c.connect_error) : "connect";
      if (c.connect_pending) label += " (no result seen)";
      setup_line(label, c.connect_start_ns, c.connect_duration_ns, kConnect, c.failed());
    }
    if (c.tunnel) {
      // Through an HTTP proxy: CONNECT's round trip(s), and the proxy's answer when it refused.
      const Tunnel& t = *c.tunnel;
      const bool up = t.status >= 200 && t.status < 300;
      std::string label = "tunnel " + printable(t.target);
      if (!up) label += t.status ? " " + std::to_string(t.status) : std::string(" (no answer)");
      setup_line(label, t.start_ns, t.duration_ns, kConnect, !up);
    }
    if (c.tls) setup_line("tls", c.tls->start_ns, c.tls->duration_ns, kTls, c.tls->error != 0);
    if (c.protocol && *c.protocol == "h2") {
      head_.assign("  ");
      st_.wrap(head_,
               !c.requests.empty() ? fmt::format("HTTP/2: {} streams, up to {} at once", c.requests.size(),
                                                 max_concurrent(c.requests))
               : c.requests_unseen() ? std::string("HTTP/2 inside TLS seen only on the wire: its requests cannot be seen")
               : c.h2_streams ? fmt::format("HTTP/2: {} streams, {} answered, multiplexed (not split into exchanges)",
                                          c.h2_streams, c.h2_responses)
                            : std::string("HTTP/2: requests are multiplexed and not split out"),
               kDim);
      head_ += '\n';
      text(head_);
    }
    inbound_ = c.direction == ConnDirection::kInbound;
    for (const auto& x : c.requests) {
      request(x);
      if (inbound_ && children_) children_(c, x, out);
    }
    text("\n");
  }

  // Called after each inbound request's lines, to put the calls made for it under it.
  using ChildrenHook = std::function<void(const Connection&, const Exchange&, std::string&)>;
  void on_children(ChildrenHook f) { children_ = std::move(f); }

  // The line of an outbound request made for an inbound one, indented under it: its bar on the
  // shared axis, then where it went and what it was there.
  void child(const Connection& c, const Exchange& x, std::string& out) {
    row_ = &out;
    label_.assign("-> ");
    if (!x.method.empty()) {
      append_printable(label_, x.method);
      label_ += ' ';
      append_printable(label_, x.target);
      if (x.status) label_ += ' ', append_uint(label_, uint64_t(unsigned(x.status)));
    } else {
      label_ += "exchange";
    }
    prefix(label_, span(x.start_ns, x.end_ns), 4);
    request_bar(x);
    line_.clear();
    line_.spaces(8);
    line_.lit("call ");
    line_.put(c.id);
    line_.put('#');
    line_.put_uint(x.index);
    line_.lit(" to ");
    // A host that is the peer's own address (a URL with an IP) is said once.
    head_.clear();
    if (c.host && (!c.peer.family || *c.host != format_addr(c.peer, false))) head_ = printable(*c.host), head_ += ' ';
    if (c.peer.family) head_ += format_addr(c.peer, true);
    line_.put(head_);
    if (!x.linked.empty()) {
      line_.lit("  served as ");
      line_.put(x.linked);
    }
    line_.put('\n');
    row_->append(line_.view());
  }

 private:
  void text(std::string_view s) { row_->append(s); }
  // line_ holds the prefix ("  label   duration "); paints the bar after it.
  void bar(const Segment* segs, size_t n) {
    row_->append(line_.view());
    painter_.paint(segs, n, *row_);
  }
  void prefix(std::string_view label, uint64_t dur, size_t indent = 2) {
    line_.clear();
    line_.spaces(indent);
    line_.put_fit(label, kLabelWidth - indent);
    line_.put_duration_right(dur, kDurationWidth - 1);
    line_.put(' ');
  }

  // A request's send / wait / receive bar after the prefix in line_.
  void request_bar(const Exchange& x) {
    const uint64_t fb = x.first_byte_ns.value_or(x.end_ns);
    // Later phases first: each gets at least one column, and the short send should stay visible.
    Segment segs[3];
    uint8_t n = 0;
    if (x.first_byte_ns && x.end_ns > fb) segs[n++] = {fb, x.end_ns, kReceiveGlyph, kReceive};
    if (fb > x.sent_ns) segs[n++] = {x.sent_ns, fb, kWaitGlyph, kWait};
    segs[n++] = {x.start_ns, std::max(x.sent_ns, x.start_ns), kSendGlyph, kSend};
    bar(segs, n);
  }

  void header(const Connection& c) {
    head_.clear();
    head_.append("pid ");
    append_uint(head_, uint64_t(uint32_t(c.pid)));
    head_.append("  conn ").append(c.id).append("  ");
    const std::string addr = c.peer.family ? format_addr(c.peer, true) : "";
    if (c.tunnel && c.direction == ConnDirection::kOutbound) {
      head_.append(printable(c.tunnel->target)).append(" via proxy ").append(addr.empty() ? "-" : addr);
    } else if (c.host) {
      const std::string host = printable(*c.host);
      // A host that is the peer's own address (a URL with an IP) needs saying once.
      if (addr.empty()) head_ += host;
      else if (host == format_addr(c.peer, false)) head_ += addr;
      else head_.append(host).append(" (").append(addr).append(")");
    } else {
      head_ += addr.empty() ? "-" : addr;
    }
    const size_t n = c.requests.size();
    head_.append("  ");
    if (c.requests_unseen()) {
      head_.append("requests unseen");
    } else {
      append_uint(head_, n);
      head_.append(n == 1 ? " request" : " requests");
    }
    if (n > 1) {
      head_.append(", ");
      append_uint(head_, n - 1);
      head_.append(" reused");
    }
    if (c.tls) {
      const TlsInfo& t = *c.tls;
      head_.append("  TLS ").append(t.version.empty() ? std::string("?") : printable(t.version));
      head_.append(" via ").append(printable(t.library));
      if (!t.cipher.empty()) head_.append(" ").append(printable(t.cipher));
      if (!t.alpn.empty()) head_.append(" alpn=").append(printable(t.alpn));
      if (t.resumed) head_.append(" resumed");
      if (t.error)
        head_.append(" FAILED(").append(t.error_text.empty() ? std::to_string(t.error) : printable(t.error_text)).append(")");
    }
    if (c.protocol) head_.append("  ").append(printable(*c.protocol));
    if (c.direction == ConnDirection::kInbound) head_.append("  inbound (accepted)");
    if (c.inherited) head_.append("  inherited from ").append(c.parent_id);
    if (!c.close_ns) head_.append("  (still open at the end)");
    if (c.events_lost) head_.append("  (events lost while open: may be incomplete)");
    std::string out;
    st_.wrap(out, head_, kBold);
    // Why it was opened, when that says something a reader can act on (first and busy do not).
    if (const std::string why = reason_note(c); !why.empty()) {
      out += "  ";
      st_.wrap(out, why, kYellow);
    }
    out += '\n';
    text(out);
  }

  static std::string reason_note(const Connection& c) {
    const std::string was = c.replaced.empty() ? std::string() : " " + c.replaced;
    const std::string idle = c.replaced_idle_ns ? " idle " + duration_text(*c.replaced_idle_ns) : std::string();
    switch (c.new_reason) {
      case NewReason::kPoolMiss: return "pool miss: opened while" + (was.empty() ? " another connection" : was) + " to it was" + (idle.empty() ? " idle" : idle);
      case NewReason::kResetOnReuse: return "reset on reuse: reconnected after" + was + " failed a reuse" + (idle.empty() ? "" : " (" + idle.substr(1) + ")");
      case NewReason::kClosedByPeer: return "closed by peer: the server had closed" + was;
      case NewReason::kClosedByClient: return "closed by client: replaces" + was;
      default: return "";
    }
  }

  void setup_line(std::string_view label, uint64_t start, uint64_t dur, Color color, bool failed) {
    prefix(label, dur);
    const Segment s{start, add_sat(start, dur), kSetupGlyph, uint8_t(failed ? kFailed : color)};
    bar(&s, 1);
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
      if (used + 2 <= room && columns(target_) <= room - used) label_ += target_;
      else if (used + 2 <= room) label_ += cut_to_columns(target_, room - used);
      else label_ = cut_to_columns(label_, room > columns(status_) ? room - columns(status_) : 0);
      label_ += status_;
    } else {
      label_ += "exchange";
    }
    prefix(label_, span(x.start_ns, x.end_ns));
    request_bar(x);
    const uint64_t fb = x.first_byte_ns.value_or(x.end_ns);

    line_.clear();
    line_.spaces(6);
    if (x.reused) line_.wrap(st_, "reused", kColorCode[kReceive]);
    else line_.lit("new");
    if (x.idle_ns) {
      line_.lit(" after ");
      line_.put_duration(*x.idle_ns);
      line_.lit(" idle");
    }
    // A server's exchange: it read the request, worked on it, wrote the response.
    if (inbound_) line_.lit("  read ");
    else line_.lit("  send ");
    line_.put_duration(span(x.start_ns, x.sent_ns));
    if (x.first_byte_ns) {
      if (inbound_) line_.lit(" + work ");
      else line_.lit(" + wait ");
      line_.put_duration(span(x.sent_ns, fb));
      if (x.children_ns && *x.children_ns) {
        line_.lit(" (");
        line_.put_duration(*x.children_ns);
        line_.lit(" in calls it made)");
      }
      // A response that came in one read has no measurable receive time: the read returned
      // everything at once. "0ns" would read as an instant (or a failure).
      if (x.end_ns > fb) {
        if (inbound_) line_.lit(" + write ");
        else line_.lit(" + receive ");
        line_.put_duration(span(fb, x.end_ns));
      } else {
        if (inbound_) line_.lit(" + write in 1 call");
        else line_.lit(" + receive in 1 read");
      }
    } else {
      line_.lit(", no response");
    }
    line_.lit("  ");
    line_.put_uint(x.bytes_sent);
    line_.lit("B out, ");
    line_.put_uint(x.bytes_received);
    line_.lit("B in");
    if (!x.parent.empty()) {
      line_.lit("  for ");
      line_.put(x.parent);
    }
    if (!x.linked.empty()) {
      if (inbound_) line_.lit("  from ");
      else line_.lit("  served as ");
      line_.put(x.linked);
    }
    line_.put('\n');
    row_->append(line_.view());
  }

  const Style& st_;
  Painter painter_;
  std::string* row_ = nullptr;
  Line line_;
  std::string head_, label_, target_, status_;
  bool inbound_ = false;
  ChildrenHook children_;
};

// A tick every 1, 2 or 5 x 10^k ns, at least 10 columns apart, labelled in the unit of the step.
struct Ticks {
  uint64_t step = 1, unit = 1;
  const char* suffix = "ns";
};
Ticks ticks_for(const Axis& axis) {
  // In 128 bits and clamped: a span near 2^64 on a narrow axis wrapped this to 0, a step of 1 ns
  // and 2^64 ticks (the fuzzer's hang).
  const unsigned __int128 wide = static_cast<unsigned __int128>(axis.span) * 10 / axis.width + 1;
  const uint64_t want = wide > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(wide);
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
  for (uint64_t v = 0, n = 0; n <= axis.width; v += t.step, ++n) {  // at most a tick per column
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

// The time the trace's network activity covers: every event tied to a connection, and the
// lookups. A superset of every connection's phases and exchanges, so no bar needs clamping
// on a sound trace. Needs no order: a scan, not the merge (start() the stream again after it).
bool trace_extent(TraceSet& traces, uint64_t& first, uint64_t& last) {
  using K = tf::EventKind;
  uint64_t lo = UINT64_MAX, hi = 0;
  traces.scan([&](const Event& ev) {
    const K kind = ev.kind();
    if (ev.h->conn == 0 && kind != K::kDns) return;
    uint64_t dur = 0;
    switch (kind) {
      case K::kDns: dur = ev.as<tf::DnsEvent>().dur_ns; break;
      case K::kConnect: dur = ev.as<tf::ConnectEvent>().dur_ns; break;
      case K::kData: dur = ev.as<tf::DataEvent>().dur_ns; break;
      case K::kTlsHandshake: dur = ev.as<tf::TlsHandshakeEvent>().dur_ns; break;
      default: break;
    }
    lo = std::min(lo, ev.h->ts_ns);
    hi = std::max(hi, add_sat(ev.h->ts_ns, dur));
  });
  first = lo;
  last = hi;
  return first <= last;
}

// The extent, found on its own thread from a second reader of the same files while the model
// reads the first (the pass cost as much as reading the trace once more, before the first row),
// or, if the files cannot be opened again, by a first pass on traces itself.
class Extent {
 public:
  explicit Extent(TraceSet& traces) {
    auto again = std::make_unique<TraceSet>();
    again->set_echo_warnings(false);  // the main reader says what is wrong with a file
    for (const TraceFile& f : traces.files()) {
      OpenError err;
      if (!again->add(f.path, err)) {
        again.reset();
        break;
      }
    }
    if (!again || again->files().size() != traces.files().size()) {
      trace_extent(traces, first_, last_);
      traces.start();
      return;
    }
    again_ = std::move(again);
    thread_ = std::thread([this] { trace_extent(*again_, first_, last_); });
  }
  ~Extent() { wait(); }
  // Blocks until it is known.
  void wait() {
    if (thread_.joinable()) thread_.join();
  }
  uint64_t first() {
    wait();
    return first_;
  }
  uint64_t last() {
    wait();
    return last_;
  }

 private:
  std::unique_ptr<TraceSet> again_;
  std::thread thread_;
  uint64_t first_ = 0, last_ = 0;
};

uint64_t conn_begin(const Connection& c) {
  uint64_t b = c.start_ns;
  if (c.dns) b = std::min(b, c.dns->start_ns);
  if (c.has_connect) b = std::min(b, c.connect_start_ns);
  return b;
}

// The pipe thread's end: renders each connection and writes it out, or, from the point where
// StartOrder gave up ordering, sorts the rest through a RowSpool first.
//
// The axis ends where the trace's last call ended, and starts where the first connection (the
// first row, in start order) did: sockets that never became a connection, such as a runtime's
// start-up probes, would otherwise take the left of every bar. (The end cannot be had the same
// way: it is needed before the first row.)
class TimelineWriter : public ConnectionSink {
 public:
  TimelineWriter(Axis& axis, Extent& extent, const Style& style, std::FILE* out, size_t spool_budget)
      : axis_(axis), extent_(extent), st_(style), rows_(axis, style), out_(out), spool_(spool_budget) {
    rows_.on_children([this](const Connection& c, const Exchange& x, std::string& out) {
      if (calls_.empty()) return;
      key_.assign(c.id).append(1, '#');
      append_uint(key_, x.index);
      if (auto it = calls_.find(key_); it != calls_.end()) {
        out += it->second;
        calls_.erase(it);
      }
    });
  }
  void watch(const StartOrder& order) { order_ = &order; }

  void on_connection(const Connection& c) override {
    const bool spool = n_ >= order_->overflowed_at();
    if (n_++ == 0) fix_axis(c, spool);
    if (spool) {
      if (seen_inbound_) note_calls(c);  // for the inbound rows still held
      row_.clear();
      rows_.render(c, row_);
      spool_.add({c.start_ns, c.pid, c.conn}, row_);
      return;
    }
    const bool inbound = c.direction == ConnDirection::kInbound && !c.requests.empty();
    // A call's parent is on an inbound connection that started before the call's connection or
    // the call itself (one pooled for an earlier parent): in start order, one has been seen.
    seen_inbound_ |= inbound;
    if (seen_inbound_) note_calls(c);
    release(c.start_ns);
    if (held_.empty() && !inbound) {
      start();
      rows_.render(c, buf_);
      if (buf_.size() >= (1u << 20)) flush();
      return;
    }
    hold(c);
  }

  // After the pipe closed: the spooled rows, then everything flushed. False on a write error.
  bool finish() {
    release(UINT64_MAX, true);
    if (!spool_.drain([&](std::string_view row) { write(row); })) {
      fmt::print(stderr, "httptrace: timeline: {}\n", spool_.error());
      ok_ = false;
    }
    flush();
    return ok_;
  }
  uint64_t rows() const { return n_; }

 private:
  // A first row that arrives in start order starts the axis; one that does not (ordering gave
  // up at once) leaves it at the trace's first event.
  void fix_axis(const Connection& c, bool unordered) {
    const uint64_t last = extent_.last();
    axis_.begin = extent_.first();
    if (!unordered) axis_.begin = std::max(axis_.begin, std::min(conn_begin(c), last));
    axis_.span = std::max<uint64_t>(1, span(axis_.begin, last));
    preamble_ = legend(st_) + "\n";
    append_axis(preamble_, axis_);
    preamble_ += "\n";
  }
  // Inbound connections wait for the calls made for their requests: in start order, every
  // connection that could carry one has arrived once one starts after the inbound's last request
  // ended. The rows after a waiting one wait with it (start order), within a bound: past it they
  // go out, and calls that come later show only in their own connection's rows.
  static constexpr uint64_t kMaxHeldWeight = 1u << 16;
  static constexpr size_t kMaxCalls = 1u << 16;
  struct Held {
    Connection c;
    uint64_t ends = 0;  // when its last request ended
  };

  void hold(const Connection& c) {
    Held h{c, 0};
    if (c.direction == ConnDirection::kInbound)
      for (const Exchange& x : c.requests) h.ends = std::max(h.ends, x.end_ns);
    held_weight_ += 1 + c.requests.size();
    held_.push_back(std::move(h));
    if (held_weight_ > kMaxHeldWeight) release(UINT64_MAX, true);
  }
  void release(uint64_t now, bool all = false) {
    while (!held_.empty() && (all || held_.front().ends < now)) {
      start();
      rows_.render(held_.front().c, buf_);
      if (buf_.size() >= (1u << 20)) flush();
      held_weight_ -= 1 + held_.front().c.requests.size();
      held_.pop_front();
      all = all && held_weight_ > kMaxHeldWeight / 2;
    }
  }
  // Renders each request made for an inbound one, to go under it.
  void note_calls(const Connection& c) {
    for (const Exchange& x : c.requests) {
      if (x.parent.empty()) continue;
      if (calls_.size() >= kMaxCalls) calls_.clear();  // parents that never came: give up on them
      rows_.child(c, x, calls_[x.parent]);
    }
  }

  void start() {
    if (!started_) buf_ += preamble_;
    started_ = true;
  }
  void write(std::string_view s) {
    start();
    buf_.append(s);
    if (buf_.size() >= (1u << 20)) flush();
  }
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) ok_ = false;
    buf_.clear();
  }

  Axis& axis_;
  Extent& extent_;
  const Style& st_;
  RowBuilder rows_;
  std::FILE* out_;
  RowSpool spool_;
  const StartOrder* order_ = nullptr;
  std::string preamble_, buf_, row_, key_;
  std::deque<Held> held_;
  uint64_t held_weight_ = 0;
  bool seen_inbound_ = false;
  std::unordered_map<std::string, std::string> calls_;  // parent request id -> rendered calls
  uint64_t n_ = 0;
  bool started_ = false, ok_ = true;
};

}  // namespace

bool write_timeline(TraceSet& traces, std::FILE* out, const TimelineOptions& opt) {
  const TimeBase tb = time_base(traces);
  const Style st{opt.color};
  Extent extent(traces);
  Axis axis;
  axis.width = size_t(std::max<int>(10, opt.width - int(kPrefixWidth) - 2));
  TimelineWriter writer(axis, extent, st, out, opt.spool_budget ? opt.spool_budget : RowSpool::kDefaultBudget);
  uint64_t n_conns = 0, n_requests = 0, n_reused = 0, n_unseen = 0, dropped = 0;
  {
    ConnectionPipe pipe(writer);
    StartOrder order(pipe, opt.max_held_weight ? opt.max_held_weight : StartOrder::kDefaultMaxWeight);
    writer.watch(order);
    Model model(traces, order, /*keep_dns=*/false);
    each_event(traces, Reading::inline_, [&](const Event& ev) {
      model.on_event(ev);
      order.after_event(ev);
    });
    model.finish();
    order.finish();
    pipe.close();
    n_conns = model.connections();
    n_requests = model.requests();
    n_reused = model.reused_requests();
    n_unseen = model.requests_unseen();
    dropped = model.dropped_events();
  }
  bool ok = writer.finish();
  if (writer.rows() == 0) {
    fmt::print(out, "no connections in the trace\n");
  } else {
    std::string text = fmt::format("total: {} connection{}, {} request{} ({} reused)", n_conns,
                                   n_conns == 1 ? "" : "s", n_requests, n_requests == 1 ? "" : "s", n_reused);
    if (n_unseen) text += fmt::format(" and the unseen ones of {} HTTP/2 connection{}", n_unseen, n_unseen == 1 ? "" : "s");
    text += " over " + duration_text(axis.span);
    if (axis.begin > tb.t0_mono_ns)
      text += ", from " + duration_text(axis.begin - tb.t0_mono_ns) + " after the first event";
    fmt::print(out, "{}\n", text);
  }
  if (dropped) fmt::print(out, "warning: {} events were dropped while recording; rows may be incomplete\n", dropped);
  return ok && std::fflush(out) == 0 && std::ferror(out) == 0;
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
