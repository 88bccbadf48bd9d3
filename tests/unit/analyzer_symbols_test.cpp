// The module map and the symbolizer (analyzer/symbols/): ModuleEvents read and validated (hostile
// ones cost a warning, never a crash or unbounded memory), connect stacks attached to their
// connection, addresses mapped back through a recorded bias with real libdwfl on this test
// binary's own debug info, and the untrusted paths a trace names never opened when they are not
// regular files.
#include <link.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>

#include <gtest/gtest.h>

#include "analyzer/symbols/symbolizer.h"
#include "tests/unit/analyzer_read_util.h"
#include "tests/unit/analyzer_test_util.h"

// Named frames for the symbolizer to find (out of line, external: the names are real symbols).
__attribute__((noinline)) uint64_t symbols_test_marker_function(int x) {
  asm volatile("" ::: "memory");
  return static_cast<uint64_t>(x) * 3;
}

namespace httptrace::testing {
namespace {

tf::ModuleEvent module_event(uint64_t ts, uint64_t bias, uint64_t lo, uint64_t hi, std::string_view build_id = {},
                             uint8_t flags = 0) {
  tf::ModuleEvent e{};
  e.h = TraceBuilder::head(tf::EventKind::kModule, 0, ts);
  e.bias = bias;
  e.text_start = lo;
  e.text_end = hi;
  e.flags = flags;
  e.build_id_len = static_cast<uint8_t>(build_id.size());
  if (!build_id.empty()) std::memcpy(e.build_id, build_id.data(), std::min(build_id.size(), sizeof e.build_id));
  return e;
}

void add_module(TraceBuilder& b, int32_t tid, tf::ModuleEvent e, std::string_view path) {
  e.path_len = static_cast<uint16_t>(path.size());
  b.add(tid, e, path);
}

void add_stack(TraceBuilder& b, int32_t tid, uint64_t ts, uint32_t conn, const std::vector<uint64_t>& pcs) {
  tf::StackEvent e{};
  e.h = TraceBuilder::head(tf::EventKind::kStack, conn, ts);
  e.depth = static_cast<uint32_t>(pcs.size());
  b.add(tid, e, std::string_view(reinterpret_cast<const char*>(pcs.data()), pcs.size() * 8));
}

struct Opened {
  TempDir dir;
  TraceSet ts;
  std::vector<Copied> evs;
  explicit Opened(const TraceBuilder& b) {
    EXPECT_TRUE(open_built(ts, dir, {&b}));
    evs = read_all(ts);
  }
};

// This test binary as the recorder would have written it: bias, code range, build-id.
struct Self {
  std::string path;
  uint64_t bias = 0, lo = ~uint64_t{0}, hi = 0;
  std::string build_id;
};
Self self_module() {
  Self s;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        Self& s = *static_cast<Self*>(arg);
        s.bias = info->dlpi_addr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& p = info->dlpi_phdr[i];
          if (p.p_type == PT_LOAD && (p.p_flags & PF_X)) {
            s.lo = std::min<uint64_t>(s.lo, info->dlpi_addr + p.p_vaddr);
            s.hi = std::max<uint64_t>(s.hi, info->dlpi_addr + p.p_vaddr + p.p_memsz);
          }
          if (p.p_type == PT_NOTE) {
            const auto* at = reinterpret_cast<const uint8_t*>(info->dlpi_addr + p.p_vaddr);
            size_t off = 0;
            while (off + sizeof(ElfW(Nhdr)) <= p.p_filesz) {
              ElfW(Nhdr) nh;
              std::memcpy(&nh, at + off, sizeof nh);
              const size_t name = (nh.n_namesz + 3) & ~3u, desc = (nh.n_descsz + 3) & ~3u;
              if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4)
                s.build_id.assign(reinterpret_cast<const char*>(at + off + sizeof nh + name), nh.n_descsz);
              off += sizeof nh + name + desc;
            }
          }
        }
        return 1;  // the first object is the program
      },
      &s);
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf);
  s.path.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return s;
}

