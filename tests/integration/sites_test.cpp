// HTTPTRACE_STACKS=1 end to end: a program with named functions (tests/clients/sites_client.cpp,
// built -O2 -g) opens connections to our loopback server, one of them from a module it dlopen()s
// after the trace file exists; `httptrace sites` and the exports must name those functions at the
// source lines marked in the sources (found by grepping the markers, so an edit of the client
// cannot silently move them), through the recorded module map (ASLR: the program is a PIE).
#include <fstream>
#include <map>
#include <regex>

#include "tests/integration/fixture.h"
#include "tests/unit/interpose_test_trace.h"

namespace httptrace::itest {
namespace {

fs::path sites_client() { return paths().build / "tests" / "sites_client"; }
fs::path http_module() { return paths().build / "tests" / "libs" / "libhttp_get.so"; }

// The 1-based line of the first line of root/source that contains marker.
int line_of(const std::string& source, const std::string& marker) {
  std::ifstream in(paths().root / source);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.find(marker) != std::string::npos) return n;
  return 0;
}

class SitesTest : public TracedTest {
 protected:
  void SetUp() override {
    TracedTest::SetUp();
    ASSERT_TRUE(fs::exists(sites_client())) << sites_client() << " missing: run make integration";
    ASSERT_TRUE(fs::exists(http_module())) << http_module() << " missing: run make integration";
    primary_ = line_of("tests/clients/sites_client.cpp", "// SITE:primary");
    inlined_ = line_of("tests/clients/sites_client.cpp", "// SITE:inlined");
    secondary_ = line_of("tests/clients/sites_client.cpp", "// SITE:secondary");
    module_ = line_of("tests/libs/http_get.cpp", "connect(fd, ai->ai_addr");
    ASSERT_GT(primary_, 0);
    ASSERT_GT(inlined_, 0);
    ASSERT_GT(secondary_, 0);
    ASSERT_GT(module_, 0);
  }

  void run_client(const fs::path& program, bool stacks) {
    Env env;
    if (stacks) env.push_back({"HTTPTRACE_STACKS", "1"});
    RunResult r = traced({program.string(), "127.0.0.1", server_.port_str(), http_module().string()}, env);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_EQ(r.out, "ok\n");
  }

