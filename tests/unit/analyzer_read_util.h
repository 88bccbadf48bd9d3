// Reading a whole trace into copies (an Event is valid only until the next call to next()).
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "analyzer/read/trace_reader.h"

namespace httptrace::testing {

using namespace httptrace::analyzer;

// An event outlives next() only as a copy.
struct Copied {
  tf::EventHeader head;
  std::string bytes;
  int32_t pid, tid;
  uint64_t thread_uid, order_ns;
  tf::EventKind kind() const { return tf::EventKind(head.kind); }
  template <class T> T as() const {
    T t{};
    std::memcpy(&t, bytes.data(), std::min(sizeof t, bytes.size()));
    return t;
  }
};

inline std::vector<Copied> read_all(TraceSet& ts) {
  std::vector<Copied> out;
  Event ev;
  while (ts.next(ev))
    out.push_back({*ev.h, std::string(reinterpret_cast<const char*>(ev.h), ev.h->size), ev.pid, ev.tid,
                   ev.thread_uid, ev.order_ns});
  return out;
}

}  // namespace httptrace::testing
