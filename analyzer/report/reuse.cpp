// `httptrace reuse TRACE...`: connection reuse per (host, port), the question "did my client pool
// its connections, and what did it cost when it did not?".
//
// "misses" counts connections opened while another connection of the same process to the same
// endpoint was open and idle (the model's pool_miss: it had finished its response and was not
// being written). A connection opened while every other one was busy is concurrency, which a
// client may well want; it is not counted, and the note under the table says so.
//
// Under the table, per endpoint, count / p50 / p90 / p99 / max of each phase (dns, connect, tls,
// wait, receive), from streaming histograms (analyzer/model/percentiles.h).
//
// Endpoint names come from the trace (a host name can hold anything): printed through
// printable(), and an IPv6 address, which is what a name with ':' is, in brackets before its port.
#include <algorithm>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/model/percentiles.h"
#include "analyzer/report/duration_text.h"
#include "analyzer/report/percentiles_table.h"
#include "analyzer/report/printable.h"
#include "analyzer/report/reuse_stats.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

void ReuseCollector::on_connection(const Connection& c) {
  // Reuse is a client's question: a server's accepted connections are keyed by the client's
  // ephemeral port and would fill the table with one-connection "endpoints".
  if (c.direction == ConnDirection::kInbound) return;
  std::string key = printable(c.endpoint_host());
  if (key.find(':') != std::string::npos) key = "[" + key + "]";
  auto& s = by_endpoint[{key, c.endpoint_port()}];
  ++s.connections;
  s.failed += c.failed();
  s.requests += c.requests.size();
  s.unseen += c.requests_unseen();
  uint64_t reused = 0;
  for (const auto& x : c.requests) reused += x.reused;
  s.reused += reused;
  if (c.dns && c.dns_first_for_port) {
    ++s.lookups;
    s.dns_ns += c.dns->duration_ns;
  }
  if (c.dns && c.dns_first_use) {
    ++total_lookups;
    total_dns_ns += c.dns->duration_ns;
  }
  if (c.has_connect) s.connect_ns += c.connect_duration_ns;
  if (c.tls) {
    s.tls_ns += c.tls->duration_ns;
    ++s.tls_connections;
    s.handshakes_avoided += reused;
  }
  s.pool_misses += c.pool_miss;
  s.phases.add(c);
}

EndpointStats ReuseCollector::total() const {
  EndpointStats t;
  for (const auto& [k, s] : by_endpoint) {
    t.connections += s.connections;
    t.failed += s.failed;
    t.requests += s.requests;
    t.reused += s.reused;
    t.connect_ns += s.connect_ns;
    t.tls_ns += s.tls_ns;
    t.tls_connections += s.tls_connections;
    t.handshakes_avoided += s.handshakes_avoided;
    t.pool_misses += s.pool_misses;
    t.unseen += s.unseen;
  }
  t.lookups = total_lookups;
  t.dns_ns = total_dns_ns;
  return t;
}

void write_reuse(TraceSet& traces, std::FILE* out) {
  ReuseCollector col;
  Model model(traces, col, /*keep_dns=*/false);
  analyze(traces, model, Reading::ahead);
  if (col.by_endpoint.empty()) {
    fmt::print(out, "no connections in the trace\n");
    return;
  }
  std::vector<std::string> names;
  size_t w = 8;
  for (const auto& [k, s] : col.by_endpoint) {
    names.push_back(fmt::format("{}:{}", k.first, k.second));
    w = std::max(w, std::min<size_t>(columns(names.back()), 48));
  }
  fmt::print(out, "{:<{}}  {:>5} {:>6} {:>5} {:>6} {:>6}  {:>9} {:>9} {:>9} {:>8} {:>6}\n", "endpoint", w, "conns",
             "failed", "reqs", "reused", "ratio", "dns", "connect", "tls", "tls-saved", "misses");
  size_t i = 0;
  auto row = [&](const std::string& name, const EndpointStats& s) {
    fmt::print(out, "{:<{}}  {:>5} {:>6} {:>5} {:>6} {:>6}  {:>9} {:>9} {:>9} {:>8} {:>6}\n", name, w, s.connections,
               s.failed, requests_cell(s), s.reused, ratio_cell(s), s.lookups == 0 ? "-" : duration_text(s.dns_ns), duration_text(s.connect_ns),
               s.tls_connections ? duration_text(s.tls_ns) : "-", s.handshakes_avoided, s.pool_misses);
  };
  for (const auto& [k, s] : col.by_endpoint) row(names[i++], s);
  if (col.by_endpoint.size() > 1) row("total", col.total());
  fmt::print(out,
             "\nreused = requests sent on an already-used connection; tls-saved = TLS handshakes avoided by "
             "reuse;\nmisses = new connections opened while another connection to the same endpoint (same "
             "process) sat idle\nand could have been reused. Connections opened while every other one was busy "
             "(concurrency) are not misses.\n");
  if (col.total().unseen)
    fmt::print(out, "+? = and the requests of HTTP/2 connections inside TLS seen only on the wire, which cannot be seen.\n");
  i = 0;
  for (const auto& [k, s] : col.by_endpoint) {
    const std::string& name = names[i++];
    bool any = false;
    for (Phase p : kPhases) any |= s.phases[p].count() > 0;
    if (!any) continue;
    fmt::print(out, "\n{}\n", name);
    print_phase_percentiles(out, s.phases, "  ");
  }
  if (model.dropped_events())
    fmt::print(out, "warning: {} events were dropped while recording; counts may be low\n", model.dropped_events());
}

int cmd_reuse(const Args& args) {
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") paths.insert(paths.end(), args.begin() + i + 1, args.end()), i = args.size();
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("reuse: unknown option {}", printable(a)));
    else paths.push_back(a);
  }
  if (paths.empty()) return usage_error("reuse: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  write_reuse(traces, stdout);
  return 0;
}

}  // namespace httptrace::analyzer
