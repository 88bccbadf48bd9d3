// The usage text, shared by main and every command's argument errors.
#include <fmt/format.h>

#include "analyzer/commands.h"

namespace httptrace::analyzer {

const char* const kProgramVersion = "0.2.0";

const char* const kUsage =
    "usage:\n"
    "  httptrace run [-o DIR] [--stacks] [--export FORMAT -o FILE]... [--report FILE.html] [--] CMD [ARGS...]\n"
    "                                                           trace CMD (and its children), print timeline + reuse report,\n"
    "                                                           then write the exports and the HTML report asked for\n"
    "  httptrace timeline [--color=auto|always|never] TRACE...  per-connection waterfall: phases, requests, reuse, idle time\n"
    "  httptrace reuse TRACE...                                 connection reuse per (host, port)\n"
    "  httptrace export --format FORMAT [-o FILE] TRACE...      json (our own), har (HAR 1.2: DevTools),\n"
    "                                                           chrome (Trace Event JSON: Perfetto, chrome://tracing)\n"
    "  httptrace export --format otlp [-o FILE | --endpoint URL] TRACE...  OpenTelemetry spans: OTLP/JSON, or pushed over OTLP/HTTP\n"
    "  httptrace report [-o FILE.html] TRACE...                 one self-contained HTML page (default httptrace-report.html,\n"
    "                                                           - for stdout): waterfall, reuse, why-new, stale reuse, processes\n"
    "  httptrace sites TRACE...                                 call sites that opened connections (HTTPTRACE_STACKS=1 traces)\n"
    "  httptrace why TRACE...                                   why each new connection was opened, stale reuse, churn, percentiles\n"
    "  httptrace dump TRACE...                                  raw events, one per line\n"
    "  httptrace --version                                      program and trace format versions\n"
    "TRACE is a trace file or a directory of them. Exit status: 0 ok, 1 unreadable trace, 2 usage error;\n"
    "run exits with CMD's status (128+N if killed by signal N, 126 if CMD is not executable, 127 if not found).\n";

int usage_error(const std::string& message) {
  if (!message.empty()) fmt::print(stderr, "httptrace: {}\n", message);
  fmt::print(stderr, "{}", kUsage);
  return 2;
}

}  // namespace httptrace::analyzer
