#include "interpose/tls/deepbind.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sched.h>

#include <atomic>
#include <cstring>

#include "interpose/tls/caller_scope.h"

namespace httptrace::tls {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kJumpSlot = R_X86_64_JUMP_SLOT;
constexpr uint32_t kGlobDat = R_X86_64_GLOB_DAT;
constexpr uint32_t kAbs64 = R_X86_64_64;
#define HTTPTRACE_REBIND 1
#elif defined(__aarch64__)
constexpr uint32_t kJumpSlot = R_AARCH64_JUMP_SLOT;
constexpr uint32_t kGlobDat = R_AARCH64_GLOB_DAT;
constexpr uint32_t kAbs64 = R_AARCH64_ABS64;
#define HTTPTRACE_REBIND 1
#endif

// What one loaded object's dynamic section says, the pointers made absolute.
struct Dyn {
  uintptr_t base = 0;
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const ElfW(Rela)* jmprel = nullptr;
  size_t jmprel_size = 0;
  const ElfW(Rela)* rela = nullptr;
  size_t rela_size = 0;
  size_t rela_relative = 0;  // DT_RELACOUNT: leading R_*_RELATIVE entries, none of them ours
  const uint32_t* gnu_hash = nullptr;
  uintptr_t relro_lo = 0, relro_hi = 0;  // page-aligned as glibc protects it
  bool plt_is_rela = true;
  const ElfW(Phdr)* phdr = nullptr;
  ElfW(Half) phnum = 0;

  // A slot we may write: inside a PT_LOAD the object maps writable (RELRO is part of one). A
  // relocation into text (an object with DT_TEXTREL) is left alone: that page is read-only now.
  bool writable_segment(uintptr_t slot) const {
    for (ElfW(Half) i = 0; i < phnum; ++i) {
      const ElfW(Phdr)& ph = phdr[i];
      if (ph.p_type == PT_LOAD && (ph.p_flags & PF_W) && base + ph.p_vaddr <= slot &&
          slot + sizeof(void*) <= base + ph.p_vaddr + ph.p_memsz)
        return true;
    }
    return false;
  }
};

// One object found by dl_iterate_phdr, copied out so nothing runs inside its callback (which
// holds the loader's lock: calling dlopen/dlsym there could deadlock against another thread).
struct Seen {
  uintptr_t addr;
  const char* name;
  const ElfW(Phdr)* phdr;
  ElfW(Half) phnum;
};

bool read_dyn(const Seen& o, Dyn* d) {
  *d = Dyn{};
  d->base = o.addr;
  d->phdr = o.phdr;
  d->phnum = o.phnum;
  const ElfW(Dyn)* dyn = nullptr;
  const long page = sysconf(_SC_PAGESIZE);
  for (ElfW(Half) i = 0; i < o.phnum; ++i) {
    const ElfW(Phdr)& ph = o.phdr[i];
    if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(o.addr + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      d->relro_lo = (o.addr + ph.p_vaddr) & ~static_cast<uintptr_t>(page - 1);
      d->relro_hi = (o.addr + ph.p_vaddr + ph.p_memsz) & ~static_cast<uintptr_t>(page - 1);
    }
  }
  if (dyn == nullptr) return false;
  // glibc rewrites these entries to absolute addresses where .dynamic is writable, and leaves
  // them as offsets where it is not: take a value below the load address as an offset.
  auto abs = [&](ElfW(Addr) v) { return v < o.addr ? v + o.addr : v; };
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_SYMTAB: d->symtab = reinterpret_cast<const ElfW(Sym)*>(abs(dyn->d_un.d_ptr)); break;
      case DT_STRTAB: d->strtab = reinterpret_cast<const char*>(abs(dyn->d_un.d_ptr)); break;
      case DT_JMPREL: d->jmprel = reinterpret_cast<const ElfW(Rela)*>(abs(dyn->d_un.d_ptr)); break;
      case DT_PLTRELSZ: d->jmprel_size = dyn->d_un.d_val; break;
      case DT_RELA: d->rela = reinterpret_cast<const ElfW(Rela)*>(abs(dyn->d_un.d_ptr)); break;
      case DT_RELASZ: d->rela_size = dyn->d_un.d_val; break;
      case DT_RELACOUNT: d->rela_relative = dyn->d_un.d_val; break;
      case DT_GNU_HASH: d->gnu_hash = reinterpret_cast<const uint32_t*>(abs(dyn->d_un.d_ptr)); break;
      case DT_PLTREL: d->plt_is_rela = dyn->d_un.d_val == DT_RELA; break;
      default: break;
    }
  }
  return d->symtab != nullptr && d->strtab != nullptr;
}

