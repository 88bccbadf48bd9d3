// The environment, read once at start-up (HTTPTRACE_* variables, SPEC.md section 3).
#pragma once

#include <cstddef>
#include <cstdint>

namespace httptrace {

inline constexpr uint64_t kDefaultMaxMb = 1024;
inline constexpr uint64_t kLargestMaxMb = 1ull << 20;  // 1 TiB: beyond that it is a typo
inline constexpr char kDefaultOutput[] = "httptrace.%p.trace";

// HTTPTRACE_MAX_MB: nullptr/empty -> default. Anything but a plain decimal number in
// [1, kLargestMaxMb] -> default with *invalid set, so the caller can warn once.
uint64_t parse_max_mb(const char* text, bool* invalid);

// Expands a HTTPTRACE_OUTPUT template: each "%p" becomes pid. A template without "%p" gets
// ".<pid>" appended when append_pid_if_absent (forked children, so they never collide with the
// parent's file). False when the result does not fit in out_cap.
bool expand_output_path(const char* tmpl, int pid, bool append_pid_if_absent, char* out,
                        size_t out_cap);

// True when the variable is set to exactly "1".
bool env_flag(const char* value);

}  // namespace httptrace
