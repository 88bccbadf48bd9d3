// Run-time resolution of the TLS libraries, per calling object: nothing while no library is
// loaded (and nothing gets loaded by asking), each caller's own copy when several are loaded
// RTLD_LOCAL (the python3 _ssl and manylinux-wheel cases, invisible to dlsym(RTLD_NEXT)), and a
// library lacking a function we need settling into pass-through once, for good.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>
#include <sys/mman.h>
#include <stdlib.h>

#include <cerrno>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>
#include <string>

#include "interpose/tls/gnutls_api.h"
#include "interpose/tls/openssl_api.h"

namespace httptrace::tls {
namespace {

namespace fs = std::filesystem;

bool loaded(const char* soname) {
  void* h = dlopen(soname, RTLD_NOLOAD | RTLD_LAZY);
  if (h != nullptr) dlclose(h);
  return h != nullptr;
}

void* sym(void* lib, const char* name) { return dlsym(lib, name); }

std::string path_of(void* handle) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr) return {};
  return map->l_name;
}

// A caller in the test binary itself: this is the main program, whose scope is the global one.
void* here() { return reinterpret_cast<void*>(&here); }

// Runs first (gtest keeps a file's order): no TLS library is loaded yet in this process.
TEST(TlsSymbols, NothingLoadedFindsNothingAndLoadsNothing) {
  ASSERT_FALSE(loaded("libssl.so.3")) << "precondition: the unit tests link no libssl";
  ASSERT_FALSE(loaded("libgnutls.so.30"));
  // Our failed look-ups must leave neither errno nor dlerror() changed for the program.
  dlerror();
  errno = 1234;
  EXPECT_EQ(openssl().for_caller(here()).api, nullptr);
  EXPECT_EQ(errno, 1234);
  EXPECT_EQ(dlerror(), nullptr);
  EXPECT_EQ(gnutls().for_caller(here()).api, nullptr);
  EXPECT_EQ(openssl().one<void*>(here(), "SSL_read"), nullptr);
  EXPECT_FALSE(loaded("libssl.so.3"));
  EXPECT_FALSE(loaded("libgnutls.so.30"));
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/ht-tls-symbols-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Two private copies of libssl beside the system one, all RTLD_LOCAL, the second under another
// file name (as auditwheel renames them): each caller gets its own copy's functions.
TEST(TlsSymbols, EachCallerGetsItsOwnCopyOfLibssl) {
  void* sys = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(sys, nullptr) << dlerror();
  ASSERT_EQ(dlsym(RTLD_DEFAULT, "SSL_read"), nullptr) << "RTLD_LOCAL keeps it out of the global scope";
  TempDir tmp;
  const fs::path copy_a = tmp.path / "libssl.so.3";
  const fs::path copy_b = tmp.path / "libssl-3a1b2c3d.so.3";
  fs::copy_file(path_of(sys), copy_a);
  fs::copy_file(path_of(sys), copy_b);
  void* a = dlopen(copy_a.c_str(), RTLD_NOW | RTLD_LOCAL);
  void* b = dlopen(copy_b.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(a, nullptr) << dlerror();
  ASSERT_NE(b, nullptr) << dlerror();
  ASSERT_NE(sym(a, "SSL_read"), sym(sys, "SSL_read")) << "glibc shares a copy it should load apart";
  ASSERT_NE(sym(a, "SSL_read"), sym(b, "SSL_read"));

  // The main program sees no libssl at all: nothing to call, and not remembered as an answer.
  EXPECT_EQ(openssl().for_caller(here()).api, nullptr);

  const uint32_t before = openssl().resolutions();
  for (void* lib : {sys, a, b}) {
    // A call made from inside a copy (libssl's SSL_connect calling SSL_do_handshake through its
    // PLT, which reaches our wrapper) must land in that copy.
    const void* caller = sym(lib, "SSL_connect");
    const auto v = openssl().for_caller(caller);
    ASSERT_NE(v.api, nullptr);
    EXPECT_TRUE(v.record);
    EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_read), sym(lib, "SSL_read"));
    EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_do_handshake), sym(lib, "SSL_do_handshake"));
    EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_read_ex), sym(lib, "SSL_read_ex"));
    // From libcrypto, a dependency: the copy's handle searches it too.
    EXPECT_EQ(reinterpret_cast<void*>(v.api->ERR_peek_error), sym(lib, "ERR_peek_error"));
    EXPECT_NE(v.api->ERR_peek_error, nullptr);
    EXPECT_EQ(openssl().one<void*>(caller, "SSL_write"), sym(lib, "SSL_write"));
  }
  EXPECT_EQ(openssl().resolutions(), before + 3);
  // Cached: the same answers again without looking anything up.
  for (void* lib : {sys, a, b}) {
    const auto v = openssl().for_caller(sym(lib, "SSL_write"));
    ASSERT_NE(v.api, nullptr);
    EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_write), sym(lib, "SSL_write"));
  }
  EXPECT_EQ(openssl().resolutions(), before + 3);

  // A dlclose elsewhere makes every entry be checked once more; the answers stay the same.
  dl_epoch().fetch_add(1);
  const auto v = openssl().for_caller(sym(b, "SSL_write"));
  ASSERT_NE(v.api, nullptr);
  EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_write), sym(b, "SSL_write"));
  EXPECT_EQ(openssl().resolutions(), before + 4);
  EXPECT_EQ(openssl().for_caller(sym(b, "SSL_write")).api, v.api);
  EXPECT_EQ(openssl().resolutions(), before + 4);
  // The copies stay loaded (libssl 3 registers exit handlers in libcrypto).
}

