// Small queries over the `httptrace export --format json` document (SPEC §6), so the tests
// read as statements about connections and requests rather than JSON plumbing.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace httptrace::itest {

using nlohmann::json;

// Connections whose peer is a loopback address on `port` (either family, or IPv4-mapped), in
// export order.
std::vector<json> connections_to(const json& doc, int port);
// Connections of one process.
std::vector<json> connections_of(const json& doc, long pid);
// Connections that carried at least one request.
std::vector<json> with_requests(const std::vector<json>& conns);

std::vector<bool> reuse_flags(const json& conn);
std::vector<std::string> targets(const json& conn);
std::vector<int> statuses(const json& conn);
std::vector<std::string> methods(const json& conn);

// The process entry for pid, or null.
json process(const json& doc, long pid);
// All pids in "processes", sorted.
std::vector<long> pids(const json& doc);

// A request as one string, "GET /a 200 reused=0", for readable failure messages.
std::string describe(const json& conn);

}  // namespace httptrace::itest
