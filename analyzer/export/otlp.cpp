#include "analyzer/export/otlp.h"

#include <time.h>

#include <cstdlib>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/export/otlp_encode.h"
#include "analyzer/export/otlp_http.h"
#include "analyzer/export/otlp_spans.h"

namespace httptrace::analyzer {

namespace {

using namespace otlp;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
// The traces-specific variable wins over the general one (OTLP exporter specification).
std::string env2(const char* specific, const char* general) {
  std::string v = env(specific);
  return v.empty() ? env(general) : v;
}

// OTLP JSON Lines, the OpenTelemetry file format: each line one ExportTraceServiceRequest of at
// most ~kLineBytes, in which a run of connections from one process is one ResourceSpans element.
// The Collector's otlpjsonfile receiver reads a line at a time (1 MiB at most by default), and a
// line is a body any OTLP/HTTP JSON receiver takes. A small trace is one line. Nothing is held
// beyond the connection being written.
class JsonFileSink : public ConnectionSink {
 public:
  static constexpr size_t kLineBytes = 768u << 10;
  JsonFileSink(std::FILE* out, Resources& res, const TimeBase& tb)
      : out_(out), res_(res), builder_(res, tb), json_(buf_) {
    json_.begin_request();
  }
  void on_connection(const Connection& c) override {
    n_ = 0;
    builder_.build(c, spans_, n_);
    if (n_ == 0) return;
    const ProcessResource& r = res_.of(c.pid);
    if (&r != open_) {
      if (open_) json_.close_resource();
      json_.open_resource(r);
      open_ = &r;
    }
    for (size_t i = 0; i < n_; ++i) {
      if (buf_.size() >= kLineBytes) {
        end_line();
        json_.begin_request();
        json_.open_resource(r);
      }
      json_.span(spans_[i]);
    }
  }
  // Closes the last line; false if writing failed (e.g. disk full).
  bool finish() {
    end_line();
    return ok_ && std::fflush(out_) == 0;
  }

 private:
  void end_line() {
    if (open_) json_.close_resource();  // none open: no span at all, `{"resourceSpans":[]}`
    json_.end_request();
    buf_ += '\n';
    if (ok_ && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) ok_ = false;
    buf_.clear();
  }
  std::FILE* out_;
  Resources& res_;
  SpanBuilder builder_;
  std::string buf_;
  OtlpJson json_;
  std::vector<Span> spans_;
  size_t n_ = 0;
  const ProcessResource* open_ = nullptr;
  bool ok_ = true;
};

struct PushConfig {
  Endpoint endpoint;
  std::vector<std::pair<std::string, std::string>> headers;
  bool json = false;
  int timeout_ms = 10000;
  size_t batch = 512;
  RetryPolicy retry;
};

// Collects spans into batches of cfg.batch and posts each as one request. After a batch is
// finally refused, the rest of the trace is still read (the model needs it) but nothing is sent.
class PushSink : public ConnectionSink {
 public:
  PushSink(const PushConfig& cfg, Resources& res, const TimeBase& tb)
      : cfg_(cfg), res_(res), builder_(res, tb),
        client_(cfg.endpoint, cfg.headers, cfg.timeout_ms) {}
  void on_connection(const Connection& c) override {
    if (!error_.empty()) return;
    const ProcessResource& r = res_.of(c.pid);
    batch_.start_group(r);
    builder_.build(c, batch_.spans, batch_.n);
    batch_.close_group();
    if (batch_.n >= cfg_.batch) flush(false);
  }
  // Sends whole batches; with all, the remainder too.
  void flush(bool all) {
    size_t from = 0;
    while (error_.empty() && (batch_.n - from >= cfg_.batch || (all && from < batch_.n))) {
      const size_t to = std::min(batch_.n, from + cfg_.batch);
      send(from, to);
      from = to;
    }
    // Spans left over (fewer than a batch) move to the front, with the groups they are in.
    if (from > 0 && from < batch_.n && error_.empty()) {
      for (size_t i = from; i < batch_.n; ++i) std::swap(batch_.spans[i - from], batch_.spans[i]);
      std::vector<SpanBatch::Group> kept;
      for (const SpanBatch::Group& g : batch_.groups)
        if (g.end > from) kept.push_back({g.resource, g.end - from});
      batch_.n -= from;
      batch_.groups = std::move(kept);
    } else if (from > 0 || all || !error_.empty()) {
      batch_.clear();
    }
  }
  const std::string& error() const { return error_; }
  uint64_t sent_spans() const { return sent_spans_; }
  uint64_t requests() const { return requests_; }

 private:
  void send(size_t from, size_t to) {
    if (cfg_.json) encode_json(batch_, from, to, body_);
    else encode_protobuf(batch_, from, to, body_);
    const std::string err = send_with_retries(
        client_, cfg_.json ? "application/json" : "application/x-protobuf", body_, cfg_.retry,
        [](uint64_t ms) {
          timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
          while (nanosleep(&ts, &ts) != 0) {}
        });
    ++requests_;
    if (err.empty()) {
      sent_spans_ += to - from;
    } else {
      error_ = err;
    }
  }

