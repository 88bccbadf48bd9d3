// Connection reuse per (host, port), as `httptrace reuse` prints it and the HTML report tabulates
// it: one collector, so the two can never disagree. Outbound connections only.
//
// "pool_misses" counts connections opened while another connection of the same process to the
// same endpoint was open and idle (the model's pool_miss). Endpoint names are made printable
// (they come from the trace) and an IPv6 address, which is what a name with ':' is, is bracketed.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "analyzer/model/model.h"
#include "analyzer/model/percentiles.h"

namespace httptrace::analyzer {

struct EndpointStats {
  uint64_t connections = 0, failed = 0, requests = 0, reused = 0;
  uint64_t connect_ns = 0, tls_ns = 0, tls_connections = 0, handshakes_avoided = 0;
  uint64_t pool_misses = 0;
  uint64_t unseen = 0;  // connections whose requests cannot be seen (Connection::requests_unseen)
  // One lookup often serves several connections; its time counts once per endpoint (and once in
  // the total, even when it served several ports). The model flags each lookup's first use.
  uint64_t lookups = 0, dns_ns = 0;
  PhaseHistograms phases;  // per phase, for the percentile rows (not summed in total())
};

// The reqs and ratio cells: "3+?" and "?" when some connection's requests are unseen.
inline std::string requests_cell(const EndpointStats& s) {
  return std::to_string(s.requests) + (s.unseen ? "+?" : "");
}
inline std::string ratio_cell(const EndpointStats& s) {
  if (s.unseen) return "?";
  return s.requests ? fmt::format("{:.0f}%", 100.0 * double(s.reused) / double(s.requests)) : "-";
}

class ReuseCollector : public ConnectionSink {
 public:
  void on_connection(const Connection& c) override;
  // Every endpoint summed, with each lookup counted once.
  EndpointStats total() const;

  std::map<std::pair<std::string, uint16_t>, EndpointStats> by_endpoint;
  uint64_t total_lookups = 0, total_dns_ns = 0;
};

}  // namespace httptrace::analyzer
