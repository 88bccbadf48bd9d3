// libssl copies that are not the global one: a module linked against a renamed private copy and
// loaded RTLD_LOCAL (a manylinux wheel's libssl-<hash>.so.3), two such copies beside the system
// one in one process, and generic TLS_method() clients (Ruby's), whose SSL says "server" until
// SSL_connect runs. Each must work exactly as untraced, and be recorded with its TLS metadata.
#include <algorithm>

#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

uint64_t u(const json& v) { return v.get<uint64_t>(); }

fs::path dl_get() { return paths().build / "tests" / "dl_get"; }
fs::path module(const std::string& name) { return paths().build / "tests" / "libs" / name; }

void expect_openssl_handshake(const json& c) {
  ASSERT_TRUE(c["tls"].is_object()) << c.dump(1);
  const json& t = c["tls"];
  EXPECT_EQ(t["library"], "openssl") << "recorded from the wire only: our hooks missed the calls";
  EXPECT_EQ(t["version"], "TLSv1.3");
  EXPECT_TRUE(t["cipher"].is_string() && !t["cipher"].get<std::string>().empty()) << t;
  EXPECT_EQ(t["sni"], "localhost");
  EXPECT_FALSE(t.contains("error") && !t["error"].is_null()) << t;
  EXPECT_GT(u(t["duration_ns"]), 0u);
}

class PrivateLibssl : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    ASSERT_TRUE(fs::exists(dl_get())) << dl_get() << " missing: run make integration";
    for (const char* m : {"libhttps_sys.so", "libhttps_ht1.so", "libhttps_ht2.so"})
      ASSERT_TRUE(fs::exists(module(m))) << module(m) << " missing: run make integration";
  }

  std::vector<std::string> argv(const std::string& path, int mode, const std::vector<std::string>& mods) {
    std::vector<std::string> a = {dl_get().string(), "localhost", server_.port_str(), path,
                                  tls_.cert.string(), std::to_string(mode)};
    for (const auto& m : mods) a.push_back(module(m).string());
    return a;
  }

  // Runs untraced then traced: same stdout, stderr and exit status; returns the connections.
  std::vector<json> run_both(const std::vector<std::string>& a, size_t want_conns) {
    RunResult plain = run(a);
    EXPECT_EQ(plain.exit_code, 0) << plain.describe();
    RunResult r = traced(a);
    EXPECT_EQ(r.exit_code, plain.exit_code) << r.describe();
    EXPECT_EQ(r.out, plain.out);
    EXPECT_EQ(r.err, plain.err);
    Export e = export_json(dir_.path());
    EXPECT_TRUE(e.ok) << e.error << "\n" << r.describe();
    if (!e.ok) return {};
    auto conns = connections_to(e.doc, server_.port());
    EXPECT_EQ(conns.size(), want_conns) << e.doc.dump(1);
    std::sort(conns.begin(), conns.end(),
              [](const json& x, const json& y) { return u(x["start_ns"]) < u(y["start_ns"]); });
    return conns;
  }
};

// Before: no soname we knew was loaded and RTLD_NEXT saw nothing, so SSL_connect returned -1
// without being called and the request failed only when traced.
TEST_F(PrivateLibssl, RenamedCopyLoadedLocallyWorksAndIsRecorded) {
  auto conns = run_both(argv("/private", 0, {"libhttps_ht1.so"}), 1);
  ASSERT_EQ(conns.size(), 1u);
  SCOPED_TRACE(describe(conns[0]));
  expect_openssl_handshake(conns[0]);
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/private"}));
  EXPECT_EQ(statuses(conns[0]), (std::vector<int>{200}));
}

// The system libssl and two private copies, all loaded before any request: each module's SSL*
// must go to its own copy (before: one process-wide table, so two of them got another copy's
// functions, or none).
TEST_F(PrivateLibssl, ThreeCopiesAtOnceEachCallerItsOwn) {
  const std::vector<std::string> mods = {"libhttps_sys.so", "libhttps_ht1.so", "libhttps_ht2.so"};
  auto conns = run_both(argv("/three", 0, mods), 3);
  EXPECT_EQ(last_traced_.out,
            "libhttps_sys.so HTTP/1.1 200 OK\nlibhttps_ht1.so HTTP/1.1 200 OK\n"
            "libhttps_ht2.so HTTP/1.1 200 OK\n");
  for (const json& c : conns) {
    SCOPED_TRACE(describe(c));
    expect_openssl_handshake(c);
    EXPECT_EQ(targets(c), (std::vector<std::string>{"/three"}));
    EXPECT_EQ(statuses(c), (std::vector<int>{200}));
  }
}