TEST(Modules, ReaderKeepsEachFilesModules) {
  TraceBuilder b;
  add_module(b, 1, module_event(100, 0x5000, 0x6000, 0x9000, std::string("\xab\xcd", 2), tf::kModuleMain), "");
  add_module(b, 1, module_event(100, 0x7f0000000000, 0x7f0000001000, 0x7f0000005000), "/lib/libx.so");
  b.socket(1, 200, 1, 3);
  Opened o(b);
  EXPECT_TRUE(o.ts.warnings().empty());
  const ModuleList& m = o.ts.modules(0);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].path, "/usr/bin/client");  // the main program: the header's exe
  EXPECT_EQ(m[0].bias, 0x5000u);
  EXPECT_EQ(m[0].build_id, std::string("\xab\xcd", 2));
  EXPECT_TRUE(m[0].contains(0x6000) && !m[0].contains(0x9000));
  EXPECT_EQ(m[1].path, "/lib/libx.so");
  EXPECT_TRUE(m[1].build_id.empty());
  // A restarted stream (a second report) starts the lists again rather than doubling them.
  o.ts.start();
  read_all(o.ts);
  EXPECT_EQ(o.ts.modules(0).size(), 2u);
}

TEST(Modules, HostileModuleEventsAreRefusedWithAWarning) {
  TraceBuilder b;
  auto long_id = module_event(1, 0, 0x1000, 0x2000);
  long_id.build_id_len = 200;  // more than the 32 bytes the record has
  b.add(1, long_id, "/a");
  b.new_segment(1);
  b.add(1, module_event(2, 0, 0x3000, 0x1000), "/b");  // ends before it starts
  b.new_segment(1);
  auto past = module_event(3, 0, 0x1000, 0x2000);
  past.path_len = 4000;  // runs past the event
  b.add(1, past, "/c");
  b.new_segment(1);
  add_module(b, 1, module_event(4, 0, 0x1000, 0x2000), "/ok");
  Opened o(b);
  ASSERT_EQ(o.ts.warnings().size(), 3u);
  EXPECT_NE(o.ts.warnings()[0].find("build-id longer than 32 bytes"), std::string::npos) << o.ts.warnings()[0];
  EXPECT_NE(o.ts.warnings()[1].find("code range ends before it starts"), std::string::npos) << o.ts.warnings()[1];
  EXPECT_NE(o.ts.warnings()[2].find("runs past the event"), std::string::npos) << o.ts.warnings()[2];
  ASSERT_EQ(o.ts.modules(0).size(), 1u);
  EXPECT_EQ(o.ts.modules(0)[0].path, "/ok");
}

TEST(Modules, ListIsBoundedPerFile) {
  TraceBuilder b;
  for (size_t i = 0; i < ModuleList::kMax + 100; ++i)
    add_module(b, 1, module_event(i + 1, 0, 0x1000 * i, 0x1000 * i + 0x800), "/m");
  Opened o(b);
  EXPECT_EQ(o.ts.modules(0).size(), ModuleList::kMax);
  ASSERT_EQ(o.ts.warnings().size(), 1u);
  EXPECT_NE(o.ts.warnings()[0].find("loaded objects recorded; the rest are ignored"), std::string::npos);
}

TEST(Modules, ModuleAndStackStayInTheirConnectsPlace) {
  TraceBuilder b;
  b.socket(1, 100, 1, 3);
  b.connect(1, 110, 1, 3, ipv4("127.0.0.1", 80), 50);  // happened at 160
  add_module(b, 1, module_event(110, 0, 0x1000, 0x2000), "/late.so");
  add_stack(b, 1, 110, 1, {0x1234});
  Opened o(b);
  ASSERT_EQ(o.evs.size(), 4u);
  EXPECT_EQ(o.evs[1].kind(), tf::EventKind::kConnect);
  EXPECT_EQ(o.evs[2].kind(), tf::EventKind::kModule);
  EXPECT_EQ(o.evs[2].order_ns, 160u);
  EXPECT_EQ(o.evs[3].kind(), tf::EventKind::kStack);
  EXPECT_EQ(o.evs[3].order_ns, 160u);
}

