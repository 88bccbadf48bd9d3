// Why a new connection was opened (SPEC §5 `new_reason`), decided when its connect() is issued
// from what the process knew then about the same endpoint (peer IP and port):
//
//   the open connections to it   (Model::mark_pool_miss scans them: idle, answered, busy)
//   the ones it closed recently  (EndpointHistory: how each ended, and whether a later connect
//                                 already took its place)
//
// Precedence, highest first, when several hold at once:
//   reset_on_reuse   a request written on a reused connection got EOF, ECONNRESET or EPIPE before
//                    any response, and that connection ended: the client reconnected after a
//                    stale pooled connection failed
//   closed_by_peer   the previous one was ended by the server: we read EOF/RST before our close,
//                    its last response said `Connection: close`, or it sat idle past the
//                    `Keep-Alive: timeout=N` it announced
//   pool_miss        another one sat idle (last response complete, not being written)
//   busy             every open one was mid-exchange (or still connecting): concurrency
//   closed_by_client we closed the previous one while it was idle, or its last request asked for
//                    the close (Connection: close) and got its answer, then opened this one
//   first            no connection to that endpoint in this process before
// Failure evidence outranks a miss because it explains the miss: a pool that just lost its
// connection to the server has nothing idle to offer, whatever else is open. A closed connection
// is replaced once: the first connect after its close takes it (a later connect sees it only when
// nothing else explains that connect), so a burst of reconnects is not all blamed on one close.
//
// A write that fails with EPIPE/ECONNRESET on an idle connection opens an exchange of 0 bytes (the
// request that failed), so a stale reuse shows where it happened even when nothing was sent.
//
// Only outbound connections that connected get a reason; accepted ones, copies inherited at fork
// and failed connects keep kNone. `pool_miss` (the uint flag) is 1 exactly when the reason is
// kPoolMiss.
//
// Memory: per process, at most kMaxEndpoints endpoints are remembered (two generations: when the
// current one fills, the older is dropped), each with its last kClosedPerEndpoint closes. An
// endpoint forgotten that way starts again at `first`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "analyzer/model/model.h"

namespace httptrace::analyzer {

// Higher wins (the order above); kNone lowest.
int new_reason_rank(NewReason r);

// How a connection ended, from its last exchange and what it read: one of kResetOnReuse,
// kClosedByPeer, kClosedByClient. peer_ended: a read returned EOF or ECONNRESET/EPIPE (or a write
// EPIPE/ECONNRESET) before our close.
NewReason ending_of(const Exchange* last, bool peer_ended, uint64_t close_ns);

// Start of the idle time a replacement reports: the end of the last exchange that got a response
// (a failed reuse does not count as use), else of the last exchange, else start_ns.
uint64_t idle_since(const std::vector<Exchange>& done, uint64_t start_ns);

// What a connect found among the open connections to its endpoint.
struct OpenScan {
  uint32_t open = 0;  // connected or connecting, not failed, not already ended by the peer
  bool idle = false;  // one of them sat idle
  std::string idle_id;
  uint64_t idle_ns = 0;
  // An open one the server has already ended (EOF/RST read, not yet closed by us): the strongest
  // such, as if it were closed.
  NewReason ended = NewReason::kNone;
  std::string ended_id;
  uint64_t ended_idle_ns = 0;
};

struct ReasonVerdict {
  NewReason reason = NewReason::kFirst;
  std::string replaced;
  std::optional<uint64_t> idle_ns;
};

// One process's memory of closed connections, by endpoint.
class EndpointHistory {
 public:
  static constexpr size_t kMaxEndpoints = 4096;  // per generation
  static constexpr size_t kClosedPerEndpoint = 4;

  // A connected outbound connection to peer ended at close_ns. claimed: something already took
  // its place (it was named as replaced while still open).
  // tunnel: the target of its proxy tunnel (CONNECT host:port), "" when none: through one proxy,
  // each target is an endpoint of its own.
  void on_close(const tf::Addr& peer, std::string_view tunnel, const std::string& id, uint64_t close_ns,
                uint64_t idle_since_ns, NewReason ending, bool claimed);
  // The reason of a connect to peer (tunnel: as above) at connect_ns, given the open connections;
  // takes the closed connection it names, if any.
  ReasonVerdict decide(const tf::Addr& peer, std::string_view tunnel, uint64_t connect_ns, const OpenScan& open);

  size_t endpoints() const { return cur_.size() + old_.size(); }

 private:
  struct Closed {
    std::string id;
    uint64_t close_ns = 0, idle_since_ns = 0;
    NewReason ending = NewReason::kNone;
    bool claimed = false;
  };
  struct Endpoint {
    std::array<Closed, kClosedPerEndpoint> ring;
    uint32_t n = 0, head = 0;  // ring[(head + n - 1) % size] is the newest
    Closed& at(uint32_t age) { return ring[(head + n - 1 - age) % kClosedPerEndpoint]; }
  };
  struct Key {
    uint16_t family, port;
    std::array<uint8_t, 16> ip;
    uint64_t tunnel;  // a hash of the tunnel's target; 0 for none
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  static Key key_of(const tf::Addr& a, std::string_view tunnel);
  Endpoint* find(const Key& k);  // promotes an entry of the old generation
  Endpoint& get(const Key& k);

  std::unordered_map<Key, Endpoint, KeyHash> cur_, old_;
};

}  // namespace httptrace::analyzer
