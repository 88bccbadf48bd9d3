// Puts the model's connections, which it completes in the order they close, back in the order
// they started, holding only the ones that could still be preceded.
//
// The model gives no view of its open connections, so this follows the stream beside it: a
// connection is open from the event that makes the model create it (socket, connect, data,
// inherit, TLS handshake: the kinds Model::get_or_create serves) until the model hands it over or
// a close is seen. Every connection the model completes later started at or after the
// watermark: the oldest start still open, or the current event's time for one not yet created.
// So a held connection that started before the watermark can go.
//
// Bounded: when the held connections weigh more than max_weight (1 + exchanges each; one
// connection open from the first event to the last holds back everything), ordering gives up:
// what is held goes out in start order and everything after it as it comes, and overflowed_at()
// tells the consumer from which connection on it must sort for itself (RowSpool). Connections
// forwarded before that point started before every one forwarded after it.
//
// A failed (or abandoned) connect is held by the model after its close, until a later connect
// claims it as a losing attempt or a second passes (Model::settle): it stays open here until the
// model hands it over, or hands over the connection that claimed it (which lists it in attempts).
//
// A close of one descriptor of a dup()ed socket ends tracking early; the model's connection lives
// on and may then come out after connections that started later. Rare, and only an order.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "analyzer/model/model.h"
#include "analyzer/report/row_spool.h"

namespace httptrace::analyzer {

class StartOrder : public ConnectionSink {
 public:
  static constexpr uint64_t kDefaultMaxWeight = 1u << 16;
  StartOrder(ConnectionSink& next, uint64_t max_weight = kDefaultMaxWeight);

  // Call after the model has seen ev.
  void after_event(const Event& ev);
  void on_connection(const Connection& c) override {
    Connection copy(c);
    on_connection(std::move(copy));
  }
  void on_connection(Connection&& c) override;
  // Forwards everything still held; call after Model::finish().
  void finish();

  // Index (in forwarding order) of the first connection that may be out of start order;
  // UINT64_MAX while ordering holds. Safe to read from the consumer's thread: it is set before
  // that connection is forwarded.
  uint64_t overflowed_at() const { return overflowed_at_.load(std::memory_order_acquire); }

 private:
  struct Held {
    RowKey key;
    uint32_t slot;
  };
  struct Opened {
    uint64_t ts, key, gen;
  };
  static uint64_t key_of(int32_t pid, uint32_t conn) { return (uint64_t(uint32_t(pid)) << 32) | conn; }
  // std::push_heap builds a max-heap: inverted, the earliest start is on top.
  static bool later(const Held& a, const Held& b) { return b.key < a.key; }

  void track(uint64_t key, uint64_t ts);
  void on_close(uint64_t key);
  void claimed(const Connection& c);
  void untrack(uint64_t key);
  void release(uint64_t watermark);
  uint64_t watermark();
  void forward(Connection&& c);
  void overflow();

  ConnectionSink& next_;
  const uint64_t max_weight_;
  // Open connections by key, with the generation of their entry in opened_ (oldest first; stale
  // entries are skipped lazily). cache_ remembers recently seen open keys so the common data
  // event costs one compare, not a hash lookup.
  std::unordered_map<uint64_t, uint64_t> open_;
  std::deque<Opened> opened_;
  uint64_t cache_[256] = {};
  uint64_t gen_ = 0;
  // Held connections: a min-heap on key into slots_ (recycled, so their buffers are reused).
  std::vector<Held> heap_;
  std::vector<Connection> slots_;
  std::vector<uint32_t> free_;
  uint64_t held_weight_ = 0, forwarded_ = 0, last_ts_ = 0;
  bool overflowed_ = false;
  bool front_stale_ = false;  // something was untracked: the front of opened_ may be gone
  // Connections whose connect failed or is pending and that moved no data yet (they may become
  // held attempts): key -> the connect's start, and whether they were closed.
  struct MaybeAttempt {
    uint64_t connect_ns;
    bool closed;
  };
  std::unordered_map<uint64_t, MaybeAttempt> attempts_;
  size_t closed_attempts_ = 0;
  std::atomic<uint64_t> overflowed_at_{UINT64_MAX};
};

}  // namespace httptrace::analyzer
