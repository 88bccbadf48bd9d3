#include "analyzer/export/iso_time.h"

namespace httptrace::analyzer {

namespace {

// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days,
// restricted to non-negative days).
void civil_from_days(uint64_t days, unsigned& y, unsigned& m, unsigned& d) {
  const uint64_t z = days + 719468;
  const uint64_t era = z / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<unsigned>(yoe + era * 400) + (m <= 2);
}

void digits(char* out, unsigned v, int n) {
  for (int i = n - 1; i >= 0; --i, v /= 10) out[i] = static_cast<char>('0' + v % 10);
}

}  // namespace

size_t format_iso_time_ms(char* out, uint64_t unix_ns) {
  const uint64_t ms = unix_ns / 1000000;
  const uint64_t secs = ms / 1000;
  unsigned y, mo, d;
  civil_from_days(secs / 86400, y, mo, d);
  const unsigned sod = static_cast<unsigned>(secs % 86400);
  digits(out, y, 4);
  out[4] = '-';
  digits(out + 5, mo, 2);
  out[7] = '-';
  digits(out + 8, d, 2);
  out[10] = 'T';
  digits(out + 11, sod / 3600, 2);
  out[13] = ':';
  digits(out + 14, sod / 60 % 60, 2);
  out[16] = ':';
  digits(out + 17, sod % 60, 2);
  out[19] = '.';
  digits(out + 20, static_cast<unsigned>(ms % 1000), 3);
  out[23] = 'Z';
  out[24] = '\0';
  return kIsoTimeMsLen;
}

}  // namespace httptrace::analyzer
