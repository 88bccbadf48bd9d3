// Interposed process functions (fork, _Fork, clone, exec*, posix_spawn) and the library's
// constructor. The fork child's side lives in lifecycle.cpp (a pthread_atfork handler, so forks
// we do not see as calls to fork() are covered too); vfork gets only a stub that jumps on
// (hooks/vfork.cpp).
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>

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
// glibc calls ELF constructors with (argc, argv, envp).
__attribute__((constructor)) void httptrace_load(int argc, char** argv, char**) {
  ErrnoSaver keep;
  libc::resolve_all();
  set_sigbus_real_sigaction(libc::real_sigaction());
  note_program_args(argc, argv);
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

// glibc's _Fork() (2.34+, async-signal-safe) runs no atfork handlers: a child that kept its
// parent's writer would write into the parent's file. Ours are called here, only if the
// recorder registered them.
HT_EXPORT pid_t _Fork() noexcept {
  auto real = real__Fork();
  if (real == nullptr) return no_such_function();
  const bool handlers = recorder_state() == RecorderState::kRecording;
  const uint64_t t0 = now_ns();
  if (handlers) on_fork_prepare();
  const pid_t pid = real();
  if (handlers) {
    ErrnoSaver keep;
    if (pid == 0) {
      on_fork_child();
    } else {
      on_fork_parent_done();
      if (pid > 0) on_fork_parent(pid, t0);
    }
  }
  return pid;
}

namespace {

struct CloneStart {
  int (*fn)(void*);
  void* arg;
};

// The clone child's first code: it is a copy of the process, so it needs what a fork child gets.
int clone_child_start(void* start) {
  const CloneStart s = *static_cast<const CloneStart*>(start);
  {
    ErrnoSaver keep;
    on_fork_child();
  }
  return s.fn(s.arg);
}

}  // namespace

// glibc's clone() runs no atfork handlers either. Without CLONE_VM the child is a copy of the
// process, as after fork: ours run around the call and first thing in the child (the child's
// function is started through clone_child_start; the CloneStart it reads is in its own copy of
// this frame). With CLONE_VM and without CLONE_THREAD the child runs in our memory under another
// pid, like a vfork child: note_vfork() makes the hooks check who calls. A thread made with
// CLONE_THREAD is the process's own and goes through unchanged.
HT_EXPORT int clone(int (*fn)(void*), void* stack, int flags, void* arg, ...) noexcept {
  // The optional arguments, read whether passed or not (glibc's clone reads them the same way;
  // the kernel uses each only under its flag).
  va_list ap;
  va_start(ap, arg);
  pid_t* parent_tid = va_arg(ap, pid_t*);
  void* tls = va_arg(ap, void*);
  pid_t* child_tid = va_arg(ap, pid_t*);
  va_end(ap);
  auto real = real_clone();
  if (real == nullptr) return no_such_function();
  if ((flags & CLONE_VM) != 0 || fn == nullptr || recorder_state() != RecorderState::kRecording) {
    if ((flags & (CLONE_VM | CLONE_THREAD)) == CLONE_VM) note_vfork();
    return real(fn, stack, flags, arg, parent_tid, tls, child_tid);
  }
  const uint64_t t0 = now_ns();
  CloneStart start{fn, arg};
  on_fork_prepare();
  const int pid = real(clone_child_start, stack, flags, &start, parent_tid, tls, child_tid);
  ErrnoSaver keep;
  on_fork_parent_done();
  if (pid > 0) on_fork_parent(pid, t0);
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
  // The spawn child resets handled signals before its exec: an ignored SIGBUS must reach the
  // new image ignored, as untraced (our guard is off for the length of the call then).
  sigbus_before_exec();
  const int rc = real(&child, file, acts, attr, argv, env);
  sigbus_after_failed_exec();
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

// system() and popen() start /bin/sh through glibc's internal posix_spawn with environ as it is
// now: a program that took LD_PRELOAD out of its environment (unsetenv, clearenv, or simply
// a child we started with an environment of its own, from which the exec hook hid our
// variables again) would start them untraced, unlike its execv()/execvp() children. Unless
// HTTPTRACE_FOLLOW=0, they get the merged environment too. Nothing changes when environ
// already carries everything: the real function runs untouched.
namespace {
pthread_mutex_t g_system_lock = PTHREAD_MUTEX_INITIALIZER;
int g_system_users = 0;
struct sigaction g_system_intr, g_system_quit;

// The last system() running gives SIGINT and SIGQUIT back their actions.
void system_release_signals(int (*act)(int, const struct sigaction*, struct sigaction*)) {
  pthread_mutex_lock(&g_system_lock);
  if (--g_system_users == 0) {
    act(SIGINT, &g_system_intr, nullptr);
    act(SIGQUIT, &g_system_quit, nullptr);
  }
  pthread_mutex_unlock(&g_system_lock);
}

// system() is a cancellation point (in waitpid). A thread cancelled there leaves, as glibc's own
// system() does, no shell running and no signal left ignored: the shell is killed and reaped.
struct SystemCall {
  pid_t pid;
  int (*act)(int, const struct sigaction*, struct sigaction*);
};
void system_cancelled(void* arg) {
  const auto* call = static_cast<const SystemCall*>(arg);
  kill(call->pid, SIGKILL);
  int status;
  while (waitpid(call->pid, &status, 0) < 0 && errno == EINTR) {}  // cancellation is off by now
  system_release_signals(call->act);
}

// glibc's do_system(), with our environment: SIGINT and SIGQUIT ignored while any system()
// runs (counted across threads), SIGCHLD blocked, the child given the caller's mask and the
// default action for what the caller did not ignore; failure to run the shell is exit 127.
int system_merged(const char* line, char* const* env) {
  auto spawn = real_posix_spawn();
  auto act = real_sigaction();
  if (spawn == nullptr || act == nullptr) return no_such_function();
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  pthread_mutex_lock(&g_system_lock);
  if (g_system_users++ == 0) {
    act(SIGINT, &ign, &g_system_intr);
    act(SIGQUIT, &ign, &g_system_quit);
  }
  pthread_mutex_unlock(&g_system_lock);
  sigset_t block, omask, reset;
  sigemptyset(&block);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &omask);
  sigemptyset(&reset);
  if (g_system_intr.sa_handler != SIG_IGN) sigaddset(&reset, SIGINT);
  if (g_system_quit.sa_handler != SIG_IGN) sigaddset(&reset, SIGQUIT);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &omask);
  posix_spawnattr_setsigdefault(&attr, &reset);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>("--"),
                  const_cast<char*>(line), nullptr};
  pid_t pid = 0;
  sigbus_before_exec();  // as in spawn_traced: an ignored SIGBUS reaches the shell ignored
  const int ret = spawn(&pid, "/bin/sh", nullptr, &attr, argv, env);
  sigbus_after_failed_exec();
  posix_spawnattr_destroy(&attr);
  int status = 0;
  if (ret == 0) {
    SystemCall call{pid, act};
    pthread_cleanup_push(system_cancelled, &call);
    pid_t r;
    do {
      r = waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r != pid) status = -1;
    pthread_cleanup_pop(0);
  } else {
    status = W_EXITCODE(127, 0);
  }
  system_release_signals(act);
  sigprocmask(SIG_SETMASK, &omask, nullptr);
  if (ret != 0) errno = ret;
  return status;
}
}  // namespace