  RunResult cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {paths().cli.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  int primary_ = 0, inlined_ = 0, secondary_ = 0, module_ = 0;
};

bool ends_with(const nlohmann::json& v, const std::string& tail) {
  return v.is_string() && v.get<std::string>().ends_with(tail);
}

// The frames of the connection whose stack has a frame named function, or null.
const nlohmann::json* stack_with(const nlohmann::json& doc, const std::string& function) {
  for (const auto& c : doc["connections"]) {
    if (!c["stack"].is_array()) continue;
    for (const auto& f : c["stack"])
      if (f["function"] == function) return &c["stack"];
  }
  return nullptr;
}

TEST_F(SitesTest, SitesNameTheFunctionsAndLines) {
  run_client(sites_client(), true);
  RunResult r = cli({"sites", dir_.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string& out = r.out;
  // Three connections from fetch_primary, sorted first; then the inlined helper (a frame only
  // the debug info knows) called from fetch_secondary; then the dlopen()ed module's ht_get.
  EXPECT_TRUE(std::regex_search(out, std::regex("\\n +3  fetch_primary\\(\\)  \\S*tests/clients/sites_client\\.cpp:" +
                                                std::to_string(primary_) + "  \\[sites_client\\]\\n")))
      << out;
  EXPECT_NE(out.find("open_inlined  "), std::string::npos) << out;
  EXPECT_NE(out.find("sites_client.cpp:" + std::to_string(inlined_) + "  [sites_client]  (inlined)"), std::string::npos) << out;
  EXPECT_NE(out.find("from fetch_secondary()  "), std::string::npos) << out;
  EXPECT_NE(out.find("sites_client.cpp:" + std::to_string(secondary_) + "  [sites_client]"), std::string::npos) << out;
  EXPECT_NE(out.find("ht_get  "), std::string::npos) << out;
  EXPECT_NE(out.find("tests/libs/http_get.cpp:" + std::to_string(module_) + "  [libhttp_get.so]"), std::string::npos) << out;
  EXPECT_NE(out.find("3 sites, 5 connections"), std::string::npos) << out;
  // Nothing of the recorder, libc or the loader is taken for a call site.
  EXPECT_EQ(out.find("  connect  "), std::string::npos) << out;
}

TEST_F(SitesTest, JsonStackHasFramesWithFileAndLine) {
  run_client(sites_client(), true);
  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(doc["connections"].size(), 5u) << doc.dump(1);
  int primary = 0;
  for (const auto& c : doc["connections"]) {
    ASSERT_TRUE(c["stack"].is_array()) << c.dump(1);
    ASSERT_FALSE(c["stack"].empty());
    // The recorder's own frames are not shown: the first frame is the program's (or its module's).
    EXPECT_TRUE(!ends_with(c["stack"][0]["object"], "libhttptrace.so")) << c["stack"].dump(1);
    for (const auto& f : c["stack"]) {
      ASSERT_TRUE(f.contains("function") && f.contains("file") && f.contains("line") && f.contains("object")) << f.dump();
      if (f["function"] == "fetch_primary()") {
        ++primary;
        EXPECT_TRUE(ends_with(f["file"], "tests/clients/sites_client.cpp")) << f.dump();
        EXPECT_EQ(f["line"], primary_);
        EXPECT_EQ(f["object"], sites_client().string());
      }
    }
  }
  EXPECT_EQ(primary, 3);
  const nlohmann::json* inl = stack_with(doc, "open_inlined");
  ASSERT_NE(inl, nullptr) << doc["connections"].dump(1);
  ASSERT_GE(inl->size(), 3u);
  EXPECT_EQ((*inl)[0]["function"], "open_inlined");
  EXPECT_EQ((*inl)[0]["line"], inlined_);
  EXPECT_EQ((*inl)[0]["inlined"], true);
  EXPECT_EQ((*inl)[1]["function"], "fetch_secondary()");
  EXPECT_EQ((*inl)[1]["line"], secondary_);
  EXPECT_EQ((*inl)[2]["function"], "main");
  // The module was loaded after the trace file was created: its ModuleEvent came before the stack.
  const nlohmann::json* mod = stack_with(doc, "ht_get");
  ASSERT_NE(mod, nullptr) << doc["connections"].dump(1);
  EXPECT_EQ((*mod)[0]["function"], "ht_get");
  EXPECT_TRUE(ends_with((*mod)[0]["file"], "tests/libs/http_get.cpp"));
  EXPECT_EQ((*mod)[0]["line"], module_);
  EXPECT_EQ((*mod)[0]["object"], http_module().string());
  EXPECT_EQ((*mod)[1]["function"], "main");
}

TEST_F(SitesTest, HarInitiatorIsTheStackInDevToolsShape) {
  run_client(sites_client(), true);
  RunResult r = cli({"export", "--format", "har", dir_.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto har = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(har.is_discarded());
  int primary = 0;
  for (const auto& e : har["log"]["entries"]) {
    const auto& init = e["_initiator"];
    ASSERT_EQ(init["type"], "script") << init.dump();  // each request opened its connection
    const auto& frames = init["stack"]["callFrames"];
    ASSERT_TRUE(frames.is_array() && !frames.empty());
    for (const auto& f : frames) {
      ASSERT_TRUE(f["functionName"].is_string() && f["url"].is_string() && f["lineNumber"].is_number_integer() &&
                  f["columnNumber"].is_number_integer())
          << f.dump();
    }
    if (frames[0]["functionName"] == "fetch_primary()") {
      ++primary;
      EXPECT_EQ(frames[0]["lineNumber"], primary_ - 1);  // 0-based, as DevTools counts
      EXPECT_TRUE(ends_with(frames[0]["url"], "tests/clients/sites_client.cpp"));
    }
  }
  EXPECT_EQ(primary, 3);
}

TEST_F(SitesTest, WithoutStacksSaysSo) {
  run_client(sites_client(), false);
  RunResult r = cli({"sites", dir_.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("recorded without HTTPTRACE_STACKS=1"), std::string::npos) << r.out;
  HT_EXPORT(doc, dir_.path());
  ASSERT_EQ(doc["connections"].size(), 5u);
  for (const auto& c : doc["connections"]) EXPECT_TRUE(c["stack"].is_null()) << c["stack"].dump();
  RunResult h = cli({"export", "--format", "har", dir_.path().string()});
  ASSERT_EQ(h.exit_code, 0) << h.describe();
  const auto har = nlohmann::json::parse(h.out, nullptr, false);
  ASSERT_FALSE(har["log"]["entries"].empty());
  for (const auto& e : har["log"]["entries"]) EXPECT_EQ(e["_initiator"], nlohmann::json({{"type", "other"}}));
}

// The program file is replaced after the recording by another build: its frames must say so,
// not carry the names of whatever code now sits at those offsets.
TEST_F(SitesTest, RebuiltProgramIsNotMisnamed) {
  const fs::path copy = dir_ / "sites_copy";
  fs::copy_file(sites_client(), copy);
  run_client(copy, true);
  fs::remove(copy);
  fs::copy_file(paths().build / "tests" / "dl_get", copy);
  HT_EXPORT(doc, dir_.path());
  int flagged = 0;
  for (const auto& c : doc["connections"]) {
    ASSERT_TRUE(c["stack"].is_array());
    for (const auto& f : c["stack"]) {
      if (f["object"] != copy.string()) continue;
      ++flagged;
      EXPECT_TRUE(f["function"].is_null()) << f.dump();
      EXPECT_TRUE(f["line"].is_null()) << f.dump();
      EXPECT_NE(f.value("problem", "").find("build-id differs"), std::string::npos) << f.dump();
    }
  }
  EXPECT_GE(flagged, 10);  // every connection's frames in the program (main at least)
  // The module, unchanged, still resolves.
  EXPECT_NE(stack_with(doc, "ht_get"), nullptr);
  RunResult r = cli({"sites", dir_.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.find("fetch_primary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("build-id differs"), std::string::npos) << r.out;
}

// The raw events (the unit tests' reader, not the analyzer's): the module map is the file's first
// events, each object once, the dlopen()ed module written after the program's own stacks and just
// before the stack that needs it; with stacks off, nothing of it at all.
std::vector<std::vector<uint8_t>> raw_events(const fs::path& dir) {
  std::vector<std::vector<uint8_t>> out;
  for (const auto& f : files_in(dir))
    for (const auto& seg : httptrace::testing::parse_trace(f.string()).segments)
      out.insert(out.end(), seg.events.begin(), seg.events.end());
  return out;
}

TEST_F(SitesTest, ModuleMapIsWrittenOnceBeforeTheStacksThatNeedIt) {
  run_client(sites_client(), true);
  const auto evs = raw_events(dir_.path());
  ASSERT_FALSE(evs.empty());
  using httptrace::testing::as;
  auto kind = [&](size_t i) { return static_cast<format::EventKind>(as<format::EventHeader>(evs[i]).kind); };
  ASSERT_EQ(kind(0), format::EventKind::kModule);
  std::map<std::string, int> seen;
  size_t module_at = 0, stacks_before = 0, main_modules = 0;
  for (size_t i = 0; i < evs.size(); ++i) {
    if (kind(i) == format::EventKind::kStack) ++stacks_before;
    if (kind(i) != format::EventKind::kModule) continue;
    const auto m = as<format::ModuleEvent>(evs[i]);
    ASSERT_LE(sizeof m + m.path_len, evs[i].size());
    const std::string path(reinterpret_cast<const char*>(evs[i].data()) + sizeof m, m.path_len);
    ++seen[path];
    EXPECT_LT(m.text_start, m.text_end) << path;
    EXPECT_LE(m.build_id_len, format::kModuleBuildIdMax);
    if (m.flags & format::kModuleMain) {
      ++main_modules;
      EXPECT_EQ(m.build_id_len, 20) << "the test program is linked with a GNU build-id (sha1)";
    }
    if (path == http_module().string()) {
      module_at = i;
      EXPECT_EQ(stacks_before, 4u) << "written when needed: after the program's 4 stacks";
      ASSERT_LT(i + 1, evs.size());
      EXPECT_EQ(kind(i + 1), format::EventKind::kStack);
    }
  }
  EXPECT_EQ(main_modules, 1u);
  EXPECT_GT(module_at, 0u);
  for (const auto& [path, n] : seen) EXPECT_EQ(n, 1) << path << " written " << n << " times";
  EXPECT_GE(seen.size(), 4u);  // the program, libc, the loader, us, the module...
}

TEST_F(SitesTest, StacksOffWritesNoModuleMap) {
  run_client(sites_client(), false);
  const auto evs = raw_events(dir_.path());
  ASSERT_FALSE(evs.empty());
  for (const auto& e : evs) {
    const auto k = static_cast<format::EventKind>(httptrace::testing::as<format::EventHeader>(e).kind);
    EXPECT_NE(k, format::EventKind::kModule);
    EXPECT_NE(k, format::EventKind::kStack);
  }
}

}  // namespace
}  // namespace httptrace::itest
