#include "interpose/record/exec_env.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include "interpose/record/sys.h"

namespace httptrace {

namespace {

constexpr char kPreloadPrefix[] = "LD_PRELOAD=";
constexpr size_t kPreloadPrefixLen = sizeof(kPreloadPrefix) - 1;
constexpr char kOurPrefix[] = "HTTPTRACE_";
constexpr size_t kOurPrefixLen = sizeof(kOurPrefix) - 1;
constexpr size_t kExecFdsLen = sizeof(kExecFdsVar) - 1;

// Copies of the variables we were started with, in one static buffer (start-up only).
char g_saved_buf[16384];
const char* g_saved[kSavedVarsMax];
size_t g_nsaved = 0;
const char* g_saved_preload = nullptr;  // the value part of the saved LD_PRELOAD entry
bool g_follow = true;

constexpr size_t kAddedLen = sizeof(kAddedVar) - 1;
// The HTTPTRACE_ADDED value this process was started with (hide_added_env() reads it).
char g_added[kAddedMax];
size_t g_preload_ours = 0;  // LD_PRELOAD=<n>: our part of the inherited LD_PRELOAD, 0 if none

constexpr int kExecFdsMaxPairs = 128;
int g_exec_fd[kExecFdsMaxPairs];
unsigned g_exec_conn[kExecFdsMaxPairs];
int g_nexec = 0;

bool starts_with(const char* s, const char* prefix, size_t len) {
  return strncmp(s, prefix, len) == 0;
}

bool is_exec_fds(const char* e) {
  return starts_with(e, kExecFdsVar, kExecFdsLen) && e[kExecFdsLen] == '=';
}

bool is_added(const char* e) { return starts_with(e, kAddedVar, kAddedLen) && e[kAddedLen] == '='; }

// Appends s[0, n) to buf at *pos when it fits (cap includes the final NUL); false otherwise.
bool append(char* buf, size_t* pos, size_t cap, const char* s, size_t n) {
  if (*pos + n + 1 > cap) return false;
  memcpy(buf + *pos, s, n);
  *pos += n;
  buf[*pos] = '\0';
  return true;
}

// "NAME=..." entries with the same NAME.
bool same_name(const char* a, const char* b) {
  for (size_t i = 0;; ++i) {
    if (a[i] != b[i]) return false;
    if (a[i] == '=') return true;
    if (a[i] == '\0') return false;
  }
}

unsigned long parse_number(const char*& p) {
  unsigned long v = 0;
  for (int i = 0; i < 10 && *p >= '0' && *p <= '9'; ++i) v = v * 10 + static_cast<unsigned>(*p++ - '0');
  return v;
}

// "<pid>:<fd>=<conn>,<fd>=<conn>...": kept only when written by this very process before exec.
void parse_exec_fds(const char* value) {
  const char* p = value;
  const unsigned long pid = parse_number(p);
  if (*p != ':' || pid != static_cast<unsigned long>(sys::getpid())) return;
  ++p;
  while (*p != '\0' && g_nexec < kExecFdsMaxPairs) {
    const unsigned long fd = parse_number(p);
    if (*p != '=') return;
    ++p;
    const unsigned long conn = parse_number(p);
    if (conn == 0 || fd > 1u << 20) return;
    g_exec_fd[g_nexec] = static_cast<int>(fd);
    g_exec_conn[g_nexec] = static_cast<unsigned>(conn);
    ++g_nexec;
    if (*p != ',') return;
    ++p;
  }
}

}  // namespace

void save_trace_env() {
  g_nsaved = 0;
  g_saved_preload = nullptr;
  g_follow = true;
  g_nexec = 0;
  g_added[0] = '\0';
  g_preload_ours = 0;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!is_added(*e)) continue;
    const char* v = *e + kAddedLen + 1;
    const size_t n = strnlen(v, sizeof(g_added) - 1);
    memcpy(g_added, v, n);
    g_added[n] = '\0';
    const char* p = strstr(g_added, "LD_PRELOAD=");
    if (p != nullptr) {
      p += kPreloadPrefixLen;
      g_preload_ours = parse_number(p);
    }
  }
  size_t used = 0;
  bool had_exec_fds = false;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* s = *e;
    if (is_exec_fds(s)) {
      parse_exec_fds(s + kExecFdsLen + 1);
      had_exec_fds = true;
      continue;
    }
    if (is_added(s)) continue;
    const bool preload = starts_with(s, kPreloadPrefix, kPreloadPrefixLen);
    if (!preload && !starts_with(s, kOurPrefix, kOurPrefixLen)) continue;
    if (strcmp(s, "HTTPTRACE_FOLLOW=0") == 0) g_follow = false;
    size_t n = strlen(s);
    // An LD_PRELOAD our parent extended: only our part is ours to pass on.
    if (preload && g_preload_ours > 0 && kPreloadPrefixLen + g_preload_ours < n) {
      n = kPreloadPrefixLen + g_preload_ours;
    }
    if (g_nsaved == kSavedVarsMax || used + n + 1 > sizeof(g_saved_buf)) continue;
    memcpy(g_saved_buf + used, s, n);
    g_saved_buf[used + n] = '\0';
    g_saved[g_nsaved++] = g_saved_buf + used;
    if (preload) g_saved_preload = g_saved_buf + used + kPreloadPrefixLen;
    used += n + 1;
  }
  // The hand-over is ours: the program (and its own children) never see it.
  if (had_exec_fds) unsetenv(kExecFdsVar);
}

