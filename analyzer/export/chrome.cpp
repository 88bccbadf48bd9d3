// `httptrace export --format chrome [-o FILE] TRACE...`: SPEC §8, the Trace Event JSON that the
// Perfetto UI and chrome://tracing open ({"traceEvents": [...]}).
//
// Layout, chosen for how Perfetto imports JSON:
// - pid is the traced pid; its name (process_name metadata, written at the end once the model
//   knows every process) is the exe.
// - Each connection is its own thread track (a synthetic tid above any real one, derived from the
//   connection's id, named "host peer protocol"), so concurrent connections never share a track.
//   It carries the connection's dns / connect / tls complete slices (ph X) and then its requests,
//   each a complete slice with send / wait / receive complete slices nested in it. Slices are kept
//   from overlapping (one starting before the previous one ended is clipped to start at its end):
//   Perfetto drops slices that overlap without nesting. HTTP/2 streams overlap: they are spread
//   over lanes, extra tracks of the connection (stream_lane).
// - Requests are thread-track slices, not async ones, because flow events (ph s/f) bind only to
//   thread-track slices. Flows: a connection's lookup to its connect ("dns → connect"); a client's
//   request to the traced server's inbound request it was ("call", across processes); an inbound
//   request to each outbound request made for it ("child", in one process).
// Times are µs since the trace's t0 with three decimals (the recorded ns, exactly).
//
// Events are written as the model completes each connection (close order; viewers sort by ts),
// so memory stays bounded by the open connections.
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <string_view>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/export/json_writer.h"
#include "analyzer/model/addr_format.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

// Above Linux's PID_MAX_LIMIT (2^22): a connection's track never collides with a real thread of
// the process (Perfetto treats tid == pid as the main thread).
constexpr int64_t kTrackTidBase = int64_t(1) << 22;
// Long request targets make unreadable slice labels; the full one is in the slice's args.
constexpr size_t kMaxNameTarget = 120;

// A connection's track, from its id ("pid:conn" or "pid.gen:conn" after an exec; a request id's
// "#index" is ignored): a request made for an inbound request puts its flow's start on the
// inbound connection's track, which is usually written after it (close order). Ids past 2^24
// connections in one image (or 32 exec generations) share tracks with earlier ones.
int64_t track_of(std::string_view id) {
  id = id.substr(0, id.find('#'));
  const size_t colon = id.rfind(':');
  if (colon == std::string_view::npos) return kTrackTidBase;
  uint64_t gen = 0, conn = 0;
  const size_t dot = id.find('.');
  if (dot < colon) std::from_chars(id.data() + dot + 1, id.data() + colon, gen);
  std::from_chars(id.data() + colon + 1, id.data() + id.size(), conn);
  return kTrackTidBase + static_cast<int64_t>(((gen % 32) << 24) | (conn & 0xffffff));
}

// Flow ids both ends can compute on their own (the client and the server request are written by
// different connections, in any order): a hash of the request the arrow stands for, kept below
// 2^53 so that a JavaScript viewer reads it exactly.
uint64_t flow_id(char tag, std::string_view conn_id, uint32_t index, std::string_view request_id = {}) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  };
  mix(std::string_view(&tag, 1));
  if (request_id.empty()) {
    mix(conn_id);
    char buf[12];
    buf[0] = '#';
    mix(std::string_view(buf, static_cast<size_t>(std::to_chars(buf + 1, buf + sizeof buf, index).ptr - buf)));
  } else {
    mix(request_id);
  }
  return (h & ((uint64_t(1) << 53) - 1)) | 1;
}

class ChromeEventWriter : public ConnectionSink {
 public:
  ChromeEventWriter(JsonWriter& w, const TimeBase& tb) : w_(w), tb_(tb) {}

