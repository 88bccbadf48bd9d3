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

TEST(ArgvRedact, MasksAttachedAndClusteredShortOptions) {
  EXPECT_EQ(redacted({"curl", "-ubob:pw", "x"}), "curl -u****** x");
  EXPECT_EQ(redacted({"curl", "-sSu", "bob:pw", "x"}), "curl -sSu ****** x");
  EXPECT_EQ(redacted({"curl", "-HX-Secret: v1", "x"}), "curl -HX-Secret: ** x");
  EXPECT_EQ(redacted({"curl", "-XPOST", "-sSL", "http://h/"}), "curl -XPOST -sSL http://h/");
}

TEST(ArgvRedact, MasksEveryHeaderValueButPlainOnes) {
  EXPECT_EQ(redacted({"curl", "-H", "X-Secret: abc", "-H", "Content-Type: text/plain",
                      "--header", "X-Custom:zz", "-H", "User-Agent: me", "-H", "@file"}),
            "curl -H X-Secret: *** -H Content-Type: text/plain --header X-Custom:** "
            "-H User-Agent: me -H @file");
  EXPECT_EQ(redacted({"wget", "--header=X-Token: t0k", "u"}), "wget --header=X-Token: *** u");
  // httpie takes headers as "Name:value" arguments.
  EXPECT_EQ(redacted({"http", "GET", "h/x", "X-API-Token:123", "Accept:json"}),
            "http GET h/x X-API-Token:*** Accept:json");
  EXPECT_EQ(redacted({"prog", "authserver:8080"}), "prog authserver:8080");
}

TEST(ArgvRedact, MasksRequestBodies) {
  EXPECT_EQ(redacted({"curl", "-d", "password=x", "--data-raw", "{\"k\":1}", "-dab", "u"}),
            "curl -d ********** --data-raw ******* -d** u");
  EXPECT_EQ(redacted({"curl", "--data=a=b", "--json", "{}", "-F", "f=@x"}),
            "curl --data=*** --json ** -F ****");
  EXPECT_EQ(redacted({"wget", "--post-data", "user=a&pw=b", "--body-data=s", "u"}),
            "wget --post-data *********** --body-data=* u");
  // wget's -d is --debug: the URL after it stays readable.
  EXPECT_EQ(redacted({"wget", "-d", "http://h/"}), "wget -d http://h/");
}

TEST(ArgvRedact, MasksSchemeLessUserInfo) {
  EXPECT_EQ(redacted({"curl", "bob:pw@host/x"}), "curl bob:**@host/x");
  EXPECT_EQ(redacted({"curl", "-x", "user:secret@proxy:3128", "u"}), "curl -x user:******@proxy:3128 u");
  EXPECT_EQ(redacted({"git", "clone", "git@github.com:org/repo.git"}),
            "git clone git@github.com:org/repo.git");
}

TEST(ArgvRedact, MasksTokenLikeQueryParameters) {
  EXPECT_EQ(redacted({"curl", "https://h/p?a=1&token=abc&sig=ff#frag"}),
            "curl https://h/p?a=1&token=***&sig=**#frag");
  EXPECT_EQ(redacted({"curl", "https://b.s3.amazonaws.com/k?X-Amz-Signature=0123&X-Amz-Date=2026"}),
            "curl https://b.s3.amazonaws.com/k?X-Amz-Signature=****&X-Amz-Date=2026");
  EXPECT_EQ(redacted({"wget", "http://h/?access_token=t&api_key=k&password=p&q=cats&page=2"}),
            "wget http://h/?access_token=*&api_key=*&password=*&q=cats&page=2");
  EXPECT_EQ(redacted({"curl", "--url=http://h/?client_secret=s"}), "curl --url=http://h/?client_secret=*");
}

TEST(ArgvRedact, EverythingAfterDoubleDashIsAnOperand) {
  EXPECT_EQ(redacted({"prog", "--", "-u", "visible"}), "prog -- -u visible");
}

TEST(ArgvRedact, CutShortBufferIsSafe) {
  std::string buf("curl\0-H\0Authorization: abc", 26);
  redact_argv(buf.data(), buf.size());  // no terminating NUL: must stay in bounds
  EXPECT_EQ(buf.substr(8), "Authorization: ***");
}

}  // namespace
}  // namespace httptrace
