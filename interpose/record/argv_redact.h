// Command-line credentials must not reach the trace: the header keeps argv for the reader, but
// `curl -H 'Authorization: Bearer …'`, `-u user:password` or `https://user:pw@host/` would put a
// secret in every trace file. We keep the shape of the command line and mask the secret parts.
#pragma once

#include <cstddef>

namespace httptrace {

// buf holds len bytes of NUL-separated arguments (as /proc/self/cmdline). Masks, in place, the
// value of credential headers (Authorization, Proxy-Authorization, Cookie, X-Api-Key, ...), the
// argument after an option that takes credentials (-u, --user, --proxy-user, --oauth2-bearer,
// --password, ...) or its `--opt=value` form, and the password of a URL's user-info. Each masked
// byte becomes '*', so lengths and argument boundaries stay put. No allocation.
void redact_argv(char* buf, size_t len);

}  // namespace httptrace