HT_EXPORT int system(const char* line) noexcept {
  auto real = real_system();
  if (real == nullptr) return no_such_function();
  const size_t n = env_count(environ);
  if (line == nullptr || n > kMergedEnvMax) return real(line);
  char* merged[n + kSavedVarsMax + 3];
  char preload[kPreloadMax];
  char added[kAddedMax];
  char* const* env = merge_env(environ, nullptr, merged, preload, added);
  // glibc's own system() would hand the shell our guard, which exec resets to the default
  // action: when the program ignores SIGBUS, ours runs, so that only its spawn is bracketed.
  if (env == environ && !sigbus_exec_needs_care()) return real(line);
  return system_merged(line, env);
}

// popen() cannot be rebuilt outside glibc (pclose() needs its private FILE): environ itself
// points at the merged array for the length of the call (the shell is spawned before it
// returns), then is put back unless the program replaced it meanwhile.
HT_EXPORT FILE* popen(const char* command, const char* mode) noexcept {
  auto real = real_popen();
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  const size_t n = env_count(environ);
  // The shell is spawned before popen() returns: the SIGBUS bracket spans only that.
  sigbus_before_exec();
  FILE* f = nullptr;
  char** const saved = environ;
  char* merged[n <= kMergedEnvMax ? n + kSavedVarsMax + 3 : 1];
  char preload[kPreloadMax];
  char added[kAddedMax];
  char* const* env = n <= kMergedEnvMax ? merge_env(saved, nullptr, merged, preload, added) : saved;
  if (env == saved) {
    f = real(command, mode);
  } else {
    environ = const_cast<char**>(env);
    f = real(command, mode);
    if (environ == env) environ = saved;
  }
  ErrnoSaver keep;
  sigbus_after_failed_exec();
  return f;
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