  void on_connection(const Connection& c) override {
    if (!c.dns && !c.has_connect && !c.tunnel && !c.tls && c.requests.empty()) return;  // nothing to draw
    pid_ = c.pid;
    conn_tid_ = track_of(c.id);
    use_track(conn_tid_);
    cursor_ = 0;
    lanes_.clear();
    // The track's name and setup slices go out as one piece, like each request.
    ev_.clear();
    track_name(c, 0);
    conn_args_.assign(",\"args\":{\"connection\":");
    append_json_string(conn_args_, c.id);
    conn_args_ += ",\"index\":";

    const bool has_dns = c.dns.has_value();
    uint64_t dns_mid = 0;
    if (has_dns) {
      const auto [s, e] = clip(c.dns->start_ns, c.dns->start_ns + c.dns->duration_ns);
      slice(R"(,{"ph":"X","name":"dns","cat":"dns")", s, e, false);
      ev_ += ",\"args\":{\"host\":";
      if (c.host) append_json_string(ev_, *c.host);
      else ev_ += "null";
      ev_ += "}}";
      dns_mid = s + (e - s) / 2;
    }
    if (c.has_connect) {
      const auto [s, e] = clip(c.connect_start_ns, c.connect_start_ns + c.connect_duration_ns);
      slice(R"(,{"ph":"X","name":"connect","cat":"net")", s, e, false);
      char addr[kMaxAddrText];
      ev_ += ",\"args\":{\"peer\":\"";
      ev_.append(addr, format_addr_to(addr, c.peer, true));  // digits, dots, colons, brackets
      ev_ += '"';
      if (c.connect_error) ev_ += ",\"error\":", append_json_string(ev_, errno_name(c.connect_error));
      if (c.connect_pending) ev_ += ",\"pending\":true";
      if (!c.attempts.empty()) ev_ += ",\"lost_attempts\":", num(c.attempts.size());
      ev_ += "}}";
      if (has_dns) {
        ++flow_;
        dns_flow('s', dns_mid);
        dns_flow('f', s + (e - s) / 2);
      }
    }
    w_.raw(std::string_view(ev_).substr(1));  // without the first event's leading comma
    if (c.tunnel) {
      const Tunnel& t = *c.tunnel;
      const auto [s, e] = clip(t.start_ns, t.start_ns + t.duration_ns);
      complete("tunnel", "net", s, e);
      w_.key("args").begin_object();
      w_.key("target").value(t.target);
      if (t.status) w_.key("status").value(t.status);
      w_.end_object();
      w_.end_object();
    }
    if (c.tls) {
      const TlsInfo& t = *c.tls;
      const auto [s, e] = clip(t.start_ns, t.start_ns + t.duration_ns);
      complete("tls", "tls", s, e);
      w_.key("args").begin_object();
      w_.key("library").value(t.library);
      auto opt = [&](JsonWriter::Key k, const std::string& v) {
        if (!v.empty()) w_.key(k).value(v);
      };
      opt("version", t.version);
      opt("cipher", t.cipher);
      opt("sni", t.sni);
      opt("alpn", t.alpn);
      w_.key("resumed").value(t.resumed);
      if (t.error) opt("error", t.error_text.empty() ? std::to_string(t.error) : t.error_text);
      w_.end_object();
      w_.end_object();
    }

    const bool https = c.tls.has_value();
    for (const Exchange& x : c.requests) request(c, x, https);
  }

 private:
  int64_t rel(uint64_t ns) const { return tb_.rel(ns); }

  // [s, e] moved to start no earlier than the previous slice on this track ended.
  std::pair<uint64_t, uint64_t> clip(uint64_t s, uint64_t e) {
    s = std::max(s, cursor_);
    e = std::max(e, s);
    cursor_ = e;
    return {s, e};
  }

  void head(char ph, std::string_view name, std::string_view cat, uint64_t ts) {
    JsonWriter& w = w_;
    w.begin_object();
    w.key("ph").value(std::string_view(&ph, 1));
    w.key("name").value(name);
    w.key("cat").value(cat);
    w.key("pid").value(pid_);
    w.key("tid").value(tid_);
    w.key("ts").fixed(rel(ts), 3);
  }

  // Leaves the event open for its args.
  void complete(std::string_view name, std::string_view cat, uint64_t s, uint64_t e) {
    head('X', name, cat, s);
    w_.key("dur").fixed(static_cast<int64_t>(e - s), 3);
  }

  void dns_flow(char ph, uint64_t ts) {
    ev_ += ph == 's' ? R"(,{"ph":"s","name":"dns → connect","cat":"net")"
                     : R"(,{"ph":"f","name":"dns → connect","cat":"net")";
    ev_.append(track_tail_, track_tail_len_);
    fixed(rel(ts));
    ev_ += ",\"id\":";
    num(flow_);
    if (ph == 'f') ev_ += ",\"bp\":\"e\"";  // binds to the enclosing slice (connect)
    ev_ += '}';
  }

  // A flow event of a request (cat "http"), appended to ev_: s binds to the slice open at ts on
  // the track, f (with bp "e") to the slice enclosing ts. Perfetto binds v1 flows to thread-track
  // slices only, which is why requests are complete slices on their connection's track rather
  // than async slices.
  void request_flow(char ph, std::string_view name, uint64_t id, int64_t tid, uint64_t ts) {
    ev_ += ph == 's' ? R"(,{"ph":"s","name":")" : R"(,{"ph":"f","bp":"e","name":")";
    ev_ += name;
    ev_ += R"(","cat":"http","pid":)";
    num(pid_);
    ev_ += ",\"tid\":";
    num(tid);
    ev_ += ",\"ts\":";
    fixed(rel(ts));
    ev_ += ",\"id\":";
    num(id);
    ev_ += '}';
  }

