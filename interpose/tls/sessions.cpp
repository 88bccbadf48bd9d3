#include "interpose/tls/sessions.h"

#include <cstring>

namespace httptrace::tls {
namespace {

static_assert((kSessionSlots & (kSessionSlots - 1)) == 0);

// Zero-initialised BSS: untouched pages cost nothing until sessions land on them. constinit
// because without it g++ emitted a load-time loop storing every key, which faulted in all
// 240 KiB of the table in every process (62 page faults, ~0.5 ms in a VM) before main.
constinit Session g_slots[kSessionSlots];

size_t home(uintptr_t key) {
  // Allocator addresses share their low bits; Fibonacci hashing spreads them over the table.
  return static_cast<size_t>((key >> 4) * 0x9E3779B97F4A7C15ull >> 40) & (kSessionSlots - 1);
}

void reset_fields(Session* s) {
  s->hs_start_ns = 0;
  s->fd = -1;
  s->conn = 0;
  s->hs = HandshakeState::kNone;
  s->last_dir = kNoDir;
  s->h2 = false;
  std::memset(s->h2_dir, 0, sizeof s->h2_dir);
  s->h2_conn = nullptr;
  s->h2_claimed = false;
  s->h2_lost = false;
}

bool valid(uintptr_t key) { return key != kEmptyKey && key != kDeletedKey; }

}  // namespace

Session* session_find(const void* ptr) {
  const uintptr_t key = reinterpret_cast<uintptr_t>(ptr);
  if (!valid(key)) return nullptr;
  size_t i = home(key);
  for (size_t probe = 0; probe < kSessionSlots; ++probe, i = (i + 1) & (kSessionSlots - 1)) {
    const uintptr_t k = g_slots[i].key.load(std::memory_order_acquire);
    if (k == key) return &g_slots[i];
    if (k == kEmptyKey) return nullptr;
  }
  return nullptr;
}

Session* session_get(const void* ptr) {
  const uintptr_t key = reinterpret_cast<uintptr_t>(ptr);
  if (!valid(key)) return nullptr;
  // A failed CAS means another thread took that slot for another session; rescanning is bounded
  // because every failure fills a slot, and the table has finitely many.
  for (int attempt = 0; attempt < 8; ++attempt) {
    size_t i = home(key);
    Session* reusable = nullptr;
    Session* empty = nullptr;
    for (size_t probe = 0; probe < kSessionSlots; ++probe, i = (i + 1) & (kSessionSlots - 1)) {
      const uintptr_t k = g_slots[i].key.load(std::memory_order_acquire);
      if (k == key) return &g_slots[i];
      if (k == kDeletedKey && reusable == nullptr) reusable = &g_slots[i];
      if (k == kEmptyKey) { empty = &g_slots[i]; break; }
    }
    // Probing reached an empty slot (or the table's end) without the key: it is absent. Prefer a
    // freed slot nearer home so chains stay short in a long-running process.
    Session* claim = reusable != nullptr ? reusable : empty;
    if (claim == nullptr) return nullptr;
    uintptr_t expected = claim == reusable ? kDeletedKey : kEmptyKey;
    if (claim->key.compare_exchange_strong(expected, key, std::memory_order_acq_rel)) {
      reset_fields(claim);
      return claim;
    }
  }
  return nullptr;
}

void session_release(Session* s) {
  if (s != nullptr) s->key.store(kDeletedKey, std::memory_order_release);
}

void sessions_reset_for_test() {
  for (Session& s : g_slots) s.key.store(kEmptyKey, std::memory_order_relaxed);
}

}  // namespace httptrace::tls
