// `httptrace export --format json [-o FILE] TRACE...`: SPEC §6.
//
// Keys beyond SPEC §6 that are written only when known (absent means not captured / false):
// per request `target_cut` (true: the recorder kept only the start of a long target),
// `connection_close` (the response's Connection header said close, or not) and
// `keep_alive_timeout_s` (its Keep-Alive timeout), `error` ("EOF", "ECONNRESET", "EPIPE": it ended
// without a response, a stale reuse when `reused`). Always written: per connection `new_reason`,
// `replaced`, `replaced_idle_ns` (null when none; analyzer/model/new_reason.h), and
// `summary.endpoints`: [{host, port, phases: {dns|connect|tls|wait|receive: {count, p50_ns, p90_ns,
// p99_ns, max_ns}}}] (analyzer/model/percentiles.h; 0 when count is 0); per connection `events_lost` (its process
// lost events while it was open, so its numbers may be incomplete). On an h2 connection
// `h2_streams` / `h2_responses`, null when its frames could not be seen (HTTP/2 inside TLS seen
// only on the wire: its `requests` are empty for want of sight, not of requests), and
// `summary.connections_requests_unseen` counts such connections.
//
// Connections are written as the model completes them (in close order), so memory stays
// proportional to the open connections. DNS lookups, listed after them, are rendered as they
// happen into an unlinked spool file (a trace may hold millions) and copied in at the end; both
// are rendered on the ConnectionPipe's thread, off the thread that reads and models the trace.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "analyzer/model/addr_format.h"
#include "analyzer/model/trace_context.h"
#include "analyzer/model/percentiles.h"
#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/export/json_writer.h"
#include "analyzer/export/otlp.h"
#include "analyzer/reports.h"
#include "analyzer/symbols/symbolizer.h"

namespace httptrace::analyzer {

namespace {

class JsonConnectionWriter : public ConnectionSink {
 public:
  JsonConnectionWriter(JsonWriter& w, const TimeBase& tb, Symbolizer& sym) : w_(w), tb_(tb), sym_(sym) {}

