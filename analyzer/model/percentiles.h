// Streaming percentiles in bounded memory: a log-linear histogram in the manner of HdrHistogram
// (Gil Tene). Debian packages HdrHistogram for Java and Go only, and t-digest for Java and
// PostgreSQL: nothing for C++, so this is our own, small on purpose.
//
// Values (ns) below 2^(kSubBits+1) are counted exactly; above, each power of two is split into
// 2^kSubBits equal buckets, and a percentile is reported as the middle of its bucket, so it is
// within 1/2^(kSubBits+1) (under 0.8%) of the true sample at that rank. Counts grow only up to
// the largest bucket used (a second's worth of ns needs about 1,500 buckets, 6 KB); values past
// 2^kMaxBits share the last bucket. Min, max, count and sum are exact. Percentiles are
// nearest-rank: the sample at rank ceil(q * n).
//
// Kept in model/ so that reports and exports (which must not call into report/) share it.
#pragma once

#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "analyzer/model/model.h"

namespace httptrace::analyzer {

class LogHistogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr int kMaxBits = 44;  // ~4.9 hours in ns

  // Inline: called twice per request by exports that summarise phases.
  void add(uint64_t v) {
    const size_t i = index_of(v);
    if (counts_.size() <= i) [[unlikely]] counts_.resize(i + 1);
    ++counts_[i];
    ++count_;
    min_ = v < min_ ? v : min_;
    max_ = v > max_ ? v : max_;
    sum_ += v;
  }
  void merge(const LogHistogram& o);
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  uint64_t sum() const { return sum_; }
  // q in [0, 1]; 0 when empty.
  uint64_t percentile(double q) const;
  size_t buckets() const { return counts_.size(); }  // memory in use, for tests

  static size_t index_of(uint64_t v) {
    constexpr uint64_t kSub = uint64_t{1} << kSubBits;
    constexpr size_t kLastIndex = (kMaxBits - kSubBits + 1) * kSub - 1;
    if (v < kSub) return size_t(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kSubBits;
    const size_t i = size_t(shift + 1) * kSub + size_t((v >> shift) - kSub);
    return i < kLastIndex ? i : kLastIndex;
  }
  static uint64_t lowest_of(size_t index);  // smallest value counted in bucket index
  static uint64_t highest_of(size_t index);

 private:
  std::vector<uint32_t> counts_;
  uint64_t count_ = 0, min_ = UINT64_MAX, max_ = 0, sum_ = 0;
};

// The phases of SPEC §5 per endpoint: dns, connect, tls per connection; wait (first byte - sent)
// and receive (end - first byte) per request.
enum class Phase : uint8_t { kDns, kConnect, kTls, kWait, kReceive };
inline constexpr Phase kPhases[] = {Phase::kDns, Phase::kConnect, Phase::kTls, Phase::kWait, Phase::kReceive};
const char* phase_name(Phase p);

struct PhaseHistograms {
  LogHistogram by_phase[5];
  LogHistogram& operator[](Phase p) { return by_phase[size_t(p)]; }
  const LogHistogram& operator[](Phase p) const { return by_phase[size_t(p)]; }
  // Adds what c spent in each phase. A lookup counts once per endpoint (dns_first_for_port).
  void add(const Connection& c);
};

// Per (endpoint host, port), in key order. The host as the trace has it (callers escape it).
class EndpointPhases {
 public:
  using Key = std::pair<std::string, uint16_t>;
  void add(const Connection& c) {
    // Connections come in runs to one endpoint: the last one's entry is tried first; then a hash
    // of the host as it stands, before building a key (a string) and searching the map (string
    // compares down the tree, once per connection of a million-connection export).
    const std::string* host = c.tunnel ? nullptr : c.host ? &*c.host : nullptr;  // the fast path's key
    if (!last_ || !host || c.peer.port != last_->first.second || *host != last_->first.first) {
      auto it = host ? index_.find({*host, c.peer.port}) : index_.end();
      if (it != index_.end()) {
        last_ = it->second;
      } else {
        last_ = &*by_endpoint_.try_emplace({c.endpoint_host(), c.endpoint_port()}).first;
        index_.try_emplace({last_->first.first, last_->first.second}, last_);  // views the map's key
      }
    }
    last_->second.add(c);
  }
  const std::map<Key, PhaseHistograms>& endpoints() const { return by_endpoint_; }

 private:
  using Node = std::pair<const Key, PhaseHistograms>;  // map nodes do not move
  struct View {
    std::string_view host;
    uint16_t port;
    bool operator==(const View&) const = default;
  };
  struct ViewHash {
    size_t operator()(const View& v) const {
      return std::hash<std::string_view>{}(v.host) ^ (size_t{v.port} * 0x9e3779b97f4a7c15ull);
    }
  };
  std::map<Key, PhaseHistograms> by_endpoint_;
  std::unordered_map<View, Node*, ViewHash> index_;
  Node* last_ = nullptr;
};

}  // namespace httptrace::analyzer
