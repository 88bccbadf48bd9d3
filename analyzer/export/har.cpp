// `httptrace export --format har [-o FILE] TRACE...`: SPEC §7, HAR 1.2.
//
// One entry per HTTP request (an exchange with a request line); entries are written as the model
// completes their connection, so they come in connection-close order (HAR readers sort by
// startedDateTime) and memory stays bounded by the open connections.
//
// Timings are integer microseconds until they are written (as ms with three decimals), so `time`
// is exactly the sum of the written non-negative phases. `ssl` is left out of that sum: HAR 1.2
// says its time "is also included in the connect field (to ensure backward compatibility with
// HAR 1.1)", so adding it again would make `time` longer than the request took.
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string>
#include <string_view>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/export/iso_time.h"
#include "analyzer/export/json_writer.h"
#include "analyzer/model/addr_format.h"
#include "analyzer/reports.h"
#include "analyzer/symbols/symbolizer.h"

namespace httptrace::analyzer {

namespace {

int64_t us(uint64_t ns) { return static_cast<int64_t>((ns + 500) / 1000); }
int64_t us_between(uint64_t from, uint64_t to) { return to > from ? us(to - from) : 0; }

struct HarTimings {
  int64_t dns = -1, connect = -1, ssl = -1, send = 0, wait = 0, receive = 0;  // µs, -1: none
  int64_t total() const {
    int64_t t = send + wait + receive;
    if (dns > 0) t += dns;
    if (connect > 0) t += connect;
    return t;
  }
};

// The connection's own setup belongs to its first request only: a reused request, or the first
// one on a socket inherited across fork (set up by the parent), had none.
bool carries_setup(const Connection& c, const Exchange& x) {
  return !x.reused && x.index == 0 && !c.inherited;
}

HarTimings timings_of(const Connection& c, const Exchange& x, bool setup) {
  HarTimings t;
  if (setup) {
    // A lookup shared by several connections was paid for by the first one.
    if (c.dns && c.dns_first_use) t.dns = us(c.dns->duration_ns);
    if (c.has_connect) t.connect = us(c.connect_duration_ns);
    // Through a proxy the connection is set up once its tunnel is: HAR has no phase of its own
    // for CONNECT (DevTools counts it in "Initial connection"), so it is part of connect.
    if (c.tunnel) t.connect = std::max<int64_t>(t.connect, 0) + us(c.tunnel->duration_ns);
    if (c.tls) {
      t.ssl = us(c.tls->duration_ns);
      t.connect = std::max<int64_t>(t.connect, 0) + t.ssl;
    }
  }
  t.send = us_between(x.start_ns, x.sent_ns);
  if (x.first_byte_ns) {
    t.wait = us_between(x.sent_ns, *x.first_byte_ns);
    t.receive = us_between(*x.first_byte_ns, x.end_ns);
  } else {
    t.wait = us_between(x.sent_ns, x.end_ns);  // no response: waited until the exchange ended
  }
  return t;
}

// Bytes of a request-target that may stand in a URL as they are (RFC 3986 unreserved, reserved
// and '%'); anything else is percent-encoded so the URL is one a URI parser accepts.
constexpr std::array<bool, 256> kUrlSafe = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (char c : std::string_view("-._~:/?#[]@!$&'()*+,;=%")) t[static_cast<uint8_t>(c)] = true;
  return t;
}();

void append_url_part(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    const auto b = static_cast<uint8_t>(ch);
    if (kUrlSafe[b]) {
      out += ch;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
}

class HarEntryWriter : public ConnectionSink {
 public:
  HarEntryWriter(JsonWriter& w, const TimeBase& tb, Symbolizer& sym) : w_(w), tb_(tb), sym_(sym) {}

  void on_connection(const Connection& c) override {
    // A HAR is what a client sent and got back; a server's side of the same calls is not that.
    if (c.direction == ConnDirection::kInbound) return;
    bool prepared = false;
    for (const Exchange& x : c.requests) {
      if (x.method.empty()) continue;  // not HTTP: HAR has no place for it
      if (!prepared) prepare(c), prepared = true;
      entry(c, x);
    }
  }

 private:
  // What every entry of the connection shares: server address, authority, scheme.
  void prepare(const Connection& c) {
    const bool ip = c.peer.family == AF_INET || c.peer.family == AF_INET6;
    ip_len_ = ip ? format_addr_to(ip_, c.peer, false) : 0;
    https_ = c.tls.has_value();
    authority_.clear();
    // Through a proxy's tunnel the URL names the server behind it, not the proxy.
    const bool tunnelled = c.tunnel && !c.tunnel->host.empty();
    if (tunnelled && c.tunnel->host.find(':') != std::string::npos) {
      authority_ += '[';
      append_url_part(authority_, c.tunnel->host);
      authority_ += ']';
    } else if (tunnelled) {
      append_url_part(authority_, c.tunnel->host);
    } else if (c.host && c.host->find(':') != std::string::npos) {
      authority_ += '[';  // an IPv6 literal from a Host header
      append_url_part(authority_, *c.host);
      authority_ += ']';
    } else if (c.host) {
      append_url_part(authority_, *c.host);
    } else if (c.peer.family == AF_INET6) {
      authority_ += '[';
      authority_.append(ip_, ip_len_);
      authority_ += ']';
    } else if (ip) {
      authority_.append(ip_, ip_len_);
    } else {
      authority_ += "localhost";  // a Unix socket without a Host header: a URL needs some host
    }
    const uint16_t port = tunnelled ? c.tunnel->port : ip ? c.peer.port : 0;
    if (port && port != (https_ ? 443 : 80)) authority_ += ':' + std::to_string(port);
    http_version_ = c.protocol && *c.protocol == "http/1.1" ? "HTTP/1.1"
                    : c.protocol && *c.protocol == "h2"     ? "HTTP/2.0"  // as browsers write it
                    : c.protocol                            ? *c.protocol
                                                            : "";
    render_connection_parts(c);
  }

  void build_url(std::string_view target) {
    url_.clear();
    if (target.starts_with("http://") || target.starts_with("https://")) {
      append_url_part(url_, target);  // absolute form (a request to a proxy)
      return;
    }
    url_ += https_ ? "https://" : "http://";
    if (!target.empty() && target[0] != '/' && target != "*") {
      append_url_part(url_, target);  // authority form (CONNECT host:port)
      return;
    }
    url_ += authority_;
    if (target.empty() || target[0] != '/') url_ += '/';
    else append_url_part(url_, target);
  }

  void query_string(std::string_view target) {
    JsonWriter& w = w_;
    w.key("queryString").begin_array();
    const size_t q = target.find('?');
    if (q != std::string_view::npos) {
      std::string_view rest = target.substr(q + 1);
      rest = rest.substr(0, rest.find('#'));
      while (!rest.empty()) {
        const size_t amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (pair.empty()) continue;
        const size_t eq = pair.find('=');
        w.begin_object();
        w.key("name").value(pair.substr(0, eq));
        w.key("value").value(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
        w.end_object();
      }
    }
    w.end_array();
  }

  // Most of an entry is the same for every request of a connection, or constant: those parts
  // are rendered once (escaped) and written as raw JSON; only per-request values are formatted.
  void render_connection_parts(const Connection& c) {
    req_const_.assign("\"httpVersion\":");
    append_json_string(req_const_, http_version_);
    req_const_ += ",\"cookies\":[],\"headers\":[{\"name\":\"Host\",\"value\":";
    append_json_string(req_const_, authority_);
    req_const_ += "}]";
    version_json_.clear();
    append_json_string(version_json_, http_version_);

    conn_mid_.clear();
    if (ip_len_) {
      conn_mid_ += "\"serverIPAddress\":";
      append_json_string(conn_mid_, std::string_view(ip_, ip_len_));
      conn_mid_ += ',';
    }
    conn_mid_ += "\"connection\":";
    append_json_string(conn_mid_, c.id);

    conn_tail_.assign("\"_newReason\":");
    if (const char* reason = new_reason_name(c.new_reason)) append_json_string(conn_tail_, reason);
    else conn_tail_ += "null";
    conn_tail_ += ",\"_tls\":";
    if (c.tls) {
      const TlsInfo& t = *c.tls;
      auto opt = [&](std::string_view k, const std::string& v) {
        conn_tail_ += k;
        if (v.empty()) conn_tail_ += "null";
        else append_json_string(conn_tail_, v);
      };
      opt("{\"version\":", t.version);
      opt(",\"cipher\":", t.cipher);
      conn_tail_ += t.resumed ? ",\"resumed\":true" : ",\"resumed\":false";
      opt(",\"sni\":", t.sni);
      opt(",\"alpn\":", t.alpn);
      conn_tail_ += '}';
    } else {
      conn_tail_ += "null";
    }
    if (c.tunnel) {
      conn_tail_ += ",\"_tunnel\":{\"target\":";
      append_json_string(conn_tail_, c.tunnel->target);
      conn_tail_ += ",\"status\":";
      add_int(conn_tail_, c.tunnel->status);
      conn_tail_ += '}';
    }
    conn_tail_ += ",\"_pid\":";
    add_int(conn_tail_, c.pid);
    render_initiator(c);
  }

  // `_initiator` as Chrome DevTools writes it: the stack that opened the connection belongs to
  // the request that opened it (the one that carried its setup); a later request on it was sent
  // by code we did not see, "other". Line and column numbers are 0-based there; -1: unknown.
  void render_initiator(const Connection& c) {
    initiator_.assign(",\"_initiator\":{\"type\":\"other\"}");
    setup_initiator_ = initiator_;
    if (c.stack.empty()) return;
    std::string& s = setup_initiator_;
    s.assign(",\"_initiator\":{\"type\":\"script\",\"stack\":{\"callFrames\":[");
    bool first = true;
    for (const Frame& f : sym_.frames(c)) {
      s += first ? "{\"functionName\":" : ",{\"functionName\":";
      first = false;
      append_json_string(s, f.function);
      s += ",\"url\":";
      append_json_string(s, !f.file.empty() ? std::string_view(f.file) : std::string_view(f.object));
      s += ",\"lineNumber\":";
      add_int(s, f.line ? static_cast<int64_t>(f.line) - 1 : -1);
      s += ",\"columnNumber\":";
      add_int(s, f.column ? static_cast<int64_t>(f.column) - 1 : -1);
      s += '}';
    }
    s += "]}}";
  }

  static void add_int(std::string& s, int64_t v) {
    char buf[24];
    s.append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  }
  static void add_ms(std::string& s, int64_t micros) {
    if (micros < 0) {
      s += "-1";
      return;
    }
    char buf[32];
    s.append(buf, static_cast<size_t>(put_fixed(buf, micros, 3) - buf));
  }

  void entry(const Connection& c, const Exchange& x) {
    JsonWriter& w = w_;
    const bool setup = carries_setup(c, x);
    const HarTimings t = timings_of(c, x, setup);
    // The entry starts where its first phase started: the lookup or the connect of a new
    // connection, else the first byte of the request.
    uint64_t start = x.start_ns;
    if (setup) {
      if (t.dns >= 0) start = std::min(start, c.dns->start_ns);
      if (c.has_connect) start = std::min(start, c.connect_start_ns);
      if (c.tls) start = std::min(start, c.tls->start_ns);
    }
    char when[kIsoTimeMsLen + 1];
    iso_.format(when, tb_.t0_unix_ns + static_cast<uint64_t>(tb_.rel(start)));

    std::string& b = scratch_;
    w.begin_object();
    b.assign("\"startedDateTime\":\"");
    b.append(when, kIsoTimeMsLen);
    b += "\",\"time\":";
    add_ms(b, t.total());
    w.raw(b);

    w.key("request").begin_object();
    w.key("method").value(x.method);
    build_url(x.target);
    w.key("url").value(url_);
    // Only Host: the recorder keeps no other request header (they may hold secrets).
    w.raw(req_const_);
    query_string(x.target);
    b.assign("\"headersSize\":-1,\"bodySize\":-1,\"_transferSize\":");
    add_int(b, static_cast<int64_t>(x.bytes_sent));
    w.raw(b);
    w.end_object();

    b.assign("\"response\":{\"status\":");
    add_int(b, x.status);
    b += ",\"statusText\":\"\",\"httpVersion\":";
    b += x.status ? std::string_view(version_json_) : std::string_view("\"\"");
    b += ",\"cookies\":[],\"headers\":[],\"content\":{\"size\":-1,\"mimeType\":\"\"},\"redirectURL\":\"\","
         "\"headersSize\":-1,\"bodySize\":-1,\"_transferSize\":";
    // Bytes on the wire for the response (headers and body): what DevTools shows as "transferred".
    add_int(b, static_cast<int64_t>(x.bytes_received));
    b += "},\"cache\":{},\"timings\":{\"blocked\":-1,\"dns\":";
    add_ms(b, t.dns);
    b += ",\"connect\":";
    add_ms(b, t.connect);
    b += ",\"ssl\":";
    add_ms(b, t.ssl);
    b += ",\"send\":";
    add_ms(b, t.send);
    b += ",\"wait\":";
    add_ms(b, t.wait);
    b += ",\"receive\":";
    add_ms(b, t.receive);
    b += "},";
    b += conn_mid_;
    b += x.reused ? ",\"_reused\":true,\"_idleMs\":" : ",\"_reused\":false,\"_idleMs\":";
    if (x.idle_ns) add_ms(b, us(*x.idle_ns));
    else b += "null";
    b += ',';
    b += conn_tail_;
    b += setup ? setup_initiator_ : initiator_;
    w.raw(b);
    w.end_object();
  }

  JsonWriter& w_;
  const TimeBase& tb_;
  Symbolizer& sym_;
  std::string initiator_, setup_initiator_;
  char ip_[kMaxAddrText];
  size_t ip_len_ = 0;
  bool https_ = false;
  std::string authority_, url_, http_version_;
  std::string req_const_, version_json_, conn_mid_, conn_tail_, scratch_;
  IsoTimeMs iso_;
};

}  // namespace

bool write_har(TraceSet& traces, std::FILE* out) {
  const TimeBase tb = time_base(traces);
  JsonWriter w(out);
  w.begin_object();
  w.key("log").begin_object();
  w.key("version").value("1.2");
  w.key("creator").begin_object();
  w.key("name").value("httptrace");
  w.key("version").value(kProgramVersion);
  w.end_object();
  w.key("entries").begin_array();
  Symbolizer sym(traces);  // used on the pipe's thread only
  HarEntryWriter sink(w, tb, sym);
  {
    // Until close(), only the pipe's thread writes to w.
    ConnectionPipe pipe(sink);
    Model model(traces, pipe, /*keep_dns=*/false);
    analyze(traces, model, Reading::inline_);
    pipe.close();
  }
  w.end_array();
  w.end_object();
  w.end_object();
  return w.flush();
}

}  // namespace httptrace::analyzer