  const PushConfig& cfg_;
  Resources& res_;
  SpanBuilder builder_;
  HttpClient client_;
  SpanBatch batch_;
  std::string body_, error_;
  uint64_t sent_spans_ = 0, requests_ = 0;
};

bool push_config(const std::string& url, bool exact, PushConfig& cfg, std::string& error) {
  if (!parse_endpoint(url, exact, cfg.endpoint, error)) return false;
  const std::string proto = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (proto == "http/json") {
    cfg.json = true;
  } else if (!proto.empty() && proto != "http/protobuf") {
    error = fmt::format("OTEL_EXPORTER_OTLP_PROTOCOL={} is not supported (http/protobuf or http/json)",
                        proto);
    return false;
  }
  if (!parse_headers(env("OTEL_EXPORTER_OTLP_HEADERS"), cfg.headers, error) ||
      !parse_headers(env("OTEL_EXPORTER_OTLP_TRACES_HEADERS"), cfg.headers, error))
    return false;
  const std::string timeout = env2("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT");
  if (!timeout.empty()) {
    char* end = nullptr;
    const long ms = std::strtol(timeout.c_str(), &end, 10);
    if (*end || ms <= 0) {
      error = fmt::format("OTEL_EXPORTER_OTLP_TIMEOUT={}: want a positive number of milliseconds", timeout);
      return false;
    }
    cfg.timeout_ms = static_cast<int>(std::min(ms, 3600L * 1000));
  }
  // No OTEL_ variable bounds the attempts; ours lets a script fail fast instead of backing off.
  const std::string attempts = env("HTTPTRACE_OTLP_ATTEMPTS");
  if (!attempts.empty()) {
    char* end = nullptr;
    const long n = std::strtol(attempts.c_str(), &end, 10);
    if (*end || n <= 0 || n > 100) {
      error = fmt::format("HTTPTRACE_OTLP_ATTEMPTS={}: want 1 to 100", attempts);
      return false;
    }
    cfg.retry.max_attempts = static_cast<int>(n);
  }
  const std::string batch = env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
  if (!batch.empty()) {
    char* end = nullptr;
    const long n = std::strtol(batch.c_str(), &end, 10);
    if (*end || n <= 0) {
      error = fmt::format("OTEL_BSP_MAX_EXPORT_BATCH_SIZE={}: want a positive number", batch);
      return false;
    }
    cfg.batch = static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool write_otlp_json(TraceSet& traces, std::FILE* out) {
  const TimeBase tb = time_base(traces);
  Resources res(traces, env("OTEL_SERVICE_NAME"));
  JsonFileSink sink(out, res, tb);
  {
    // Span building and writing run on the pipe's thread, beside reading and modelling.
    ConnectionPipe pipe(sink);
    Model model(traces, pipe, /*keep_dns=*/false);
    analyze(traces, model, Reading::inline_);
    pipe.close();
  }
  return sink.finish();
}

int export_otlp(const std::vector<std::string>& trace_args, const std::string& out_path,
                const std::string& endpoint_arg) {
  std::string url = endpoint_arg;
  bool exact = false;
  if (url.empty() && out_path.empty()) {
    url = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    exact = !url.empty();
    if (url.empty()) url = env("OTEL_EXPORTER_OTLP_ENDPOINT");
  }
  if (!url.empty() && !out_path.empty())
    return usage_error("export: --format otlp takes -o FILE or --endpoint URL, not both");
  PushConfig cfg;
  if (!url.empty()) {
    std::string error;
    if (!push_config(url, exact, cfg, error)) return usage_error("export: " + error);
  }
  TraceSet traces;
  if (!open_traces(trace_args, traces)) return 1;

  if (url.empty()) {
    AtomicOutput out;
    if (!out.open(out_path)) {
      fmt::print(stderr, "httptrace: {}\n", out.error());
      return 1;
    }
    if (!write_otlp_json(traces, out.file())) {
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

  const TimeBase tb = time_base(traces);
  Resources res(traces, env("OTEL_SERVICE_NAME"));
  PushSink sink(cfg, res, tb);
  {
    ConnectionPipe pipe(sink);  // encoding and posting overlap with reading the trace
    Model model(traces, pipe, /*keep_dns=*/false);
    analyze(traces, model, Reading::inline_);
    pipe.close();
  }
  sink.flush(true);
  if (!sink.error().empty()) {
    fmt::print(stderr, "httptrace: {}; {} spans were delivered before that, the rest were not sent\n",
               sink.error(), sink.sent_spans());
    return 1;
  }
  fmt::print(stderr, "httptrace: sent {} spans in {} requests to {}\n", sink.sent_spans(),
             sink.requests(), cfg.endpoint.url);
  return 0;
}

}  // namespace httptrace::analyzer
