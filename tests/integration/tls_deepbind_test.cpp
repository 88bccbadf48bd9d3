// Code loaded with RTLD_DEEPBIND (PHP loads every extension so): its socket and TLS calls bind
// straight to libc and libssl, past our wrappers, unless the new objects are rebound after the
// dlopen. Each run is compared with an untraced one (stdout, stderr, exit status); a deepbind
// module's own definition of a name we hook must stay its own.
#include <algorithm>

#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

uint64_t u(const json& v) { return v.get<uint64_t>(); }

fs::path dl_get() { return paths().build / "tests" / "dl_get"; }
fs::path module(const std::string& name) { return paths().build / "tests" / "libs" / name; }

class Deepbind : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    ASSERT_TRUE(plain_.ok()) << plain_.error();
    ASSERT_TRUE(fs::exists(dl_get())) << dl_get() << " missing: run make integration";
    for (const char* m : {"libhttp_get.so", "libown_dup.so", "libdlopen_bare.so", "libhttps_sys.so",
                          "libhttps_ht1.so"})
      ASSERT_TRUE(fs::exists(module(m))) << module(m) << " missing: run make integration";
  }

  // Untraced, then traced: the same stdout, stderr and exit status. Returns the traced export.
  Export run_both(const std::vector<std::string>& a) {
    RunResult plain = run(a);
    EXPECT_EQ(plain.exit_code, 0) << plain.describe();
    RunResult r = traced(a);
    EXPECT_EQ(r.exit_code, plain.exit_code) << r.describe();
    EXPECT_EQ(r.out, plain.out);
    EXPECT_EQ(r.err, plain.err);
    Export e = export_json(dir_.path());
    EXPECT_TRUE(e.ok) << e.error << "\n" << r.describe();
    return e;
  }

  static std::vector<json> by_start(std::vector<json> conns) {
    std::sort(conns.begin(), conns.end(),
              [](const json& x, const json& y) { return u(x["start_ns"]) < u(y["start_ns"]); });
    return conns;
  }

  TestServer plain_;  // HTTP, beside the fixture's HTTPS server
};

// Before: nothing reached our wrappers, so no trace at all.
TEST_F(Deepbind, PlainHttpFromADeepbindModuleIsRecorded) {
  Export e = run_both({dl_get().string(), "--deepbind", "127.0.0.1", plain_.port_str(), "/deep", "-",
                       "0", module("libhttp_get.so").string()});
  ASSERT_TRUE(e.ok);
  EXPECT_EQ(last_traced_.out, "libhttp_get.so HTTP/1.1 200 OK\n");
  auto conns = connections_to(e.doc, plain_.port());
  ASSERT_EQ(conns.size(), 1u) << e.doc.dump(1);
  SCOPED_TRACE(describe(conns[0]));
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/deep"}));
  EXPECT_EQ(statuses(conns[0]), (std::vector<int>{200}));
  EXPECT_TRUE(conns[0]["dns"].is_object()) << "getaddrinfo inside the module";
  EXPECT_EQ(conns[0]["connect"]["error"], nullptr);
}

// HTTPS from two deepbind modules, one on the system libssl and one on a private copy: the
// handshake metadata of each comes from its own copy.
TEST_F(Deepbind, HttpsFromDeepbindModulesWithTheirOwnLibssl) {
  Export e = run_both({dl_get().string(), "--deepbind", "localhost", server_.port_str(), "/deeps",
                       tls_.cert.string(), "0", module("libhttps_sys.so").string(),
                       module("libhttps_ht1.so").string()});
  ASSERT_TRUE(e.ok);
  EXPECT_EQ(last_traced_.out, "libhttps_sys.so HTTP/1.1 200 OK\nlibhttps_ht1.so HTTP/1.1 200 OK\n");
  auto conns = by_start(connections_to(e.doc, server_.port()));
  ASSERT_EQ(conns.size(), 2u) << e.doc.dump(1);
  for (const json& c : conns) {
    SCOPED_TRACE(describe(c));
    ASSERT_TRUE(c["tls"].is_object());
    EXPECT_EQ(c["tls"]["library"], "openssl");
    EXPECT_EQ(c["tls"]["version"], "TLSv1.3");
    EXPECT_TRUE(c["tls"]["cipher"].is_string());
    EXPECT_EQ(targets(c), (std::vector<std::string>{"/deeps"}));
    EXPECT_EQ(statuses(c), (std::vector<int>{200}));
  }
}

