#include "analyzer/export/connection_pipe.h"

#include <algorithm>
#include <utility>

namespace httptrace::analyzer {

ConnectionPipe::ConnectionPipe(ConnectionSink& downstream, DnsSink* dns_downstream)
    : downstream_(downstream), dns_downstream_(dns_downstream) {
  worker_ = std::thread([this] { run(); });
}

void ConnectionPipe::on_connection(Connection&& c) {
  Batch& b = *batch_;
  const size_t w = 1 + c.requests.size();
  if (b.n_conns < b.conns.size()) {
    // One move instead of a whole swap (three): only the slot's id and requests buffers are worth
    // handing back; the rest of the spent connection is released here, on the producer's thread.
    Connection& slot = b.conns[b.n_conns];
    std::string id = std::move(slot.id);
    std::vector<Exchange> requests = std::move(slot.requests);
    slot = std::move(c);
    c.id = std::move(id);
    c.requests = std::move(requests);
  } else {
    b.conns.push_back(std::move(c));
  }
  ++b.n_conns;
  add_weight(w);
}

void ConnectionPipe::on_dns(const DnsLookup& l) {
  Batch& b = *batch_;
  if (b.n_dns < b.dns.size()) b.dns[b.n_dns] = l;
  else b.dns.push_back(l);
  ++b.n_dns;
  add_weight(1);
}

void ConnectionPipe::add_weight(size_t w) {
  batch_->weight += w;
  if (batch_->weight >= kBatchWeight) hand_over();
}

void ConnectionPipe::hand_over() {
  if (batch_->n_conns == 0 && batch_->n_dns == 0) return;
  std::unique_lock lock(mu_);
  // An empty queue always takes the batch, however heavy, so one huge connection cannot stall us.
  const size_t w = batch_->weight;
  cv_.wait(lock, [&] { return queue_.empty() || queued_weight_ + w <= kMaxQueued; });
  queued_weight_ += w;
  queue_.push_back(std::move(batch_));
  if (!spare_.empty()) {
    batch_ = std::move(spare_.back());
    spare_.pop_back();
  }
  lock.unlock();
  if (!batch_) batch_ = std::make_unique<Batch>();
  batch_->n_conns = batch_->n_dns = batch_->weight = 0;
  cv_.notify_all();
}

void ConnectionPipe::close() {
  if (!worker_.joinable()) return;
  hand_over();
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

// Destroying a spent connection's exchanges where they are still in this core's cache: on the
// producer (which recycles the slot) every one of them was a cache miss. Only when that frees
// nothing: a string on the heap was allocated by the producer and must be freed there.
void ConnectionPipe::drop_exchanges(Connection& c) {
  const auto on_heap = [](const std::string& s) { return s.capacity() > std::string().capacity(); };
  for (const Exchange& x : c.requests)
    if (on_heap(x.method) || on_heap(x.target)) return;
  c.requests.clear();
}

void ConnectionPipe::prefetch(const Connection& c) {
  constexpr size_t kMaxBytes = 8 * 1024;  // a long connection's later exchanges come in time anyway
  const char* p = reinterpret_cast<const char*>(c.requests.data());
  const size_t n = std::min(c.requests.size() * sizeof(Exchange), kMaxBytes);
  for (size_t off = 0; off < n; off += 64) __builtin_prefetch(p + off);
}

void ConnectionPipe::run() {
  for (;;) {
    std::unique_ptr<Batch> b;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;  // closed and drained
      b = std::move(queue_.front());
      queue_.pop_front();
      queued_weight_ -= b->weight;
    }
    cv_.notify_all();
    for (size_t i = 0; i < b->n_conns; ++i) {
      // The next connection's exchanges were written on the producer's core: fetching them
      // while this one is formatted hides some of those cache misses (a few per cent of a
      // short-connection JSON export's formatting thread).
      if (i + 1 < b->n_conns) prefetch(b->conns[i + 1]);
      Connection& c = b->conns[i];
      downstream_.on_connection(std::as_const(c));
      drop_exchanges(c);
    }
    for (size_t i = 0; i < b->n_dns; ++i) dns_downstream_->on_dns(b->dns[i]);
    std::lock_guard lock(mu_);
    spare_.push_back(std::move(b));
  }
}

}  // namespace httptrace::analyzer
