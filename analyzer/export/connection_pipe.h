// Runs a ConnectionSink (and optionally a DnsSink) on its own thread, so an exporter's formatting
// and writing overlap with reading and modelling the trace (the two halves cost about the same;
// the machine has two cores).
//
// Connections and lookups are handed over in batches through a bounded queue: the producer waits
// when the consumer is more than kMaxQueued items behind, so memory stays bounded by the queue,
// not by the trace. Order is preserved per stream (connections among themselves, lookups among
// themselves), so each sink sees byte-for-byte what it would inline.
//
// Nothing is allocated or freed per item in steady state: batch slots are recycled whole. A
// connection handed over by rvalue is moved into a slot, and the caller gets back the buffers of
// the slot's spent connection (id, requests) to reuse; lookups are copy-assigned into slots, so
// their strings and vectors keep their capacity.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "analyzer/model/model.h"

namespace httptrace::analyzer {

class ConnectionPipe : public ConnectionSink, public DnsSink {
 public:
  explicit ConnectionPipe(ConnectionSink& downstream, DnsSink* dns_downstream = nullptr);
  ~ConnectionPipe() override { close(); }
  ConnectionPipe(const ConnectionPipe&) = delete;
  ConnectionPipe& operator=(const ConnectionPipe&) = delete;

  void on_connection(const Connection& c) override {
    Connection copy(c);
    on_connection(std::move(copy));
  }
  // Leaves c valid with unspecified contents (buffers of a spent connection, for reuse).
  void on_connection(Connection&& c) override;
  // Only with a dns_downstream.
  void on_dns(const DnsLookup& l) override;
  // Hands over what is left and waits until the downstream sinks have seen everything.
  void close();

 private:
  // Weight = 1 + exchanges for a connection, 1 for a lookup: what an item costs to hold and format.
  static constexpr size_t kBatchWeight = 2048;
  static constexpr size_t kMaxQueued = 16 * 1024;

  struct Batch {
    std::vector<Connection> conns;  // the first n_conns are live, the rest spent slots
    std::vector<DnsLookup> dns;
    size_t n_conns = 0, n_dns = 0, weight = 0;
  };

  void add_weight(size_t w);
  void hand_over();
  void run();
  static void drop_exchanges(Connection& c);
  static void prefetch(const Connection& c);

  ConnectionSink& downstream_;
  DnsSink* dns_downstream_;
  std::unique_ptr<Batch> batch_ = std::make_unique<Batch>();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Batch>> queue_;
  // Spent batches come back for reuse with their slots' buffers, so the producer's steady state
  // allocates nothing and nothing it allocated is freed on the consumer's thread (that made the
  // two threads fight over the producer's malloc arena lock).
  std::vector<std::unique_ptr<Batch>> spare_;
  size_t queued_weight_ = 0;
  bool closed_ = false;
  std::thread worker_;
};

}  // namespace httptrace::analyzer