// A caller in no object (JIT code in an anonymous mapping): the library a known soname names,
// looked up once per page rather than at every call.
TEST(TlsSymbols, ACallerInNoObjectIsCachedByItsPage) {
  void* sys = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(sys, nullptr) << dlerror();
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  const char* jit = static_cast<const char*>(page);
  const uint32_t before = openssl().resolutions();
  const auto v = openssl().for_caller(jit + 16);
  ASSERT_NE(v.api, nullptr);
  EXPECT_TRUE(v.record);
  void* by_soname = dlopen("libssl.so.3", RTLD_NOLOAD | RTLD_LAZY);
  EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_read), sym(by_soname, "SSL_read"));
  dlclose(by_soname);
  EXPECT_EQ(openssl().for_caller(jit + 3000).api, v.api);
  EXPECT_EQ(openssl().resolutions(), before + 1);
  munmap(page, 4096);
  dlclose(sys);
}

// Threads making their first calls from several objects at once: every answer is that object's
// own library, whatever the interleaving of the look-ups and the table appends.
TEST(TlsSymbols, ConcurrentFirstCallsAgree) {
  void* sys = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(sys, nullptr) << dlerror();
  TempDir tmp;
  const fs::path copy = tmp.path / "libssl-c0ffee00.so.3";
  fs::copy_file(path_of(sys), copy);
  void* other = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(other, nullptr) << dlerror();
  static constinit CallerApis<OpensslApi> table;
  void* libs[2] = {sys, other};
  std::atomic<int> wrong{0}, missing{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        void* lib = libs[(t + i) & 1];
        const auto v = table.for_caller(sym(lib, (i & 2) ? "SSL_write" : "SSL_connect"));
        if (v.api == nullptr) ++missing;
        else if (reinterpret_cast<void*>(v.api->SSL_read) != sym(lib, "SSL_read")) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  // Racing first calls may each append an entry; never more than one per thread and object.
  EXPECT_LE(table.resolutions(), 16u);
}

// An API whose library lacks one function we would need: the caller's real functions are still
// handed out, the entry says "do not record", and it is settled after one lookup.
struct IncompleteApi {
  decltype(&::SSL_read) SSL_read;
  void* missing;
  static constexpr const char* kSonames[] = {"libssl.so.3"};
  static constexpr const char* kProbe = "SSL_read";
  static bool fill(IncompleteApi& api, void* lib) {
    const bool have_read = load(api.SSL_read, lib, "SSL_read");
    return load(api.missing, lib, "SSL_no_such_function_in_any_release") && have_read;
  }
};

TEST(TlsSymbols, ALibraryLackingAFunctionSettlesIntoPassThrough) {
  void* sys = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(sys, nullptr) << dlerror();
  static constinit CallerApis<IncompleteApi> table;
  const void* caller = sym(sys, "SSL_connect");
  for (int i = 0; i < 3; ++i) {
    const auto v = table.for_caller(caller);
    ASSERT_NE(v.api, nullptr);
    EXPECT_FALSE(v.record);
    EXPECT_EQ(reinterpret_cast<void*>(v.api->SSL_read), sym(sys, "SSL_read"));
  }
  EXPECT_EQ(table.resolutions(), 1u) << "not re-resolved at every call";
  dlclose(sys);
}

TEST(TlsSymbols, GnutlsFromAnRtldLocalCopy) {
  void* lib = dlopen("libgnutls.so.30", RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  EXPECT_EQ(gnutls().for_caller(here()).api, nullptr) << "invisible to the main program";
  const auto v = gnutls().for_caller(sym(lib, "gnutls_handshake"));
  ASSERT_NE(v.api, nullptr);
  EXPECT_TRUE(v.record);
  EXPECT_EQ(reinterpret_cast<void*>(v.api->gnutls_handshake), sym(lib, "gnutls_handshake"));
  EXPECT_NE(v.api->gnutls_ciphersuite_get, nullptr) << "Debian 12 ships GnuTLS 3.7.9";
  EXPECT_EQ(v.api->gnutls_error_is_fatal(GNUTLS_E_AGAIN), 0);
  EXPECT_NE(v.api->gnutls_error_is_fatal(GNUTLS_E_DECRYPTION_FAILED), 0);
}

}  // namespace
}  // namespace httptrace::tls
