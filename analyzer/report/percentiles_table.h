// The per-phase percentile rows that `reuse` and `why` print for an endpoint (SPEC §5).
#pragma once

#include <cstdio>
#include <string>

#include "analyzer/model/percentiles.h"

namespace httptrace::analyzer {

// "phase  count  p50  p90  p99  max" and one row per phase that has samples, each line started
// with indent. Nothing when no phase has a sample.
void print_phase_percentiles(std::FILE* out, const PhaseHistograms& h, const std::string& indent);

}  // namespace httptrace::analyzer
