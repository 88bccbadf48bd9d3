#include "tests/integration/trace_json.h"

#include <algorithm>

namespace httptrace::itest {
namespace {

const json& array_or_empty(const json& doc, const char* key) {
  static const json empty = json::array();
  auto it = doc.find(key);
  return it != doc.end() && it->is_array() ? *it : empty;
}

}  // namespace

std::vector<json> connections_to(const json& doc, int port) {
  const std::string v4 = "127.0.0.1:" + std::to_string(port);
  const std::string v6 = "[::1]:" + std::to_string(port);
  const std::string mapped = "[::ffff:127.0.0.1]:" + std::to_string(port);  // the JDK's AF_INET6 sockets
  std::vector<json> out;
  for (const auto& c : array_or_empty(doc, "connections")) {
    if (!c.contains("peer") || !c["peer"].is_string()) continue;
    const auto peer = c["peer"].get<std::string>();
    if (peer == v4 || peer == v6 || peer == mapped) out.push_back(c);
  }
  return out;
}

std::vector<json> connections_of(const json& doc, long pid) {
  std::vector<json> out;
  for (const auto& c : array_or_empty(doc, "connections")) {
    if (c.value("pid", -1L) == pid) out.push_back(c);
  }
  return out;
}

std::vector<json> with_requests(const std::vector<json>& conns) {
  std::vector<json> out;
  for (const auto& c : conns) {
    if (!array_or_empty(c, "requests").empty()) out.push_back(c);
  }
  return out;
}

std::vector<bool> reuse_flags(const json& conn) {
  std::vector<bool> out;
  for (const auto& r : array_or_empty(conn, "requests")) out.push_back(r.value("reused", false));
  return out;
}

std::vector<std::string> targets(const json& conn) {
  std::vector<std::string> out;
  for (const auto& r : array_or_empty(conn, "requests")) {
    out.push_back(r.contains("target") && r["target"].is_string() ? r["target"].get<std::string>()
                                                                    : "<null>");
  }
  return out;
}

std::vector<int> statuses(const json& conn) {
  std::vector<int> out;
  for (const auto& r : array_or_empty(conn, "requests")) {
    out.push_back(r.contains("status") && r["status"].is_number() ? r["status"].get<int>() : -1);
  }
  return out;
}

std::vector<std::string> methods(const json& conn) {
  std::vector<std::string> out;
  for (const auto& r : array_or_empty(conn, "requests")) {
    out.push_back(r.contains("method") && r["method"].is_string() ? r["method"].get<std::string>()
                                                                    : "<null>");
  }
  return out;
}

json process(const json& doc, long pid) {
  for (const auto& p : array_or_empty(doc, "processes")) {
    if (p.value("pid", -1L) == pid) return p;
  }
  return nullptr;
}

std::vector<long> pids(const json& doc) {
  std::vector<long> out;
  for (const auto& p : array_or_empty(doc, "processes")) out.push_back(p.value("pid", -1L));
  std::sort(out.begin(), out.end());
  return out;
}

std::string describe(const json& conn) {
  std::string s = "conn " + conn.value("id", std::string("?")) + " peer " +
                  (conn.contains("peer") ? conn["peer"].dump() : "?") + ":";
  for (const auto& r : array_or_empty(conn, "requests")) {
    s += "\n  " + (r.contains("method") ? r["method"].dump() : "?") + " " +
         (r.contains("target") ? r["target"].dump() : "?") + " " +
         (r.contains("status") ? r["status"].dump() : "?") +
         " reused=" + (r.contains("reused") ? r["reused"].dump() : "?");
  }
  return s;
}

}  // namespace httptrace::itest
