// Durations for terminal reports, at most 9 columns wide whatever the value (a damaged trace can
// claim centuries): "850ns", "12.3µs", "4.56ms", "1.23s", "2m03s", "5h07m", "3d04h", ">999d".
// Hand-written rather than fmt: a timeline of millions of requests formats five per request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace httptrace::analyzer {

inline constexpr size_t kMaxDurationText = 16;  // bytes ("µs" is two)
// Writes the text to out (kMaxDurationText bytes of room), returns its length in bytes.
size_t format_duration(char* out, uint64_t ns);
void append_duration(std::string& out, uint64_t ns);
std::string duration_text(uint64_t ns);

// Appends n in decimal.
void append_uint(std::string& out, uint64_t n);

}  // namespace httptrace::analyzer