  void on_connection(const Connection& c) override {
    JsonWriter& w = w_;
    auto t = [&](uint64_t ns) { return tb_.rel(ns); };
    w.begin_object();
    w.key("id").value(c.id);
    w.key("pid").value(c.pid);
    w.key("fd").value(c.fd);
    w.key("host").value(c.host);
    char addr[kMaxAddrText];
    if (c.peer.family) w.key("peer").value(std::string_view(addr, format_addr_to(addr, c.peer, true)));
    else w.key("peer").null();
    if (c.local.family) w.key("local").value(std::string_view(addr, format_addr_to(addr, c.local, true)));
    else w.key("local").null();
    w.key("start_ns").value(t(c.start_ns));
    if (c.close_ns) w.key("close_ns").value(t(*c.close_ns));
    else w.key("close_ns").null();
    w.key("bytes_sent").value(c.bytes_sent);
    w.key("bytes_received").value(c.bytes_received);
    if (c.dns) {
      w.key("dns").begin_object();
      w.key("start_ns").value(t(c.dns->start_ns));
      w.key("duration_ns").value(c.dns->duration_ns);
      w.end_object();
    } else {
      w.key("dns").null();
    }
    if (c.has_connect) {
      w.key("connect").begin_object();
      w.key("start_ns").value(t(c.connect_start_ns));
      w.key("duration_ns").value(c.connect_duration_ns);
      if (c.connect_error) w.key("error").value(errno_name(c.connect_error));
      else w.key("error").null();
      w.key("pending").value(c.connect_pending);
      w.end_object();
    } else {
      w.key("connect").null();
    }
    w.key("attempts").begin_array();
    for (const ConnectAttempt& a : c.attempts) {
      w.begin_object();
      w.key("peer").value(std::string_view(addr, format_addr_to(addr, a.peer, true)));
      w.key("start_ns").value(t(a.start_ns));
      w.key("duration_ns").value(a.duration_ns);
      if (a.error) w.key("error").value(errno_name(a.error));
      else w.key("error").null();
      w.end_object();
    }
    w.end_array();
    if (c.tunnel) {
      w.key("tunnel").begin_object();
      w.key("start_ns").value(t(c.tunnel->start_ns));
      w.key("duration_ns").value(c.tunnel->duration_ns);
      w.key("target").value(c.tunnel->target);
      if (c.tunnel->status) w.key("status").value(c.tunnel->status);
      else w.key("status").null();
      w.key("round_trips").value(c.tunnel->round_trips);
      w.end_object();
    } else {
      w.key("tunnel").null();
    }
    if (c.tls) {
      const TlsInfo& s = *c.tls;
      auto opt = [&](JsonWriter::Key k, const std::string& v) {
        if (v.empty()) w.key(k).null();
        else w.key(k).value(v);
      };
      w.key("tls").begin_object();
      w.key("start_ns").value(t(s.start_ns));
      w.key("duration_ns").value(s.duration_ns);
      w.key("library").value(s.library);
      opt("version", s.version);
      opt("cipher", s.cipher);
      opt("sni", s.sni);
      opt("alpn", s.alpn);
      w.key("resumed").value(s.resumed);
      if (!s.alpn_offered.empty()) {
        w.key("alpn_offered").begin_array();
        for (const auto& a : s.alpn_offered) w.value(a);
        w.end_array();
      }
      if (s.error) {
        w.key("error").value(s.error);
        opt("error_text", s.error_text);
      }
      w.end_object();
    } else {
      w.key("tls").null();
    }
    w.key("protocol").value(c.protocol);
    w.key("direction").value(c.direction == ConnDirection::kInbound ? "inbound" : "outbound");
    if (c.events_lost) w.key("events_lost").value(true);
    w.key("failed").value(c.failed());
    w.key("inherited").value(c.inherited);
    if (c.inherited) w.key("parent_id").value(c.parent_id);
    w.key("pool_miss").value(c.pool_miss != 0);
    if (const char* reason = new_reason_name(c.new_reason)) w.key("new_reason").value(reason);
    else w.key("new_reason").null();
    if (c.replaced.empty()) w.key("replaced").null();
    else w.key("replaced").value(c.replaced);
    if (c.replaced_idle_ns) w.key("replaced_idle_ns").value(*c.replaced_idle_ns);
    else w.key("replaced_idle_ns").null();
    if (c.requests_unseen()) {
      w.key("h2_streams").null();
      w.key("h2_responses").null();
    } else if (c.protocol && *c.protocol == "h2") {
      w.key("h2_streams").value(c.h2_streams);
      w.key("h2_responses").value(c.h2_responses);
    }
    write_stack(c);
    w.key("requests").begin_array();
    for (const Exchange& x : c.requests) {
      auto str = [&](JsonWriter::Key k, const std::string& v) {
        if (v.empty()) w.key(k).null();
        else w.key(k).value(v);
      };
      w.begin_object();
      w.key("index").value(x.index);
      w.key("reused").value(x.reused);
      if (x.idle_ns) w.key("idle_ns").value(*x.idle_ns);
      else w.key("idle_ns").null();
      w.key("start_ns").value(t(x.start_ns));
      w.key("sent_ns").value(t(x.sent_ns));
      if (x.first_byte_ns) w.key("first_byte_ns").value(t(*x.first_byte_ns));
      else w.key("first_byte_ns").null();
      w.key("end_ns").value(t(x.end_ns));
      w.key("bytes_sent").value(x.bytes_sent);
      w.key("bytes_received").value(x.bytes_received);
      str("method", x.method);
      str("target", x.target);
      // Only when they say something: the export of millions of requests is bound by its size.
      if (x.target_cut) w.key("target_cut").value(true);
      if (x.status) w.key("status").value(x.status);
      else w.key("status").null();
      str("traceparent", x.traceparent);  // SPEC §6: required, null when none
      if (x.stream) w.key("protocol_stream").value(*x.stream);  // the h2 stream id
      else w.key("protocol_stream").null();
      str("parent", x.parent);
      if (!x.parent.empty())
        w.key("parent_confidence").value(x.parent_confidence == ParentConfidence::kThread ? "thread" : "single_open");
      str("linked", x.linked);
      char hex[32];
      w.key("trace_id").value(std::string_view(hex, hex_to(hex, x.trace_id.data(), 16)));
      w.key("span_id").value(std::string_view(hex, hex64_to(hex, x.span_id)));
      if (x.parent_span_id) w.key("parent_span_id").value(std::string_view(hex, hex64_to(hex, x.parent_span_id)));
      else w.key("parent_span_id").null();
      if (x.children_ns) w.key("children_ns").value(*x.children_ns);
      if (x.connection_close) w.key("connection_close").value(*x.connection_close);
      if (x.keep_alive_timeout_s) w.key("keep_alive_timeout_s").value(*x.keep_alive_timeout_s);
      // How it ended without a response (a stale reuse): "EOF", "ECONNRESET", "EPIPE".
      if (x.failed_errno) w.key("error").value(*x.failed_errno ? errno_name(*x.failed_errno) : std::string("EOF"));
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }

 private:
  // SPEC §6 `stack`: the connect's call stack, innermost first (inlined calls are frames of their
  // own, "inlined": true); null without HTTPTRACE_STACKS=1. "offset" is the address in the
  // object (as addr2line takes it); "problem" says why a frame has no name, when known.
  void write_stack(const Connection& c) {
    JsonWriter& w = w_;
    w.key("stack");
    if (c.stack.empty()) {
      w.null();
      return;
    }
    auto opt = [&](JsonWriter::Key k, const std::string& v) {
      if (v.empty()) w.key(k).null();
      else w.key(k).value(v);
    };
    w.begin_array();
    for (const Frame& f : sym_.frames(c)) {
      w.begin_object();
      opt("function", f.function);
      opt("file", f.file);
      if (f.line) w.key("line").value(f.line);
      else w.key("line").null();
      opt("object", f.object);
      w.key("offset").value(fmt::format("0x{:x}", f.object.empty() ? f.address : f.offset));
      if (f.inlined) w.key("inlined").value(true);
      if (!f.problem.empty()) w.key("problem").value(f.problem);
      w.end_object();
    }
    w.end_array();
  }

  JsonWriter& w_;
  const TimeBase& tb_;
  Symbolizer& sym_;
};

// Adds each connection to the phase summary on the model's thread, where its data is still in
// cache, before the pipe hands it to the busier formatting thread.
class PhaseTap : public ConnectionSink {
 public:
  explicit PhaseTap(ConnectionSink& next) : next_(next) {}
  void on_connection(const Connection& c) override {
    phases.add(c);
    next_.on_connection(c);
  }
  void on_connection(Connection&& c) override {
    phases.add(c);
    next_.on_connection(std::move(c));
  }

