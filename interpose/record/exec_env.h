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
// Room an exec hook reserves on its stack.
inline constexpr size_t kExecFdsMax = 1024;         // the HTTPTRACE_EXEC_FDS=... entry
inline constexpr size_t kPreloadMax = 8192;         // a merged LD_PRELOAD=... entry
inline constexpr size_t kMergedEnvMax = 16384;      // entries; a larger environment is left as is
inline constexpr size_t kSavedVarsMax = 32;         // LD_PRELOAD and HTTPTRACE_* kept from start-up

// At load, before the program can change its environment: keeps copies of LD_PRELOAD and every
// HTTPTRACE_* variable, reads HTTPTRACE_FOLLOW, and takes HTTPTRACE_EXEC_FDS out of environ
// (the program never sees it). Not thread-safe: the constructor calls it.
void save_trace_env();

// The sockets the previous image (same pid) handed over, parsed by save_trace_env(): calls
// adopt(fd, parent_conn) for each. Nothing when there were none or the pid differs.
void for_each_exec_fd(void (*adopt)(int fd, unsigned parent_conn));

// Number of entries in envp (nullptr: none), bounded by kMergedEnvMax + 1.
size_t env_count(char* const* envp);

// Fills out (room for env_count(envp) + kSavedVarsMax + 2 entries) with envp plus, unless
// HTTPTRACE_FOLLOW=0, the saved variables it lacks; an LD_PRELOAD without our library gets it in
// front (the combined entry is written to preload_buf, kPreloadMax bytes). fds_entry (an
// "HTTPTRACE_EXEC_FDS=..." string or nullptr) is added when the result preloads us. Returns out,
// or envp itself when nothing needs adding.
char* const* merge_env(char* const* envp, const char* fds_entry, char** out, char* preload_buf);

}  // namespace httptrace
