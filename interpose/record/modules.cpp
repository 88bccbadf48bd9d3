#include "interpose/record/modules.h"

#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstring>

#include "common/trace_format.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"
#include "interpose/record/sys.h"

namespace httptrace {

namespace {

// What identifies an object already written: where its code is and a hash of its name. A
// different object later loaded at the same addresses has another name (or other bounds) and is
// written again; the same one loaded again after a dlclose is not.
struct Known {
  uint64_t text_start, text_end, name_hash;
};
constexpr int kMaxKnown = 2048;
Known g_known[kMaxKnown];
int g_nknown = 0;

// One scanner at a time (the table and the path buffer are its own). A thread that finds another
// scanning goes on without waiting: hooks never wait.
std::atomic_flag g_busy = ATOMIC_FLAG_INIT;
// dlpi_adds when the last scan was complete; 0: never.
std::atomic<uint64_t> g_seen_adds{0};
char g_path[4096];

uint64_t hash_name(const char* s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (; *s != '\0'; ++s) h = (h ^ static_cast<uint8_t>(*s)) * 1099511628211ull;
  return h;
}

bool known(const Known& k) {
  for (int i = 0; i < g_nknown; ++i) {
    if (g_known[i].text_start == k.text_start && g_known[i].text_end == k.text_end &&
        g_known[i].name_hash == k.name_hash) {
      return true;
    }
  }
  return false;
}

int read_adds(dl_phdr_info* info, size_t, void* arg) {
  *static_cast<uint64_t*>(arg) = info->dlpi_adds;
  return 1;
}

// True when [addr, addr + len) of the object lies in one of its loaded segments' file bytes:
// a note is read in place, so it must be mapped.
bool mapped(const dl_phdr_info* info, ElfW(Addr) vaddr, ElfW(Xword) len) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    if (p.p_type == PT_LOAD && vaddr >= p.p_vaddr && len <= p.p_filesz &&
        vaddr - p.p_vaddr <= p.p_filesz - len) {
      return true;
    }
  }
  return false;
}

// The GNU build-id from the object's PT_NOTE segments, read in memory.
void find_build_id(const dl_phdr_info* info, format::ModuleEvent& ev) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    if (p.p_type != PT_NOTE || !mapped(info, p.p_vaddr, p.p_filesz)) continue;
    const auto* at = reinterpret_cast<const uint8_t*>(info->dlpi_addr + p.p_vaddr);
    size_t left = p.p_filesz;
    // Each note: header, name and descriptor, each padded to 4 bytes (8-aligned notes pad the
    // same way in practice for GNU notes, whose name is 4 bytes).
    for (int n = 0; n < 64 && left >= sizeof(ElfW(Nhdr)); ++n) {
      ElfW(Nhdr) nh;
      memcpy(&nh, at, sizeof(nh));
      const size_t name = (static_cast<size_t>(nh.n_namesz) + 3) & ~size_t{3};
      const size_t desc = (static_cast<size_t>(nh.n_descsz) + 3) & ~size_t{3};
      if (name > left - sizeof(nh) || desc > left - sizeof(nh) - name) break;
      const uint8_t* name_at = at + sizeof(nh);
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(name_at, "GNU", 4) == 0) {
        size_t len = nh.n_descsz;
        if (len > format::kModuleBuildIdMax) {
          len = format::kModuleBuildIdMax;
          ev.flags |= format::kModuleBuildIdCut;
        }
        memcpy(ev.build_id, name_at + name, len);
        ev.build_id_len = static_cast<uint8_t>(len);
        return;
      }
      at += sizeof(nh) + name + desc;
      left -= sizeof(nh) + name + desc;
    }
  }
}

struct Scan {
  uint64_t ts;
  uint64_t vdso;   // AT_SYSINFO_EHDR
  bool complete;   // every new object was written
  bool first;      // the next object is the main program
};

int write_module(dl_phdr_info* info, size_t, void* arg) {
  Scan& scan = *static_cast<Scan*>(arg);
  const bool main_program = scan.first;
  scan.first = false;
  auto ev = new_event<format::ModuleEvent>(format::EventKind::kModule, 0, scan.ts);
  ev.bias = info->dlpi_addr;
  uint64_t lo = ~uint64_t{0}, hi = 0, base = ~uint64_t{0};
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    if (p.p_type != PT_LOAD) continue;
    if (p.p_vaddr < base) base = p.p_vaddr;
    if ((p.p_flags & PF_X) == 0) continue;
    if (p.p_vaddr < lo) lo = p.p_vaddr;
    if (p.p_vaddr + p.p_memsz > hi) hi = p.p_vaddr + p.p_memsz;
  }
  if (hi == 0) return 0;  // no code: no return address can point into it
  ev.text_start = info->dlpi_addr + lo;
  ev.text_end = info->dlpi_addr + hi;
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  const Known k{ev.text_start, ev.text_end, hash_name(name)};
  if (known(k)) return 0;
  if (main_program && name[0] == '\0') ev.flags |= format::kModuleMain;
  if (scan.vdso != 0 && info->dlpi_addr + (base & ~uint64_t{4095}) == scan.vdso) {
    ev.flags |= format::kModuleVdso;
  }
  find_build_id(info, ev);
  // A relative name (dlopen("./libx.so")) is relative to the working directory of now.
  size_t len = 0;
  if (name[0] != '\0' && name[0] != '/' && (ev.flags & format::kModuleVdso) == 0 &&
      ::syscall(SYS_getcwd, g_path, sizeof(g_path) - 1) > 0) {
    len = strlen(g_path);
    if (len > 0 && g_path[len - 1] != '/') g_path[len++] = '/';
  }
  for (const char* p = name; *p != '\0' && len < sizeof(g_path); ++p) g_path[len++] = *p;
  ev.path_len = static_cast<uint16_t>(len);
  if (!trace_writer().emit(&ev, sizeof(ev), g_path, len)) {
    scan.complete = false;
    return 0;
  }
  if (g_nknown < kMaxKnown) g_known[g_nknown++] = k;  // past it: written again, harmless
  return 0;
}

}  // namespace

void record_new_modules(uint64_t ts) {
  if (!stacks_enabled() || recorder_depth() > 1) return;
  uint64_t adds = 0;
  dl_iterate_phdr(read_adds, &adds);
  if (adds == g_seen_adds.load(std::memory_order_acquire)) return;
  if (g_busy.test_and_set(std::memory_order_acquire)) return;
  Scan scan{ts, getauxval(AT_SYSINFO_EHDR), true, true};
  dl_iterate_phdr(write_module, &scan);
  if (scan.complete) g_seen_adds.store(adds, std::memory_order_release);
  g_busy.clear(std::memory_order_release);
}

void reset_modules() {
  g_nknown = 0;
  g_seen_adds.store(0, std::memory_order_relaxed);
  g_busy.clear(std::memory_order_relaxed);
}

}  // namespace httptrace
