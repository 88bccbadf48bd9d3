// Wall-clock times as ISO-8601 / RFC 3339 text in UTC ("2026-12-01T20:58:20.123Z"), for
// exporters whose consumers parse dates (HAR's startedDateTime). Written without gmtime_r and
// strftime, which take the time-zone lock and cost more than the rest of a HAR entry.
#pragma once

#include <cstddef>
#include <cstdint>

namespace httptrace::analyzer {

// "YYYY-MM-DDTHH:MM:SS.mmmZ" plus a terminator.
inline constexpr size_t kIsoTimeMsLen = 24;

// Writes unix_ns (nanoseconds since the epoch, truncated to milliseconds) into out, which must
// hold kIsoTimeMsLen + 1 bytes; returns kIsoTimeMsLen. (2^64 ns reach the year 2554.)
size_t format_iso_time_ms(char* out, uint64_t unix_ns);

}  // namespace httptrace::analyzer
