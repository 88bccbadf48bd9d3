#include "analyzer/symbols/symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace httptrace::analyzer {

namespace {

const Dwfl_Callbacks kCallbacks = {
    .find_elf = nullptr,  // every module is reported with its file
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = nullptr,
};

std::string demangle(const char* name) {
  if (name == nullptr) return {};
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d != nullptr ? d : name;
  std::free(d);
  return out;
}

// A function's name: the demangled linkage name (namespace, class and parameters: what
// addr2line -Cf prints), else the plain DWARF name (C, main, extern "C").
std::string die_function(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (int at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dwarf_attr_integrate(die, at, &attr) != nullptr) {
      if (const char* s = dwarf_formstring(&attr)) return demangle(s);
    }
  }
  const char* name = dwarf_diename(die);
  return name != nullptr ? name : "";
}

// The source position an inlined call was made from (its DW_AT_call_file / call_line).
void call_position(Dwarf_Die* cu, Dwarf_Die* inlined, Frame& f) {
  Dwarf_Attribute attr;
  Dwarf_Word v = 0;
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &v) == 0) f.line = static_cast<uint32_t>(v);
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_column, &attr), &v) == 0) f.column = static_cast<uint32_t>(v);
  Dwarf_Files* files = nullptr;
  size_t n = 0;
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &v) == 0 &&
      dwarf_getsrcfiles(cu, &files, &n) == 0 && v < n) {
    if (const char* s = dwarf_filesrc(files, v, nullptr, nullptr)) f.file = s;
  }
}

}  // namespace

struct Symbolizer::Object {
  Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  std::string path, problem;
  struct Hash {
    size_t operator()(uint64_t v) const { return std::hash<uint64_t>()(v * 0x9e3779b97f4a7c15ull); }
  };
  std::unordered_map<uint64_t, std::vector<Frame>, Hash> cache;  // by offset
  ~Object() {
    if (dwfl) dwfl_end(dwfl);
  }
};

// A file's modules sorted by start address, rebuilt when the stream has added more.
struct Symbolizer::FileIndex {
  size_t built = 0;
  std::vector<uint32_t> by_start;
};

Symbolizer::Symbolizer(const TraceSet& traces) : traces_(traces) {
  for (uint32_t i = 0; i < traces.files().size(); ++i) {
    index_.push_back(std::make_unique<FileIndex>());
    files_of_pid_[traces.files()[i].pid].push_back(i);
  }
}

Symbolizer::~Symbolizer() = default;

const Module* Symbolizer::find_module(uint32_t file, uint64_t pc, uint64_t ts) {
  const ModuleList& list = traces_.modules(file);
  FileIndex& ix = *index_[file];
  const size_t n = list.size();
  if (ix.built != n) {
    ix.by_start.resize(n);
    for (uint32_t i = 0; i < n; ++i) ix.by_start[i] = i;
    std::stable_sort(ix.by_start.begin(), ix.by_start.end(),
                     [&](uint32_t a, uint32_t b) { return list[a].text_start < list[b].text_start; });
    ix.built = n;
  }
  auto it = std::upper_bound(ix.by_start.begin(), ix.by_start.end(), pc,
                             [&](uint64_t v, uint32_t i) { return v < list[i].text_start; });
  // Objects of one process do not overlap, except one unloaded and another loaded in its place:
  // then the one found loaded last at or before the stack's time; a few steps back suffice.
  const Module* best = nullptr;
  for (int steps = 0; it != ix.by_start.begin() && steps < 16; ++steps) {
    const Module& m = list[*--it];
    if (!m.contains(pc)) continue;
    if (!best) best = &m;
    else if (m.ts_ns <= ts && (best->ts_ns > ts || m.ts_ns > best->ts_ns)) best = &m;
    else if (best->ts_ns > ts && m.ts_ns < best->ts_ns) best = &m;
  }
  return best;
}

