// Command-line credentials must not reach the trace: the header keeps argv for the reader, but
// `curl -H 'Authorization: Bearer …'`, `-u user:password` or `https://user:pw@host/` would put a
// secret in every trace file. We keep the shape of the command line and mask the secret parts.
#pragma once

#include <cstddef>

namespace httptrace {

// buf holds len bytes of NUL-separated arguments (as /proc/self/cmdline). Masks, in place:
//  - the value of an option that takes a credential or a request body (-u, -U, --user,
//    --oauth2-bearer, --password, --cookie, --data*, --json, --form, --post-data, ...; curl's -d,
//    -b, -F, -E), given as the next argument, as --opt=value, attached (-ubob:pw) or at the end of
//    a cluster of short flags (-sSu bob:pw);
//  - every -H/--header/--proxy-header value except those of a few plain headers (Accept*,
//    Content-Type, User-Agent, Host, Connection), and "Name:value" arguments with a credential
//    header name (Authorization, Cookie, X-Api-Key, X-Auth-Token, ...);
//  - the password of a URL's user-info, with or without a scheme (user:pw@host/x);
//  - query parameters named like credentials (token, key, sig, signature, password, secret,
//    access_token, X-Amz-Signature, X-Amz-Security-Token, ...).
// Each masked byte becomes '*', so lengths and argument boundaries stay put. No allocation.
void redact_argv(char* buf, size_t len);

}  // namespace httptrace
