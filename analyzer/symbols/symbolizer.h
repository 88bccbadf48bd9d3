// Offline symbolization of recorded stacks (HTTPTRACE_STACKS=1): return address -> the loaded
// object it lay in (the file's ModuleEvents: ASLR undone with the recorded bias) -> function,
// source file:line and the calls inlined there, with elfutils' libdwfl/libdw; without DWARF, the
// ELF symbol table (or the dynamic one). Separate debug files are found the standard way
// (.gnu_debuglink, /usr/lib/debug/.build-id/), and through debuginfod only when the user set
// DEBUGINFOD_URLS (elfutils' own rule).
//
// A file whose build-id differs from the one recorded is not trusted: its frames say so
// ("problem") and name nothing, rather than the functions of another build.
//
// Trace data is untrusted: only absolute paths of regular files are opened (never a FIFO or a
// device named by a trace), and work is bounded: kMaxFrames per stack, kMaxObjects files opened,
// kMaxLookups address look-ups per Symbolizer, results cached per (object, address).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/model/model.h"
#include "analyzer/read/trace_reader.h"

namespace httptrace::analyzer {

struct Frame {
  std::string function;  // demangled; "" when unknown
  std::string file;      // source file as the debug info names it; "" when unknown
  uint32_t line = 0;     // 0 when unknown
  uint32_t column = 0;   // 0 when unknown
  std::string object;    // path of the loaded object; "" when the address was in none recorded
  uint64_t address = 0;  // the recorded return address
  uint64_t offset = 0;   // address in the object's own terms (file vaddr), as addr2line takes it
  bool inlined = false;  // a call inlined into the next frame (same address)
  std::string problem;   // why function/file are missing, when known: "build-id differs ..."
};

class Symbolizer {
 public:
  static constexpr size_t kMaxFrames = 64;
  static constexpr size_t kMaxObjects = 512;
  static constexpr uint64_t kMaxLookups = 1u << 20;

  explicit Symbolizer(const TraceSet& traces);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // c.stack resolved, innermost first, without the recorder's own frames on top (libhttptrace:
  // the unwinder, the connect wrapper); empty when it has none. Uses the modules the stream has
  // reached (TraceSet::modules), so call it once the connection is complete.
  std::vector<Frame> frames(const Connection& c);
  // pcs recorded by process pid at (about) time ts.
  std::vector<Frame> frames(int32_t pid, const std::vector<uint64_t>& pcs, uint64_t ts);

 private:
  struct Object;
  struct FileIndex;
  const Module* find_module(uint32_t file, uint64_t pc, uint64_t ts);
  uint32_t pick_file(int32_t pid, const std::vector<uint64_t>& pcs, uint64_t ts);
  Object& object_for(const Module& m);
  const std::vector<Frame>& resolve(Object& o, uint64_t offset);

  const TraceSet& traces_;
  std::vector<std::unique_ptr<FileIndex>> index_;  // per file
  std::unordered_map<int32_t, std::vector<uint32_t>> files_of_pid_;
  std::unordered_map<std::string, std::unique_ptr<Object>> objects_;  // by path + build-id
  uint64_t lookups_ = 0;
};

// True for a frame of the C library, the loader, libhttptrace itself, a TLS or HTTP library
// (libssl, libcrypto, GnuTLS, libcurl, nghttp2, ...): code that opens connections on someone's
// behalf, not the call site a user is after.
bool library_frame(const Frame& f);

// The first frame outside those libraries (`httptrace sites` groups by it); nullptr if none.
const Frame* call_site(const std::vector<Frame>& frames);

std::string_view base_name(std::string_view path);

}  // namespace httptrace::analyzer
