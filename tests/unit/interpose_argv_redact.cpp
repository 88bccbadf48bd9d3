#include "interpose/record/argv_redact.h"

#include <gtest/gtest.h>

#include <string>

namespace httptrace {
namespace {

// Joins with NUL like /proc/self/cmdline, redacts, and splits back with spaces for comparison.
std::string redacted(std::initializer_list<std::string> args) {
  std::string buf;
  for (const auto& a : args) buf += a + '\0';
  redact_argv(buf.data(), buf.size());
  for (char& c : buf) c = c == '\0' ? ' ' : c;
  buf.pop_back();
  return buf;
}

TEST(ArgvRedact, MasksCredentialHeaders) {
  EXPECT_EQ(redacted({"curl", "-H", "Authorization: Bearer SECRET", "http://x/"}),
            "curl -H Authorization: ************* http://x/");
  EXPECT_EQ(redacted({"curl", "--header=cookie:a=b"}), "curl --header=cookie:***");
  EXPECT_EQ(redacted({"curl", "-H", "Accept: text/html"}), "curl -H Accept: text/html");
}

TEST(ArgvRedact, MasksOptionValues) {
  EXPECT_EQ(redacted({"curl", "-u", "bob:pw", "x"}), "curl -u ****** x");
  EXPECT_EQ(redacted({"wget", "--password=hunter2", "x"}), "wget --password=******* x");
  EXPECT_EQ(redacted({"prog", "-u"}), "prog -u");  // option at the end: nothing follows
}

TEST(ArgvRedact, MasksUrlPasswords) {
  EXPECT_EQ(redacted({"curl", "https://bob:pw@host/p?a=b@c"}), "curl https://bob:**@host/p?a=b@c");
  EXPECT_EQ(redacted({"curl", "https://host/a:b@c"}), "curl https://host/a:b@c");
}

TEST(ArgvRedact, CutShortBufferIsSafe) {
  std::string buf("curl\0-H\0Authorization: abc", 26);
  redact_argv(buf.data(), buf.size());  // no terminating NUL: must stay in bounds
  EXPECT_EQ(buf.substr(8), "Authorization: ***");
}

}  // namespace
}  // namespace httptrace
