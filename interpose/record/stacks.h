// HTTPTRACE_STACKS=1: the call stack behind a lookup or a connect, as a StackEvent right after it.
#pragma once

#include <cstdint>

namespace httptrace {

// Appends a StackEvent (return addresses, innermost first) when stacks are enabled; the caller
// holds the ReentryGuard. Off by default: unwinding costs microseconds.
void record_stack(uint64_t ts, uint32_t conn);

// dlopen()s libunwind for record_stack; at start-up, only when HTTPTRACE_STACKS=1. False when
// it cannot be loaded (then no stacks are recorded).
bool load_unwinder();

}  // namespace httptrace
