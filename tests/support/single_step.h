// Single-stepping a piece of our own code: with the x86 trap flag set, the CPU raises SIGTRAP
// after every instruction, so a SIGTRAP handler runs at each point of the code in between, as
// a signal could. The kernel clears the flag while the handler runs and puts it back at
// sigreturn. x86-64 only; elsewhere kSingleStep is false and both functions do nothing.
#pragma once

#include <cstdint>

namespace httptrace::testing {

#if defined(__x86_64__)
inline constexpr bool kSingleStep = true;
inline constexpr uint64_t kTrapFlag = 0x100;

// Below the red zone, so the pushf cannot clobber what the compiler keeps there.
[[gnu::always_inline]] inline void step_on() {
  asm volatile("sub $128, %%rsp\n\tpushfq\n\torq $0x100, (%%rsp)\n\tpopfq\n\tadd $128, %%rsp" ::
                   : "memory", "cc");
}
[[gnu::always_inline]] inline void step_off() {
  asm volatile("sub $128, %%rsp\n\tpushfq\n\tandq $-257, (%%rsp)\n\tpopfq\n\tadd $128, %%rsp" ::
                   : "memory", "cc");
}
#else
inline constexpr bool kSingleStep = false;
inline void step_on() {}
inline void step_off() {}
#endif

}  // namespace httptrace::testing
