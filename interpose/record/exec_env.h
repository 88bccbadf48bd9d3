// Following the process tree through exec (SPEC §3, HTTPTRACE_FOLLOW): a program that execs or
// posix_spawn()s with an environment of its own would drop LD_PRELOAD and HTTPTRACE_* and with
// them the child's trace. As uftrace does, the variables we were started with are merged back
// into such an environment, and the tracked sockets that survive the exec are named to the new
// image (HTTPTRACE_EXEC_FDS), which adopts them before main (kExecInherit).
//
// Everything here that runs at exec time uses the caller's stack only: the caller may be a vfork
// child, which shares our memory and must not allocate or take a lock.
#pragma once

#include <cstddef>

namespace httptrace {

// The variable that hands tracked sockets to the new image: "<pid>:<fd>=<conn>,<fd>=<conn>...".
inline constexpr char kExecFdsVar[] = "HTTPTRACE_EXEC_FDS";
// What the exec hook added to the program's own environment, so that the child's constructor can
// take it out again and the child's program sees exactly the environment it was given:
// "NAME,NAME,LD_PRELOAD=<n>" (a name added whole; our n bytes and a ':' put in front of the
// program's LD_PRELOAD). The child keeps the values for its own execs.
inline constexpr char kAddedVar[] = "HTTPTRACE_ADDED";
inline constexpr size_t kAddedMax = 1024;           // the HTTPTRACE_ADDED=... entry
// Room an exec hook reserves on its stack.
inline constexpr size_t kExecFdsMax = 1024;         // the HTTPTRACE_EXEC_FDS=... entry
inline constexpr size_t kPreloadMax = 8192;         // a merged LD_PRELOAD=... entry
inline constexpr size_t kMergedEnvMax = 16384;      // entries; a larger environment is left as is
inline constexpr size_t kSavedVarsMax = 32;         // LD_PRELOAD and HTTPTRACE_* kept from start-up

// At load, before the program can change its environment: keeps copies of LD_PRELOAD and every
// HTTPTRACE_* variable, reads HTTPTRACE_FOLLOW, and takes HTTPTRACE_EXEC_FDS out of environ
// (the program never sees it). Not thread-safe: the constructor calls it.
void save_trace_env();
// After the recorder has read its configuration: removes from environ what a parent's exec hook
// added (HTTPTRACE_ADDED), restoring the program's own LD_PRELOAD. Constructor only (setenv).
void hide_added_env();

// The sockets the previous image (same pid) handed over, parsed by save_trace_env(): calls
// adopt(fd, parent_conn) for each. Nothing when there were none or the pid differs.
void for_each_exec_fd(void (*adopt)(int fd, unsigned parent_conn));

// Number of entries in envp (nullptr: none), bounded by kMergedEnvMax + 1.
size_t env_count(char* const* envp);

// Fills out (room for env_count(envp) + kSavedVarsMax + 3 entries) with envp plus, unless
// HTTPTRACE_FOLLOW=0, the saved variables it lacks; an LD_PRELOAD without our library gets it in
// front (the combined entry is written to preload_buf, kPreloadMax bytes), and what was added is
// listed in an HTTPTRACE_ADDED entry written to added_buf (kAddedMax bytes). fds_entry (an
// "HTTPTRACE_EXEC_FDS=..." string or nullptr) is added when the result preloads us. Returns out,
// or envp itself when nothing needs adding.
char* const* merge_env(char* const* envp, const char* fds_entry, char** out, char* preload_buf,
                       char* added_buf);

}  // namespace httptrace