// A stack event of depth 0 (the fuzzer made one: memcpy from a null vector, UBSan) is an empty
// stack, not undefined behaviour.
TEST(Modules, AnEmptyStackIsAnEmptyStack) {
  TraceBuilder b;
  b.socket(1, 100, 1, 3);
  b.connect(1, 110, 1, 3, ipv4("127.0.0.1", 80), 50);
  add_stack(b, 1, 110, 1, {});
  Collected out = model_of({&b});
  ASSERT_NE(out.by_conn(1), nullptr);
  EXPECT_TRUE(out.by_conn(1)->stack.empty());
}

TEST(Modules, ModelAttachesTheConnectStackToItsConnection) {
  TraceBuilder b;
  b.socket(1, 100, 1, 3);
  b.connect(1, 110, 1, 3, ipv4("127.0.0.1", 80), 50);
  add_stack(b, 1, 110, 1, {0x1111, 0x2222, 0x3333});
  b.socket(1, 300, 2, 4);
  b.connect(1, 310, 2, 4, ipv4("127.0.0.1", 80), 50);
  b.dns(1, 400, "example.com", 10, {ipv4("127.0.0.1")});
  add_stack(b, 1, 400, 0, {0x9999});  // a lookup's stack names no connection
  Collected out = model_of({&b});
  ASSERT_EQ(out.conns.size(), 2u);
  ASSERT_NE(out.by_conn(1), nullptr);
  EXPECT_EQ(out.by_conn(1)->stack, (std::vector<uint64_t>{0x1111, 0x2222, 0x3333}));
  EXPECT_TRUE(out.by_conn(2)->stack.empty());
}

// Symbolizes an address of this very binary the way a trace recorded it: through the bias.
TEST(Symbolizer, MapsThroughTheRecordedBiasToFunctionAndLine) {
  const Self s = self_module();
  ASSERT_FALSE(s.path.empty());
  TraceBuilder b(4242);
  add_module(b, 1, module_event(1, s.bias, s.lo, s.hi, s.build_id, tf::kModuleMain), "");
  b.header().exe_len = static_cast<uint32_t>(s.path.size());
  std::memcpy(b.header().exe, s.path.data(), s.path.size());
  b.socket(1, 10, 1, 3);
  Opened o(b);
  Symbolizer sym(o.ts);
  // A "return address" just past the start of the function: the instruction before it is in it.
  const uint64_t pc = reinterpret_cast<uint64_t>(&symbols_test_marker_function) + 4;
  const std::vector<Frame> frames = sym.frames(4242, {pc}, 100);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0].function, "symbols_test_marker_function(int)");
  EXPECT_EQ(frames[0].object, s.path);
  EXPECT_EQ(frames[0].offset, pc - s.bias);
  EXPECT_TRUE(frames[0].file.ends_with("tests/unit/analyzer_symbols_test.cpp")) << frames[0].file;
  EXPECT_GT(frames[0].line, 0u);
  EXPECT_TRUE(frames[0].problem.empty()) << frames[0].problem;
  // An address outside every recorded object, and a pid without a trace.
  EXPECT_EQ(sym.frames(4242, {8}, 100).at(0).problem, "in no recorded object");
  EXPECT_EQ(sym.frames(1, {pc}, 100).at(0).problem, "in no recorded object");
}

TEST(Symbolizer, AnotherBuildIdIsReportedNotMisnamed) {
  const Self s = self_module();
  TraceBuilder b(4242);
  add_module(b, 1, module_event(1, s.bias, s.lo, s.hi, std::string(20, '\x5a')), s.path);
  b.socket(1, 10, 1, 3);
  Opened o(b);
  Symbolizer sym(o.ts);
  const std::vector<Frame> frames = sym.frames(4242, {reinterpret_cast<uint64_t>(&symbols_test_marker_function) + 4}, 100);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].function.empty());
  EXPECT_TRUE(frames[0].file.empty());
  EXPECT_NE(frames[0].problem.find("build-id differs"), std::string::npos) << frames[0].problem;
}