  // The track the next slices go on: pid, tid and the start of "ts" rendered once, as the request
  // events (four per request) are most of the output.
  void use_track(int64_t tid) {
    tid_ = tid;
    char* p = track_tail_;
    p = copy(p, ",\"pid\":");
    p = std::to_chars(p, p + 12, pid_).ptr;
    p = copy(p, ",\"tid\":");
    p = std::to_chars(p, p + 21, tid_).ptr;
    p = copy(p, ",\"ts\":");
    track_tail_len_ = static_cast<size_t>(p - track_tail_);
  }

  static char* copy(char* p, std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }

  template <class T> void num(T v) {
    char b[24];
    ev_.append(b, static_cast<size_t>(std::to_chars(b, b + sizeof b, v).ptr - b));
  }
  void fixed(int64_t v) {
    char b[32];
    ev_.append(b, static_cast<size_t>(put_fixed(b, v, 3) - b));
  }

  // Appends {"ph":"X","name":NAME,"cat":"http" (given as start, NAME already JSON), then pid,
  // tid, ts, dur; left open for args unless close.
  void slice(std::string_view start, uint64_t s, uint64_t e, bool close = true) {
    ev_ += start;
    ev_.append(track_tail_, track_tail_len_);
    fixed(rel(s));
    ev_ += ",\"dur\":";
    fixed(static_cast<int64_t>(e - s));
    if (close) ev_ += '}';
  }

  // lane 0 is the connection's own track; HTTP/2 streams that overlap go on further lanes.
  void track_name(const Connection& c, size_t lane) {
    name_.clear();
    if (c.host) name_ += *c.host, name_ += ' ';
    char addr[kMaxAddrText];
    if (c.peer.family) name_.append(addr, format_addr_to(addr, c.peer, true));
    else name_ += '?';
    name_ += ' ';
    name_ += c.protocol ? std::string_view(*c.protocol) : c.tls ? "tls" : "tcp";
    if (c.direction == ConnDirection::kInbound) name_ += " inbound";
    if (lane != 0) name_ += " #", name_ += std::to_string(lane + 1);
    ev_ += R"(,{"ph":"M","name":"thread_name","pid":)";
    num(pid_);
    ev_ += ",\"tid\":";
    num(tid_);
    ev_ += ",\"args\":{\"name\":";
    append_json_string(ev_, name_);
    ev_ += ",\"connection\":";
    append_json_string(ev_, c.id);
    ev_ += "}}";
  }

  // HTTP/2 streams overlap: each goes on the first lane of its connection that is free by its
  // start, a new lane (track) when none is. Slices on one track never overlap.
  uint64_t* stream_lane(const Connection& c, uint64_t start) {
    if (start >= cursor_) {
      use_track(conn_tid_);
      return &cursor_;
    }
    for (Lane& l : lanes_)
      if (start >= l.cursor) {
        use_track(l.tid);
        return &l.cursor;
      }
    lanes_.push_back({kLaneTidBase + static_cast<int64_t>(++lane_seq_ % kLaneTidBase), 0});
    use_track(lanes_.back().tid);
    ev_.clear();
    track_name(c, lanes_.size());
    w_.raw(std::string_view(ev_).substr(1));
    return &lanes_.back().cursor;
  }

  // s escaped as JSON string content (no quotes) onto ev_.
  void escaped(std::string_view s) {
    esc_.clear();
    append_json_string(esc_, s);
    ev_.append(esc_, 1, esc_.size() - 2);
  }

