// The shape of the TLS integration tests: a self-signed certificate made at test time, the loopback
// HTTPS server using it, a fresh trace directory, and a traced run of a real client.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/fixture.h"  // HT_EXPORT
#include "tests/integration/harness.h"
#include "tests/integration/trace_json.h"

namespace httptrace::itest {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(paths().lib)) << paths().lib << " missing: run make";
    ASSERT_TRUE(fs::exists(paths().cli)) << paths().cli << " missing: run make";
    ASSERT_TRUE(have_cert_) << cert_error_;
    ASSERT_TRUE(server_.ok()) << server_.error();
  }

  RunResult traced(const std::vector<std::string>& argv) {
    RunOptions o;
    o.preload = true;
    o.env = trace_env(dir_.path());
    last_traced_ = run(argv, o);
    return last_traced_;
  }

  // Files a client reads (certificate, header file) live apart from the trace directory, so
  // scanning the traces for a secret never finds the file that held it.
  TempDir work_;
  TlsFiles tls_;
  std::string cert_error_;
  bool have_cert_ = make_self_signed_cert(work_.path(), &tls_, &cert_error_);
  TestServer server_{ServerOptions{.tls = have_cert_ ? std::optional<TlsFiles>(tls_) : std::nullopt}};
  TempDir dir_;
  RunResult last_traced_;  // HT_EXPORT shows it when an export fails
};

}  // namespace httptrace::itest
