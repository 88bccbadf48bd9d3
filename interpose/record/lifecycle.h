// Process life-cycle of the recorder, in one place:
//
//   load      constructor in hooks/process.cpp (or the first hook, whichever runs first) reads
//             HTTPTRACE_*; unless disabled or AT_SECURE, the trace file is created and mapped at
//             the first network event (open_trace_file), so processes that never touch the
//             network leave no file.
//   threads   nothing to do: a thread claims its first segment at its first event; at exit its
//             last segment simply stays as committed.
//   fork      pthread_atfork child handler: unmap the parent's file, make the child's own
//             (ppid = parent; created lazily, i.e. at once if it inherited tracked sockets), restart conn/lookup numbering, and give every inherited tracked
//             socket a new id with an InheritEvent. The parent records a ForkEvent (fork hook).
//   vfork     the child shares our memory: it must not record. Checked (getpid against the cached
//             pid) where it matters: segment claims, close/dup/exec of tracked descriptors; the
//             close/dup/exec checks only once a vfork was seen (hooks/vfork.cpp).
//   exec      an ExecEvent, then the new image loads us again and starts a new file (the same pid
//             finds its old name taken and gets ".1").
//   exit      nothing: the mapping is the page cache.
#pragma once

#include <cstdint>

#include "interpose/record/trace_writer.h"

namespace httptrace {

enum class RecorderState : int { kUnstarted = 0, kStarting = 1, kRecording = 2, kOff = 3 };

// Starts the recorder if nobody has; returns the state afterwards.
RecorderState start_recorder();
RecorderState recorder_state();

TraceWriter& trace_writer();
// Creates this process's trace file if nobody has yet (the writer calls it at the first event;
// concurrent callers wait, boundedly, for the one creating it). True when the file is open.
bool open_trace_file();
int recorder_pid();
bool stacks_enabled();

// True in a vfork child (or anything else sharing our memory under another pid). A getpid()
// syscall, but only once the process has called vfork (note_vfork): until then no foreign
// process can exist in our memory, except one made by a raw clone(CLONE_VM) system call, which
// we cannot see and which is not checked.
bool foreign_process();
void note_vfork();

// Per-process counters (restart at 1 in a fork child).
uint32_t next_conn_id();
uint32_t next_lookup_id();

}  // namespace httptrace
