// The SIGBUS guard (issue 7 item 13): a trace file truncated under us (logrotate copytruncate)
// faults our next write into its mapping; our handler swaps the mapping for anonymous memory so
// the program goes on. The handler is invisible to the program: once it is installed, the
// sigaction()/signal() hooks (hooks/signals.cpp) keep the program's own SIGBUS action in a shadow
// here, report that shadow to queries, and the handler chains to it for every fault that is not
// ours (the program's handler is called with the mask and flags it asked for; SIG_DFL and SIG_IGN
// behave as they would untraced).
#pragma once

#include <signal.h>

#include <cstddef>

namespace httptrace {

class TraceWriter;

// libc's sigaction, from the hook table (the constructor): no dlsym at file creation, inside
// the program's first network call. Without it, install looks it up itself.
void set_sigbus_real_sigaction(int (*real)(int, const struct sigaction*, struct sigaction*));

// Installs the handler over whatever the program has (kept as its action) and guards w's
// mapping. Idempotent: a fork child's new file only changes the writer guarded.
void install_sigbus_guard(TraceWriter* w);
bool sigbus_guard_installed();
// One more shared file mapping of ours that a truncation may fault (a fork child's view of its
// parent's header page, lifecycle.cpp); nullptr: none. Guarded only while the guard is installed.
void guard_extra_mapping(void* addr, size_t len);

// sigaction(SIGBUS, act, old) as the program sees it, once the guard is installed.
int sigbus_program_action(const struct sigaction* act, struct sigaction* old);

// exec keeps an ignored signal ignored but resets a handled one: a program that ignores SIGBUS
// must pass SIG_IGN to its new image, as it would untraced. Stack and syscalls only (vfork child).
// Also around posix_spawn (after_failed_exec then puts the guard back whatever the outcome).
void sigbus_before_exec();
void sigbus_after_failed_exec();
// Whether the two above have anything to do (the guard is in and the program ignores SIGBUS).
bool sigbus_exec_needs_care();

}  // namespace httptrace
