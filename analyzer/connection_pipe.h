// Runs a ConnectionSink on its own thread, so an exporter's formatting and writing overlap with
// reading and modelling the trace (the two halves cost about the same; the machine has two cores).
//
// Connections are handed over in batches through a bounded queue: the producer waits when the
// consumer is more than kMaxQueued exchanges behind, so memory stays bounded by the queue, not
// by the trace. Order is preserved, so the output is byte-for-byte what the sink writes inline.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "analyzer/model.h"

namespace httptrace::analyzer {

class ConnectionPipe : public ConnectionSink {
 public:
  explicit ConnectionPipe(ConnectionSink& downstream);
  ~ConnectionPipe() override { close(); }
  ConnectionPipe(const ConnectionPipe&) = delete;
  ConnectionPipe& operator=(const ConnectionPipe&) = delete;

  void on_connection(const Connection& c) override { on_connection(Connection(c)); }
  void on_connection(Connection&& c) override;
  // Hands over what is left and waits until the downstream sink has seen every connection.
  void close();

 private:
  // Weight = 1 + exchanges: what a connection costs to hold and to format.
  static constexpr size_t kBatchWeight = 2048;
  static constexpr size_t kMaxQueued = 16 * 1024;

  void hand_over();
  void run();

  ConnectionSink& downstream_;
  std::vector<Connection> batch_;
  size_t batch_weight_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::vector<Connection>, size_t>> queue_;  // batch, weight
  // Spent batches come back for reuse: a fresh one each time would be a fresh mmap (they are
  // hundreds of KB) and page faults on every batch. They come back still full, to be cleared on
  // the producer's thread (see hand_over).
  std::vector<std::vector<Connection>> spare_;
  size_t queued_weight_ = 0;
  bool closed_ = false;
  std::thread worker_;
};

}  // namespace httptrace::analyzer
