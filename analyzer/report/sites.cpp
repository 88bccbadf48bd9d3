// `httptrace sites TRACE...`: the code that opens connections, from stacks recorded with
// HTTPTRACE_STACKS=1 (the stack at each connect), symbolized offline (analyzer/symbols/).
//
// A call site is the first frame of a connect's stack outside the C library, the loader,
// libhttptrace and the TLS/HTTP libraries (symbols/symbolizer.h: library_frame): the program's
// own code that asked for the connection, whichever library made it. Sites are grouped by
// function and source position (by object and offset when there is no debug info), sorted by
// connections opened, with the count per reason the connection was new (new_reason: which code
// path causes the pool misses) and the two frames that called the site.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/report/printable.h"
#include "analyzer/reports.h"
#include "analyzer/symbols/symbolizer.h"

namespace httptrace::analyzer {

namespace {

// Until every connection has a new_reason, the model's pool-miss flag still says one thing.
const char* reason_of(const Connection& c) {
  if (const char* r = new_reason_name(c.new_reason)) return r;
  if (c.failed()) return "failed";
  return c.pool_miss ? "pool_miss" : "unknown";
}

std::string describe(const Frame& f) {
  std::string s = f.function.empty() ? fmt::format("0x{:x}", f.offset) : f.function;
  if (!f.file.empty()) s += fmt::format("  {}:{}", f.file, f.line);
  if (!f.object.empty()) s += fmt::format("  [{}]", base_name(f.object));
  if (f.inlined) s += "  (inlined)";
  if (!f.problem.empty() && f.function.empty()) s += fmt::format("  ({})", f.problem);
  return printable(s);
}

struct Site {
  uint64_t connections = 0;
  std::map<std::string, uint64_t> reasons;
  std::string where;                 // the site frame, described
  std::vector<std::string> callers;  // the frames after it, described
};

class SitesCollector : public ConnectionSink {
 public:
  explicit SitesCollector(Symbolizer& sym) : sym_(sym) {}
  void on_connection(const Connection& c) override {
    if (c.direction == ConnDirection::kInbound || c.inherited) return;
    if (c.stack.empty()) {
      without_stack += c.has_connect;
      return;
    }
    const std::vector<Frame> frames = sym_.frames(c);
    const Frame* site = call_site(frames);
    std::string key = !site ? "" : site->function.empty() ? fmt::format("{}+0x{:x}", site->object, site->offset)
                                                         : fmt::format("{}\n{}:{}\n{}", site->function, site->file,
                                                                       site->line, site->object);
    Site& s = sites[key];
    if (s.connections++ == 0) {
      s.where = site ? describe(*site) : "(no frame outside the C, TLS and HTTP libraries)";
      for (const Frame* f = site ? site + 1 : nullptr; f && f < frames.data() + frames.size() && s.callers.size() < 2; ++f)
        s.callers.push_back(describe(*f));
    }
    ++s.reasons[reason_of(c)];
    ++with_stack;
  }
  std::map<std::string, Site> sites;
  uint64_t with_stack = 0, without_stack = 0;

 private:
  Symbolizer& sym_;
};

}  // namespace

void write_sites(TraceSet& traces, std::FILE* out) {
  Symbolizer sym(traces);
  SitesCollector col(sym);
  Model model(traces, col, /*keep_dns=*/false);
  analyze(traces, model, Reading::ahead);
  if (col.sites.empty()) {
    const bool recorded = std::any_of(traces.files().begin(), traces.files().end(),
                                      [](const TraceFile& f) { return f.flags & tf::kFileFlagStacks; });
    if (!recorded)
      fmt::print(out, "no stacks in these traces: they were recorded without HTTPTRACE_STACKS=1 "
                      "(record again with it set, or with httptrace run --stacks)\n");
    else
      fmt::print(out, "no connection in these traces has a stack (stacks were on; {} connects)\n",
                 col.without_stack);
    return;
  }
  std::vector<const std::pair<const std::string, Site>*> order;
  for (const auto& kv : col.sites) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(),
                   [](auto* a, auto* b) { return a->second.connections > b->second.connections; });
  fmt::print(out, "call sites that opened connections: {} sites, {} connections\n"
                  "(site = first frame outside libc, the loader, libhttptrace and TLS/HTTP libraries)\n\n",
             col.sites.size(), col.with_stack);
  fmt::print(out, "{:>6}  {}\n", "conns", "call site / reasons the connection was new / called from");
  for (const auto* kv : order) {
    const Site& s = kv->second;
    fmt::print(out, "{:>6}  {}\n", s.connections, s.where);
    std::vector<std::pair<std::string, uint64_t>> reasons(s.reasons.begin(), s.reasons.end());
    std::stable_sort(reasons.begin(), reasons.end(), [](auto& a, auto& b) { return a.second > b.second; });
    std::string line;
    for (const auto& [name, n] : reasons) line += fmt::format("{}{} {}", line.empty() ? "" : ", ", name, n);
    fmt::print(out, "{:>6}  {}\n", "", line);
    for (const auto& c : s.callers) fmt::print(out, "{:>6}    from {}\n", "", c);
  }
  if (col.without_stack)
    fmt::print(out, "\n{} connects have no stack (recorded without HTTPTRACE_STACKS=1 or by a process that could not unwind)\n",
               col.without_stack);
  if (model.dropped_events())
    fmt::print(out, "warning: {} events were dropped while recording; counts may be low\n", model.dropped_events());
}

int cmd_sites(const Args& args) {
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") paths.insert(paths.end(), args.begin() + i + 1, args.end()), i = args.size();
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("sites: unknown option {}", printable(a)));
    else paths.push_back(a);
  }
  if (paths.empty()) return usage_error("sites: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  write_sites(traces, stdout);
  return 0;
}

}  // namespace httptrace::analyzer