  EndpointPhases phases;  // for summary.endpoints

 private:
  ConnectionSink& next_;
};

// summary.endpoints: [{host, port, phases: {dns: {count, p50_ns, p90_ns, p99_ns, max_ns}, ...}}]
void write_endpoint_phases(JsonWriter& w, const EndpointPhases& phases) {
  w.key("endpoints").begin_array();
  for (const auto& [key, h] : phases.endpoints()) {
    w.begin_object();
    w.key("host").value(key.first);
    w.key("port").value(uint32_t{key.second});
    w.key("phases").begin_object();
    static constexpr struct {
      JsonWriter::Key key;
      Phase phase;
    } kKeys[] = {{"dns", Phase::kDns}, {"connect", Phase::kConnect}, {"tls", Phase::kTls}, {"wait", Phase::kWait},
                 {"receive", Phase::kReceive}};
    for (const auto& [k, ph] : kKeys) {
      const LogHistogram& x = h[ph];
      w.key(k).begin_object();
      w.key("count").value(x.count());
      w.key("p50_ns").value(x.percentile(0.50));
      w.key("p90_ns").value(x.percentile(0.90));
      w.key("p99_ns").value(x.percentile(0.99));
      w.key("max_ns").value(x.max());
      w.end_object();
    }
    w.end_object();
    w.end_object();
  }
  w.end_array();
}

void write_dns(JsonWriter& w, const TimeBase& tb, const DnsLookup& d) {
  w.begin_object();
  w.key("pid").value(d.pid);
  w.key("tid").value(d.tid);
  w.key("host").value(d.host);
  w.key("start_ns").value(tb.rel(d.start_ns));
  w.key("duration_ns").value(d.duration_ns);
  w.key("addresses").begin_array();
  char addr[kMaxAddrText];
  for (const auto& a : d.addresses) w.value(std::string_view(addr, format_addr_to(addr, a, false)));
  w.end_array();
  if (d.error) w.key("error").value(dns_error_name(d.call, d.error));
  else w.key("error").null();
  w.end_object();
}

// An unlinked temporary file in $TMPDIR (else /tmp); null when none can be made.
std::FILE* spool_file() {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/httptrace-spool.XXXXXX";
  int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return nullptr;
  unlink(path.c_str());
  std::FILE* f = fdopen(fd, "w+");
  if (!f) close(fd);
  return f;
}

// The "dns" array, rendered as lookups stream by. Without a spool file the lookups are kept in
// memory by the model instead (ok() false).
class DnsSpool : public DnsSink {
 public:
  explicit DnsSpool(const TimeBase& tb) : tb_(tb), f_(spool_file()) {
    if (f_) {
      w_.emplace(f_);
      w_->begin_array();
    }
  }
  ~DnsSpool() override {
    w_.reset();
    if (f_) std::fclose(f_);
  }
  bool ok() const { return f_ != nullptr; }
  void on_dns(const DnsLookup& l) override { write_dns(*w_, tb_, l); }
  // Closes the array and flushes; false if the spool could not be written (e.g. disk full).
  bool finish() {
    w_->end_array();
    return w_->flush() && std::fflush(f_) == 0;
  }
  std::FILE* file() const { return f_; }