// A pid may have several files (each exec starts one): the one whose objects hold the stack.
uint32_t Symbolizer::pick_file(int32_t pid, const std::vector<uint64_t>& pcs, uint64_t ts) {
  const auto it = files_of_pid_.find(pid);
  if (it == files_of_pid_.end()) return UINT32_MAX;
  if (it->second.size() == 1) return it->second[0];
  uint32_t best = UINT32_MAX;
  size_t best_hits = 0;
  for (uint32_t f : it->second) {
    size_t hits = 0;
    for (size_t i = 0; i < pcs.size() && i < kMaxFrames; ++i) hits += find_module(f, pcs[i], ts) != nullptr;
    if (best == UINT32_MAX || hits > best_hits) best = f, best_hits = hits;
  }
  return best;
}

Symbolizer::Object& Symbolizer::object_for(const Module& m) {
  std::string key = m.path;
  key.push_back('\0');
  key += m.build_id;
  auto [it, fresh] = objects_.try_emplace(key);
  if (!fresh) return *it->second;
  it->second = std::make_unique<Object>();
  Object& o = *it->second;
  o.path = m.path;
  if (m.flags & tf::kModuleVdso) {
    o.problem = "the kernel's vDSO (no file)";
    return o;
  }
  if (objects_.size() > kMaxObjects) {
    o.problem = "too many objects in the trace; not opened";
    return o;
  }
  if (m.path.empty() || m.path[0] != '/') {
    o.problem = "no absolute path recorded";
    return o;
  }
  struct stat st;
  if (stat(m.path.c_str(), &st) != 0) {
    o.problem = std::string("cannot open: ") + std::strerror(errno);
    return o;
  }
  if (!S_ISREG(st.st_mode)) {
    o.problem = "not a regular file";
    return o;
  }
  const int fd = open(m.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    o.problem = fd < 0 ? std::string("cannot open: ") + std::strerror(errno) : "not a regular file";
    if (fd >= 0) close(fd);
    return o;
  }
  o.dwfl = dwfl_begin(&kCallbacks);
  if (o.dwfl == nullptr) {
    close(fd);
    o.problem = dwfl_errmsg(-1);
    return o;
  }
  dwfl_report_begin(o.dwfl);
  // At base 0: module addresses are the file's own vaddrs; the trace's bias is taken off first.
  Dwfl_Module* mod = dwfl_report_elf(o.dwfl, std::string(base_name(m.path)).c_str(), m.path.c_str(), fd, 0, false);
  dwfl_report_end(o.dwfl, nullptr, nullptr);
  if (mod == nullptr) {
    close(fd);  // not consumed on failure
    o.problem = std::string("not a usable ELF file: ") + dwfl_errmsg(-1);
    return o;
  }
  if (!m.build_id.empty()) {
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr = 0;
    const int len = dwfl_module_build_id(mod, &bits, &vaddr);
    const bool cut = (m.flags & tf::kModuleBuildIdCut) != 0;
    const bool same = len > 0 && (cut ? static_cast<size_t>(len) >= m.build_id.size()
                                      : static_cast<size_t>(len) == m.build_id.size()) &&
                      std::memcmp(bits, m.build_id.data(), m.build_id.size()) == 0;
    if (!same) {
      o.problem = "the file's build-id differs from the recorded one (rebuilt or replaced since)";
      return o;
    }
  }
  o.mod = mod;
  return o;
}

