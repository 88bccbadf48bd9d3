// Wall-clock times as ISO-8601 / RFC 3339 text in UTC ("2026-12-01T20:58:20.123Z"), for
// exporters whose consumers parse dates (HAR's startedDateTime). Written without gmtime_r and
// strftime, which take the time-zone lock and cost more than the rest of a HAR entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace httptrace::analyzer {

// "YYYY-MM-DDTHH:MM:SS.mmmZ" plus a terminator.
inline constexpr size_t kIsoTimeMsLen = 24;

// Writes unix_ns (nanoseconds since the epoch, truncated to milliseconds) into out, which must
// hold kIsoTimeMsLen + 1 bytes; returns kIsoTimeMsLen. (2^64 ns reach the year 2554.)
size_t format_iso_time_ms(char* out, uint64_t unix_ns);

// The same, for a stream of nearby times: the date and time of day up to the second are kept
// from the last call in the same second, so most calls format three digits.
class IsoTimeMs {
 public:
  size_t format(char* out, uint64_t unix_ns) {
    const uint64_t ms = unix_ns / 1000000, secs = ms / 1000;
    if (!valid_ || secs != secs_) {
      format_iso_time_ms(last_, unix_ns);
      secs_ = secs;
      valid_ = true;
    }
    std::memcpy(out, last_, kIsoTimeMsLen + 1);
    unsigned v = static_cast<unsigned>(ms % 1000);
    out[22] = static_cast<char>('0' + v % 10);
    out[21] = static_cast<char>('0' + v / 10 % 10);
    out[20] = static_cast<char>('0' + v / 100);
    return kIsoTimeMsLen;
  }

 private:
  char last_[kIsoTimeMsLen + 1] = {};
  uint64_t secs_ = 0;
  bool valid_ = false;
};

}  // namespace httptrace::analyzer
