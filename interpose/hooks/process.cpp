// Interposed process functions (fork, exec*) and the library's constructor. The fork child's
// side lives in lifecycle.cpp (a pthread_atfork handler, so forks we do not see as calls to
// fork() are covered too); vfork gets only a stub that jumps on (hooks/vfork.cpp).
#include <unistd.h>

#include <cerrno>
#include <cstdarg>

#include "interpose/record/events.h"
#include "interpose/hooks/libc_symbols.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"

using namespace httptrace;
using namespace httptrace::libc;

namespace {

// Resolve the table before anything else in this library runs, then start recording.
__attribute__((constructor)) void httptrace_load() {
  ErrnoSaver keep;
  libc::resolve_all();
  start_recorder();
}

int no_such_function() {
  errno = ENOSYS;
  return -1;
}

void note_exec(const char* path) {
  ErrnoSaver keep;
  on_exec(path, now_ns());
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
  note_exec(path);
  return real(path, argv, envp);
}

HT_EXPORT int execv(const char* path, char* const argv[]) noexcept {
  auto real = real_execv();
  if (real == nullptr) return no_such_function();
  note_exec(path);
  return real(path, argv);
}

HT_EXPORT int execvp(const char* file, char* const argv[]) noexcept {
  auto real = real_execvp();
  if (real == nullptr) return no_such_function();
  note_exec(file);
  return real(file, argv);
}

HT_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  auto real = real_execvpe();
  if (real == nullptr) return no_such_function();
  note_exec(file);
  return real(file, argv, envp);
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
