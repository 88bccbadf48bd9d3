#include "analyzer/model/percentiles.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace httptrace::analyzer {

namespace {
constexpr uint64_t kSub = uint64_t{1} << LogHistogram::kSubBits;
constexpr size_t kLastIndex = (LogHistogram::kMaxBits - LogHistogram::kSubBits + 1) * kSub - 1;
}  // namespace

// Bucket i < 2*kSub holds exactly the value i; above, bucket (shift + 1) * kSub + s holds
// [(kSub + s) << shift, (kSub + s + 1) << shift) (index_of() in the header).
uint64_t LogHistogram::lowest_of(size_t index) {
  if (index < kSub) return index;
  const size_t shift = index / kSub - 1;
  return (kSub + index % kSub) << shift;
}

uint64_t LogHistogram::highest_of(size_t index) {
  if (index < kSub) return index;
  if (index >= kLastIndex) return UINT64_MAX;
  return lowest_of(index + 1) - 1;
}

void LogHistogram::merge(const LogHistogram& o) {
  if (counts_.size() < o.counts_.size()) counts_.resize(o.counts_.size());
  for (size_t i = 0; i < o.counts_.size(); ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
  sum_ += o.sum_;
}

uint64_t LogHistogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(count_))));
  if (rank >= count_) return max_;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen < rank) continue;
    // The middle of the bucket halves the worst error; the exact extremes bound it.
    const uint64_t lo = lowest_of(i), hi = highest_of(i);
    return std::clamp(lo + (hi - lo) / 2, min_, max_);
  }
  return max_;
}

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kDns: return "dns";
    case Phase::kConnect: return "connect";
    case Phase::kTls: return "tls";
    case Phase::kWait: return "wait";
    case Phase::kReceive: return "receive";
  }
  return "";
}

void PhaseHistograms::add(const Connection& c) {
  if (c.dns && c.dns_first_for_port) (*this)[Phase::kDns].add(c.dns->duration_ns);
  if (c.has_connect && !c.connect_pending && c.connect_error == 0) (*this)[Phase::kConnect].add(c.connect_duration_ns);
  if (c.tls && c.tls->error == 0) (*this)[Phase::kTls].add(c.tls->duration_ns);
  for (const Exchange& x : c.requests) {
    if (!x.first_byte_ns) continue;
    const uint64_t fb = *x.first_byte_ns;
    (*this)[Phase::kWait].add(fb > x.sent_ns ? fb - x.sent_ns : 0);
    (*this)[Phase::kReceive].add(x.end_ns > fb ? x.end_ns - fb : 0);
  }
}

}  // namespace httptrace::analyzer
