#include "analyzer/read/file_map.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <mutex>

namespace httptrace::analyzer {

namespace {

constexpr uint64_t kNoFault = std::numeric_limits<uint64_t>::max();

// The handler reads these without locks: a slot is published by storing base last and retired by
// clearing base first. Slots are taken and freed under g_slots_mu (never by the handler).
struct Slot {
  std::atomic<uintptr_t> base{0};
  std::atomic<size_t> len{0};
  std::atomic<uint64_t> fault{kNoFault};
};
constexpr int kSlots = 1024;  // files mapped at once; more are read with pread()
Slot g_slots[kSlots];
std::mutex g_slots_mu;
bool g_installed = false;
struct sigaction g_previous;

void on_sigbus(int sig, siginfo_t* info, void* uc) {
  const int saved_errno = errno;
  if (info != nullptr && info->si_code > 0) {  // raised by a fault (kill()'s siginfo has no address)
    const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Slot& s : g_slots) {
      const uintptr_t base = s.base.load(std::memory_order_acquire);
      if (base == 0 || a < base || a - base >= s.len.load(std::memory_order_relaxed)) continue;
      const uintptr_t page = a & ~(uintptr_t(sysconf(_SC_PAGESIZE)) - 1);
      if (mmap(reinterpret_cast<void*>(page), size_t(sysconf(_SC_PAGESIZE)), PROT_READ,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
        break;  // cannot repair: let the previous action have it
      const uint64_t off = page - base;
      uint64_t cur = s.fault.load(std::memory_order_relaxed);
      while (off < cur && !s.fault.compare_exchange_weak(cur, off, std::memory_order_release)) {
      }
      errno = saved_errno;
      return;
    }
  }
  errno = saved_errno;
  const struct sigaction& p = g_previous;
  if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
    if (p.sa_flags & SA_SIGINFO) p.sa_sigaction(sig, info, uc);
    else p.sa_handler(sig);
    return;
  }
  // The default (or ignored) action: put it back; the faulting access is retried and gets it,
  // a signal sent by kill() is raised again.
  sigaction(SIGBUS, &p, nullptr);
  if (info == nullptr || info->si_code <= 0) raise(SIGBUS);
}

}  // namespace

size_t FileMap::page_size() {
  static const size_t ps = size_t(sysconf(_SC_PAGESIZE));
  return ps;
}

bool FileMap::map(int fd, size_t len) {
  unmap();
  if (len == 0) return false;
  std::lock_guard<std::mutex> lock(g_slots_mu);
  int slot = -1;
  for (int i = 0; i < kSlots && slot < 0; ++i)
    if (g_slots[i].base.load(std::memory_order_relaxed) == 0) slot = i;
  if (slot < 0) return false;
  if (!g_installed) {
    struct sigaction sa = {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &g_previous) != 0) return false;
    g_installed = true;
  }
  void* p = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  Slot& s = g_slots[slot];
  s.fault.store(kNoFault, std::memory_order_relaxed);
  s.len.store(len, std::memory_order_relaxed);
  s.base.store(reinterpret_cast<uintptr_t>(p), std::memory_order_release);
  base_ = static_cast<const uint8_t*>(p);
  len_ = len;
  slot_ = slot;
  return true;
}

void FileMap::unmap() {
  if (!base_) return;
  {
    std::lock_guard<std::mutex> lock(g_slots_mu);
    g_slots[slot_].base.store(0, std::memory_order_release);
  }
  munmap(const_cast<uint8_t*>(base_), len_);
  base_ = nullptr;
  len_ = 0;
  slot_ = -1;
}

const std::atomic<uint64_t>* FileMap::fault_slot() const {
  static const std::atomic<uint64_t> none{kNoFault};
  return slot_ < 0 ? &none : &g_slots[slot_].fault;
}

void FileMap::release(uint64_t off, uint64_t n) const {
  const uint64_t ps = page_size();
  const uint64_t begin = off & ~(ps - 1);
  const uint64_t end = std::min<uint64_t>((off + n + ps - 1) & ~(ps - 1), (len_ + ps - 1) & ~(ps - 1));
  if (!base_ || begin >= end) return;
  madvise(const_cast<uint8_t*>(base_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace httptrace::analyzer