  void request(const Connection& c, const Exchange& x, bool https) {
    uint64_t* lane = &cursor_;
    if (x.stream) lane = stream_lane(c, x.start_ns);
    else if (tid_ != conn_tid_) use_track(conn_tid_);
    // Requests follow each other on a track; order within one is kept the same way.
    uint64_t cur = std::max(x.start_ns, *lane);
    auto at = [&](uint64_t t) { return cur = std::max(cur, t); };
    const uint64_t start = cur, sent = at(x.sent_ns);
    const uint64_t first = x.first_byte_ns ? at(*x.first_byte_ns) : sent;
    const uint64_t end = at(x.end_ns);
    *lane = end;

    // The request's events, flows included, go out as one piece: each string is escaped once
    // (the name's method and target are copied into the args), keys are constants, and the
    // pid / tid / connection parts are rendered once per connection.
    ev_.clear();
    ev_ += R"({"ph":"X","name":")";
    size_t method_at = 0, method_len = 0, target_at = 0, target_len = 0;
    const bool http = !x.method.empty();
    if (!http) {
      ev_ += "exchange";
    } else {
      method_at = ev_.size();
      escaped(std::string_view(x.method).substr(0, 24));
      method_len = ev_.size() - method_at;
      ev_ += ' ';
      target_at = ev_.size();
      escaped(std::string_view(x.target).substr(0, kMaxNameTarget));
      target_len = ev_.size() - target_at;
    }
    ev_ += R"(","cat":"http")";
    slice({}, start, end, false);
    ev_ += conn_args_;
    num(x.index);
    if (x.stream) ev_ += ",\"stream\":", num(*x.stream);
    if (http) {
      ev_ += ",\"method\":\"";
      if (x.method.size() <= 24) ev_.append(ev_, method_at, method_len);
      else escaped(x.method);
      ev_ += "\",\"target\":\"";
      if (x.target.size() <= kMaxNameTarget) ev_.append(ev_, target_at, target_len);
      else escaped(x.target);
      ev_ += https ? "\",\"scheme\":\"https\"" : "\",\"scheme\":\"http\"";
    }
    if (x.status) ev_ += ",\"status\":", num(x.status);
    ev_ += x.reused ? ",\"reused\":true" : ",\"reused\":false";
    if (x.idle_ns) ev_ += ",\"idle_ms\":", fixed(static_cast<int64_t>(*x.idle_ns / 1000));
    ev_ += ",\"bytes_sent\":";
    num(x.bytes_sent);
    ev_ += ",\"bytes_received\":";
    num(x.bytes_received);
    if (!x.parent.empty()) ev_ += ",\"parent\":", append_json_string(ev_, x.parent);
    if (!x.linked.empty()) ev_ += ",\"linked\":", append_json_string(ev_, x.linked);
    ev_ += "}}";

    slice(R"(,{"ph":"X","name":"send","cat":"http")", start, sent);
    slice(R"(,{"ph":"X","name":"wait","cat":"http")", sent, first);
    if (x.first_byte_ns) slice(R"(,{"ph":"X","name":"receive","cat":"http")", first, end);

    if (!x.parent.empty() || !x.linked.empty()) {
      // Flow points just inside the request's first phase (its send, or an inbound request's
      // read), never on a slice's edge, where the enclosing slice would depend on the viewer's
      // tie order.
      const uint64_t point = start + std::min<uint64_t>(1, sent - start);
      if (!x.linked.empty()) {
        if (c.direction == ConnDirection::kInbound)
          request_flow('f', "call", flow_id('L', {}, 0, x.linked), tid_, point);
        else
          request_flow('s', "call", flow_id('L', c.id, x.index), tid_, point);
      }
      if (!x.parent.empty()) {
        // The child's start lies inside its parent (made while the parent was being served).
        const uint64_t id = flow_id('P', c.id, x.index);
        request_flow('s', "child", id, track_of(x.parent), start);
        request_flow('f', "child", id, tid_, point);
      }
    }
    w_.raw(ev_);
  }

  // Lanes of HTTP/2 streams beyond the connection's own track: a range of their own, above every
  // connection track and below 2^31 (Perfetto reads tids as 32-bit).
  static constexpr int64_t kLaneTidBase = int64_t(1) << 30;
  struct Lane {
    int64_t tid;
    uint64_t cursor;
  };

  JsonWriter& w_;
  const TimeBase& tb_;
  uint64_t flow_ = 0, lane_seq_ = 0;
  int32_t pid_ = 0;
  int64_t tid_ = 0, conn_tid_ = 0;
  uint64_t cursor_ = 0;
  std::vector<Lane> lanes_;
  std::string name_, ev_, esc_, conn_args_;
  char track_tail_[64];
  size_t track_tail_len_ = 0;
};

}  // namespace

bool write_chrome(TraceSet& traces, std::FILE* out) {
  const TimeBase tb = time_base(traces);
  JsonWriter w(out);
  w.begin_object();
  w.key("traceEvents").begin_array();
  ChromeEventWriter sink(w, tb);
  std::vector<ProcessInfo> procs;
  {
    // Until close(), only the pipe's thread writes to w.
    ConnectionPipe pipe(sink);
    Model model(traces, pipe, /*keep_dns=*/false);
    analyze(traces, model, Reading::inline_);
    pipe.close();
    procs = model.processes();
  }
  for (const ProcessInfo& p : procs) {
    w.begin_object();
    w.key("ph").value("M");
    w.key("name").value("process_name");
    w.key("pid").value(p.pid);
    w.key("args").begin_object().key("name").value(p.exe).end_object();
    w.end_object();
  }
  w.end_array();
  w.key("otherData").begin_object();
  w.key("exporter").value(std::string("httptrace ") + kProgramVersion);
  w.key("t0_unix_ns").value(tb.t0_unix_ns);
  w.end_object();
  w.end_object();
  return w.flush();
}

}  // namespace httptrace::analyzer