const std::vector<Frame>& Symbolizer::resolve(Object& o, uint64_t offset) {
  if (o.cache.size() >= 1u << 16) o.cache.clear();  // bounded memory; a real program has far fewer
  auto [it, fresh] = o.cache.try_emplace(offset);
  std::vector<Frame>& out = it->second;
  if (!fresh) return out;
  Frame base;
  base.object = o.path;
  base.offset = offset;
  base.problem = o.problem;
  if (o.mod == nullptr || ++lookups_ > kMaxLookups) {
    if (o.mod != nullptr) base.problem = "symbolization budget of this report exhausted";
    out.push_back(base);
    return out;
  }
  // A return address is the instruction after the call: look up the call itself.
  const Dwarf_Addr a = offset > 0 ? offset - 1 : 0;
  Frame f = base;
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(o.mod, a, &bias);
  // Sources compiled by a relative name are named from the compilation's directory.
  std::string comp_dir;
  Dwarf_Attribute attr;
  if (cu != nullptr)
    if (const char* d = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr))) comp_dir = d;
  auto absolute = [&](Frame& fr) {
    if (!fr.file.empty() && fr.file[0] != '/' && !comp_dir.empty()) fr.file = comp_dir + "/" + fr.file;
  };
  if (Dwfl_Line* line = dwfl_module_getsrc(o.mod, a)) {
    int lineno = 0, col = 0;
    if (const char* src = dwfl_lineinfo(line, nullptr, &lineno, &col, nullptr, nullptr)) f.file = src;
    f.line = lineno > 0 ? static_cast<uint32_t>(lineno) : 0;
    f.column = col > 0 ? static_cast<uint32_t>(col) : 0;
    absolute(f);
  }
  if (cu != nullptr) {
    Dwarf_Die* scopes = nullptr;
    int n = dwarf_getscopes(cu, a - bias, &scopes);
    // That chain continues, past an inlined instance, in its abstract origin's scopes; the DIEs
    // that physically contain the innermost one are the callers it was inlined into.
    if (n > 0) {
      Dwarf_Die inner = scopes[0];
      std::free(scopes);
      scopes = nullptr;
      n = dwarf_getscopes_die(&inner, &scopes);
    }
    // Innermost first: each inlined call is a frame whose caller's position is its call site.
    for (int i = 0; i < n; ++i) {
      const int tag = dwarf_tag(&scopes[i]);
      if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine) continue;
      f.function = die_function(&scopes[i]);
      f.inlined = tag == DW_TAG_inlined_subroutine;
      out.push_back(f);
      if (!f.inlined) break;
      f = base;
      call_position(cu, &scopes[i], f);
      absolute(f);
    }
    std::free(scopes);
  }
  if (out.empty()) {
    GElf_Off off = 0;
    GElf_Sym sym;
    if (const char* name = dwfl_module_addrinfo(o.mod, a, &off, &sym, nullptr, nullptr, nullptr))
      f.function = demangle(name);
    out.push_back(f);
  }
  return out;
}

std::vector<Frame> Symbolizer::frames(const Connection& c) {
  if (c.stack.empty()) return {};
  return frames(c.pid, c.stack, c.has_connect ? c.connect_start_ns : c.start_ns);
}

std::vector<Frame> Symbolizer::frames(int32_t pid, const std::vector<uint64_t>& pcs, uint64_t ts) {
  std::vector<Frame> out;
  if (pcs.empty()) return out;
  const uint32_t file = pick_file(pid, pcs, ts);
  bool top = true;  // the recorder's own frames (record_stack, the connect wrapper) are left out
  for (size_t i = 0; i < pcs.size() && i < kMaxFrames; ++i) {
    const Module* m = file != UINT32_MAX ? find_module(file, pcs[i], ts) : nullptr;
    if (top && m != nullptr && base_name(m->path).starts_with("libhttptrace")) continue;
    top = false;
    if (m == nullptr) {
      Frame f;
      f.address = pcs[i];
      f.problem = "in no recorded object";
      out.push_back(std::move(f));
      continue;
    }
    const uint64_t offset = pcs[i] - m->bias;
    for (Frame f : resolve(object_for(*m), offset)) {
      f.address = pcs[i];
      out.push_back(std::move(f));
    }
  }
  return out;
}

std::string_view base_name(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool library_frame(const Frame& f) {
  static constexpr std::string_view kLibraries[] = {
      "libhttptrace", "libc.so", "libc-", "ld-linux", "ld64.so", "libpthread", "libdl.", "libunwind",
      "libssl", "libcrypto", "libgnutls", "libnettle", "libhogweed", "libcurl", "libnghttp2",
      "libresolv", "libnss_", "linux-vdso", "linux-gate"};
  const std::string_view name = base_name(f.object);
  for (std::string_view lib : kLibraries)
    if (name.starts_with(lib)) return true;
  return false;
}

const Frame* call_site(const std::vector<Frame>& frames) {
  for (const Frame& f : frames)
    if (!f.object.empty() && !library_frame(f)) return &f;
  return nullptr;
}

}  // namespace httptrace::analyzer
