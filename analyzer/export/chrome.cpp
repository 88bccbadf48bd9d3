// `httptrace export --format chrome [-o FILE] TRACE...`: SPEC §8, the Trace Event JSON that the
// Perfetto UI and chrome://tracing open ({"traceEvents": [...]}).
//
// Layout, chosen for how Perfetto imports JSON:
// - pid is the traced pid; its name (process_name metadata, written at the end once the model
//   knows every process) is the exe.
// - Each connection is its own thread track (a synthetic tid above any real one, named
//   "host peer protocol"), so concurrent connections never share a track. It carries the
//   connection's dns / connect / tls complete slices (ph X), which are kept from overlapping (a
//   slice starting before the previous one ended is clipped to start at its end): Perfetto drops
//   slices that overlap without nesting.
// - Requests are nestable async slices (ph b/e) with the connection's track as tid and a
//   per-connection id (id2.local, a string: process-scoped), each with send / wait / receive children.
//   HTTP/1 requests on one connection follow each other, so one id never has two overlapping
//   requests; HTTP/2 streams overlap and each has an id of its own (render_id).
// - A flow (ph s/f) goes from a connection's lookup to its connect.
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
// An event's start with its escaped name: room for the longest name (6 bytes per escaped byte).
constexpr size_t kMaxStart = 64 + 6 * (kMaxNameTarget + 32);

class ChromeEventWriter : public ConnectionSink {
 public:
  ChromeEventWriter(JsonWriter& w, const TimeBase& tb) : w_(w), tb_(tb) {}