uint32_t gnu_hash(const char* s) {
  uint32_t h = 5381;
  for (; *s != '\0'; ++s) h = h * 33 + static_cast<uint8_t>(*s);
  return h;
}

// A function libhttptrace.so defines (and so exports: nothing else is in its dynamic table),
// found through its own GNU hash table: no dlsym, no lock, a few comparisons per name. *index:
// its symbol index, to remember per name what the slower checks found.
void* own_export(const Dyn& self, const char* name, uint32_t* index) {
  const uint32_t* ht = self.gnu_hash;
  if (ht == nullptr) return nullptr;
  const uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2], bloom_shift = ht[3];
  const auto* bloom = reinterpret_cast<const ElfW(Addr)*>(ht + 4);
  const uint32_t* buckets = reinterpret_cast<const uint32_t*>(bloom + bloom_size);
  const uint32_t* chain = buckets + nbuckets;
  constexpr uint32_t kBits = sizeof(ElfW(Addr)) * 8;
  const uint32_t h = gnu_hash(name);
  const ElfW(Addr) word = bloom[(h / kBits) % bloom_size];
  const ElfW(Addr) mask = (ElfW(Addr){1} << (h % kBits)) | (ElfW(Addr){1} << ((h >> bloom_shift) % kBits));
  if ((word & mask) != mask) return nullptr;
  uint32_t i = buckets[h % nbuckets];
  if (i < symoffset) return nullptr;
  for (;; ++i) {
    const uint32_t h2 = chain[i - symoffset];
    const ElfW(Sym)& sym = self.symtab[i];
    if ((h | 1) == (h2 | 1) && std::strcmp(name, self.strtab + sym.st_name) == 0) {
      const unsigned type = ELF64_ST_TYPE(sym.st_info);
      if (sym.st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_GNU_IFUNC)) return nullptr;
      *index = i;
      return reinterpret_cast<void*>(self.base + sym.st_value);
    }
    if (h2 & 1) return nullptr;
  }
}

// The first two characters of every name we export, as a 64 Ki-bit set: most of an object's
// imports (PHP's zend_*, libcurl's Curl_*) are rejected by it before any hashing. Built once,
// under g_objects_busy, from our own GNU hash chains (every defined dynamic symbol).
uint8_t g_prefix[65536 / 8];
bool g_prefix_built = false;

uint32_t prefix_of(const char* name) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(name[0])) << 8) |
         (name[0] != '\0' ? static_cast<uint8_t>(name[1]) : 0);
}

void build_prefixes(const Dyn& self) {
  const uint32_t* ht = self.gnu_hash;
  if (ht == nullptr) return;
  const uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2];
  const auto* bloom = reinterpret_cast<const ElfW(Addr)*>(ht + 4);
  const uint32_t* buckets = reinterpret_cast<const uint32_t*>(bloom + bloom_size);
  const uint32_t* chain = buckets + nbuckets;
  for (uint32_t b = 0; b < nbuckets; ++b) {
    for (uint32_t i = buckets[b]; i >= symoffset; ++i) {
      const uint32_t p = prefix_of(self.strtab + self.symtab[i].st_name);
      g_prefix[p >> 3] = static_cast<uint8_t>(g_prefix[p >> 3] | (1u << (p & 7)));
      if (chain[i - symoffset] & 1) break;
    }
  }
  g_prefix_built = true;
}

bool maybe_ours(const char* name) {
  const uint32_t p = prefix_of(name);
  return (g_prefix[p >> 3] >> (p & 7)) & 1;
}

