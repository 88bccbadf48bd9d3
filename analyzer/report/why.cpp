// `httptrace why TRACE...`: why each new connection was opened (SPEC §5 new_reason), and what it
// cost, per endpoint (host, port):
//   - new connections by reason, with examples of the connection each replaced or could have used
//   - failed reuses (a request on an idle connection that got EOF/RST before a response) by the
//     idle time at which they failed, beside the server's announced Keep-Alive timeout
//   - idle time before each reuse, by outcome (succeeded / failed)
//   - churn: connections per second, requests per connection, connections closed after one request
//   - phase percentiles (dns, connect, tls, wait, receive)
// then, for the whole trace, happy-eyeballs races (the attempts of one logical connection) and
// DNS habits (repeated lookups of one name by one process, concurrent identical lookups, lookups
// slower than the connect they fed).
//
// Memory is bounded by the number of endpoints and names, not of connections: each list keeps a
// few examples and counts the rest.
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/model/percentiles.h"
#include "analyzer/report/duration_text.h"
#include "analyzer/report/percentiles_table.h"
#include "analyzer/report/printable.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

constexpr size_t kExamples = 3;        // per reason per endpoint
constexpr size_t kRaces = 10;          // happy-eyeballs races listed
constexpr size_t kMaxNames = 4096;     // (pid, name) pairs tracked for DNS habits
constexpr uint64_t kMs = 1'000'000, kS = 1'000'000'000;

constexpr NewReason kReasons[] = {NewReason::kFirst,        NewReason::kBusy,          NewReason::kPoolMiss,
                                  NewReason::kClosedByPeer, NewReason::kResetOnReuse, NewReason::kClosedByClient};

// Idle-time buckets for the reuse histogram: upper bounds, the last open-ended.
constexpr uint64_t kIdleBounds[] = {1 * kMs, 10 * kMs, 100 * kMs, 500 * kMs, 1 * kS, 2 * kS, 5 * kS, 15 * kS, 60 * kS};
constexpr size_t kIdleBuckets = std::size(kIdleBounds) + 1;

size_t idle_bucket(uint64_t ns) {
  size_t i = 0;
  while (i < std::size(kIdleBounds) && ns >= kIdleBounds[i]) ++i;
  return i;
}

std::string failure_name(int32_t e) { return e == 0 ? "EOF" : errno_name(e); }

struct Example {
  std::string id, replaced;
  std::optional<uint64_t> idle_ns;
};

struct FailedReuse {
  std::string conn;
  uint32_t index = 0;
  uint64_t idle_ns = 0;
  int32_t error = 0;
  std::optional<int> announced_s;  // Keep-Alive timeout of the last response before it
};

struct EndpointWhy {
  std::array<uint64_t, 7> by_reason{};  // indexed by NewReason
  std::array<std::vector<Example>, 7> examples;
  uint64_t connections = 0, requests = 0, one_request = 0, max_requests = 0;
  uint64_t unseen = 0;  // connections whose requests cannot be seen (Connection::requests_unseen)
  uint64_t first_start = UINT64_MAX, last_end = 0;
  std::array<uint64_t, kIdleBuckets> reuse_ok{}, reuse_failed{};
  uint64_t failed_reuses = 0, failed_idle_min = UINT64_MAX, failed_idle_max = 0;
  std::map<std::string, uint64_t> failed_by_error;
  std::vector<FailedReuse> failed_examples;
  LogHistogram ok_idle;
  std::optional<int> announced_min_s, announced_max_s;  // over every response from this endpoint
  PhaseHistograms phases;
};

struct Race {
  std::string id, host, winner;
  uint64_t winner_start = 0, winner_ns = 0;
  std::vector<ConnectAttempt> losers;
};

