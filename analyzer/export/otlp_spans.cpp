#include "analyzer/export/otlp_spans.h"

#include <cstring>

#include "analyzer/model/addr_format.h"
#include "analyzer/model/trace_context.h"

namespace httptrace::analyzer::otlp {

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finaliser: every input bit reaches every output bit
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_str(std::string_view s, uint64_t seed) {
  uint64_t h = seed ^ 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return mix(h);
}

void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}

// Span kinds within a connection, mixed into its span ids.
enum Tag : uint64_t { kSetup = 1, kDns, kConnect, kTls, kRequest, kTunnel };

SpanId span_id(const TraceId& trace, std::string_view conn_id, uint64_t tag, uint64_t index) {
  uint64_t t;
  std::memcpy(&t, trace.data() + 8, 8);
  uint64_t v = mix(hash_str(conn_id, t) ^ mix(tag << 40 ^ index));
  if (v == 0) v = 1;  // an all-zero span id is invalid
  SpanId id;
  put64(id.data(), v);
  return id;
}

std::string basename_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "TLSv1.3" -> "1.3" (tls.protocol.version is the bare number).
std::string_view tls_version_number(std::string_view v) {
  if (v.starts_with("TLSv")) return v.substr(4);
  if (v.starts_with("TLS1.") || v.starts_with("TLS ")) return v.substr(3 + (v[3] == ' '));
  return v;
}

bool is_inet(const tf::Addr& a) { return a.family == 2 || a.family == 10; }  // AF_INET, AF_INET6

}  // namespace

std::string to_hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}

void Span::reset() {
  has_parent = false;
  parent = {};
  name.clear();
  kind = SpanKind::kInternal;
  start_unix_ns = end_unix_ns = 0;
  n_attrs = 0;
  links.clear();
  status = StatusCode::kUnset;
  status_message.clear();
}

Attr& Span::add(std::string_view key, Attr::Type t) {
  if (n_attrs == attrs.size()) attrs.emplace_back();
  Attr& a = attrs[n_attrs++];
  a.key = key;
  a.type = t;
  return a;
}
void Span::add_str(std::string_view key, std::string_view v) { add(key, Attr::Type::kString).s.assign(v); }
void Span::add_int(std::string_view key, int64_t v) { add(key, Attr::Type::kInt).i = v; }
void Span::add_bool(std::string_view key, bool v) { add(key, Attr::Type::kBool).b = v; }

Resources::Resources(const TraceSet& traces, std::string_view service_name)
    : service_name_(service_name) {
  // Files of one pid (exec) share a resource: the first file names it (its exe is the one that
  // made the pid's first connections), the anchor of its root identifies the tree.
  std::unordered_map<int32_t, const TraceFile*> first;
  for (const TraceFile& f : traces.files()) first.try_emplace(f.pid, &f);
  for (const auto& [pid, f] : first) {
    const TraceFile* root = f;
    for (size_t hops = 0; hops < first.size(); ++hops) {  // bounded: a pid cycle cannot loop
      auto it = first.find(root->ppid);
      if (it == first.end() || it->second == root) break;
      root = it->second;
    }
    ProcessResource& r = by_pid_[pid];
    r.pid = pid;
    r.ppid = f->ppid;
    r.exe = f->exe;
    r.service_name = service_name_.empty() ? basename_of(f->exe) : service_name_;
    if (r.service_name.empty()) r.service_name = "unknown_service";
    r.trace_id = tree_trace_id(root->pid, root->real_anchor_ns);  // the model's, for its requests
  }
}

const ProcessResource& Resources::of(int32_t pid) {
  auto [it, added] = by_pid_.try_emplace(pid);
  if (added) {
    ProcessResource& r = it->second;
    r.pid = pid;
    r.service_name = service_name_.empty() ? "unknown_service" : service_name_;
    put64(r.trace_id.data(), mix(uint64_t(uint32_t(pid))));
    put64(r.trace_id.data() + 8, mix(uint64_t(uint32_t(pid)) + 1));
  }
  return it->second;
}