// The module defines and calls its own `dup`: under RTLD_DEEPBIND that call is its own, traced
// or not (our rebinding touches only references that would have reached the C library).
TEST_F(Deepbind, ADeepbindModulesOwnDefinitionsStayItsOwn) {
  const std::vector<std::string> a = {dl_get().string(), "--deepbind", "x", "1", "/", "-", "0",
                                      module("libown_dup.so").string()};
  RunResult plain = run(a);
  RunResult r = traced(a);
  EXPECT_EQ(plain.out, "libown_dup.so dup 4242\n") << plain.describe();
  EXPECT_EQ(r.out, plain.out) << r.describe();
  EXPECT_EQ(r.exit_code, 0);
}

// glibc takes the RPATH/RUNPATH for a bare file name from dlopen's caller: the module's dlopen of
// a library found only through its own RUNPATH must work traced, the module itself deepbind-loaded
// or not, and its own dlopen plain or RTLD_DEEPBIND.
TEST_F(Deepbind, DlopenKeepsItsCaller) {
  for (int variant = 0; variant < 4; ++variant) {
    const bool deep = variant & 1;
    const std::string inner_mode = (variant & 2) ? "1" : "0";
    SCOPED_TRACE("variant " + std::to_string(variant));
    std::vector<std::string> a = {dl_get().string(), "x", "1", "/", "-", inner_mode,
                                  module("libdlopen_bare.so").string()};
    if (deep) a.insert(a.begin() + 1, "--deepbind");
    RunResult plain = run(a);
    RunResult r = traced(a);
    EXPECT_EQ(plain.out, "libdlopen_bare.so dlopen ok\n") << plain.describe();
    EXPECT_EQ(r.out, plain.out) << r.describe();
    EXPECT_EQ(r.exit_code, 0);
  }
}

// PHP's curl extension (Debian's php-curl), loaded by PHP with RTLD_DEEPBIND: HTTPS and HTTP.
TEST_F(Deepbind, PhpCurl) {
  if (run({"php", "-r", "exit(function_exists('curl_init') ? 0 : 1);"}).exit_code != 0)
    GTEST_SKIP() << "php-cli with php-curl not installed";
  const std::string script =
      "foreach ([[$argv[1], 1], [$argv[2], 0]] as [$u, $t]) {\n"
      "  $c = curl_init($u);\n"
      "  curl_setopt($c, CURLOPT_CAINFO, $argv[3]);\n"
      "  curl_setopt($c, CURLOPT_RETURNTRANSFER, true);\n"
      "  $r = curl_exec($c);\n"
      "  echo curl_getinfo($c, CURLINFO_HTTP_CODE), ' ', strlen($r), \"\\n\";\n"
      "}\n";
  Export e = run_both({"php", "-r", script, server_.url("/php-tls"),
                       "http://127.0.0.1:" + plain_.port_str() + "/status/201", tls_.cert.string()});
  ASSERT_TRUE(e.ok);
  auto tls = connections_to(e.doc, server_.port());
  ASSERT_EQ(tls.size(), 1u) << e.doc.dump(1);
  {
    SCOPED_TRACE(describe(tls[0]));
    ASSERT_TRUE(tls[0]["tls"].is_object());
    EXPECT_EQ(tls[0]["tls"]["library"], "openssl");
    EXPECT_EQ(tls[0]["tls"]["sni"], "localhost");
    EXPECT_TRUE(tls[0]["tls"]["cipher"].is_string());
    EXPECT_EQ(targets(tls[0]), (std::vector<std::string>{"/php-tls"}));
    EXPECT_EQ(statuses(tls[0]), (std::vector<int>{200}));
  }
  auto plain = connections_to(e.doc, plain_.port());
  ASSERT_EQ(plain.size(), 1u) << e.doc.dump(1);
  EXPECT_EQ(targets(plain[0]), (std::vector<std::string>{"/status/201"}));
  EXPECT_EQ(statuses(plain[0]), (std::vector<int>{201}));
}

}  // namespace
}  // namespace httptrace::itest
