// Process life-cycle of the recorder, in one place:
//
//   load      constructor in hooks/process.cpp (or the first hook, whichever runs first) reads
//             HTTPTRACE_*, notes which file fd 2 is (diagnostics go there only while it still
//             is), and makes room in the descriptor table for our descriptor while the process
//             is single-threaded (growing it later waits for an RCU grace period). Unless
//             disabled or AT_SECURE, the trace file is created and mapped at the first network
//             event (TraceSink::emit -> open_trace_file), so processes that never touch the
//             network leave no file.
//   threads   nothing to do here: a thread claims its first segment at its first event; at exit
//             the writer hands the rest of its segment to the next thread that needs one.
//   fork      pthread_atfork child handler (called by the _Fork hook too): unmap the parent's file, restart conn/lookup
//             numbering, give every inherited tracked socket a new id (listening ones are not
//             connections: untracked). The child's file is created only at its first network
//             event, which may be the first use of an inherited socket; its InheritEvents are
//             written first then. A child that only closes what it inherited and execs leaves
//             no file. The parent records a ForkEvent (fork hook).
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

// The program's arguments as our constructor got them; read by start_recorder() instead of
// /proc/self/cmdline (which it falls back to when a hook started it before the constructor).
void note_program_args(int argc, char** argv);
// Starts the recorder if nobody has; returns the state afterwards.
RecorderState start_recorder();
RecorderState recorder_state();

// What the recorder writes to: the process's TraceWriter, created on first need. The writer
// knows nothing of this (the dependency goes one way): emit() here creates the file at the first
// event about the network. Events that are only about what exists already (a close, a dup, a
// fork or exec, a TLS close) never create it.
class TraceSink {
 public:
  // constexpr: the sink must be usable before any static initialiser has run (a hook called
  // from another library's constructor, or our own constructor in hooks/process.cpp).
  constexpr explicit TraceSink(TraceWriter& w) : w_(w) {}
  // An InheritEvent (fork or exec) before the file exists is kept for when it is created.
  bool emit(const void* head, size_t head_len, const void* tail = nullptr, size_t tail_len = 0) {
    if (!w_.active()) {
      if (deferred(head, head_len)) return true;
      if (!open_for(head)) return false;
    }
    return w_.emit(head, head_len, tail, tail_len);
  }
  bool active() const { return w_.active(); }
  const char* path() const { return w_.path(); }
  int fd() const { return w_.fd(); }
  void note_fd_gone(int fd) { w_.note_fd_gone(fd); }
  uint64_t dropped() const { return w_.dropped(); }
  uint64_t dropped(format::DropCause cause) const { return w_.dropped(cause); }
  format::FileHeader* header() const { return w_.header(); }
  TraceWriter& writer() { return w_; }

 private:
  static bool open_for(const void* head);
  static bool deferred(const void* head, size_t head_len);
  TraceWriter& w_;
};

TraceSink& trace_writer();
// Creates this process's trace file if nobody has yet (concurrent callers wait, boundedly, for
// the one creating it). True when the file is open.
bool open_trace_file();
// An inherited connection (a fork child's, or a socket kept across exec: kind kInherit or
// kExecInherit) is announced when the file is created, at the process's first network event, so
// a process that never uses what it inherited leaves no file. Emits at once if the file exists.
// Call it single-threaded (load, fork child).
void defer_inherit(format::EventKind kind, int fd, uint32_t conn, uint32_t parent_conn,
                   uint64_t ts);
int recorder_pid();
bool stacks_enabled();

// Our atfork handlers (registered by the recorder's start-up), for the one fork that runs none:
// glibc's _Fork(), whose hook calls them itself.
void on_fork_prepare();
void on_fork_parent_done();
void on_fork_child();

// True in a vfork child (or anything else sharing our memory under another pid). A getpid()
// syscall, but only once the process has called vfork or clone(CLONE_VM) without CLONE_THREAD
// (note_vfork): until then no foreign process can exist in our memory, except one made by a raw
// clone system call, which we cannot see and which is not checked.
bool foreign_process();
void note_vfork();

// Per-process counters (restart at 1 in a fork child).
uint32_t next_conn_id();
uint32_t next_lookup_id();

}  // namespace httptrace