void SpanBuilder::build(const Connection& c, std::vector<Span>& out, size_t& n) {
  const ProcessResource& res = resources_.of(c.pid);
  // The model puts each request in a distributed trace; the connection's setup goes in the trace
  // of the first request it served (the others link to it across traces), else the process tree's.
  // (A connection the model did not place, built by hand, has no trace ids: the tree's then.)
  const TraceId none{};
  const TraceId setup_trace =
      c.requests.empty() || c.requests.front().trace_id == none ? res.trace_id : c.requests.front().trace_id;
  auto next = [&]() -> Span& {
    if (n == out.size()) out.emplace_back();
    Span& s = out[n++];
    s.reset();
    s.trace_id = setup_trace;
    return s;
  };
  const bool inbound = c.direction == ConnDirection::kInbound;

  char addr[kMaxAddrText];
  const std::string_view peer_ip(addr, c.peer.family ? format_addr_to(addr, c.peer, false) : 0);
  const std::string peer_ip_s(peer_ip);
  // Semconv: through an intermediary (a proxy's tunnel), server.* is the server behind it and
  // network.peer.* the proxy.
  const bool tunnelled = c.tunnel && c.direction == ConnDirection::kOutbound && !c.tunnel->host.empty();
  const std::string server = tunnelled ? c.tunnel->host : c.host ? *c.host : peer_ip_s;
  const bool inet = is_inet(c.peer);
  const uint16_t server_port = tunnelled ? c.tunnel->port : inet ? c.peer.port : 0;
  auto endpoint_attrs = [&](Span& s) {
    if (!server.empty()) s.add_str("server.address", server);
    if (server_port) s.add_int("server.port", server_port);
    if (!peer_ip.empty()) s.add_str("network.peer.address", peer_ip_s);
    if (inet) s.add_int("network.peer.port", c.peer.port);
  };

  // The setup span covers what the connection cost before its first byte: lookup, connect, TLS.
  // A lookup that an earlier connection already used was not paid for by this one: leaving it
  // out keeps the setup span from stretching back over the earlier connection's life.
  const bool own_dns = c.dns && c.dns_first_use;
  const bool has_setup = own_dns || c.has_connect || c.tunnel || c.tls;
  SpanId setup_id{};
  if (has_setup) {
    uint64_t start = UINT64_MAX, end = 0;
    auto cover = [&](uint64_t s, uint64_t d) {
      start = std::min(start, s);
      end = std::max(end, s + d);
    };
    if (own_dns) cover(c.dns->start_ns, c.dns->duration_ns);
    if (c.has_connect) cover(c.connect_start_ns, c.connect_duration_ns);
    if (c.tunnel) cover(c.tunnel->start_ns, c.tunnel->duration_ns);
    if (c.tls) cover(c.tls->start_ns, c.tls->duration_ns);
    setup_id = span_id(setup_trace, c.id, kSetup, 0);
    Span& s = next();
    s.span_id = setup_id;
    s.name = "HTTP connection_setup";
    s.start_unix_ns = unix_ns(start);
    s.end_unix_ns = unix_ns(end);
    endpoint_attrs(s);
    s.add_str("httptrace.connection.id", c.id);
    if (const char* reason = new_reason_name(c.new_reason)) s.add_str("httptrace.new_reason", reason);
    if (c.failed()) {
      const std::string err = errno_name(c.connect_error);
      s.add_str("error.type", err);
      s.status = StatusCode::kError;
      s.status_message = "connect: " + err;
    }
    auto child = [&](uint64_t tag, const char* name, uint64_t st, uint64_t dur) -> Span& {
      Span& k = next();
      k.span_id = span_id(setup_trace, c.id, tag, 0);
      k.parent = setup_id;
      k.has_parent = true;
      k.name = name;
      k.start_unix_ns = unix_ns(st);
      k.end_unix_ns = unix_ns(st + dur);
      return k;
    };
    if (own_dns) {
      Span& k = child(kDns, "DNS lookup", c.dns->start_ns, c.dns->duration_ns);
      if (c.host) k.add_str("server.address", *c.host);
    }
    if (c.has_connect) {
      Span& k = child(kConnect, "socket connect", c.connect_start_ns, c.connect_duration_ns);
      if (!peer_ip.empty()) k.add_str("network.peer.address", peer_ip_s);
      if (inet) k.add_int("network.peer.port", c.peer.port);
      if (c.failed()) {
        k.add_str("error.type", errno_name(c.connect_error));
        k.status = StatusCode::kError;
      }
    }
    if (c.tunnel) {
      // Semconv's CONNECT: a request whose method is CONNECT and whose target is the server.
      const Tunnel& t = *c.tunnel;
      Span& k = child(kTunnel, "CONNECT", t.start_ns, t.duration_ns);
      k.add_str("http.request.method", "CONNECT");
      if (!t.host.empty()) k.add_str("server.address", t.host);
      if (t.port) k.add_int("server.port", t.port);
      if (!peer_ip.empty()) k.add_str("network.peer.address", peer_ip_s);
      if (inet) k.add_int("network.peer.port", c.peer.port);
      if (t.status) k.add_int("http.response.status_code", t.status);
      if (t.status < 200 || t.status >= 300) {
        k.add_str("error.type", t.status ? std::to_string(t.status) : std::string("no answer"));
        k.status = StatusCode::kError;
      }
    }
    if (c.tls) {
      const TlsInfo& t = *c.tls;
      Span& k = child(kTls, "TLS handshake", t.start_ns, t.duration_ns);
      k.add_str("tls.protocol.name", "tls");
      if (!t.version.empty()) k.add_str("tls.protocol.version", tls_version_number(t.version));
      if (!t.cipher.empty()) k.add_str("tls.cipher", t.cipher);
      if (!t.sni.empty()) k.add_str("tls.server.name", t.sni);
      if (!t.alpn.empty()) k.add_str("tls.next_protocol", t.alpn);
      k.add_bool("tls.resumed", t.resumed);
      k.add_str("httptrace.tls.library", t.library);
      if (t.error) {
        k.add_str("error.type", t.error_text.empty() ? std::to_string(t.error) : t.error_text);
        k.status = StatusCode::kError;
      }
    }
  }

  const bool http = c.protocol.has_value();
  const std::string_view version = !c.protocol             ? std::string_view()
                                   : *c.protocol == "h2"   ? std::string_view("2")
                                   : *c.protocol == "http/1.1" ? std::string_view("1.1")
                                                           : std::string_view();
  const char* scheme = c.tls ? "https" : "http";
  const bool default_port = server_port == 0 || server_port == (c.tls ? 443 : 80);
  for (const Exchange& x : c.requests) {
    Span& s = next();
    if (x.span_id) {
      s.trace_id = x.trace_id;
      put64(s.span_id.data(), x.span_id);
    } else {
      s.span_id = span_id(setup_trace, c.id, kRequest, x.index);
    }
    if (x.parent_span_id) {
      s.has_parent = true;
      put64(s.parent.data(), x.parent_span_id);
    }
    s.kind = inbound ? SpanKind::kServer : SpanKind::kClient;
    const bool has_method = !x.method.empty();
    s.name = has_method ? x.method : http ? "HTTP" : "exchange";
    s.start_unix_ns = unix_ns(x.start_ns);
    s.end_unix_ns = unix_ns(std::max(x.end_ns, x.start_ns));
    if (has_method) {
      s.add_str("http.request.method", x.method);
      if (inbound && !x.target.empty()) {
        // Semconv for SERVER spans: the path and query as the server saw them, not a full URL.
        const std::string_view t(x.target);
        const size_t q = t.find('?');
        s.add_str("url.path", t.substr(0, q));
        if (q != std::string_view::npos) s.add_str("url.query", t.substr(q + 1));
        s.add_str("url.scheme", scheme);
      } else if (!x.target.empty()) {
        Attr& u = s.add("url.full", Attr::Type::kString);
        if (x.target[0] == '/' || x.target == "*") {
          u.s.assign(scheme);
          u.s += "://";
          const bool v6 = tunnelled ? server.find(':') != std::string::npos : !c.host && c.peer.family == 10;
          if (v6) u.s += '[';
          u.s += server;
          if (v6) u.s += ']';
          if (!default_port) u.s += ':' + std::to_string(server_port);
          if (x.target != "*") u.s += x.target;
        } else {
          u.s.assign(x.target);  // absolute-form (a proxy request) is already the full URL
        }
      }
    }
    if (inbound) {
      // A server span names the server by its own (local) address and the client as its peer.
      char local[kMaxAddrText];
      if (c.local.family) s.add_str("server.address", std::string_view(local, format_addr_to(local, c.local, false)));
      if (is_inet(c.local)) s.add_int("server.port", c.local.port);
      if (!peer_ip.empty()) s.add_str("client.address", peer_ip_s);
      if (inet) s.add_int("client.port", c.peer.port);
      if (!peer_ip.empty()) s.add_str("network.peer.address", peer_ip_s);
      if (inet) s.add_int("network.peer.port", c.peer.port);
      if (x.children_ns) s.add_int("httptrace.children_ns", static_cast<int64_t>(*x.children_ns));
    } else {
      endpoint_attrs(s);
    }
    if (!version.empty()) s.add_str("network.protocol.version", version);
    if (x.status) s.add_int("http.response.status_code", x.status);
    s.add_bool("httptrace.reused", x.reused);
    if (x.idle_ns) s.add_int("httptrace.idle_ns", static_cast<int64_t>(*x.idle_ns));
    if (const char* reason = new_reason_name(c.new_reason); reason && !x.reused) s.add_str("httptrace.new_reason", reason);
    s.add_str("httptrace.connection.id", c.id);
    s.add_int("httptrace.request.index", x.index);
    // Bytes on the wire, headers included: not semconv's body sizes.
    s.add_int("httptrace.bytes_sent", static_cast<int64_t>(x.bytes_sent));
    s.add_int("httptrace.bytes_received", static_cast<int64_t>(x.bytes_received));
    if (x.status >= (inbound ? 500 : 400)) {
      // Semconv: a 4xx or 5xx answer is an error of a CLIENT span; only 5xx of a SERVER span.
      s.add_str("error.type", std::to_string(x.status));
      s.status = StatusCode::kError;
    } else if (has_method && !x.first_byte_ns) {
      s.add_str("error.type", "httptrace.no_response");
      s.status = StatusCode::kError;
    }
    if (has_setup) s.links.push_back(Link{setup_trace, setup_id});
  }
}

}  // namespace httptrace::analyzer::otlp