void hide_added_env() {
  if (g_added[0] == '\0') return;
  char name[256];
  for (const char* p = g_added; *p != '\0';) {
    const char* end = p;
    while (*end != '\0' && *end != ',') ++end;
    size_t n = static_cast<size_t>(end - p);
    const char* eq = static_cast<const char*>(memchr(p, '=', n));
    const size_t name_len = eq != nullptr ? static_cast<size_t>(eq - p) : n;
    if (name_len > 0 && name_len < sizeof(name)) {
      memcpy(name, p, name_len);
      name[name_len] = '\0';
      const char* value = getenv(name);
      if (eq != nullptr && value != nullptr && strcmp(name, "LD_PRELOAD") == 0 &&
          strlen(value) > g_preload_ours && value[g_preload_ours] == ':') {
        setenv(name, value + g_preload_ours + 1, 1);  // the program's own LD_PRELOAD again
      } else if (eq == nullptr) {
        unsetenv(name);
      }
    }
    p = *end == ',' ? end + 1 : end;
  }
  unsetenv(kAddedVar);
  g_added[0] = '\0';
}

void for_each_exec_fd(void (*adopt)(int fd, unsigned parent_conn)) {
  for (int i = 0; i < g_nexec; ++i) adopt(g_exec_fd[i], g_exec_conn[i]);
  g_nexec = 0;
}

size_t env_count(char* const* envp) {
  size_t n = 0;
  while (envp != nullptr && envp[n] != nullptr && n <= kMergedEnvMax) ++n;
  return n;
}

char* const* merge_env(char* const* envp, const char* fds_entry, char** out, char* preload_buf,
                       char* added_buf) {
  const size_t count = env_count(envp);
  if (count > kMergedEnvMax) return envp;
  const char* ours = g_saved_preload;  // our LD_PRELOAD value, e.g. /usr/lib/libhttptrace.so
  const size_t ours_len = ours != nullptr ? strlen(ours) : 0;
  bool changed = false;
  bool preloads_us = false;
  // "HTTPTRACE_ADDED=" then the names; a list that does not fit is not written at all (the child
  // then simply sees the variables).
  size_t added = 0;
  bool added_ok = append(added_buf, &added, kAddedMax, kAddedVar, kAddedLen) &&
                  append(added_buf, &added, kAddedMax, "=", 1);
  const size_t added_empty = added;
  auto note_added = [&](const char* s, size_t n) {
    if (added > added_empty) added_ok = added_ok && append(added_buf, &added, kAddedMax, ",", 1);
    added_ok = added_ok && append(added_buf, &added, kAddedMax, s, n);
  };
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    char* e = envp[i];
    if (is_exec_fds(e) || is_added(e)) {  // stale, from somewhere else: never pass it on
      changed = true;
      continue;
    }
    if (starts_with(e, kPreloadPrefix, kPreloadPrefixLen) && ours_len > 0) {
      const char* theirs = e + kPreloadPrefixLen;
      if (strstr(theirs, ours) != nullptr) {
        preloads_us = true;
      } else if (g_follow) {
        const size_t theirs_len = strlen(theirs);
        if (kPreloadPrefixLen + ours_len + 1 + theirs_len + 1 <= kPreloadMax) {
          char* p = preload_buf;
          memcpy(p, kPreloadPrefix, kPreloadPrefixLen);
          p += kPreloadPrefixLen;
          memcpy(p, ours, ours_len);
          p += ours_len;
          *p++ = ':';  // even before an empty value, so the child can give that back exactly
          memcpy(p, theirs, theirs_len + 1);
          e = preload_buf;
          changed = true;
          preloads_us = true;
          char spec[48] = "LD_PRELOAD=";  // "LD_PRELOAD=<bytes of ours in front>"
          size_t sl = kPreloadPrefixLen;
          char rev[24];
          size_t digits = 0;
          for (size_t v = ours_len; v > 0 || digits == 0; v /= 10) {
            rev[digits++] = static_cast<char>('0' + v % 10);
          }
          while (digits > 0) spec[sl++] = rev[--digits];
          note_added(spec, sl);
        }
      }
    }
    out[n++] = e;
  }
  if (g_follow) {
    for (size_t k = 0; k < g_nsaved; ++k) {
      bool present = false;
      for (size_t i = 0; i < count && !present; ++i) present = same_name(envp[i], g_saved[k]);
      if (present) continue;
      out[n++] = const_cast<char*>(g_saved[k]);
      changed = true;
      if (starts_with(g_saved[k], kPreloadPrefix, kPreloadPrefixLen)) preloads_us = true;
      const char* eq = strchr(g_saved[k], '=');
      note_added(g_saved[k], static_cast<size_t>(eq - g_saved[k]));
    }
  }
  if (added_ok && added > added_empty) out[n++] = added_buf;
  if (fds_entry != nullptr && preloads_us) {
    out[n++] = const_cast<char*>(fds_entry);
    changed = true;
  }
  out[n] = nullptr;
  return changed ? out : envp;
}

}  // namespace httptrace
