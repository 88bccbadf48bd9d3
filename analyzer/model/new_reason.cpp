#include "analyzer/model/new_reason.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <functional>

namespace httptrace::analyzer {

int new_reason_rank(NewReason r) {
  switch (r) {
    case NewReason::kNone: return 0;
    case NewReason::kFirst: return 1;
    case NewReason::kClosedByClient: return 2;
    case NewReason::kBusy: return 3;
    case NewReason::kPoolMiss: return 4;
    case NewReason::kClosedByPeer: return 5;
    case NewReason::kResetOnReuse: return 6;
  }
  return 0;
}

NewReason ending_of(const Exchange* last, bool peer_ended, uint64_t close_ns) {
  if (last && last->reused && last->failed_errno && !last->first_byte_ns) return NewReason::kResetOnReuse;
  // The client asked for the close (its request said Connection: close): the server's EOF and
  // echoed header that follow are its answer, not its decision.
  if (last && last->request_close && last->first_byte_ns) return NewReason::kClosedByClient;
  if (peer_ended) return NewReason::kClosedByPeer;
  if (last && last->connection_close.value_or(false)) return NewReason::kClosedByPeer;
  // Past the server's announced idle limit the server had (or was about to) drop it: a client
  // that polls its idle sockets (urllib3) closes it on seeing it readable, without a read we see.
  // The server's clock starts at its last write, before our last read ended: 5% of slack.
  if (last && last->keep_alive_timeout_s && close_ns >= last->end_ns) {
    const uint64_t limit = uint64_t(*last->keep_alive_timeout_s) * 1'000'000'000;
    if (close_ns - last->end_ns >= limit - limit / 20) return NewReason::kClosedByPeer;
  }
  return NewReason::kClosedByClient;
}

uint64_t idle_since(const std::vector<Exchange>& done, uint64_t start_ns) {
  for (size_t i = done.size(); i-- > 0;)
    if (done[i].first_byte_ns) return done[i].end_ns;
  return done.empty() ? start_ns : done.back().end_ns;
}

EndpointHistory::Key EndpointHistory::key_of(const tf::Addr& a, std::string_view tunnel) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  Key k{};
  k.port = a.port;
  if (!tunnel.empty()) k.tunnel = std::hash<std::string_view>{}(tunnel) | 1;
  if (a.family == AF_INET6 && std::memcmp(a.ip, kMapped, sizeof kMapped) == 0) {
    k.family = AF_INET;  // ::ffff:a.b.c.d is a.b.c.d, as the model's same_ip has it
    std::memcpy(k.ip.data(), a.ip + 12, 4);
  } else {
    k.family = a.family;
    if (a.family == AF_INET) std::memcpy(k.ip.data(), a.ip, 4);  // constant lengths: no call
    else std::memcpy(k.ip.data(), a.ip, 16);
  }
  return k;
}

size_t EndpointHistory::KeyHash::operator()(const Key& k) const {
  // A word at a time: this runs twice per connection.
  uint64_t w[2];
  std::memcpy(w, k.ip.data(), 16);
  uint64_t h = (0x9e3779b97f4a7c15u ^ (uint64_t{k.family} << 16 | k.port)) * 0xff51afd7ed558ccdu;
  h = (h ^ w[0] ^ (h >> 29)) * 0xc4ceb9fe1a85ec53u;
  h = (h ^ w[1] ^ (h >> 29)) * 0xff51afd7ed558ccdu;
  h ^= k.tunnel;
  return h ^ (h >> 32);
}

EndpointHistory::Endpoint* EndpointHistory::find(const Key& k) {
  if (auto it = cur_.find(k); it != cur_.end()) return &it->second;
  auto it = old_.find(k);
  if (it == old_.end()) return nullptr;
  Endpoint e = std::move(it->second);
  old_.erase(it);
  Endpoint& slot = get(k);
  slot = std::move(e);
  return &slot;
}

EndpointHistory::Endpoint& EndpointHistory::get(const Key& k) {
  if (auto it = cur_.find(k); it != cur_.end()) return it->second;
  if (cur_.size() >= kMaxEndpoints) {
    old_.swap(cur_);
    cur_.clear();
  }
  return cur_[k];
}

void EndpointHistory::on_close(const tf::Addr& peer, std::string_view tunnel, const std::string& id, uint64_t close_ns,
                               uint64_t idle_since_ns, NewReason ending, bool claimed) {
  const Key k = key_of(peer, tunnel);
  Endpoint* e = find(k);
  if (!e) e = &get(k);
  if (e->n < kClosedPerEndpoint) ++e->n;
  else e->head = (e->head + 1) % kClosedPerEndpoint;
  Closed& c = e->at(0);
  c.id = id;
  c.close_ns = close_ns;
  c.idle_since_ns = idle_since_ns;
  c.ending = ending;
  c.claimed = claimed;
}

ReasonVerdict EndpointHistory::decide(const tf::Addr& peer, std::string_view tunnel, uint64_t connect_ns,
                                      const OpenScan& open) {
  Endpoint* e = find(key_of(peer, tunnel));
  Closed* unclaimed = nullptr;  // the newest close nobody replaced yet
  Closed* newest = nullptr;
  if (e && e->n) {
    newest = &e->at(0);
    for (uint32_t age = 0; age < e->n && !unclaimed; ++age)
      if (!e->at(age).claimed) unclaimed = &e->at(age);
  }
  auto from_closed = [&](Closed& c) {
    c.claimed = true;
    return ReasonVerdict{c.ending, c.id, connect_ns - std::min(connect_ns, c.idle_since_ns)};
  };
  const int closed_rank = unclaimed ? new_reason_rank(unclaimed->ending) : 0;
  const int ended_rank = new_reason_rank(open.ended);
  const int miss_rank = new_reason_rank(NewReason::kPoolMiss);
  if (ended_rank > miss_rank && ended_rank >= closed_rank) return {open.ended, open.ended_id, open.ended_idle_ns};
  if (closed_rank > miss_rank) return from_closed(*unclaimed);
  if (open.idle) return {NewReason::kPoolMiss, open.idle_id, open.idle_ns};
  if (open.open) return {NewReason::kBusy, "", std::nullopt};
  if (unclaimed) return from_closed(*unclaimed);
  // Every close was already replaced (a burst of reconnects, or an attempt of a race took it):
  // the newest one still says what happened to the pool.
  if (newest) return from_closed(*newest);
  return {NewReason::kFirst, "", std::nullopt};
}

}  // namespace httptrace::analyzer
