// `httptrace export --format otlp [-o FILE | --endpoint URL] TRACE...`: SPEC §9.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

// endpoint "" with no out_path: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
// $OTEL_EXPORTER_OTLP_ENDPOINT, else OTLP/JSON to stdout. Returns the exit status.
int export_otlp(const std::vector<std::string>& trace_args, const std::string& out_path,
                const std::string& endpoint);

// OTLP/JSON of already-opened traces to out, streamed per connection; false if writing failed.
bool write_otlp_json(TraceSet& traces, std::FILE* out);

}  // namespace httptrace::analyzer
