// Test helpers for the interpose unit tests: a scratch directory and a minimal reader of a trace
// file written by TraceWriter (independent of analyzer/, so a writer bug cannot hide behind a
// matching reader bug).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/trace_format.h"

namespace httptrace::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/httptrace-unit-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { [[maybe_unused]] int rc = system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// One read, not a byte at a time: the test objects are built at -O0.
inline std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::vector<uint8_t> d(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(d.data()), static_cast<std::streamsize>(d.size()));
  d.resize(static_cast<size_t>(in.gcount()));
  return d;
}

struct SegmentView {
  format::SegmentHeader header;
  std::vector<std::vector<uint8_t>> events;  // each event's bytes, header included
};

struct TraceView {
  format::FileHeader header;
  std::vector<SegmentView> segments;  // started segments only, in file order
  size_t file_size = 0;
};

// Parses the file; fails the current test (and returns what it has) on a malformed event.
inline TraceView parse_trace(const std::string& path) {
  TraceView v;
  const std::vector<uint8_t> d = read_all(path);
  v.file_size = d.size();
  if (d.size() < format::kHeaderSize) {
    ADD_FAILURE() << path << ": shorter than the header";
    return v;
  }
  memcpy(&v.header, d.data(), sizeof(v.header));
  for (uint64_t s = 0; s < v.header.segments_claimed; ++s) {
    const size_t off = format::kHeaderSize + s * format::kSegmentSize;
    if (off + format::kSegmentSize > d.size()) break;
    SegmentView seg;
    memcpy(&seg.header, d.data() + off, sizeof(seg.header));
    if (seg.header.magic != format::kSegmentMagic) continue;
    size_t pos = 0;
    const uint8_t* payload = d.data() + off + sizeof(format::SegmentHeader);
    while (pos < seg.header.committed) {
      format::EventHeader eh;
      memcpy(&eh, payload + pos, sizeof(eh));
      if (eh.size < sizeof(eh) || eh.size % 8 != 0 || pos + eh.size > seg.header.committed) {
        ADD_FAILURE() << "bad event at segment " << s << " offset " << pos;
        break;
      }
      seg.events.emplace_back(payload + pos, payload + pos + eh.size);
      pos += eh.size;
    }
    v.segments.push_back(std::move(seg));
  }
  return v;
}

template <typename T>
T as(const std::vector<uint8_t>& bytes) {
  T t;
  EXPECT_GE(bytes.size(), sizeof(T));
  memcpy(&t, bytes.data(), sizeof(T));
  return t;
}

}  // namespace httptrace::testing