class WhyCollector : public ConnectionSink, public DnsSink {
 public:
  void on_connection(const Connection& c) override {
    if (c.direction == ConnDirection::kInbound || c.inherited) return;
    std::string key = printable(c.endpoint_host());
    if (key.find(':') != std::string::npos) key = "[" + key + "]";
    EndpointWhy& e = by_endpoint[{key, c.endpoint_port()}];
    e.phases.add(c);
    if (c.new_reason != NewReason::kNone) {
      const size_t r = size_t(c.new_reason);
      ++e.by_reason[r];
      if (e.examples[r].size() < kExamples && c.new_reason != NewReason::kFirst && c.new_reason != NewReason::kBusy)
        e.examples[r].push_back({c.id, c.replaced, c.replaced_idle_ns});
    }
    if (!c.failed() && c.has_connect) {
      ++e.connections;
      e.unseen += c.requests_unseen();
      e.requests += c.requests.size();
      e.max_requests = std::max<uint64_t>(e.max_requests, c.requests.size());
      e.one_request += c.requests.size() == 1 && c.close_ns;
      e.first_start = std::min(e.first_start, c.connect_start_ns);
      e.last_end = std::max(e.last_end, c.close_ns.value_or(c.requests.empty() ? c.connect_start_ns : c.requests.back().end_ns));
    }
    std::optional<int> announced;
    for (const Exchange& x : c.requests) {
      if (x.reused && x.idle_ns) {
        const bool failed = x.failed_errno && !x.first_byte_ns;
        (failed ? e.reuse_failed : e.reuse_ok)[idle_bucket(*x.idle_ns)]++;
        if (failed) {
          ++e.failed_reuses;
          e.failed_idle_min = std::min(e.failed_idle_min, *x.idle_ns);
          e.failed_idle_max = std::max(e.failed_idle_max, *x.idle_ns);
          ++e.failed_by_error[failure_name(*x.failed_errno)];
          if (e.failed_examples.size() < kExamples)
            e.failed_examples.push_back({c.id, x.index, *x.idle_ns, *x.failed_errno, announced});
        } else {
          e.ok_idle.add(*x.idle_ns);
        }
      }
      if (x.keep_alive_timeout_s) {
        announced = x.keep_alive_timeout_s;
        e.announced_min_s = std::min(e.announced_min_s.value_or(INT32_MAX), *announced);
        e.announced_max_s = std::max(e.announced_max_s.value_or(0), *announced);
      }
    }
    if (!c.attempts.empty() && c.has_connect && !c.failed()) {
      ++races;
      if (race_list.size() < kRaces)
        race_list.push_back({c.id, printable(c.endpoint_host()), format_addr(c.peer, true), c.connect_start_ns,
                             c.connect_duration_ns, c.attempts});
    }
    if (c.dns && c.has_connect && !c.failed() && c.dns_first_use && c.dns->duration_ns > c.connect_duration_ns) {
      ++slow_lookups;
      if (slow_examples.size() < kExamples)
        slow_examples.push_back(fmt::format("{} {}: lookup {}, connect {}", c.id, printable(c.endpoint_host()),
                                            duration_text(c.dns->duration_ns), duration_text(c.connect_duration_ns)));
    }
  }

  void on_dns(const DnsLookup& l) override {
    ++lookups;
    // A literal address costs no lookup: repeating it is no missing cache.
    unsigned char ip[16];
    if (inet_pton(AF_INET, l.host.c_str(), ip) == 1 || inet_pton(AF_INET6, l.host.c_str(), ip) == 1) return;
    auto it = names.find({l.pid, l.host});
    if (it == names.end()) {
      if (names.size() >= kMaxNames) {
        ++untracked_lookups;
        return;
      }
      it = names.emplace(std::make_pair(l.pid, l.host), Name{}).first;
    }
    Name& n = it->second;
    ++n.lookups;
    if (n.lookups > 1 && l.start_ns < n.latest_end) ++n.concurrent;
    n.latest_end = std::max(n.latest_end, l.start_ns + l.duration_ns);
  }

  struct Name {
    uint64_t lookups = 0, concurrent = 0, latest_end = 0;
  };
  std::map<std::pair<std::string, uint16_t>, EndpointWhy> by_endpoint;
  std::map<std::pair<int32_t, std::string>, Name> names;
  uint64_t lookups = 0, untracked_lookups = 0;
  uint64_t races = 0, slow_lookups = 0;
  std::vector<Race> race_list;
  std::vector<std::string> slow_examples;
};

std::string idle_label(size_t i) {
  if (i == 0) return "< " + duration_text(kIdleBounds[0]);
  if (i == kIdleBuckets - 1) return ">= " + duration_text(kIdleBounds[i - 1]);
  return duration_text(kIdleBounds[i - 1]) + " - " + duration_text(kIdleBounds[i]);
}

