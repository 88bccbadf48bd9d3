// Timestamps. clock_gettime goes through the vDSO: no syscall on the hot path.
#pragma once

#include <time.h>

#include <cstdint>

namespace httptrace {

inline uint64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline uint64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }

}  // namespace httptrace
