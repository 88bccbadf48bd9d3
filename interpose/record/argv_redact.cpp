#include "interpose/record/argv_redact.h"

#include <strings.h>

#include <cstring>

namespace httptrace {
namespace {

// What an option's value is.
enum class Value { kPlain, kSecret, kHeader };

struct Option {
  const char* name;
  Value value;
};

// Long options (curl, wget, httpie and common tools) whose value is a credential, a request body
// or a header. Matched exactly, as `--opt value` or `--opt=value`.
constexpr Option kLongOptions[] = {
    {"--user", Value::kSecret},          {"--proxy-user", Value::kSecret},
    {"--oauth2-bearer", Value::kSecret}, {"--password", Value::kSecret},
    {"--http-password", Value::kSecret}, {"--proxy-password", Value::kSecret},
    {"--ftp-password", Value::kSecret},  {"--pass", Value::kSecret},
    {"--token", Value::kSecret},         {"--auth", Value::kSecret},
    {"--cookie", Value::kSecret},        {"--api-key", Value::kSecret},
    {"--data", Value::kSecret},          {"--data-raw", Value::kSecret},
    {"--data-binary", Value::kSecret},   {"--data-ascii", Value::kSecret},
    {"--data-urlencode", Value::kSecret}, {"--json", Value::kSecret},
    {"--form", Value::kSecret},          {"--form-string", Value::kSecret},
    {"--post-data", Value::kSecret},     {"--body-data", Value::kSecret},
    {"--header", Value::kHeader},        {"--proxy-header", Value::kHeader},
};
// Short options that mean the same in the tools that have them.
constexpr Option kShortOptions[] = {
    {"-u", Value::kSecret}, {"-U", Value::kSecret}, {"-H", Value::kHeader}};
// curl's other short options with a secret value; elsewhere these letters mean other things
// (wget -d is --debug, and masking the URL after it would hide what the trace is about).
constexpr Option kCurlShortOptions[] = {
    {"-d", Value::kSecret}, {"-b", Value::kSecret}, {"-F", Value::kSecret},
    {"-E", Value::kSecret}};

// Headers whose value may be shown when given with -H: nothing secret travels in them.
constexpr const char* kPlainHeaders[] = {"accept", "accept-encoding", "accept-language",
                                         "content-type", "user-agent", "host", "connection"};
// Outside -H ("Name:value" arguments, as httpie takes them) only these names, and names that
// look like them (secret_name), are masked.
constexpr const char* kSecretHeaders[] = {"authorization", "proxy-authorization", "cookie"};

void mask(char* from, char* to) {
  for (char* p = from; p < to; ++p) *p = '*';
}

bool contains_ci(const char* s, size_t len, const char* word) {
  const size_t w = strlen(word);
  for (size_t i = 0; i + w <= len; ++i) {
    if (strncasecmp(s + i, word, w) == 0) return true;
  }
  return false;
}

bool equals_ci(const char* s, size_t len, const char* word) {
  return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

// A header name or a query parameter that looks like it carries a credential.
constexpr const char* kSecretExact[] = {"key", "sig", "pwd", "pw", "pass"};
constexpr const char* kSecretWords[] = {"token", "secret", "passw", "signature", "credential",
                                        "auth", "session", "cookie"};

bool secret_name(const char* s, size_t len) {
  for (const char* w : kSecretExact) {
    if (equals_ci(s, len, w)) return true;
  }
  if (len >= 3 && strncasecmp(s + len - 3, "key", 3) == 0) return true;  // apikey, access_key
  for (const char* w : kSecretWords) {
    if (contains_ci(s, len, w)) return true;
  }
  return false;
}

const Option* find_option(const char* arg, size_t len, bool curl) {
  if (len > 2 && arg[1] == '-') {
    for (const Option& o : kLongOptions) {
      if (strlen(o.name) == len && memcmp(arg, o.name, len) == 0) return &o;
    }
    return nullptr;
  }
  if (len != 2) return nullptr;
  for (const Option& o : kShortOptions) {
    if (arg[1] == o.name[1]) return &o;
  }
  if (curl) {
    for (const Option& o : kCurlShortOptions) {
      if (arg[1] == o.name[1]) return &o;
    }
  }
  return nullptr;
}

// "Name: value" given to -H/--header: masks the value unless the name is in kPlainHeaders.
void mask_header_value(char* arg, size_t len) {
  char* colon = static_cast<char*>(memchr(arg, ':', len));
  if (colon == nullptr) return;  // "@file", "Name;": no value here
  size_t name_len = static_cast<size_t>(colon - arg);
  while (name_len > 0 && arg[name_len - 1] == ' ') --name_len;
  for (const char* h : kPlainHeaders) {
    if (equals_ci(arg, name_len, h)) return;
  }
  char* v = colon + 1;
  while (v < arg + len && *v == ' ') ++v;
  mask(v, arg + len);
}

void apply(Value value, char* v, size_t len) {
  if (value == Value::kSecret) mask(v, v + len);
  if (value == Value::kHeader) mask_header_value(v, len);
}

// "Name:value" or "Name: value" as a plain argument (httpie, or a tool's own header syntax).
void mask_positional_header(char* arg, size_t len) {
  char* colon = static_cast<char*>(memchr(arg, ':', len));
  if (colon == nullptr || colon == arg) return;
  const size_t name_len = static_cast<size_t>(colon - arg);
  for (size_t i = 0; i < name_len; ++i) {
    const char c = arg[i];
    const bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!token) return;
  }
  // A bare "authserver:8080" is a host and port; a header name that looks secret has a '-'.
  bool secret = memchr(arg, '-', name_len) != nullptr && secret_name(arg, name_len);
  for (const char* h : kSecretHeaders) secret = secret || equals_ci(arg, name_len, h);
  if (!secret) return;
  char* v = colon + 1;
  while (v < arg + len && *v == ' ') ++v;
  mask(v, arg + len);
}

// "user:password@host" at the start of auth (up to the first '/'): masks the password.
void mask_userinfo(char* auth, char* end) {
  char* slash = static_cast<char*>(memchr(auth, '/', static_cast<size_t>(end - auth)));
  if (slash != nullptr) end = slash;
  char* at = static_cast<char*>(memrchr(auth, '@', static_cast<size_t>(end - auth)));
  if (at == nullptr) return;
  char* colon = static_cast<char*>(memchr(auth, ':', static_cast<size_t>(at - auth)));
  if (colon != nullptr) mask(colon + 1, at);
}

// "scheme://user:password@host/..." or, without a scheme, "user:password@host/...".
void mask_url_password(char* arg, size_t len) {
  const char* scheme_end = static_cast<const char*>(memmem(arg, len, "://", 3));
  if (scheme_end != nullptr) {
    mask_userinfo(arg + (scheme_end - arg) + 3, arg + len);
  } else if (len > 0 && arg[0] != '-') {
    mask_userinfo(arg, arg + len);
  }
}

// "...?a=1&token=abc#x": masks the values of parameters named like credentials.
void mask_query(char* arg, size_t len) {
  char* q = static_cast<char*>(memchr(arg, '?', len));
  if (q == nullptr) return;
  char* end = arg + len;
  char* hash = static_cast<char*>(memchr(q, '#', static_cast<size_t>(end - q)));
  if (hash != nullptr) end = hash;
  for (char* p = q + 1; p < end;) {
    char* next = p;
    while (next < end && *next != '&' && *next != ';') ++next;
    char* eq = static_cast<char*>(memchr(p, '=', static_cast<size_t>(next - p)));
    if (eq != nullptr && secret_name(p, static_cast<size_t>(eq - p))) mask(eq + 1, next);
    p = next + 1;
  }
}

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// argv[0] names curl (a path's last component starting with "curl").
bool is_curl(const char* arg0, size_t len) {
  const char* slash = static_cast<const char*>(memrchr(arg0, '/', len));
  const char* base = slash != nullptr ? slash + 1 : arg0;
  const size_t base_len = len - static_cast<size_t>(base - arg0);
  return base_len >= 4 && memcmp(base, "curl", 4) == 0;
}

}  // namespace

void redact_argv(char* buf, size_t len) {
  Value pending = Value::kPlain;  // what the previous option says this argument is
  bool curl = false;
  bool options_ended = false;     // after "--" every argument is an operand
  for (size_t start = 0, index = 0; start < len; ++index) {
    char* arg = buf + start;
    const char* nul = static_cast<const char*>(memchr(arg, '\0', len - start));
    const size_t n = nul != nullptr ? static_cast<size_t>(nul - arg) : len - start;
    start += n + 1;
    if (index == 0) {
      curl = is_curl(arg, n);
      continue;
    }
    if (pending != Value::kPlain) {
      apply(pending, arg, n);
      pending = Value::kPlain;
      continue;
    }
    if (!options_ended && n >= 2 && arg[0] == '-') {
      if (n == 2 && arg[1] == '-') {
        options_ended = true;
        continue;
      }
      const char* eq = arg[1] == '-' ? static_cast<const char*>(memchr(arg, '=', n)) : nullptr;
      const size_t name_len = eq != nullptr ? static_cast<size_t>(eq - arg) : (arg[1] == '-' ? n : 2);
      const Option* o = find_option(arg, name_len, curl);
      if (o != nullptr) {
        if (eq != nullptr) {
          apply(o->value, arg + name_len + 1, n - name_len - 1);   // --opt=value
        } else if (n > name_len) {
          apply(o->value, arg + name_len, n - name_len);           // -uuser:pw (attached)
        } else {
          pending = o->value;                                     // the next argument
        }
        continue;
      }
      // A cluster of short flags ending in an option that takes a value: "-sSu user:pw".
      bool cluster = arg[1] != '-';
      for (size_t i = 1; i < n && cluster; ++i) cluster = is_letter(arg[i]);
      if (cluster) {
        const char last[2] = {'-', arg[n - 1]};
        const Option* lo = find_option(last, 2, curl);
        if (lo != nullptr) pending = lo->value;
        continue;
      }
    }
    mask_positional_header(arg, n);
    mask_url_password(arg, n);
    mask_query(arg, n);
  }
}

}  // namespace httptrace
