#include "interpose/record/argv_redact.h"

#include <strings.h>

#include <cstring>

namespace httptrace {
namespace {

constexpr const char* kSecretHeaders[] = {"authorization", "proxy-authorization", "cookie",
                                          "x-api-key", "x-auth-token", "api-key"};
// Options (curl, wget, and common tools) whose value is a credential.
constexpr const char* kSecretOptions[] = {"-u", "--user", "-U", "--proxy-user", "--oauth2-bearer",
                                          "--password", "--http-password", "--proxy-password",
                                          "--ftp-password", "--pass", "--token"};

void mask(char* from, char* to) {
  for (char* p = from; p < to; ++p) *p = '*';
}

bool is_secret_option(const char* arg, size_t len) {
  for (const char* opt : kSecretOptions) {
    if (strlen(opt) == len && memcmp(arg, opt, len) == 0) return true;
  }
  return false;
}

// "Name: value" (or "--header=Name: value") with a credential header name → mask the value.
void mask_header(char* arg, size_t len) {
  char* colon = static_cast<char*>(memchr(arg, ':', len));
  if (colon == nullptr) return;
  char* eq = static_cast<char*>(memchr(arg, '=', static_cast<size_t>(colon - arg)));
  const char* name = eq != nullptr ? eq + 1 : arg;
  size_t name_len = static_cast<size_t>(colon - name);
  while (name_len > 0 && name[name_len - 1] == ' ') --name_len;
  for (const char* h : kSecretHeaders) {
    if (strlen(h) == name_len && strncasecmp(name, h, name_len) == 0) {
      char* v = colon + 1;
      while (v < arg + len && *v == ' ') ++v;
      mask(v, arg + len);
      return;
    }
  }
}

// "--password=secret" → mask after '='.
void mask_option_value(char* arg, size_t len) {
  const char* eq = static_cast<const char*>(memchr(arg, '=', len));
  if (eq != nullptr && is_secret_option(arg, static_cast<size_t>(eq - arg))) {
    mask(arg + (eq - arg) + 1, arg + len);
  }
}

// "scheme://user:password@host" → mask the password.
void mask_url_password(char* arg, size_t len) {
  const char* scheme_end = static_cast<const char*>(memmem(arg, len, "://", 3));
  if (scheme_end == nullptr) return;
  char* auth = arg + (scheme_end - arg) + 3;
  char* end = arg + len;
  char* slash = static_cast<char*>(memchr(auth, '/', static_cast<size_t>(end - auth)));
  if (slash != nullptr) end = slash;
  char* at = static_cast<char*>(memrchr(auth, '@', static_cast<size_t>(end - auth)));
  if (at == nullptr) return;
  char* colon = static_cast<char*>(memchr(auth, ':', static_cast<size_t>(at - auth)));
  if (colon != nullptr) mask(colon + 1, at);
}

}  // namespace

void redact_argv(char* buf, size_t len) {
  bool next_is_secret = false;
  for (size_t start = 0; start < len;) {
    char* arg = buf + start;
    const char* nul = static_cast<const char*>(memchr(arg, '\0', len - start));
    const size_t arg_len = nul != nullptr ? static_cast<size_t>(nul - arg) : len - start;
    if (next_is_secret) {
      mask(arg, arg + arg_len);
      next_is_secret = false;
    } else {
      next_is_secret = is_secret_option(arg, arg_len);
      mask_header(arg, arg_len);
      mask_option_value(arg, arg_len);
      mask_url_password(arg, arg_len);
    }
    start += arg_len + 1;
  }
}

}  // namespace httptrace
