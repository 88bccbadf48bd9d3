#include "analyzer/report/start_order.h"

#include <algorithm>

namespace httptrace::analyzer {

namespace {

size_t cache_slot(uint64_t key) { return size_t((key * 0x9e3779b97f4a7c15u) >> 56); }

}  // namespace

StartOrder::StartOrder(ConnectionSink& next, uint64_t max_weight) : next_(next), max_weight_(max_weight) {}

void StartOrder::track(uint64_t key, uint64_t ts) {
  uint64_t& cached = cache_[cache_slot(key)];
  if (cached == key) return;
  auto [it, inserted] = open_.try_emplace(key, gen_ + 1);
  if (inserted) opened_.push_back({ts, key, ++gen_});
  cached = key;
}

void StartOrder::untrack(uint64_t key) {
  uint64_t& cached = cache_[cache_slot(key)];
  if (cached == key) cached = 0;  // key 0 (conn 0) is never tracked
  front_stale_ |= open_.erase(key) != 0;
}

void StartOrder::after_event(const Event& ev) {
  using K = tf::EventKind;
  if (overflowed_) return;
  const uint32_t conn = ev.h->conn;
  if (conn != 0) {
    switch (ev.kind()) {
      case K::kConnect: {
        const uint64_t key = key_of(ev.pid, conn);
        track(key, ev.h->ts_ns);
        if (ev.as<tf::ConnectEvent>().error != 0) attempts_.try_emplace(key, MaybeAttempt{ev.h->ts_ns, false});
        break;
      }
      case K::kConnectDone:
        if (!attempts_.empty() && ev.as<tf::ConnectDoneEvent>().error == 0) attempts_.erase(key_of(ev.pid, conn));
        break;
      case K::kData:
        track(key_of(ev.pid, conn), ev.h->ts_ns);
        if (!attempts_.empty() && ev.as<tf::DataEvent>().result > 0) attempts_.erase(key_of(ev.pid, conn));
        break;
      case K::kSocket:
      case K::kInherit:
      case K::kTlsHandshake: track(key_of(ev.pid, conn), ev.h->ts_ns); break;
      case K::kClose: on_close(key_of(ev.pid, conn)); break;
      default: break;
    }
  }
  last_ts_ = ev.h->ts_ns;
  const uint64_t w = watermark();
  if (!heap_.empty()) release(w);
}

void StartOrder::on_close(uint64_t key) {
  auto it = attempts_.empty() ? attempts_.end() : attempts_.find(key);
  if (it == attempts_.end()) return untrack(key);
  if (!it->second.closed) ++closed_attempts_;
  it->second.closed = true;  // stays open: the model may still hand it over
}

// c's losing attempts were connections of their own here: the model will not hand them over.
void StartOrder::claimed(const Connection& c) {
  for (const ConnectAttempt& a : c.attempts) {
    if (closed_attempts_ == 0) return;
    for (auto it = attempts_.begin(); it != attempts_.end(); ++it) {
      if (!it->second.closed || it->second.connect_ns != a.start_ns || int32_t(it->first >> 32) != c.pid) continue;
      untrack(it->first);
      attempts_.erase(it);
      --closed_attempts_;
      break;
    }
  }
}

uint64_t StartOrder::watermark() {
  // Drop entries of connections no longer open; the front is then the oldest open one.
  while (front_stale_ && !opened_.empty()) {
    auto it = open_.find(opened_.front().key);
    if (it != open_.end() && it->second == opened_.front().gen) break;
    opened_.pop_front();
  }
  front_stale_ = false;
  return opened_.empty() ? last_ts_ : std::min(last_ts_, opened_.front().ts);
}

void StartOrder::on_connection(Connection&& c) {
  const uint64_t key = key_of(c.pid, c.conn);
  untrack(key);
  if (!attempts_.empty()) {
    if (auto it = attempts_.find(key); it != attempts_.end()) {
      closed_attempts_ -= it->second.closed;
      attempts_.erase(it);
    }
    if (!c.attempts.empty()) claimed(c);
  }
  if (overflowed_) return forward(std::move(c));
  // The common case, few connections open at once: nothing held and nothing open started
  // earlier, so it can go now. (The event being handled is at or after last_ts_: the watermark
  // from the previous one is a safe bound.)
  if (heap_.empty() && c.start_ns < watermark()) return forward(std::move(c));
  uint32_t slot;
  if (free_.empty()) {
    slot = uint32_t(slots_.size());
    slots_.emplace_back();
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  held_weight_ += 1 + c.requests.size();
  heap_.push_back({{c.start_ns, c.pid, c.conn}, slot});
  std::push_heap(heap_.begin(), heap_.end(), later);
  std::swap(slots_[slot], c);  // the caller gets the slot's spent buffers back
  if (held_weight_ > max_weight_) overflow();
}

void StartOrder::release(uint64_t watermark) {
  while (!heap_.empty() && heap_.front().key.start < watermark) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const uint32_t slot = heap_.back().slot;
    heap_.pop_back();
    held_weight_ -= 1 + slots_[slot].requests.size();
    forward(std::move(slots_[slot]));
    free_.push_back(slot);
  }
}

void StartOrder::forward(Connection&& c) {
  next_.on_connection(std::move(c));
  ++forwarded_;
}

void StartOrder::overflow() {
  overflowed_ = true;
  overflowed_at_.store(forwarded_, std::memory_order_release);
  release(UINT64_MAX);
  open_.clear();
  opened_.clear();
  attempts_.clear();
  closed_attempts_ = 0;
}

void StartOrder::finish() { release(UINT64_MAX); }

}  // namespace httptrace::analyzer
