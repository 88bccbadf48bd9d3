// httptrace CLI: dispatches to one command per file (analyzer/run.cpp, analyzer/report/*.cpp, ...).
#include <string>

#include <fmt/format.h>

#include "analyzer/commands.h"
#include "analyzer/report/printable.h"
#include "common/trace_format.h"

int main(int argc, char** argv) {
  using namespace httptrace::analyzer;
  if (argc < 2) return usage_error("");
  const std::string cmd = argv[1];
  const Args args(argv + 2, argv + argc);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    fmt::print("{}", kUsage);
    return 0;
  }
  if (cmd == "--version" || cmd == "-V" || cmd == "version") {
    fmt::print("httptrace {}\ntrace format version {}\n", kProgramVersion, httptrace::format::kVersion);
    return 0;
  }
  if (cmd == "run") return cmd_run(args);
  if (cmd == "timeline") return cmd_timeline(args);
  if (cmd == "reuse") return cmd_reuse(args);
  if (cmd == "export") return cmd_export(args);
  if (cmd == "dump") return cmd_dump(args);
  if (cmd == "report") return cmd_report(args);
  if (cmd == "sites") return cmd_sites(args);
  if (cmd == "why") return cmd_why(args);
  return usage_error(fmt::format("unknown command '{}'", printable(cmd)));
}
