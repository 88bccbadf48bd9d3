// Text that came from a trace (host names, request targets, TLS cipher and error strings) made
// safe to print on a terminal. A trace is data written by whatever program was traced, or by
// anyone who can hand a user a file: an ESC or CSI sequence in a host name would otherwise move
// the cursor, retitle the window or rewrite earlier lines of the report.
//
// Kept as they are: printable ASCII and well-formed UTF-8 that is not a control. Escaped:
// C0 controls and DEL as \xNN (\t \n \r by name), C1 controls (U+0080..U+009F, which some
// terminals obey as CSI and OSC) and the bidirectional overrides and isolates (U+202A..U+202E,
// U+2066..U+2069, which reorder what is shown around them) as \u{NNNN}, every byte of an invalid or
// overlong UTF-8 sequence as \xNN, and the backslash itself as \\ so the result is unambiguous.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace httptrace::analyzer {

void append_printable(std::string& out, std::string_view s);
std::string printable(std::string_view s);

// Terminal columns of text that is already printable: one per code point (wide CJK glyphs and
// combining marks are rare enough in host names and targets not to warrant a width table).
size_t columns(std::string_view printable_text);

// At most `width` columns of printable text; when it is cut, the last column becomes '~'.
// Never splits a UTF-8 sequence.
std::string cut_to_columns(std::string_view printable_text, size_t width);

}  // namespace httptrace::analyzer