  void on_connection(const Connection& c) override {
    if (!c.dns && !c.has_connect && !c.tls && c.requests.empty()) return;  // nothing to draw
    ++seq_;
    pid_ = c.pid;
    tid_ = kTrackTidBase + static_cast<int64_t>(seq_);
    cursor_ = 0;
    render_tails();
    track_name(c);

    const bool has_dns = c.dns.has_value();
    uint64_t dns_mid = 0;
    if (has_dns) {
      const auto [s, e] = clip(c.dns->start_ns, c.dns->start_ns + c.dns->duration_ns);
      complete("dns", "dns", s, e);
      w_.key("args").begin_object().key("host").value(c.host).end_object();
      w_.end_object();
      dns_mid = s + (e - s) / 2;
    }
    if (c.has_connect) {
      const auto [s, e] = clip(c.connect_start_ns, c.connect_start_ns + c.connect_duration_ns);
      complete("connect", "net", s, e);
      w_.key("args").begin_object();
      char addr[kMaxAddrText];
      w_.key("peer").value(std::string_view(addr, format_addr_to(addr, c.peer, true)));
      if (c.connect_error) w_.key("error").value(errno_name(c.connect_error));
      if (c.connect_pending) w_.key("pending").value(true);
      if (!c.attempts.empty()) w_.key("lost_attempts").value(uint64_t(c.attempts.size()));
      w_.end_object();
      w_.end_object();
      if (has_dns) {
        ++flow_;
        flow('s', dns_mid);
        flow('f', s + (e - s) / 2);
      }
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

  void flow(char ph, uint64_t ts) {
    head(ph, "dns → connect", "net", ts);
    w_.key("id").value(flow_);
    if (ph == 'f') w_.key("bp").value("e");  // binds to the enclosing slice (connect)
    w_.end_object();
  }

  // The request events (eight per request) are most of the output: they are put together from
  // pieces rendered once per connection (pid, tid, id) or once per request (the escaped name).
  void render_tails() {
    char* p = conn_tail_;
    p = copy(p, ",\"pid\":");
    p = std::to_chars(p, p + 12, pid_).ptr;
    p = copy(p, ",\"tid\":");
    p = std::to_chars(p, p + 21, tid_).ptr;
    p = copy(p, ",\"ts\":");
    conn_tail_len_ = static_cast<size_t>(p - conn_tail_);
    render_id(0);
  }

  // An HTTP/2 stream gets an id of its own ("0x<connection>.<stream>"): streams overlap, and
  // Perfetto gives each async id its own track, where slices must not overlap.
  void render_id(uint32_t stream) {
    char* p = id_tail_;
    // A string: Perfetto's importer reads id2.local only as one (a number drops the event).
    p = copy(p, ",\"id2\":{\"local\":\"0x");
    p = std::to_chars(p, p + 17, seq_, 16).ptr;
    if (stream != 0) {
      *p++ = '.';
      p = std::to_chars(p, p + 11, stream).ptr;
    }
    p = copy(p, "\"}}");
    id_tail_len_ = static_cast<size_t>(p - id_tail_);
  }

  static char* copy(char* p, std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }

  // {"ph":PH,"name":NAME,"cat":"http" given as start (NAME already JSON), then pid, tid, ts, id.
  void async(std::string_view start, uint64_t ts, bool close = true) {
    char buf[kMaxStart + 128];
    char* p = buf;
    p = copy(p, start.substr(0, kMaxStart));
    p = copy(p, std::string_view(conn_tail_, conn_tail_len_));
    p = put_fixed(p, rel(ts), 3);
    p = copy(p, std::string_view(id_tail_, id_tail_len_ - (close ? 0 : 1)));
    if (close) w_.raw(std::string_view(buf, static_cast<size_t>(p - buf)));
    else w_.begin_object().raw(std::string_view(buf + 1, static_cast<size_t>(p - buf - 1)));
  }

  void track_name(const Connection& c) {
    name_.clear();
    if (c.host) name_ += *c.host, name_ += ' ';
    char addr[kMaxAddrText];
    if (c.peer.family) name_.append(addr, format_addr_to(addr, c.peer, true));
    else name_ += '?';
    name_ += ' ';
    name_ += c.protocol ? std::string_view(*c.protocol) : c.tls ? "tls" : "tcp";
    JsonWriter& w = w_;
    w.begin_object();
    w.key("ph").value("M");
    w.key("name").value("thread_name");
    w.key("pid").value(pid_);
    w.key("tid").value(tid_);
    w.key("args").begin_object().key("name").value(name_).key("connection").value(c.id).end_object();
    w.end_object();
  }

  void request(const Connection& c, const Exchange& x, bool https) {
    JsonWriter& w = w_;
    name_.clear();
    if (x.method.empty()) {
      name_ = "exchange";
    } else {
      name_.assign(x.method, 0, 24);
      name_ += ' ';
      name_.append(x.target, 0, kMaxNameTarget);
    }
    // Requests follow each other on a connection; order within one is kept the same way.
    uint64_t cur = x.start_ns;
    auto at = [&](uint64_t t) { return cur = std::max(cur, t); };
    const uint64_t start = at(x.start_ns), sent = at(x.sent_ns);
    const uint64_t first = x.first_byte_ns ? at(*x.first_byte_ns) : sent;
    const uint64_t end = at(x.end_ns);

    for (char ph : {'b', 'e'}) {
      std::string& h = ph == 'b' ? begin_head_ : end_head_;
      h.assign(ph == 'b' ? "{\"ph\":\"b\",\"name\":" : "{\"ph\":\"e\",\"name\":");
      append_json_string(h, name_);
      h += ",\"cat\":\"http\"";
    }
    if (x.stream) render_id(*x.stream);
    async(begin_head_, start, false);
    w.key("args").begin_object();
    w.key("connection").value(c.id);
    w.key("index").value(x.index);
    if (x.stream) w.key("stream").value(*x.stream);
    if (!x.method.empty()) {
      w.key("method").value(x.method);
      w.key("target").value(x.target);
      w.key("scheme").value(https ? "https" : "http");
    }
    if (x.status) w.key("status").value(x.status);
    w.key("reused").value(x.reused);
    if (x.idle_ns) w.key("idle_ms").fixed(static_cast<int64_t>(*x.idle_ns / 1000), 3);
    w.key("bytes_sent").value(x.bytes_sent);
    w.key("bytes_received").value(x.bytes_received);
    w.end_object();
    w.end_object();

    async(R"({"ph":"b","name":"send","cat":"http")", start);
    async(R"({"ph":"e","name":"send","cat":"http")", sent);
    async(R"({"ph":"b","name":"wait","cat":"http")", sent);
    async(R"({"ph":"e","name":"wait","cat":"http")", first);
    if (x.first_byte_ns) {
      async(R"({"ph":"b","name":"receive","cat":"http")", first);
      async(R"({"ph":"e","name":"receive","cat":"http")", end);
    }
    async(end_head_, end);
    if (x.stream) render_id(0);
  }

  JsonWriter& w_;
  const TimeBase& tb_;
  uint64_t seq_ = 0, flow_ = 0;
  int32_t pid_ = 0;
  int64_t tid_ = 0;
  uint64_t cursor_ = 0;
  std::string name_, begin_head_, end_head_;
  char conn_tail_[64], id_tail_[64];
  size_t conn_tail_len_ = 0, id_tail_len_ = 0;
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
    analyze(traces, model);
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
