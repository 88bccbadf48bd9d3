#include "analyzer/report/percentiles_table.h"

#include <fmt/format.h>

#include "analyzer/report/duration_text.h"

namespace httptrace::analyzer {

void print_phase_percentiles(std::FILE* out, const PhaseHistograms& h, const std::string& indent) {
  bool any = false;
  for (Phase p : kPhases) any |= h[p].count() > 0;
  if (!any) return;
  fmt::print(out, "{}{:<8} {:>7} {:>9} {:>9} {:>9} {:>9}\n", indent, "phase", "count", "p50", "p90", "p99", "max");
  for (Phase p : kPhases) {
    const LogHistogram& x = h[p];
    if (!x.count()) continue;
    fmt::print(out, "{}{:<8} {:>7} {:>9} {:>9} {:>9} {:>9}\n", indent, phase_name(p), x.count(),
               duration_text(x.percentile(0.5)), duration_text(x.percentile(0.9)), duration_text(x.percentile(0.99)),
               duration_text(x.max()));
  }
}

}  // namespace httptrace::analyzer