void print_endpoint(std::FILE* out, const std::string& name, const EndpointWhy& e) {
  fmt::print(out, "{}\n", name);
  uint64_t opened = 0;
  for (uint64_t n : e.by_reason) opened += n;
  std::string counts;
  for (NewReason r : kReasons)
    if (e.by_reason[size_t(r)]) counts += fmt::format("  {} {}", new_reason_name(r), e.by_reason[size_t(r)]);
  fmt::print(out, "  new connections: {}{}\n", opened, counts);
  for (NewReason r : kReasons) {
    for (const Example& x : e.examples[size_t(r)]) {
      std::string what = x.replaced.empty() ? std::string() : (r == NewReason::kPoolMiss ? " could have used " : " replaced ") + x.replaced;
      if (x.idle_ns) what += fmt::format(" (idle {})", duration_text(*x.idle_ns));
      fmt::print(out, "    {:<16} {}{}\n", new_reason_name(r), x.id, what);
    }
  }

  if (e.failed_reuses) {
    std::string errs;
    for (const auto& [err, n] : e.failed_by_error) errs += fmt::format("{}{} {}", errs.empty() ? "" : ", ", err, n);
    fmt::print(out, "  failed reuses: {} ({}), idle {} to {} when they failed", e.failed_reuses, errs,
               duration_text(e.failed_idle_min), duration_text(e.failed_idle_max));
    if (e.announced_min_s) fmt::print(out, "; the server announced Keep-Alive: timeout={}", *e.announced_min_s);
    fmt::print(out, "\n");
    for (const FailedReuse& f : e.failed_examples) {
      fmt::print(out, "    {}#{} idle {} -> {}", f.conn, f.index, duration_text(f.idle_ns), failure_name(f.error));
      if (f.announced_s) fmt::print(out, " (its last response said timeout={})", *f.announced_s);
      fmt::print(out, "\n");
    }
    if (e.announced_min_s && e.failed_idle_min >= uint64_t(*e.announced_min_s) * kS)
      fmt::print(out, "  -> your client reuses connections idle up to {}; the server drops them after {}s\n",
                 duration_text(e.failed_idle_max), *e.announced_min_s);
    else if (e.announced_min_s)
      fmt::print(out, "  -> reuse failed at {} idle, under the {}s the server announced: it closes idle connections "
                 "sooner than it says\n", duration_text(e.failed_idle_min), *e.announced_min_s);
    else
      fmt::print(out, "  -> your client reuses connections idle up to {}; the server announced no timeout, so the "
                 "client cannot know its limit\n", duration_text(e.failed_idle_max));
  } else if (e.announced_min_s) {
    fmt::print(out, "  the server announced Keep-Alive: timeout={}", *e.announced_min_s);
    if (e.announced_max_s != e.announced_min_s) fmt::print(out, " to {}", *e.announced_max_s);
    fmt::print(out, "; no reuse failed\n");
  }

  uint64_t reuses = 0;
  for (size_t i = 0; i < kIdleBuckets; ++i) reuses += e.reuse_ok[i] + e.reuse_failed[i];
  if (reuses) {
    fmt::print(out, "  idle before reuse     succeeded  failed\n");
    for (size_t i = 0; i < kIdleBuckets; ++i)
      if (e.reuse_ok[i] || e.reuse_failed[i])
        fmt::print(out, "    {:<19} {:>9} {:>7}\n", idle_label(i), e.reuse_ok[i], e.reuse_failed[i]);
  }

  if (e.connections) {
    const uint64_t span = e.last_end > e.first_start ? e.last_end - e.first_start : 0;
    std::string rate = span ? fmt::format("{:.1f}/s", double(e.connections) * 1e9 / double(span)) : "-";
    if (e.unseen)  // requests per connection would count only the connections whose requests were seen
      fmt::print(out, "  churn: {} connections over {} ({}); the requests of {} cannot be seen (HTTP/2 inside TLS seen only on the wire)\n",
                 e.connections, duration_text(span), rate, e.unseen);
    else
      fmt::print(out, "  churn: {} connections over {} ({}); {:.1f} requests per connection (max {}); {} closed after one request\n",
                 e.connections, duration_text(span), rate, double(e.requests) / double(e.connections), e.max_requests,
                 e.one_request);
  }
  print_phase_percentiles(out, e.phases, "  ");
}

