// Shared helpers for analyzer tests: a temporary directory, and running builder traces through
// the reader and the model.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "analyzer/model/model.h"
#include "analyzer/read/trace_reader.h"
#include "tests/support/trace_builder.h"

namespace httptrace::testing {

using namespace httptrace::analyzer;

class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "httptrace-test.XXXXXX").string();
    if (!mkdtemp(t.data())) ADD_FAILURE() << "mkdtemp failed";
    path_ = t;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Collected : ConnectionSink {
  void on_connection(const Connection& c) override { conns.push_back(c); }
  std::vector<Connection> conns;
  const Connection* by_conn(uint32_t conn) const {
    for (const auto& c : conns)
      if (c.conn == conn) return &c;
    return nullptr;
  }
};

// Writes each builder to its own file in dir and opens them all.
inline bool open_built(TraceSet& ts, const TempDir& dir, const std::vector<const TraceBuilder*>& builders) {
  for (size_t i = 0; i < builders.size(); ++i) {
    std::string path = dir.file("t" + std::to_string(i) + ".trace");
    if (!TraceBuilder::write_file(path, builders[i]->bytes())) return false;
    OpenError err;
    if (!ts.add(path, err)) {
      ADD_FAILURE() << err.message;
      return false;
    }
  }
  ts.start();
  return true;
}

// Runs the model over the builders' traces; returns the completed connections.
inline Collected model_of(const std::vector<const TraceBuilder*>& builders, std::vector<DnsLookup>* dns = nullptr) {
  TempDir dir;
  TraceSet ts;
  Collected out;
  if (!open_built(ts, dir, builders)) return out;
  Model m(ts, out);
  Event ev;
  while (ts.next(ev)) m.on_event(ev);
  m.finish();
  if (dns) *dns = m.dns();
  EXPECT_TRUE(ts.warnings().empty()) << ts.warnings().front();
  return out;
}

// Captures what a report function writes to a FILE*.
template <class F> std::string capture_output(F&& write) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  write(f);
  std::fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

}  // namespace httptrace::testing
