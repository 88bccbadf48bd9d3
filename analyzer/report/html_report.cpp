#include "analyzer/report/html_report.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/export/iso_time.h"
#include "analyzer/export/json_writer.h"
#include "analyzer/report/html_assets.h"
#include "analyzer/report/printable.h"
#include "analyzer/report/reuse_stats.h"

namespace httptrace::analyzer {

void append_html_text(std::string& out, std::string_view s) {
  std::string p;
  append_printable(p, s);
  for (char ch : p) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
}

void append_script_json_string(std::string& out, std::string_view s) {
  std::string p;
  append_printable(p, s);
  std::string j;
  append_json_string(j, p);
  for (char ch : j) {
    switch (ch) {
      case '<': out += "\\u003c"; break;
      case '>': out += "\\u003e"; break;
      case '&': out += "\\u0026"; break;
      default: out += ch;
    }
  }
}

namespace {

std::string html(std::string_view s) {
  std::string out;
  append_html_text(out, s);
  return out;
}

// Exact milliseconds with µs digits: the page promises exact values, not rounded durations.
std::string ms(uint64_t ns) { return fmt::format("{}.{:03}", ns / 1000'000, ns / 1000 % 1000); }

// What stale reuse ended with: errno, or 0 for the server's EOF.
std::string failure_name(int32_t err) { return err == 0 ? "EOF" : errno_name(err); }

// The reuse table's endpoint key, spelled as ReuseCollector spells it.
std::string endpoint_of(const Connection& c) {
  std::string key = printable(c.endpoint_host());
  if (key.find(':') != std::string::npos) key = "[" + key + "]";
  return fmt::format("{}:{}", key, c.endpoint_port());
}

// How long a pooled connection sat idle before reuse found it dead: the server's keep-alive
// timeout shows as the bucket where failures begin.
constexpr std::array<std::pair<uint64_t, const char*>, 6> kIdleBuckets = {{
    {1'000'000'000, "under 1 s"},
    {5'000'000'000, "1–5 s"},
    {15'000'000'000, "5–15 s"},
    {60'000'000'000, "15–60 s"},
    {300'000'000'000, "1–5 min"},
    {UINT64_MAX, "5 min or more"},
}};

size_t idle_bucket(std::optional<uint64_t> idle_ns) {
  if (!idle_ns) return kIdleBuckets.size();
  size_t i = 0;
  while (i + 1 < kIdleBuckets.size() && *idle_ns >= kIdleBuckets[i].first) ++i;
  return i;
}

struct ReplacedRow {
  std::string id, endpoint, reason, replaced;
  std::optional<uint64_t> replaced_idle_ns;
  bool pool_miss = false;
};

// A request that takes part in a call chain (inbound, made for an inbound one, or linked to the
// other side's record of it): what a call tree row shows of it.
struct CallNode {
  std::string id, label, parent, linked;
  int32_t pid = 0;
  uint64_t start = 0, end = 0;
  std::optional<uint64_t> children_ns;  // inbound: the time in calls it made
  bool inbound = false;
};

struct StaleRow {
  std::string id, endpoint, request;
  uint32_t index = 0;
  std::optional<uint64_t> idle_ns;
  int32_t error = 0;
};

// Everything the page needs from the stream of connections. Runs on the pipe's thread: it writes
// the drawn connections straight into the page and keeps counters and capped lists for the rest.
class ReportSink : public ConnectionSink {
 public:
  ReportSink(std::FILE* out, const TimeBase& tb, const HtmlReportOptions& opt) : out_(out), tb_(tb), opt_(opt) {}

  void on_connection(const Connection& c) override {
    reuse.on_connection(c);
    ++connections;
    for (const Exchange& x : c.requests) {
      requests += 1;
      if (c.direction == ConnDirection::kInbound || !x.parent.empty() || !x.linked.empty()) note_call(c, x);
      end_ns = std::max(end_ns, rel(x.end_ns));
      if (x.reused && x.failed_errno) {
        ++stale_failures;
        ++stale_by_idle[idle_bucket(x.idle_ns)];
        if (stale.size() < opt_.max_listed)
          stale.push_back({c.id, endpoint_of(c), x.method.empty() ? std::string() : x.method + " " + x.target, x.index,
                           x.idle_ns, *x.failed_errno});
      }
    }
    end_ns = std::max(end_ns, rel(c.close_ns.value_or(c.start_ns)));
    const char* reason = new_reason_name(c.new_reason);
    if (size_t(c.new_reason) < reasons.size()) ++reasons[size_t(c.new_reason)];
    pool_misses += c.pool_miss;
    if (c.pool_miss || !c.replaced.empty()) {
      ++replaced_total;
      if (replaced.size() < opt_.max_listed)
        replaced.push_back({c.id, endpoint_of(c), reason ? reason : "", c.replaced, c.replaced_idle_ns, c.pool_miss != 0});
    }
    if (drawn < opt_.max_drawn) draw(c);
  }

  void draw(const Connection& c) {
    std::string& j = buf_;
    j.clear();
    j += drawn ? ",\n{\"id\":" : "{\"id\":";
    ++drawn;
    append_script_json_string(j, c.id);
    num("pid", c.pid);
    str("ep", endpoint_of(c));
    str("peer", format_addr(c.peer, true));
    if (c.host) str("host", *c.host);
    num("start", rel(c.start_ns));
    if (c.close_ns) num("end", rel(*c.close_ns));
    if (c.dns) j += fmt::format(",\"dns\":[{},{}]", rel(c.dns->start_ns), c.dns->duration_ns);
    if (c.has_connect) {
      j += fmt::format(",\"connect\":[{},{}]", rel(c.connect_start_ns), c.connect_duration_ns);
      if (c.connect_error) str("connErr", errno_name(c.connect_error));
      if (c.connect_pending) j += ",\"pending\":true";
    }
    if (c.tunnel) {
      j += fmt::format(",\"tunnel\":{{\"start\":{},\"dur\":{},\"status\":{}", rel(c.tunnel->start_ns),
                       c.tunnel->duration_ns, c.tunnel->status);
      str("target", c.tunnel->target);
      j += '}';
    }
    if (c.tls) {
      j += fmt::format(",\"tls\":{{\"start\":{},\"dur\":{},\"resumed\":{}", rel(c.tls->start_ns), c.tls->duration_ns,
                       c.tls->resumed);
      str("version", c.tls->version);
      str("cipher", c.tls->cipher);
      str("alpn", c.tls->alpn);
      str("sni", c.tls->sni);
      str("lib", c.tls->library);
      if (!c.tls->error_text.empty()) str("err", c.tls->error_text);
      j += '}';
    }
    if (c.protocol) str("proto", *c.protocol);
    if (c.h2_streams) num("h2Streams", c.h2_streams);
    if (const char* r = new_reason_name(c.new_reason)) str("reason", r);
    if (c.pool_miss) j += ",\"poolMiss\":true";
    if (!c.replaced.empty()) str("replaced", c.replaced);
    if (c.replaced_idle_ns) num("replacedIdle", *c.replaced_idle_ns);
    if (c.inherited) j += ",\"inherited\":true";
    if (c.direction == ConnDirection::kInbound) j += ",\"inbound\":true";
    num("tx", c.bytes_sent);
    num("rx", c.bytes_received);
    j += ",\"reqs\":[";
    uint64_t shown = 0;
    for (const Exchange& x : c.requests) {
      if (drawn_exchanges >= opt_.max_exchanges) break;
      ++drawn_exchanges;
      j += shown++ ? ",{" : "{";
      j += fmt::format("\"i\":{},\"start\":{},\"sent\":{},\"end\":{}", x.index, rel(x.start_ns), rel(x.sent_ns),
                       rel(x.end_ns));
      if (x.first_byte_ns) num("fb", rel(*x.first_byte_ns));
      if (!x.method.empty()) str("method", x.method);
      if (!x.target.empty()) str("target", x.target);
      if (x.target_cut) j += ",\"cut\":true";
      if (x.status) num("status", x.status);
      if (x.reused) j += ",\"reused\":true";
      if (x.idle_ns) num("idle", *x.idle_ns);
      if (x.stream) num("stream", *x.stream);
      if (x.failed_errno) str("failed", failure_name(*x.failed_errno));
      num("tx", x.bytes_sent);
      num("rx", x.bytes_received);
      j += '}';
    }
    j += ']';
    if (shown < c.requests.size()) {
      num("reqsLeftOut", c.requests.size() - shown);
      exchanges_left_out += c.requests.size() - shown;
    }
    j += '}';
    std::fwrite(j.data(), 1, j.size(), out_);
  }

  void note_call(const Connection& c, const Exchange& x) {
    if (calls.size() >= opt_.max_call_nodes) {
      ++calls_left_out;
      return;
    }
    CallNode n;
    n.id = c.id + "#" + std::to_string(x.index);
    n.label = x.method.empty() ? std::string("exchange") : x.method + " " + x.target;
    if (x.status) n.label += " " + std::to_string(x.status);
    n.parent = x.parent;
    n.linked = x.linked;
    n.pid = c.pid;
    n.start = x.start_ns;
    n.end = std::max(x.end_ns, x.start_ns);
    n.children_ns = x.children_ns;
    n.inbound = c.direction == ConnDirection::kInbound;
    calls.push_back(std::move(n));
  }

  ReuseCollector reuse;
  std::vector<CallNode> calls;
  uint64_t calls_left_out = 0;
  uint64_t connections = 0, requests = 0, drawn = 0, drawn_exchanges = 0, exchanges_left_out = 0;
  uint64_t stale_failures = 0, replaced_total = 0, pool_misses = 0;
  std::array<uint64_t, kIdleBuckets.size() + 1> stale_by_idle{};  // the last: idle time unknown
  int64_t end_ns = 0;
  // Connections by NewReason (kNone first, rendered as a dash until the model knows the reason).
  // Room for reasons the model may add after these; one past the room would go uncounted.
  std::array<uint64_t, 16> reasons{};
  static_assert(size_t(NewReason::kClosedByClient) < 16);
  std::vector<ReplacedRow> replaced;
  std::vector<StaleRow> stale;

 private:
  int64_t rel(uint64_t mono) const { return tb_.rel(mono); }
  void str(const char* key, std::string_view v) {
    buf_ += fmt::format(",\"{}\":", key);
    append_script_json_string(buf_, v);
  }
  template <class T> void num(const char* key, T v) { buf_ += fmt::format(",\"{}\":{}", key, v); }

  std::FILE* out_;
  TimeBase tb_;
  const HtmlReportOptions& opt_;
  std::string buf_;
};

void put(std::FILE* out, std::string_view s) { std::fwrite(s.data(), 1, s.size(), out); }

std::string td(const std::string& cls, const std::string& text) {
  return fmt::format("<td class=\"{}\">{}</td>", cls, text);
}

void write_summary(std::FILE* out, const ReportSink& s, const Model& model, const TraceSet& traces,
                   const HtmlReportOptions& opt) {
  std::string h = "<section id=\"summary\"><h2>Summary</h2>\n";
  if (model.dropped_events())
    h += fmt::format(
        "<p class=\"warn\" id=\"dropped\">Warning: {} events were dropped while recording (the recorder's buffers were "
        "full or a record did not fit); connections and requests may be missing or incomplete, counts may be "
        "low.</p>\n",
        model.dropped_events());
  h += "<dl class=\"facts\">";
  auto fact = [&](const char* name, const std::string& id, const std::string& value) {
    h += fmt::format("<div><dt>{}</dt><dd id=\"{}\">{}</dd></div>", name, id, value);
  };
  fact("connections", "n-connections", std::to_string(s.connections));
  fact("failed connects", "n-failed", std::to_string(s.reuse.total().failed));
  fact("requests", "n-requests", std::to_string(s.requests));
  fact("reused requests", "n-reused", std::to_string(s.reuse.total().reused));
  fact("pool misses", "n-misses", std::to_string(s.pool_misses));
  fact("stale-reuse failures", "n-stale", std::to_string(s.stale_failures));
  fact("processes", "n-processes", std::to_string(traces.files().size()));
  fact("dropped events", "n-dropped", std::to_string(model.dropped_events()));
  h += "</dl>\n";
  if (s.drawn < s.connections)
    h += fmt::format(
        "<p class=\"warn\" id=\"left-out\">The waterfall draws the first {} connections to complete; {} more are left "
        "out of it (the limit keeps the page small). The tables count all {}.</p>\n",
        s.drawn, s.connections - s.drawn, s.connections);
  if (s.exchanges_left_out)
    h += fmt::format(
        "<p class=\"warn\" id=\"reqs-left-out\">{} requests of drawn connections are left out of the waterfall "
        "(at most {} are drawn).</p>\n",
        s.exchanges_left_out, opt.max_exchanges);
  h += "</section>\n";
  put(out, h);
}

void write_reuse_table(std::FILE* out, const ReportSink& s) {
  std::string h =
      "<section id=\"reuse\"><h2>Connection reuse per endpoint</h2>\n"
      "<table class=\"data\" id=\"reuse-table\"><thead><tr><th>endpoint</th><th>conns</th><th>failed</th>"
      "<th>reqs</th><th>reused</th><th>ratio</th><th>dns ms</th><th>connect ms</th><th>tls ms</th>"
      "<th>tls-saved</th><th>misses</th></tr></thead><tbody>\n";
  auto row = [&](const std::string& name, const EndpointStats& e, bool total) {
    h += total ? "<tr class=\"total\">" : "<tr>";
    h += td("ep", html(name));
    h += td("n conns", std::to_string(e.connections));
    h += td("n failed", std::to_string(e.failed));
    h += td("n reqs", requests_cell(e));
    h += td("n reused", std::to_string(e.reused));
    h += td("n ratio", ratio_cell(e));
    h += td("n dns", e.lookups ? ms(e.dns_ns) : "-");
    h += td("n connect", ms(e.connect_ns));
    h += td("n tls", e.tls_connections ? ms(e.tls_ns) : "-");
    h += td("n saved", std::to_string(e.handshakes_avoided));
    h += td("n misses", std::to_string(e.pool_misses));
    h += "</tr>\n";
  };
  for (const auto& [k, e] : s.reuse.by_endpoint) row(fmt::format("{}:{}", k.first, k.second), e, false);
  if (s.reuse.by_endpoint.size() > 1) row("total", s.reuse.total(), true);
  if (s.reuse.by_endpoint.empty()) h += "<tr><td colspan=\"11\">no connections in the trace</td></tr>\n";
  h +=
      "</tbody></table>\n<p class=\"note\">reused = requests sent on an already-used connection; tls-saved = TLS "
      "handshakes avoided by reuse; misses = new connections opened while another connection to the same endpoint "
      "(same process) sat idle and could have been reused. Connections opened while every other one was busy "
      "(concurrency) are not misses.</p></section>\n";
  put(out, h);
}

void write_new_connections(std::FILE* out, const ReportSink& s) {
  std::string h =
      "<section id=\"new-conns\"><h2>Why new connections were opened</h2>\n"
      "<table class=\"data narrow\" id=\"reason-table\"><thead><tr><th>reason</th><th>connections</th></tr></thead>"
      "<tbody>\n";
  for (size_t i = 0; i < s.reasons.size(); ++i) {
    if (!s.reasons[i]) continue;
    const char* name = new_reason_name(NewReason(i));
    h += fmt::format("<tr>{}{}</tr>\n", td("reason", name ? name : "\u2014"), td("n", std::to_string(s.reasons[i])));
  }
  if (s.connections == 0) h += "<tr><td colspan=\"2\">no connections in the trace</td></tr>\n";
  h += "</tbody></table>\n";
  h += fmt::format(
      "<h3>Connections opened while another could have been used ({})</h3>\n"
      "<table class=\"data\" id=\"replaced-table\"><thead><tr><th>connection</th><th>endpoint</th><th>reason</th>"
      "<th>pool miss</th><th>replaced / could have used</th><th>its idle ms</th></tr></thead><tbody>\n",
      s.replaced_total);
  for (const ReplacedRow& r : s.replaced)
    h += fmt::format("<tr>{}{}{}{}{}{}</tr>\n", td("id", html(r.id)), td("ep", html(r.endpoint)),
                     td("reason", r.reason.empty() ? "\u2014" : html(r.reason)), td("miss", r.pool_miss ? "yes" : "no"),
                     td("id", r.replaced.empty() ? "\u2014" : html(r.replaced)),
                     td("n", r.replaced_idle_ns ? ms(*r.replaced_idle_ns) : "\u2014"));
  if (s.replaced_total == 0) h += "<tr><td colspan=\"6\">none</td></tr>\n";
  h += "</tbody></table>\n";
  if (s.replaced_total > s.replaced.size())
    h += fmt::format("<p class=\"note\">{} more are counted but not listed.</p>\n", s.replaced_total - s.replaced.size());
  h += "</section>\n";
  put(out, h);
}

void write_stale(std::FILE* out, const ReportSink& s) {
  std::string h = fmt::format(
      "<section id=\"stale\"><h2>Stale-reuse failures ({})</h2>\n<p class=\"note\">Requests sent on a reused "
      "connection that ended without a response: the pool handed out a connection the server had already "
      "closed.</p>\n<table class=\"data\" id=\"stale-table\"><thead><tr><th>connection</th><th>endpoint</th>"
      "<th>#</th><th>request</th><th>idle before ms</th><th>ended with</th></tr></thead><tbody>\n",
      s.stale_failures);
  for (const StaleRow& r : s.stale)
    h += fmt::format("<tr>{}{}{}{}{}{}</tr>\n", td("id", html(r.id)), td("ep", html(r.endpoint)),
                     td("n", std::to_string(r.index)), td("req", r.request.empty() ? "\u2014" : html(r.request)),
                     td("n", r.idle_ns ? ms(*r.idle_ns) : "\u2014"), td("err", html(failure_name(r.error))));
  if (s.stale_failures == 0) h += "<tr><td colspan=\"6\">none</td></tr>\n";
  h += "</tbody></table>\n";
  if (s.stale_failures) {
    h += "<table class=\"data narrow\" id=\"stale-idle-table\"><thead><tr><th>idle before the request</th>"
         "<th>failures</th></tr></thead><tbody>\n";
    for (size_t i = 0; i < s.stale_by_idle.size(); ++i)
      if (s.stale_by_idle[i])
        h += fmt::format("<tr>{}{}</tr>\n", td("idle", i < kIdleBuckets.size() ? kIdleBuckets[i].second : "unknown"),
                         td("n", std::to_string(s.stale_by_idle[i])));
    h += "</tbody></table>\n";
  }
  if (s.stale_failures > s.stale.size())
    h += fmt::format("<p class=\"note\">{} more are counted but not listed.</p>\n", s.stale_failures - s.stale.size());
  h += "</section>\n";
  put(out, h);
}

// The call tree of each root request (no parent, no traced client) that made calls: an inbound
// request's children are the outbound requests made for it, an outbound request's child is the
// traced server's record of it (in another process), and so on down. Own time is a request's
// duration less the time in its children (an inbound request's: the union of its calls; a
// client's: the server's time).
void write_call_trees(std::FILE* out, const ReportSink& s, const TimeBase& tb, const HtmlReportOptions& opt) {
  const std::vector<CallNode>& nodes = s.calls;
  std::unordered_map<std::string_view, size_t> by_id;
  by_id.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) by_id.emplace(nodes[i].id, i);
  std::vector<std::vector<size_t>> kids(nodes.size());
  std::vector<bool> is_child(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const CallNode& n = nodes[i];
    if (!n.parent.empty())
      if (auto it = by_id.find(n.parent); it != by_id.end()) kids[it->second].push_back(i), is_child[i] = true;
    // A server's request hangs under the client's record of it.
    if (n.inbound && !n.linked.empty())
      if (auto it = by_id.find(n.linked); it != by_id.end() && !nodes[it->second].inbound)
        kids[it->second].push_back(i), is_child[i] = true;
  }
  auto by_start = [&](size_t a, size_t b) { return nodes[a].start < nodes[b].start; };
  std::vector<size_t> roots;
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::sort(kids[i].begin(), kids[i].end(), by_start);
    if (!is_child[i] && !kids[i].empty()) roots.push_back(i);
  }
  std::sort(roots.begin(), roots.end(), by_start);

  std::string h =
      "<section id=\"call-trees\"><h2>Call trees</h2>\n<p class=\"note\">Each request that started a chain of "
      "calls, with the calls under it: an inbound request, the outbound requests its server made for it, the "
      "traced server's side of each of those (another process), and so on. Own time is the request's duration "
      "less its time in calls.</p>\n<table class=\"data\" id=\"call-tree-table\"><thead><tr><th>request</th>"
      "<th>pid</th><th>id</th><th>start ms</th><th>duration ms</th><th>own ms</th><th>in calls ms</th></tr>"
      "</thead><tbody>\n";
  uint64_t rows = 0, left_out = 0;
  constexpr size_t kMaxDepth = 64;  // ids come from a trace: never trust them to form no cycle
  std::function<void(size_t, size_t)> row = [&](size_t i, size_t depth) {
    if (rows >= opt.max_drawn) {  // counted, with what is under it
      ++left_out;
      if (depth + 1 < kMaxDepth)
        for (size_t k : kids[i]) row(k, depth + 1);
      return;
    }
    ++rows;
    const CallNode& n = nodes[i];
    const uint64_t dur = n.end - n.start;
    uint64_t in_calls = 0;
    if (n.inbound) {
      in_calls = n.children_ns.value_or(0);
    } else {
      for (size_t k : kids[i])
        if (nodes[k].inbound) in_calls = std::max(in_calls, nodes[k].end - nodes[k].start);
    }
    in_calls = std::min(in_calls, dur);
    h += fmt::format("<tr class=\"call{}\" data-depth=\"{}\"><td class=\"call\" style=\"padding-left:{}em\">",
                     n.inbound ? " inbound" : "", depth, 0.5 + 1.5 * double(depth));
    h += n.inbound ? "↳ " : "→ ";  // served / called
    append_html_text(h, n.label);
    h += "</td>";
    h += td("n", std::to_string(n.pid));
    h += td("id", html(n.id));
    h += td("n", ms(uint64_t(std::max<int64_t>(0, tb.rel(n.start)))));
    h += td("n dur", ms(dur));
    h += td("n own", ms(dur - in_calls));
    h += td("n in-calls", ms(in_calls));
    h += "</tr>\n";
    if (depth + 1 >= kMaxDepth) return;
    for (size_t k : kids[i]) row(k, depth + 1);
  };
  for (size_t r : roots) row(r, 0);
  if (roots.empty()) h += "<tr><td colspan=\"7\">no request made calls that the trace shows</td></tr>\n";
  h += "</tbody></table>\n";
  if (left_out)
    h += fmt::format("<p class=\"warn\" id=\"calls-left-out\">{} more rows of call trees are left out (at most {} are "
                     "shown).</p>\n", left_out, opt.max_drawn);
  if (s.calls_left_out)
    h += fmt::format("<p class=\"warn\" id=\"call-nodes-left-out\">{} requests in call chains came after the first {} "
                     "and are not in the trees.</p>\n", s.calls_left_out, opt.max_call_nodes);
  h += "</section>\n";
  put(out, h);
}

void write_processes(std::FILE* out, const Model& model) {
  std::string h =
      "<section id=\"processes\"><h2>Processes</h2>\n<table class=\"data\" id=\"process-table\"><thead><tr>"
      "<th>pid</th><th>ppid</th><th>executable</th><th>argv</th><th>dropped events</th></tr></thead><tbody>\n";
  for (const ProcessInfo& p : model.processes()) {
    std::string argv;
    for (const std::string& a : p.argv) {
      if (!argv.empty()) argv += ' ';
      argv += "<span class=\"arg\">";
      append_html_text(argv, a);
      argv += "</span>";
    }
    h += fmt::format("<tr{}>{}{}{}{}{}</tr>\n", p.dropped_events ? " class=\"warn\"" : "", td("n", std::to_string(p.pid)),
                     td("n", std::to_string(p.ppid)), td("exe", html(p.exe)), td("argv", argv),
                     td("n", std::to_string(p.dropped_events)));
  }
  h += "</tbody></table></section>\n";
  put(out, h);
}

}  // namespace

bool write_report_html(TraceSet& traces, std::FILE* out, const HtmlReportOptions& opt) {
  const TimeBase tb = time_base(traces);
  std::string head = kHtmlHead;
  head += kHtmlCss;
  head += kHtmlHeadEnd;
  char when[kIsoTimeMsLen + 1];
  when[format_iso_time_ms(when, tb.t0_unix_ns)] = 0;
  head += fmt::format(
      "<header><h1>httptrace report</h1><p class=\"sub\">trace starts {} · {} trace file{} · times are ms from the "
      "start</p></header>\n",
      when, traces.files().size(), traces.files().size() == 1 ? "" : "s");
  head += kHtmlWaterfall;
  head += "<script type=\"application/json\" id=\"ht-conns\">[";
  put(out, head);

  // The sink writes the drawn connections on the pipe's thread while this one reads and models.
  ReportSink sink(out, tb, opt);
  ConnectionPipe pipe(sink);
  Model model(traces, pipe, /*keep_dns=*/false);
  analyze(traces, model, Reading::inline_);
  pipe.close();
  put(out, "]</script>\n");
  write_summary(out, sink, model, traces, opt);
  write_reuse_table(out, sink);
  write_new_connections(out, sink);
  write_stale(out, sink);
  write_call_trees(out, sink, tb, opt);
  write_processes(out, model);
  std::string meta = fmt::format(
      "<script type=\"application/json\" id=\"ht-meta\">{{\"end\":{},\"connections\":{},\"drawn\":{},"
      "\"requests\":{},\"drawnRequests\":{},\"dropped\":{},\"t0\":",
      sink.end_ns, sink.connections, sink.drawn, sink.requests, sink.drawn_exchanges, model.dropped_events());
  append_script_json_string(meta, when);
  meta += "}</script>\n";
  put(out, meta);
  put(out, kHtmlScript);
  put(out, "</body>\n</html>\n");
  return std::fflush(out) == 0 && !std::ferror(out);
}

int cmd_report(const Args& args) {
  std::string out_path = "httptrace-report.html";
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "-o" || a == "--output") && i + 1 >= args.size()) return usage_error("report: -o needs a file");
    if (a == "-o" || a == "--output") out_path = args[++i];
    else if (a.starts_with("--output=")) out_path = a.substr(9);
    else if (a == "--") paths.insert(paths.end(), args.begin() + i + 1, args.end()), i = args.size();
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("report: unknown option {}", printable(a)));
    else paths.push_back(a);
  }
  if (paths.empty()) return usage_error("report: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  return write_report_file(traces, out_path) ? 0 : 1;
}

bool write_report_file(TraceSet& traces, const std::string& path) {
  AtomicOutput out;
  if (!out.open(path)) {
    fmt::print(stderr, "httptrace: {}\n", out.error());
    return false;
  }
  if (!write_report_html(traces, out.file())) {
    out.abandon();
    fmt::print(stderr, "httptrace: {}: write failed\n", printable(path));
    return false;
  }
  if (!out.commit()) {
    fmt::print(stderr, "httptrace: {}\n", out.error());
    return false;
  }
  return true;
}

}  // namespace httptrace::analyzer