void print_races(std::FILE* out, const WhyCollector& col) {
  if (!col.races) return;
  fmt::print(out, "happy eyeballs: {} connections raced more than one address\n", col.races);
  for (const Race& r : col.race_list) {
    fmt::print(out, "  {} {}: {} won, connect {}\n", r.id, r.host, r.winner, duration_text(r.winner_ns));
    uint64_t prev_start = 0;
    bool first = true;
    for (const ConnectAttempt& a : r.losers) {
      std::string how = a.error ? errno_name(a.error) : std::string("abandoned");
      fmt::print(out, "    lost {} after {} ({})", format_addr(a.peer, true), duration_text(a.duration_ns), how);
      if (!first && a.start_ns >= prev_start) fmt::print(out, ", tried {} after the previous", duration_text(a.start_ns - prev_start));
      fmt::print(out, "\n");
      prev_start = a.start_ns;
      first = false;
    }
    if (!r.losers.empty() && r.winner_start >= r.losers.front().start_ns)
      fmt::print(out, "    the winner was tried {} after the first attempt\n",
                 duration_text(r.winner_start - r.losers.front().start_ns));
  }
  if (col.races > col.race_list.size()) fmt::print(out, "  ... and {} more\n", col.races - col.race_list.size());
}

void print_dns(std::FILE* out, const WhyCollector& col) {
  if (!col.lookups) return;
  uint64_t repeated_names = 0, repeats = 0, concurrent = 0;
  for (const auto& [k, n] : col.names) {
    if (n.lookups > 1) ++repeated_names, repeats += n.lookups - 1;
    concurrent += n.concurrent;
  }
  fmt::print(out, "dns: {} lookups", col.lookups);
  if (col.untracked_lookups) fmt::print(out, " ({} of names past the first {} not examined)", col.untracked_lookups, kMaxNames);
  fmt::print(out, "\n");
  if (repeats) {
    fmt::print(out, "  {} repeated lookups of {} names by the same process (no cache in between)\n", repeats, repeated_names);
    std::vector<std::pair<uint64_t, const std::pair<int32_t, std::string>*>> top;
    for (const auto& [k, n] : col.names)
      if (n.lookups > 1) top.emplace_back(n.lookups, &k);
    std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < top.size() && i < kExamples; ++i)
      fmt::print(out, "    pid {} looked up {} {} times\n", top[i].second->first, printable(top[i].second->second), top[i].first);
  }
  if (concurrent) fmt::print(out, "  {} lookups started while the same name was still being looked up (could be coalesced)\n", concurrent);
  if (col.slow_lookups) {
    fmt::print(out, "  {} lookups took longer than the connect they fed\n", col.slow_lookups);
    for (const auto& s : col.slow_examples) fmt::print(out, "    {}\n", s);
  }
}

}  // namespace

void write_why(TraceSet& traces, std::FILE* out) {
  WhyCollector col;
  Model model(traces, col, /*keep_dns=*/false);
  model.set_dns_sink(&col);
  analyze(traces, model, Reading::ahead);
  if (col.by_endpoint.empty()) {
    fmt::print(out, "no connections in the trace\n");
    return;
  }
  bool first = true;
  for (const auto& [k, e] : col.by_endpoint) {
    if (!first) fmt::print(out, "\n");
    first = false;
    print_endpoint(out, fmt::format("{}:{}", k.first, k.second), e);
  }
  fmt::print(out, "\n");
  print_races(out, col);
  print_dns(out, col);
  fmt::print(out,
             "\nfirst = no connection to that endpoint before; busy = every open one was mid-exchange;\n"
             "pool_miss = one sat idle; closed_by_peer = the server closed the previous one (EOF/RST, Connection: "
             "close,\nKeep-Alive timeout); reset_on_reuse = a request on an idle connection got EOF/RST before a "
             "response;\nclosed_by_client = the client closed the previous one while it was idle, or asked for the close "
             "(Connection: close).\n");
  if (model.dropped_events())
    fmt::print(out, "warning: {} events were dropped while recording; counts may be low\n", model.dropped_events());
}

int cmd_why(const Args& args) {
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") paths.insert(paths.end(), args.begin() + i + 1, args.end()), i = args.size();
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("why: unknown option {}", printable(a)));
    else paths.push_back(a);
  }
  if (paths.empty()) return usage_error("why: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  write_why(traces, stdout);
  return 0;
}

}  // namespace httptrace::analyzer
