// Cuts one byte stream's calls into exchanges (SPEC §5); see model.h for the rules.
//
// The exchange in progress is built in place as the last element of done_: moving a finished
// one (three strings) out of a separate slot was a visible share of the model's time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "analyzer/model/model.h"

namespace httptrace::analyzer {

class ExchangeBuilder {
 public:
  // ts = call start, end = call end. bytes > 0. starts_request: the bytes begin with a request
  // line. True when it began an exchange.
  bool send(uint64_t ts, uint64_t end, uint64_t bytes, bool starts_request = false) {
    bool began = false;
    if (phase_ != kSending) {
      if (interim_ && !starts_request) {
        done_.back().first_byte_ns.reset();  // the body after a 100 Continue: still the request
      } else {
        finish_current();
        begin(ts);
        began = true;
      }
      interim_ = false;
    }
    tickets_ = 0;
    Exchange& x = done_.back();
    x.bytes_sent += bytes;
    x.sent_ns = end;
    x.end_ns = std::max(x.end_ns, end);
    phase_ = kSending;
    return began;
  }
  // maybe_tickets: the read may be a TLS 1.3 server's session tickets (WireTlsTracker). Such
  // reads in a row were, when the client reads something else before it writes: that read is
  // where the response begins. True when this call's bytes began the response.
  bool recv(uint64_t ts, uint64_t end, uint64_t bytes, bool maybe_tickets = false) {
    if (!open_) {
      begin(ts);
      done_.back().sent_ns = ts;
    }
    Exchange& x = done_.back();
    if (maybe_tickets && (tickets_ != 0 || !x.first_byte_ns)) {
      tickets_ += bytes;
    } else if (tickets_ != 0) {
      x.bytes_received -= tickets_;
      x.first_byte_ns.reset();
      if (x.bytes_sent == 0) x.start_ns = x.sent_ns = ts;  // the tickets had begun it: this read does
      tickets_ = 0;
    }
    if (interim_) {  // the final response after an interim one (103 Early Hints): its first byte
      interim_ = false;
      x.first_byte_ns.reset();
    }
    const bool first = !x.first_byte_ns;
    if (first) {
      x.first_byte_ns = end;
      // The response arrived before the request's last write returned (an early "200 OK" while
      // the body is still being sent; reads are placed at their completion): as far as the server
      // was concerned the request had been sent by then. No negative wait.
      if (end < x.sent_ns) x.sent_ns = end;
    }
    x.bytes_received += bytes;
    x.end_ns = std::max(x.end_ns, end);
    phase_ = kReceiving;
    return first;
  }
  // The response read so far was an interim one (1xx, not 101): the request goes on (its body
  // follows a 100 Continue) or the final response follows, and the exchange's first byte is the
  // final response's.
  void interim() {
    if (open_ && phase_ == kReceiving) interim_ = true;
  }
  // A read returned 0: the peer closed, so the exchange in progress is over.
  void eof(uint64_t end) {
    if (!open_) return;
    if (phase_ == kReceiving) done_.back().end_ns = std::max(done_.back().end_ns, end);
    finish_current();
  }
  void finish_current() {
    if (!open_) return;
    last_end_ = done_.back().end_ns;
    has_last_ = true;
    open_ = interim_ = false;
    tickets_ = 0;
    phase_ = kIdle;
  }

  // The exchange that the last send/recv belonged to; only valid while one is open.
  Exchange* current() { return open_ ? &done_.back() : nullptr; }
  bool any() const { return !done_.empty(); }
  bool sending() const { return open_ && phase_ == kSending; }
  // Whether a pool could have reused the connection now. kAnswered: it is reading a response,
  // which may or may not be complete -- only its next call tells (another read: it was busy).
  enum class Availability : uint8_t { kBusy, kAnswered, kIdle };
  Availability availability() const {
    if (open_) return phase_ == kReceiving ? Availability::kAnswered : Availability::kBusy;
    return done_.empty() ? Availability::kBusy : Availability::kIdle;
  }
  // Every exchange, the one in progress included (call finish_current() first to end it).
  std::vector<Exchange>& done() { return done_; }
  // A connection inherited across fork goes on from the parent's history: its next exchange is
  // reused if the parent's copy carried one, numbered after them, idle since the last one ended.
  void carry_over(const ExchangeBuilder& parent) {
    carried_ = parent.carried_ + static_cast<uint32_t>(parent.done_.size());
    if (parent.open_) {
      last_end_ = parent.done_.back().end_ns;
      has_last_ = true;
    } else {
      last_end_ = parent.last_end_;
      has_last_ = parent.has_last_;
    }
  }
  // Back to a fresh builder, keeping done_'s buffer (unless it grew past keep) for the next stream.
  void reset(size_t keep = kKeepCapacity) {
    if (done_.capacity() > keep) std::vector<Exchange>().swap(done_);
    else done_.clear();
    last_end_ = 0;
    carried_ = 0;
    has_last_ = open_ = interim_ = false;
    tickets_ = 0;
    phase_ = kIdle;
  }

 private:
  enum Phase : uint8_t { kIdle, kSending, kReceiving };
  // A recycled builder keeps at most this many exchanges' worth of buffer: enough for short
  // connections, without one huge connection's vector living on in a free list.
  static constexpr size_t kKeepCapacity = 64;

 public:
  // The few ConnStates recycled first may keep this much: the next long keep-alive connection
  // then grows no vector (each growth moved every Exchange; a bounded 4 of them).
  static constexpr size_t kKeepLarge = 1024, kKeepLargeSlots = 4;

 private:
  void begin(uint64_t ts) {
    // A long keep-alive connection's vector grows by 4 from 64 to a few thousand: every growth
    // moves each Exchange (five strings), and doubling was a visible share of the model's time.
    // Short connections grow as usual (their exchanges queue in the pipe: memory).
    if (const size_t cap = done_.capacity(); done_.size() == cap && cap >= 64 && cap < 4096) done_.reserve(4 * cap);
    Exchange& x = done_.emplace_back();
    x.index = carried_ + static_cast<uint32_t>(done_.size() - 1);
    x.reused = x.index > 0;
    if (has_last_) x.idle_ns = ts > last_end_ ? ts - last_end_ : 0;
    x.start_ns = ts;
    open_ = true;
  }

  std::vector<Exchange> done_;
  uint64_t last_end_ = 0;
  uint32_t carried_ = 0;  // exchanges on this connection before it was inherited
  bool has_last_ = false;
  bool open_ = false;
  bool interim_ = false;  // the last response read was a 1xx: see interim()
  uint64_t tickets_ = 0;  // bytes of the last reads, if they may be session tickets (see recv())
  Phase phase_ = kIdle;
};

}  // namespace httptrace::analyzer