 private:
  const TimeBase& tb_;
  std::FILE* f_;
  std::optional<JsonWriter> w_;
};

}  // namespace

// Writes the whole document for already-opened traces; false if writing failed.
bool write_json(TraceSet& traces, std::FILE* out) {
  const TimeBase tb = time_base(traces);
  JsonWriter w(out);
  w.begin_object();
  w.key("format").value("httptrace");
  w.key("version").value(1);
  w.key("t0_unix_ns").value(tb.t0_unix_ns);
  w.key("connections").begin_array();
  Symbolizer sym(traces);  // used on the pipe's thread only
  JsonConnectionWriter sink(w, tb, sym);
  DnsSpool dns(tb);
  // From here until close(), only the pipe's thread writes to w and to the DNS spool.
  ConnectionPipe pipe(sink, dns.ok() ? &dns : nullptr);
  PhaseTap tap(pipe);
  Model model(traces, tap, /*keep_dns=*/!dns.ok());
  if (dns.ok()) model.set_dns_sink(&pipe);
  analyze(traces, model, Reading::inline_);
  pipe.close();
  w.end_array();

  w.key("processes").begin_array();
  for (const auto& p : model.processes()) {
    w.begin_object();
    w.key("pid").value(p.pid);
    w.key("ppid").value(p.ppid);
    w.key("exe").value(p.exe);
    w.key("argv").begin_array();
    for (const auto& a : p.argv) w.value(a);
    w.end_array();
    w.key("dropped_events").value(p.dropped_events);
    w.end_object();
  }
  w.end_array();

  w.key("dns");
  if (dns.ok()) {
    if (!dns.finish()) return false;
    w.splice(dns.file());
  } else {
    w.begin_array();
    for (const auto& d : model.dns()) write_dns(w, tb, d);
    w.end_array();
  }

  w.key("summary").begin_object();
  w.key("processes").value(uint64_t(traces.files().size()));
  w.key("connections").value(model.connections());
  w.key("failed_connects").value(model.failed_connects());
  w.key("requests").value(model.requests());
  w.key("reused_requests").value(model.reused_requests());
  w.key("connections_requests_unseen").value(model.requests_unseen());
  w.key("dropped_events").value(model.dropped_events());
  // Keys are the names drop_cause_name() gives (a compile-time key each).
  auto dropped = [&](tf::DropCause cause) {
    uint64_t n = 0;
    for (const TraceFile& f : traces.files()) n += f.dropped_by_cause[size_t(cause)];
    return n;
  };
  w.key("dropped_by_cause").begin_object();
  w.key("size_cap").value(dropped(tf::DropCause::kSizeCap));
  w.key("disk_full").value(dropped(tf::DropCause::kDiskFull));
  w.key("file_size_limit").value(dropped(tf::DropCause::kFileSizeLimit));
  w.key("too_large").value(dropped(tf::DropCause::kTooLarge));
  w.key("nested").value(dropped(tf::DropCause::kNested));
  w.key("truncated").value(dropped(tf::DropCause::kTruncated));
  w.end_object();
  w.key("warnings").value(uint64_t(traces.warnings().size()));
  write_endpoint_phases(w, tap.phases);
  w.end_object();
  w.end_object();
  return w.flush();
}

int cmd_export(const Args& args) {
  std::string format, out_path, endpoint;
  std::vector<std::string> traces_args;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--format" || a == "-f" || a == "-o" || a == "--output" || a == "--endpoint") && i + 1 >= args.size())
      return usage_error(fmt::format("export: {} needs a value", a));
    if (a == "--format" || a == "-f") format = args[++i];
    else if (a.starts_with("--format=")) format = a.substr(9);
    else if (a == "-o" || a == "--output") out_path = args[++i];
    else if (a.starts_with("--output=")) out_path = a.substr(9);
    else if (a == "--endpoint") endpoint = args[++i];
    else if (a.starts_with("--endpoint=")) endpoint = a.substr(11);
    else if (a == "--") traces_args.insert(traces_args.end(), args.begin() + i + 1, args.end()), i = args.size();
    else if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("export: unknown option {}", a));
    else traces_args.push_back(a);
  }
  if (format.empty()) return usage_error("export: --format is required (json, har, chrome, otlp)");
  if (format == "otlp") return traces_args.empty() ? usage_error("export: no TRACE given") : export_otlp(traces_args, out_path, endpoint);
  using Writer = bool (*)(TraceSet&, std::FILE*);
  Writer write = format == "json" ? write_json
                 : format == "har" ? write_har
                 : format == "chrome" ? write_chrome
                                      : nullptr;
  if (!write)
    return usage_error(fmt::format("export: unknown format '{}' (supported: json, har, chrome, otlp)", format));
  if (traces_args.empty()) return usage_error("export: no TRACE given");

  TraceSet traces;
  if (!open_traces(traces_args, traces)) return 1;
  AtomicOutput out;
  if (!out.open(out_path)) {
    fmt::print(stderr, "httptrace: {}\n", out.error());
    return 1;
  }
  bool ok = write(traces, out.file());
  if (!ok) {
    out.abandon();
    fmt::print(stderr, "httptrace: {}: write failed\n", out_path.empty() ? "stdout" : out_path);
    return 1;
  }
  if (!out.commit()) {
    fmt::print(stderr, "httptrace: {}\n", out.error());
    return 1;
  }
  return 0;
}

}  // namespace httptrace::analyzer