// Our TLS wrappers find the real function per calling object, in its own tree first for a
// deepbind object; the others call the global definition after us (RTLD_NEXT).
bool resolved_per_caller(const char* name) {
  return std::strncmp(name, "SSL_", 4) == 0 || std::strncmp(name, "gnutls_", 7) == 0;
}

// Whether a new object's reference to `name` may go to our wrapper: only when our wrapper ends
// up where the object's own lookup would have (or the tree lacks the name, so the lookup reaches
// the global scope, where we come first anyway). Every object a deepbind dlopen adds searches
// the root's tree first, so one answer per name serves all of them; kept per symbol index.
constexpr uint32_t kOwnSymbols = 1024;
enum : uint8_t { kUnknown = 0, kRebind = 1, kKeep = 2 };
uint8_t g_verdict[kOwnSymbols];  // guarded by g_objects_busy, reset per dlopen

bool same_target(void* root, const char* name, uint32_t index) {
  if (resolved_per_caller(name)) return true;
  if (index < kOwnSymbols && g_verdict[index] != kUnknown) return g_verdict[index] == kRebind;
  void* local = dlsym(root, name);
  const bool ok = local == nullptr || local == dlsym(RTLD_NEXT, name);
  if (index < kOwnSymbols) g_verdict[index] = ok ? kRebind : kKeep;
  return ok;
}

class RelroWindow {
 public:
  explicit RelroWindow(const Dyn& d) : d_(d) {}
  ~RelroWindow() {
    if (open_) mprotect(reinterpret_cast<void*>(d_.relro_lo), d_.relro_hi - d_.relro_lo, PROT_READ);
  }
  // Makes the slot writable if it lies in the object's RELRO range. False if that failed.
  bool writable(uintptr_t slot) {
    if (slot < d_.relro_lo || slot >= d_.relro_hi || open_) return true;
    open_ = mprotect(reinterpret_cast<void*>(d_.relro_lo), d_.relro_hi - d_.relro_lo,
                     PROT_READ | PROT_WRITE) == 0;
    return open_;
  }

 private:
  const Dyn& d_;
  bool open_ = false;
};

size_t rebind_table(const Dyn& self, const Dyn& d, void* root, const ElfW(Rela)* rel, size_t size,
                    size_t skip, RelroWindow& relro) {
  size_t done = 0;
#ifdef HTTPTRACE_REBIND
  if (rel == nullptr) return 0;
  for (size_t i = skip; i < size / sizeof(ElfW(Rela)); ++i) {
    // PLT and GOT slots, and a function's address stored in data (a table of `&connect`).
    const uint32_t type = static_cast<uint32_t>(ELF64_R_TYPE(rel[i].r_info));
    if (type != kJumpSlot && type != kGlobDat && !(type == kAbs64 && rel[i].r_addend == 0)) continue;
    const size_t sym = ELF64_R_SYM(rel[i].r_info);
    if (sym == 0) continue;
    const char* name = d.strtab + d.symtab[sym].st_name;
    if (!maybe_ours(name)) continue;
    uint32_t index = 0;
    void* ours = own_export(self, name, &index);
    if (ours == nullptr) continue;
    const uintptr_t slot = d.base + rel[i].r_offset;
    void** p = reinterpret_cast<void**>(slot);
    if (!d.writable_segment(slot) || *p == ours || !same_target(root, name, index) ||
        !relro.writable(slot))
      continue;
    // One aligned word: a thread already running this object's code sees old or new, both fine.
    __atomic_store_n(p, ours, __ATOMIC_RELEASE);
    ++done;
  }
#else
  (void)self, (void)d, (void)root, (void)rel, (void)size, (void)skip, (void)relro;
#endif
  return done;
}

size_t rebind_one(const Dyn& self, const Seen& o, void* root) {
  Dyn d;
  if (!read_dyn(o, &d) || !d.plt_is_rela) return 0;
  RelroWindow relro(d);
  return rebind_table(self, d, root, d.jmprel, d.jmprel_size, 0, relro) +
         rebind_table(self, d, root, d.rela, d.rela_size, d.rela_relative, relro);
}

