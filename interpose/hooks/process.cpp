// Interposed process functions (fork, exec*) and the library's constructor. The fork child's
// side lives in lifecycle.cpp (a pthread_atfork handler, so forks we do not see as calls to
// fork() are covered too); vfork gets only a stub that jumps on (hooks/vfork.cpp).
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>

#include "interpose/record/events.h"
#include "interpose/record/exec_env.h"
#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"
#include "interpose/record/sigbus_guard.h"

using namespace httptrace;
using namespace httptrace::libc;

namespace {

// Resolve the table before anything else in this library runs, then start recording.
__attribute__((constructor)) void httptrace_load() {
  ErrnoSaver keep;
  libc::resolve_all();
  save_trace_env();  // before the program can touch its environment
  start_recorder();
  hide_added_env();  // after the recorder has read HTTPTRACE_*: the program sees its own env
  // Sockets the previous image of this process had tracked and kept across exec.
  for_each_exec_fd(on_exec_inherit);
}

int no_such_function() {
  errno = ENOSYS;
  return -1;
}

// Every exec: record it (and the sockets it closes or keeps), then run the real call with the
// environment merged (exec_env.h). Stack only: this may run in a vfork child.
template <typename Exec>
int exec_traced(const char* path, char* const* envp, Exec&& exec) {
  ExecHandover h;
  const char* fds;
  {
    ErrnoSaver keep;
    fds = on_exec(path, now_ns(), h);
  }
  const size_t n = env_count(envp);
  sigbus_before_exec();
  int rc;
  if (n > kMergedEnvMax) {
    rc = exec(envp);
  } else {
    char* merged[n + kSavedVarsMax + 3];
    char preload[kPreloadMax];
    char added[kAddedMax];
    rc = exec(merge_env(envp, fds, merged, preload, added));
  }
  ErrnoSaver keep;
  sigbus_after_failed_exec();
  on_exec_failed(h);
  return rc;
}

}  // namespace

HT_EXPORT pid_t fork() noexcept {
  auto real = real_fork();
  if (real == nullptr) return no_such_function();
  const uint64_t t0 = now_ns();
  const pid_t pid = real();
  if (pid > 0) {
    ErrnoSaver keep;
    on_fork_parent(pid, t0);
  }
  return pid;
}

HT_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  auto real = real_execve();
  if (real == nullptr) return no_such_function();
  return exec_traced(path, envp, [&](char* const* env) { return real(path, argv, env); });
}

// execv and execvp take the environment from environ: they go through execve/execvpe so the
// merged environment can be passed.
HT_EXPORT int execv(const char* path, char* const argv[]) noexcept {
  auto real = real_execve();
  if (real == nullptr) return no_such_function();
  return exec_traced(path, environ, [&](char* const* env) { return real(path, argv, env); });
}

HT_EXPORT int execvp(const char* file, char* const argv[]) noexcept {
  auto real_e = real_execvpe();
  if (real_e != nullptr) {
    return exec_traced(file, environ, [&](char* const* env) { return real_e(file, argv, env); });
  }
  auto real = real_execvp();
  if (real == nullptr) return no_such_function();
  return exec_traced(file, environ, [&](char* const*) { return real(file, argv); });
}

HT_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  auto real = real_execvpe();
  if (real == nullptr) return no_such_function();
  return exec_traced(file, envp, [&](char* const* env) { return real(file, argv, env); });
}

// fexecve and execveat reach the kernel from inside glibc (no execve call we could see): their
// environment is merged here too. fexecve's image has no path; the event names its descriptor.
HT_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  auto real = real_fexecve();
  if (real == nullptr) return no_such_function();
  char path[32] = "/proc/self/fd/";
  size_t at = sizeof("/proc/self/fd/") - 1;
  char rev[12];
  size_t digits = 0;
  for (unsigned v = static_cast<unsigned>(fd); digits == 0 || v > 0; v /= 10) {
    rev[digits++] = static_cast<char>('0' + v % 10);
  }
  while (digits > 0) path[at++] = rev[--digits];
  path[at] = '\0';
  return exec_traced(path, envp, [&](char* const* env) { return real(fd, argv, env); });
}

