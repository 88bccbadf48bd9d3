#include "analyzer/read/read_ahead.h"

#include <cstring>

namespace httptrace::analyzer {

namespace {
constexpr size_t kMaxEventWords = (UINT16_MAX + 7) / 8;  // EventHeader::size is 16 bits
}

ReadAhead::ReadAhead(TraceSet& traces) : traces_(traces) {
  for (Batch& b : batches_) {
    b.events.reserve(kBatchEvents);
    b.bytes = std::make_unique<uint64_t[]>(kBatchBytes / 8 + kMaxEventWords);
  }
  thread_ = std::thread([this] { run(); });
}

ReadAhead::~ReadAhead() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

bool ReadAhead::fill(Batch& b) {
  b.events.clear();
  Event ev;
  size_t used = 0;  // words
  while (b.events.size() < kBatchEvents && used < kBatchBytes / 8) {
    if (!traces_.next(ev)) return false;
    uint64_t* at = b.bytes.get() + used;
    std::memcpy(at, ev.h, ev.h->size);
    used += (ev.h->size + 7u) / 8u;
    ev.h = reinterpret_cast<const tf::EventHeader*>(at);
    b.events.push_back(ev);
  }
  return true;
}

void ReadAhead::run() {
  for (uint64_t n = 0;; ++n) {
    {
      // Batch n's slot is free once the caller has moved past batch n - kBatches + 1.
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return stop_ || n < taken_ + kBatches - 1; });
      if (stop_) return;
    }
    bool more;
    try {
      more = fill(batches_[n % kBatches]);
    } catch (...) {
      std::lock_guard lock(mu_);
      error_ = std::current_exception();
      done_ = true;
      changed_.notify_all();
      return;
    }
    {
      std::lock_guard lock(mu_);
      Batch& b = batches_[n % kBatches];
      b.consumed = traces_.consumed_bytes();
      if (!b.events.empty()) ++filled_;
      done_ = !more;
    }
    changed_.notify_all();
    if (!more) return;
  }
}

std::span<const Event> ReadAhead::next_batch() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return taken_ < filled_ || done_; });
  if (taken_ == filled_) {
    if (error_) std::rethrow_exception(error_);
    return {};
  }
  const Batch& b = batches_[taken_ % kBatches];
  ++taken_;
  lock.unlock();
  changed_.notify_all();
  consumed_ = b.consumed;
  return b.events;
}

}  // namespace httptrace::analyzer
