#include "interpose/tls/caller_scope.h"

#include <dlfcn.h>
#include <link.h>

#include <cstring>

namespace httptrace::tls {
namespace {

struct SpanQuery {
  const link_map* map;
  CallerObject* out;
  bool found;
};

int find_span(dl_phdr_info* info, size_t, void* arg) {
  auto* q = static_cast<SpanQuery*>(arg);
  // dl_iterate_phdr hands out each link map's own l_addr and l_name.
  if (info->dlpi_addr != q->map->l_addr || info->dlpi_name != q->map->l_name) return 0;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (start < lo) lo = start;
    if (start + ph.p_memsz > hi) hi = start + ph.p_memsz;
  }
  if (lo >= hi) return 0;
  q->out->lo = lo;
  q->out->hi = hi;
  q->out->path = info->dlpi_name != nullptr ? info->dlpi_name : "";
  q->found = true;
  return 1;
}

// Deepbind registry: append-only slots; a pruned slot is emptied (lo = hi = 0), never reused,
// so a reader never sees a half-written span.
constexpr size_t kDeepbindSlots = 256;
struct DeepbindSlot {
  std::atomic<uintptr_t> lo;
  std::atomic<uintptr_t> hi;
};
constinit DeepbindSlot g_deepbind[kDeepbindSlots];
constinit std::atomic<uint32_t> g_deepbind_used{0};

bool in_self(void* p) { return p != nullptr && self_object().contains(reinterpret_cast<uintptr_t>(p)); }

// name in obj's own dependency tree.
void* lookup_local(const CallerObject& obj, const char* name) {
  if (obj.path == nullptr || obj.path[0] == '\0') return nullptr;  // main program: global scope
  // RTLD_NOLOAD never loads anything, and the reference is given back at once so an object the
  // program later dlclose()s still unloads.
  void* h = dlopen(obj.path, RTLD_NOLOAD | RTLD_LAZY);
  if (h == nullptr) return nullptr;
  void* p = dlsym(h, name);
  dlclose(h);
  return in_self(p) ? nullptr : p;
}

void* lookup_global(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  return in_self(p) ? nullptr : p;
}

}  // namespace

bool object_of(const void* addr, CallerObject* out) {
  *out = CallerObject{};
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(addr, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 || map == nullptr)
    return false;
  SpanQuery q{map, out, false};
  dl_iterate_phdr(find_span, &q);
  return q.found && out->contains(reinterpret_cast<uintptr_t>(addr));
}

void* lookup_for(const CallerObject& obj, const char* name) {
  if (is_deepbind(obj.lo)) {
    if (void* p = lookup_local(obj, name)) return p;
    return lookup_global(name);
  }
  if (void* p = lookup_global(name)) return p;
  return lookup_local(obj, name);
}

std::atomic<uint32_t>& dl_epoch() {
  static constinit std::atomic<uint32_t> epoch{1};
  return epoch;
}

void note_deepbind(const CallerObject& obj) {
  if (obj.lo == obj.hi || is_deepbind(obj.lo)) return;
  const uint32_t i = g_deepbind_used.fetch_add(1, std::memory_order_relaxed);
  if (i >= kDeepbindSlots) return;
  g_deepbind[i].hi.store(obj.hi, std::memory_order_relaxed);
  g_deepbind[i].lo.store(obj.lo, std::memory_order_release);
}

bool is_deepbind(uintptr_t addr) {
  uint32_t n = g_deepbind_used.load(std::memory_order_acquire);
  if (n > kDeepbindSlots) n = kDeepbindSlots;
  for (uint32_t i = 0; i < n; ++i) {
    const uintptr_t lo = g_deepbind[i].lo.load(std::memory_order_acquire);
    if (lo != 0 && addr >= lo && addr < g_deepbind[i].hi.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

namespace {

struct PruneScan {
  uint32_t n;
  bool alive[kDeepbindSlots];
};

// Marks the registered spans that some loaded object still has exactly. Only reads: nothing
// that takes the loader's lock runs inside this callback.
int mark_alive(dl_phdr_info* info, size_t, void* arg) {
  auto* scan = static_cast<PruneScan*>(arg);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    if (info->dlpi_addr + ph.p_vaddr < lo) lo = info->dlpi_addr + ph.p_vaddr;
    if (info->dlpi_addr + ph.p_vaddr + ph.p_memsz > hi) hi = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
  }
  for (uint32_t i = 0; i < scan->n; ++i) {
    if (g_deepbind[i].lo.load(std::memory_order_relaxed) == lo &&
        g_deepbind[i].hi.load(std::memory_order_relaxed) == hi)
      scan->alive[i] = true;
  }
  return 0;
}

}  // namespace

void prune_deepbind() {
  uint32_t n = g_deepbind_used.load(std::memory_order_acquire);
  if (n > kDeepbindSlots) n = kDeepbindSlots;
  if (n == 0) return;
  // One pass over the loaded objects, not a lookup per registered one: PHP unloads all its
  // extensions at exit, one dlclose each.
  PruneScan scan{};
  scan.n = n;
  dl_iterate_phdr(mark_alive, &scan);
  for (uint32_t i = 0; i < n; ++i)
    if (!scan.alive[i]) g_deepbind[i].lo.store(0, std::memory_order_release);
}

CallerObject self_object() {
  // Found on first use; racing threads store the same values.
  static constinit std::atomic<uintptr_t> lo{0}, hi{0};
  static constinit std::atomic<const char*> path{nullptr};
  CallerObject o;
  o.hi = hi.load(std::memory_order_acquire);
  if (o.hi != 0) {
    o.lo = lo.load(std::memory_order_relaxed);
    o.path = path.load(std::memory_order_relaxed);
    return o;
  }
  object_of(reinterpret_cast<const void*>(&find_span), &o);
  lo.store(o.lo, std::memory_order_relaxed);
  path.store(o.path, std::memory_order_relaxed);
  hi.store(o.hi, std::memory_order_release);
  return o;
}

}  // namespace httptrace::tls
