// Environment parsing: HTTPTRACE_MAX_MB validation and HTTPTRACE_OUTPUT expansion.
#include "interpose/record/config.h"

#include <gtest/gtest.h>

#include <string>

namespace httptrace {
namespace {

TEST(Config, MaxMbAcceptsPlainNumbers) {
  bool invalid = true;
  EXPECT_EQ(parse_max_mb("16", &invalid), 16u);
  EXPECT_FALSE(invalid);
  EXPECT_EQ(parse_max_mb("1048576", &invalid), 1048576u);
  EXPECT_FALSE(invalid);
  EXPECT_EQ(parse_max_mb(nullptr, &invalid), kDefaultMaxMb);
  EXPECT_FALSE(invalid);
  EXPECT_EQ(parse_max_mb("", &invalid), kDefaultMaxMb);
  EXPECT_FALSE(invalid);
}

TEST(Config, MaxMbRejectsNonsenseWithAWarningFlag) {
  for (const char* bad : {"0", "-5", "12MB", "abc", " 4", "1048577", "99999999999999999999999"}) {
    bool invalid = false;
    EXPECT_EQ(parse_max_mb(bad, &invalid), kDefaultMaxMb) << bad;
    EXPECT_TRUE(invalid) << bad;
  }
}

std::string expand(const char* tmpl, int pid, bool child, size_t cap = 256) {
  char out[256];
  return expand_output_path(tmpl, pid, child, out, cap) ? std::string(out) : "<overflow>";
}

TEST(Config, OutputTemplateExpansion) {
  EXPECT_EQ(expand("httptrace.%p.trace", 42, false), "httptrace.42.trace");
  EXPECT_EQ(expand("/d/%p/x.%p", 7, true), "/d/7/x.7");
  EXPECT_EQ(expand("/d/fixed.trace", 42, false), "/d/fixed.trace");
  EXPECT_EQ(expand("/d/fixed.trace", 43, true), "/d/fixed.trace.43");  // a child of it
  EXPECT_EQ(expand("100%", 1, false), "100%");
  EXPECT_EQ(expand("a%pb", 0, false), "a0b");
}

TEST(Config, OutputTemplateThatDoesNotFitIsRefused) {
  EXPECT_EQ(expand("abcdef%p", 123456, false, 8), "<overflow>");
  EXPECT_EQ(expand("abcdef", 1, true, 8), "<overflow>");
  EXPECT_EQ(expand("abc", 1, false, 4), "abc");
}

TEST(Config, FlagIsExactlyOne) {
  EXPECT_TRUE(env_flag("1"));
  EXPECT_FALSE(env_flag("0"));
  EXPECT_FALSE(env_flag("yes"));
  EXPECT_FALSE(env_flag(nullptr));
  EXPECT_FALSE(env_flag("11"));
}

}  // namespace
}  // namespace httptrace