constexpr size_t kMaxObjects = 512;

struct Collect {
  Seen* out;
  size_t n;
  uintptr_t self_lo;
  Seen self;
  bool have_self;
  const link_map* first;  // collect this object and every one after it
  bool collecting;
};

bool holds(const Seen& o, uintptr_t a) {
  for (ElfW(Half) i = 0; i < o.phnum; ++i) {
    const ElfW(Phdr)& ph = o.phdr[i];
    if (ph.p_type == PT_LOAD && o.addr + ph.p_vaddr <= a && a < o.addr + ph.p_vaddr + ph.p_memsz)
      return true;
  }
  return false;
}

CallerObject span_of(const Seen& o) {
  CallerObject obj;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (ElfW(Half) i = 0; i < o.phnum; ++i) {
    const ElfW(Phdr)& ph = o.phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    if (o.addr + ph.p_vaddr < lo) lo = o.addr + ph.p_vaddr;
    if (o.addr + ph.p_vaddr + ph.p_memsz > hi) hi = o.addr + ph.p_vaddr + ph.p_memsz;
  }
  if (lo < hi) obj.lo = lo, obj.hi = hi, obj.path = o.name;
  return obj;
}

int collect(dl_phdr_info* info, size_t, void* arg) {
  auto* c = static_cast<Collect*>(arg);
  const Seen s{info->dlpi_addr, info->dlpi_name, info->dlpi_phdr, info->dlpi_phnum};
  if (!c->have_self && holds(s, c->self_lo)) {
    c->self = s;
    c->have_self = true;
  }
  if (!c->collecting && info->dlpi_addr == c->first->l_addr && info->dlpi_name == c->first->l_name)
    c->collecting = true;
  if (c->collecting && c->n < kMaxObjects) c->out[c->n++] = s;
  return 0;
}

// The list of objects to rebind lives here rather than on the caller's stack (16 KiB); a
// deepbind dlopen is rare, so two at once simply take turns.
Seen g_objects[kMaxObjects];
std::atomic_flag g_objects_busy = ATOMIC_FLAG_INIT;

struct Counts {
  uint64_t adds, subs;
};

int counts(dl_phdr_info* info, size_t, void* arg) {
  *static_cast<Counts*>(arg) = Counts{info->dlpi_adds, info->dlpi_subs};
  return 1;
}

}  // namespace

uint64_t objects_added() {
  Counts c{0, 0};
  dl_iterate_phdr(counts, &c);
  return c.adds;
}

uint64_t objects_removed() {
  Counts c{0, 0};
  dl_iterate_phdr(counts, &c);
  return c.subs;
}

size_t rebind_deepbind(void* handle) {
  link_map* root = nullptr;
  if (handle == nullptr || dlinfo(handle, RTLD_DI_LINKMAP, &root) != 0 || root == nullptr) return 0;
  // Bounded: a fork child can inherit the flag set by a thread that no longer exists there;
  // such a child then loads untraced rather than hang.
  int spins = 0;
  while (g_objects_busy.test_and_set(std::memory_order_acquire)) {
    if (++spins > 10000) return 0;
    sched_yield();
  }
  std::memset(g_verdict, kUnknown, sizeof g_verdict);
  Collect c{g_objects, 0, self_object().lo, {}, false, root, false};
  dl_iterate_phdr(collect, &c);
  size_t n = 0;
  Dyn self;
  if (c.have_self && read_dyn(c.self, &self)) {
    if (!g_prefix_built) build_prefixes(self);
    for (size_t i = 0; i < c.n; ++i) {
      const Seen& o = c.out[i];
      if (o.addr == c.self.addr && o.name == c.self.name) continue;
      // Registered before rebinding: another thread may call through a rebound entry at once,
      // and must then search this object's tree first.
      note_deepbind(span_of(o));
      n += rebind_one(self, o, handle);
    }
  }
  g_objects_busy.clear(std::memory_order_release);
  // Our lookups leave failed-dlsym messages behind; the program's dlopen succeeded, so its
  // dlerror() must say nothing.
  dlerror();
  return n;
}

}  // namespace httptrace::tls
