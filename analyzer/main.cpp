// httptrace CLI: dispatches to one command per file (analyzer/cmd_*.cpp).
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "analyzer/commands.h"

namespace httptrace::analyzer {

namespace {

constexpr const char* kUsage =
    "usage:\n"
    "  httptrace run [-o DIR] [--stacks] [--] CMD [ARGS...]    trace CMD (and its children), print timeline + reuse report\n"
    "  httptrace timeline [--color=auto|always|never] TRACE...  per-connection waterfall: phases, requests, reuse, idle time\n"
    "  httptrace reuse TRACE...                                 connection reuse per (host, port)\n"
    "  httptrace export --format json [-o FILE] TRACE...        machine-readable export (SPEC section 6)\n"
    "  httptrace dump TRACE...                                  raw events, one per line\n"
    "TRACE is a trace file or a directory of them. Exit status: 0 ok, 1 unreadable trace, 2 usage error.\n";

}  // namespace

int usage_error(const std::string& message) {
  if (!message.empty()) fmt::print(stderr, "httptrace: {}\n", message);
  fmt::print(stderr, "{}", kUsage);
  return 2;
}

}  // namespace httptrace::analyzer

int main(int argc, char** argv) {
  using namespace httptrace::analyzer;
  if (argc < 2) return usage_error("");
  const std::string cmd = argv[1];
  Args args(argv + 2, argv + argc);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    fmt::print("{}", kUsage);
    return 0;
  }
  if (cmd == "run") return cmd_run(args);
  if (cmd == "timeline") return cmd_timeline(args);
  if (cmd == "reuse") return cmd_reuse(args);
  if (cmd == "export") return cmd_export(args);
  if (cmd == "dump") return cmd_dump(args);
  return usage_error(fmt::format("unknown command '{}'", cmd));
}
