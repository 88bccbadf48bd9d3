// libFuzzer target: the trace reader alone. Every byte of every event handed out is read (so
// AddressSanitizer sees any event that is not wholly inside its buffer), twice: start() again
// must give the same stream.
#include <cstdint>
#include <cstdlib>

#include "analyzer/read/trace_reader.h"
#include "tests/fuzz/fuzz_input.h"

using namespace httptrace::analyzer;

namespace {

uint64_t digest(TraceSet& ts, uint64_t& events) {
  uint64_t h = 1469598103934665603ull;
  Event ev;
  events = 0;
  ts.start();
  while (ts.next(ev)) {
    const auto* p = reinterpret_cast<const uint8_t*>(ev.h);
    for (uint16_t i = 0; i < ev.h->size; ++i) h = (h ^ p[i]) * 1099511628211ull;
    h ^= ev.order_ns + ev.thread_uid + uint64_t(ev.tid) + event_kind_name(ev.h->kind).size();
    if (event_min_size(ev.h->kind) > ev.h->size) std::abort();
    ++events;
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = httptrace::fuzz::as_trace_file(data, size);
  TraceSet ts;
  OpenError err;
  if (!ts.add(path, err)) return 0;
  uint64_t n1 = 0, n2 = 0;
  const uint64_t a = digest(ts, n1), b = digest(ts, n2);
  if (a != b || n1 != n2) std::abort();  // a restarted stream is the same stream
  uint64_t t0;
  uint32_t file;
  if (n1 && !ts.earliest(t0, file)) std::abort();
  return 0;
}
