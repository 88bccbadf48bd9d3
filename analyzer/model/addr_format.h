// Socket addresses as text without inet_ntop: the JSON export formats two per connection and
// every address of every lookup, and glibc's inet_ntop goes through sprintf for each group.
//
// The text is exactly what inet_ntop gives (the export's format predates this formatter): IPv6
// per RFC 5952 (lowercase, the first longest run of two or more zero groups as "::"), with glibc's
// dotted tail for IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses.
#pragma once

#include <cstddef>

#include "common/trace_format.h"

namespace httptrace::analyzer {

namespace tf = httptrace::format;

// "[" + 39 (longest IPv6 text) + "]:" + 5 (port), with room to spare.
inline constexpr size_t kMaxAddrText = 48;

// Writes a's address (and ":port", IPv6 bracketed, when with_port) to out, which must hold
// kMaxAddrText bytes; returns the length (no terminator). An unknown family gives "?" / "?:0".
size_t format_addr_to(char* out, const tf::Addr& a, bool with_port);

}  // namespace httptrace::analyzer