HT_EXPORT int execveat(int dirfd, const char* path, char* const argv[], char* const envp[],
                       int flags) noexcept {
  auto real = real_execveat();
  if (real == nullptr) return no_such_function();
  return exec_traced(path, envp,
                     [&](char* const* env) { return real(dirfd, path, argv, env, flags); });
}

// posix_spawn runs the child's execve inside glibc (not through our hook): the environment is
// merged here. Inherited sockets are not handed over (the child is another process).
template <typename Real>
int spawn_traced(Real real, pid_t* pid, const char* file, const posix_spawn_file_actions_t* acts,
                 const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  if (real == nullptr) return ENOSYS;
  const uint64_t t0 = now_ns();
  const size_t n = env_count(envp);
  char* merged[n <= kMergedEnvMax ? n + kSavedVarsMax + 3 : 1];
  char preload[kPreloadMax];
  char added[kAddedMax];
  char* const* env = n <= kMergedEnvMax ? merge_env(envp, nullptr, merged, preload, added) : envp;
  pid_t child = 0;
  const int rc = real(&child, file, acts, attr, argv, env);
  if (pid != nullptr && rc == 0) *pid = child;
  if (rc == 0) {
    ErrnoSaver keep;
    on_fork_parent(child, t0, format::ForkHow::kPosixSpawn);
  }
  return rc;
}

HT_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* acts,
                          const posix_spawnattr_t* attr, char* const argv[],
                          char* const envp[]) noexcept {
  return spawn_traced(real_posix_spawn(), pid, path, acts, attr, argv, envp);
}

HT_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* acts,
                           const posix_spawnattr_t* attr, char* const argv[],
                           char* const envp[]) noexcept {
  return spawn_traced(real_posix_spawnp(), pid, file, acts, attr, argv, envp);
}

// The execl family: gather the variadic arguments into an argv on the stack (as glibc does)
// and go through the vector forms, which record the exec.
namespace {
size_t count_args(const char* first, va_list* ap) {
  if (first == nullptr) return 0;
  size_t n = 1;
  while (va_arg(*ap, const char*) != nullptr) ++n;
  return n;
}

// argv[0] = first, then the variadic arguments up to and including their terminating NULL.
void fill_argv(const char* first, va_list* ap, char** argv, size_t argc) {
  argv[0] = const_cast<char*>(first);
  for (size_t i = 1; i <= argc; ++i) argv[i] = va_arg(*ap, char*);
}
}  // namespace

HT_EXPORT int execl(const char* path, const char* arg, ...) noexcept {
  va_list ap;
  va_start(ap, arg);
  const size_t argc = count_args(arg, &ap);
  va_end(ap);
  char* argv[argc + 1];
  va_start(ap, arg);
  fill_argv(arg, &ap, argv, argc);
  va_end(ap);
  return execve(path, argv, environ);
}

HT_EXPORT int execle(const char* path, const char* arg, ...) noexcept {
  va_list ap;
  va_start(ap, arg);
  const size_t argc = count_args(arg, &ap);
  va_end(ap);
  char* argv[argc + 1];
  va_start(ap, arg);
  fill_argv(arg, &ap, argv, argc);
  char* const* envp = va_arg(ap, char* const*);  // follows the NULL that ends the arguments
  va_end(ap);
  return execve(path, argv, envp);
}

HT_EXPORT int execlp(const char* file, const char* arg, ...) noexcept {
  va_list ap;
  va_start(ap, arg);
  const size_t argc = count_args(arg, &ap);
  va_end(ap);
  char* argv[argc + 1];
  va_start(ap, arg);
  fill_argv(arg, &ap, argv, argc);
  va_end(ap);
  return execvp(file, argv);
}
