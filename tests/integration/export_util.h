// Running the non-JSON exporters on a traced run and handing their output to the real consumer
// checks: HAR through npm har-validator (installed once into build/npm-cache by
// scripts/npm-tools.sh), Trace Event JSON through the structural checker.
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "tests/integration/harness.h"

namespace httptrace::itest {

// An OTLP JSON Lines file (a request per line) as one request holding every line's
// resourceSpans; *lines (if given) gets the number of lines.
inline Export otlp_lines(const std::string& text, size_t* lines = nullptr) {
  Export e;
  e.doc = {{"resourceSpans", nlohmann::json::array()}};
  std::istringstream in(text);
  size_t n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    const nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded() || !request.contains("resourceSpans")) {
      e.error = "otlp export line is not a request:\n" + line.substr(0, 2000);
      return e;
    }
    for (const auto& rs : request["resourceSpans"]) e.doc["resourceSpans"].push_back(rs);
  }
  if (lines) *lines = n;
  e.ok = true;
  return e;
}

// `httptrace export --format FORMAT -o OUT TRACE`, parsed; the written file stays at out.
inline Export export_as(const std::string& format, const fs::path& trace, const fs::path& out) {
  Export e;
  RunResult r = run({paths().cli.string(), "export", "--format", format, "-o", out.string(), trace.string()});
  if (r.exit_code != 0) {
    e.error = "httptrace export --format " + format + " failed: " + r.describe();
    return e;
  }
  RunResult cat = run({"cat", out.string()});
  if (format == "otlp") return otlp_lines(cat.out);
  e.doc = nlohmann::json::parse(cat.out, nullptr, /*allow_exceptions=*/false);
  if (e.doc.is_discarded()) {
    e.error = format + " export is not JSON:\n" + cat.out.substr(0, 2000);
    return e;
  }
  e.ok = true;
  return e;
}

// The node_modules directory holding har-validator, installing it on first use; "" (with *why
// set) when npm cannot provide it.
inline std::string har_validator_modules(std::string* why) {
  static std::string dir, error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    RunOptions o;
    o.timeout = milliseconds(180000);
    RunResult r = run({(paths().root / "scripts/npm-tools.sh").string()}, o);
    if (r.exit_code == 0 && !r.out.empty()) dir = r.out.substr(0, r.out.find('\n'));
    else error = "scripts/npm-tools.sh failed: " + r.describe();
  }
  if (why) *why = error;
  return dir;
}

// har-validator's verdict on a HAR file, plus the checks DevTools' importer needs: "ok N" or
// the problems.
inline std::string validate_har(const fs::path& har) {
  std::string why;
  const std::string modules = har_validator_modules(&why);
  if (modules.empty()) return why;
  RunResult r = run({"node", (paths().root / "tests/integration/har_check.js").string(), modules, har.string()});
  if (r.exit_code != 0) return "har-validator rejected " + har.string() + ":\n" + r.out + r.err;
  return r.out.substr(0, r.out.find('\n'));
}

}  // namespace httptrace::itest
