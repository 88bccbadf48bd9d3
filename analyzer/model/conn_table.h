// The open connections of one process, by connection id: an open-addressing hash table whose
// size follows the number of connections open at once, never the number the trace ever had, so
// a trace of millions of short connections is analysed in constant memory. Linear probing with
// backward-shift deletion (no tombstones), so a long run of open/close keeps probes short.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace httptrace::analyzer {

template <class T>
class ConnTable {
 public:
  ConnTable() : slots_(kMinSlots) {}

  T* find(uint32_t id) const {
    for (size_t i = home(id);; i = (i + 1) & mask()) {
      const Slot& s = slots_[i];
      if (!s.value) return nullptr;
      if (s.id == id) return s.value.get();
    }
  }

  // Takes ownership; the id must not be present.
  T* insert(uint32_t id, std::unique_ptr<T> v) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    T* raw = v.get();
    place(id, std::move(v));
    ++size_;
    return raw;
  }

  // Removes and returns the entry (null if absent).
  std::unique_ptr<T> take(uint32_t id) {
    size_t i = home(id);
    for (;; i = (i + 1) & mask()) {
      if (!slots_[i].value) return nullptr;
      if (slots_[i].id == id) break;
    }
    std::unique_ptr<T> out = std::move(slots_[i].value);
    // Pull later members of the probe run back over the hole so lookups never stop early.
    for (size_t j = (i + 1) & mask(); slots_[j].value; j = (j + 1) & mask()) {
      const size_t h = home(slots_[j].id);
      const bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
      if (movable) {
        slots_[i] = std::move(slots_[j]);
        i = j;
      }
    }
    --size_;
    if (slots_.size() > kMinSlots && size_ * 8 < slots_.size()) rehash(slots_.size() / 2);
    return out;
  }

  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }

  template <class F> void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.value) f(s.id, *s.value);
  }

 private:
  static constexpr size_t kMinSlots = 16;
  struct Slot {
    uint32_t id = 0;
    std::unique_ptr<T> value;
  };

  size_t mask() const { return slots_.size() - 1; }
  size_t home(uint32_t id) const { return (uint64_t{id} * 0x9E3779B97F4A7C15u >> 32) & mask(); }
  void place(uint32_t id, std::unique_ptr<T> v) {
    size_t i = home(id);
    while (slots_[i].value) i = (i + 1) & mask();
    slots_[i].id = id;
    slots_[i].value = std::move(v);
  }
  void rehash(size_t n) {
    std::vector<Slot> old(n);
    old.swap(slots_);
    for (Slot& s : old)
      if (s.value) place(s.id, std::move(s.value));
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace httptrace::analyzer