// Paths come from the trace: a FIFO, a device, a directory, a relative name or a missing file
// must be refused before anything reads them (a FIFO would block the analyzer forever).
TEST(Symbolizer, NeverOpensWhatIsNotARegularFile) {
  TempDir dir;
  const std::string fifo = dir.file("fifo.so");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {fifo, "not a regular file"},        {"/dev/zero", "not a regular file"}, {"/", "not a regular file"},
      {"lib/rel.so", "no absolute path"}, {dir.file("missing.so"), "cannot open"},
  };
  TraceBuilder b(7);
  for (size_t i = 0; i < cases.size(); ++i)
    add_module(b, 1, module_event(1, 0, 0x10000 * (i + 1), 0x10000 * (i + 1) + 0x1000), cases[i].first);
  add_module(b, 1, module_event(1, 0, 0x900000, 0x901000, {}, tf::kModuleVdso), "linux-vdso.so.1");
  b.socket(1, 10, 1, 3);
  Opened o(b);
  Symbolizer sym(o.ts);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto frames = sym.frames(7, {0x10000 * (i + 1) + 0x10}, 100);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].object, cases[i].first);
    EXPECT_EQ(frames[0].offset, 0x10000 * (i + 1) + 0x10);
    EXPECT_NE(frames[0].problem.find(cases[i].second), std::string::npos) << cases[i].first << ": " << frames[0].problem;
  }
  EXPECT_NE(sym.frames(7, {0x900010}, 100).at(0).problem.find("vDSO"), std::string::npos);
}

// An object unloaded and another loaded at its addresses: a stack takes the one that was there at
// its time (the latest found loaded at or before it).
TEST(Symbolizer, AddressesReusedAfterAnUnloadGoToTheObjectOfTheirTime) {
  TraceBuilder b(7);
  add_module(b, 1, module_event(100, 0, 0x10000, 0x20000), "/old.so");
  add_module(b, 1, module_event(500, 0, 0x10000, 0x20000), "/new.so");
  b.socket(1, 10, 1, 3);
  Opened o(b);
  Symbolizer sym(o.ts);
  EXPECT_EQ(sym.frames(7, {0x10100}, 300).at(0).object, "/old.so");
  EXPECT_EQ(sym.frames(7, {0x10100}, 600).at(0).object, "/new.so");
  EXPECT_EQ(sym.frames(7, {0x10100}, 50).at(0).object, "/old.so");  // before both: the earliest
}

TEST(Symbolizer, StacksAreCutAtTheFrameBound) {
  TraceBuilder b(7);
  add_module(b, 1, module_event(1, 0, 0x10000, 0x20000), "/none.so");
  b.socket(1, 10, 1, 3);
  Opened o(b);
  Symbolizer sym(o.ts);
  std::vector<uint64_t> pcs(1000, 0x10100);
  EXPECT_EQ(sym.frames(7, pcs, 100).size(), Symbolizer::kMaxFrames);
}

TEST(Symbolizer, CallSiteSkipsLibraryFrames) {
  std::vector<Frame> frames(4);
  frames[0].object = "/usr/lib/libcurl.so.4";
  frames[1].object = "/lib/x86_64-linux-gnu/libc.so.6";
  frames[2].object = "/opt/app/bin/app";
  frames[2].function = "fetch";
  frames[3].object = "/opt/app/bin/app";
  ASSERT_NE(call_site(frames), nullptr);
  EXPECT_EQ(call_site(frames)->function, "fetch");
  EXPECT_EQ(call_site({frames[0], frames[1]}), nullptr);
  EXPECT_TRUE(library_frame(frames[0]));
  EXPECT_FALSE(library_frame(frames[2]));
}

}  // namespace
}  // namespace httptrace::testing
