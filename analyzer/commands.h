// One entry point per subcommand (one file each); args exclude the program and command names.
// Each returns the process exit status: 0 ok, 1 unreadable trace or I/O failure, 2 usage error.
#pragma once

#include <string>
#include <vector>

namespace httptrace::analyzer {

using Args = std::vector<std::string>;

int cmd_run(const Args& args);
int cmd_timeline(const Args& args);
int cmd_reuse(const Args& args);
int cmd_export(const Args& args);
int cmd_dump(const Args& args);
int cmd_report(const Args& args);
int cmd_sites(const Args& args);
int cmd_why(const Args& args);

extern const char* const kUsage;
extern const char* const kProgramVersion;
// Prints the message and the usage text to stderr; returns 2.
int usage_error(const std::string& message);

}  // namespace httptrace::analyzer