// The realistic mix: python3's ssl module (the system libssl, under _ssl loaded RTLD_LOCAL) and an
// extension with its own renamed copy (here through ctypes, RTLD_LOCAL too), in one process,
// interleaved.
TEST_F(PrivateLibssl, PythonSslBesideAModuleWithItsOwnCopy) {
  const std::string script =
      "import ctypes, http.client, ssl, sys\n"
      "port, cafile, mod = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
      "ctx = ssl.create_default_context(cafile=cafile)\n"
      "def py(path):\n"
      "    c = http.client.HTTPSConnection('localhost', port, context=ctx)\n"
      "    c.request('GET', path); r = c.getresponse(); r.read(); c.close(); print('py', r.status)\n"
      "lib = ctypes.CDLL(mod)\n"
      "buf = ctypes.create_string_buffer(512)\n"
      "py('/py1')\n"
      "rc = lib.ht_get(b'localhost', port, b'/own-copy', cafile.encode(), 0, buf, 512)\n"
      "print('mod', rc, buf.value.decode())\n"
      "py('/py2')\n";
  auto conns = run_both({paths().python.string(), "-c", script, server_.port_str(),
                         tls_.cert.string(), module("libhttps_ht1.so").string()},
                        3);
  EXPECT_EQ(last_traced_.out, "py 200\nmod 0 HTTP/1.1 200 OK\npy 200\n");
  ASSERT_EQ(conns.size(), 3u);
  const std::vector<std::string> want = {"/py1", "/own-copy", "/py2"};
  for (size_t i = 0; i < conns.size(); ++i) {
    SCOPED_TRACE(describe(conns[i]));
    expect_openssl_handshake(conns[i]);
    EXPECT_EQ(targets(conns[i]), (std::vector<std::string>{want[i]}));
    EXPECT_EQ(statuses(conns[i]), (std::vector<int>{200}));
  }
}

// Each module loaded, used and dlclose()d in turn (the next may be mapped where the last one
// was, which makes every cached per-caller answer be checked again), the first one once more at
// the end.
TEST_F(PrivateLibssl, ModulesUnloadedAndReplaced) {
  std::vector<std::string> a = argv("/reload", 0,
                                    {"libhttps_ht1.so", "libhttps_ht2.so", "libhttps_sys.so", "libhttps_ht1.so"});
  a.insert(a.begin() + 1, "--close");
  auto conns = run_both(a, 4);
  EXPECT_EQ(last_traced_.out,
            "libhttps_ht1.so HTTP/1.1 200 OK\nlibhttps_ht2.so HTTP/1.1 200 OK\n"
            "libhttps_sys.so HTTP/1.1 200 OK\nlibhttps_ht1.so HTTP/1.1 200 OK\n");
  for (const json& c : conns) {
    SCOPED_TRACE(describe(c));
    expect_openssl_handshake(c);
    EXPECT_EQ(targets(c), (std::vector<std::string>{"/reload"}));
  }
}

// SSL_CTX_new(TLS_method()) + SSL_connect: SSL_is_server() says 1 until SSL_connect sets the
// connect state, so asking it before the call skipped the handshake (recorded as "wire").
TEST_F(PrivateLibssl, GenericTlsMethodClientThroughSslConnect) {
  auto conns = run_both(argv("/generic", 0, {"libhttps_sys.so"}), 1);
  ASSERT_EQ(conns.size(), 1u);
  SCOPED_TRACE(describe(conns[0]));
  expect_openssl_handshake(conns[0]);
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/generic"}));
  // The handshake comes between the connect and the request.
  const json& c = conns[0];
  EXPECT_GE(u(c["tls"]["start_ns"]), u(c["connect"]["start_ns"]) + u(c["connect"]["duration_ns"]));
  EXPECT_LE(u(c["tls"]["start_ns"]) + u(c["tls"]["duration_ns"]), u(c["requests"][0]["start_ns"]));
}

TEST_F(PrivateLibssl, GenericTlsMethodClientThroughSetConnectStateAndDoHandshake) {
  auto conns = run_both(argv("/generic2", 1, {"libhttps_ht2.so"}), 1);
  ASSERT_EQ(conns.size(), 1u);
  SCOPED_TRACE(describe(conns[0]));
  expect_openssl_handshake(conns[0]);
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/generic2"}));
}

// Ruby's Net::HTTP: TLS_method() contexts and SSL_connect, from the openssl extension. Without
// an open timeout it calls SSL_connect once, blocking (before: never recorded, "wire" only);
// with one (the default) SSL_connect_nonblock, several calls.
TEST_F(PrivateLibssl, RubyNetHttpOverTls) {
  if (run({"ruby", "-e", "exit 0"}).exit_code != 0) GTEST_SKIP() << "ruby not installed";
  const std::string script =
      "require 'net/http'\n"
      "[nil, 30].each_with_index do |t, i|\n"
      "  h = Net::HTTP.new('localhost', ARGV[0].to_i)\n"
      "  h.use_ssl = true\n"
      "  h.ca_file = ARGV[1]\n"
      "  h.open_timeout = t\n"
      "  h.start { |c| [\"/rb#{i}\", '/status/204'].each { |p| puts c.get(p).code } }\n"
      "end\n";
  auto conns = run_both({"ruby", "-e", script, server_.port_str(), tls_.cert.string()}, 2);
  EXPECT_EQ(last_traced_.out, "200\n204\n200\n204\n");
  ASSERT_EQ(conns.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const json& c = conns[i];
    SCOPED_TRACE(describe(c));
    expect_openssl_handshake(c);
    EXPECT_EQ(targets(c), (std::vector<std::string>{"/rb" + std::to_string(i), "/status/204"}));
    EXPECT_EQ(statuses(c), (std::vector<int>{200, 204}));
  }
}

}  // namespace
}  // namespace httptrace::itest
