#include "analyzer/connection_pipe.h"

namespace httptrace::analyzer {

ConnectionPipe::ConnectionPipe(ConnectionSink& downstream) : downstream_(downstream) {
  worker_ = std::thread([this] { run(); });
}

void ConnectionPipe::on_connection(Connection&& c) {
  batch_weight_ += 1 + c.requests.size();
  batch_.push_back(std::move(c));
  if (batch_weight_ >= kBatchWeight) hand_over();
}

void ConnectionPipe::hand_over() {
  if (batch_.empty()) return;
  std::unique_lock lock(mu_);
  // An empty queue always takes the batch, however heavy, so one huge connection cannot stall us.
  cv_.wait(lock, [&] { return queue_.empty() || queued_weight_ + batch_weight_ <= kMaxQueued; });
  queued_weight_ += batch_weight_;
  queue_.emplace_back(std::move(batch_), batch_weight_);
  batch_ = {};
  if (!spare_.empty()) {
    batch_ = std::move(spare_.back());
    spare_.pop_back();
  }
  lock.unlock();
  // The spent connections die here, on the thread that allocated them: freed on the consumer's
  // thread, their blocks went back to this thread's malloc arena under its lock, and the two
  // threads fought over that lock (futex wake-ups on a million-connection trace).
  batch_.clear();
  batch_weight_ = 0;
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

void ConnectionPipe::run() {
  for (;;) {
    std::pair<std::vector<Connection>, size_t> item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;  // closed and drained
      item = std::move(queue_.front());
      queue_.pop_front();
      queued_weight_ -= item.second;
    }
    cv_.notify_all();
    for (const Connection& c : item.first) downstream_.on_connection(c);
    std::lock_guard lock(mu_);
    spare_.push_back(std::move(item.first));
  }
}

}  // namespace httptrace::analyzer
