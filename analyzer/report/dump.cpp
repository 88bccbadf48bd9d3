// `httptrace dump TRACE`: every event, one per line, for debugging the recorder and the model.
// Columns: pid tid ts_ns kind conn, then the kind's fields as name=value.
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "analyzer/analysis.h"
#include "analyzer/commands.h"
#include "analyzer/reports.h"

namespace httptrace::analyzer {

namespace {

// Captured bytes shown C-style so a terminal never sees raw control bytes.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += fmt::format("\\{}", char(c));
    else if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c >= 0x20 && c < 0x7f) out.push_back(char(c));
    else out += fmt::format("\\x{:02x}", c);
  }
  return out + "\"";
}

// A result or error field: an errno name for -4095..-1 (the kernel's error range), else the
// number itself; a damaged trace may hold any value, and negating INT64_MIN is undefined.
std::string result_text(int64_t r) {
  if (r < 0 && r >= -4095) return errno_name(static_cast<int>(-r));
  return std::to_string(r);
}
std::string error_text(int32_t e) {
  if (e == 0) return "0";
  if (e > 0 && e <= 4095) return errno_name(e);
  return std::to_string(e);
}

std::string drop_cause_text(size_t cause) {
  const char* n = drop_cause_name(cause);
  return n ? n : fmt::format("cause{}", cause);
}

std::string fields(const Event& ev) {
  using K = tf::EventKind;
  switch (ev.kind()) {
    case K::kDns: {
      const auto& d = ev.as<tf::DnsEvent>();
      std::string s = fmt::format("host={} dur={} error={} lookup={} call={} addrs=",
                                  quoted({reinterpret_cast<const char*>(ev.tail<tf::DnsEvent>()), d.host_len}),
                                  d.dur_ns, d.error, d.lookup_id, d.call);
      for (int i = 0; i < d.naddr; ++i) s += (i ? "," : "") + format_addr(d.addrs[i], false);
      return s;
    }
    case K::kSocket: {
      const auto& d = ev.as<tf::SocketEvent>();
      return fmt::format("fd={} domain={} type={} protocol={}", d.fd, d.domain, d.type, d.protocol);
    }
    case K::kConnect: {
      const auto& d = ev.as<tf::ConnectEvent>();
      return fmt::format("fd={} dur={} error={} peer={} local={}", d.fd, d.dur_ns,
                         error_text(d.error), format_addr(d.peer, true),
                         d.local.family ? format_addr(d.local, true) : "-");
    }
    case K::kConnectDone: {
      const auto& d = ev.as<tf::ConnectDoneEvent>();
      return fmt::format("fd={} error={} how={} local={}", d.fd, error_text(d.error), d.how,
                         d.local.family ? format_addr(d.local, true) : "-");
    }
    case K::kData: {
      const auto& d = ev.as<tf::DataEvent>();
      std::string s = fmt::format("fd={} {} call={} result={} dur={} flags={:#x}", d.fd,
                                  d.dir == uint8_t(tf::Direction::kSend) ? "send" : "recv", d.call,
                                  result_text(d.result), d.dur_ns,
                                  d.flags);
      if (d.cap_len)
        s += fmt::format(" capture={}:{}", d.capture_kind,
                         quoted({reinterpret_cast<const char*>(ev.tail<tf::DataEvent>()), d.cap_len}));
      return s;
    }
    case K::kClose: {
      const auto& d = ev.as<tf::CloseEvent>();
      return fmt::format("fd={} error={} how={}", d.fd, error_text(d.error), d.how);
    }
    case K::kDup: {
      const auto& d = ev.as<tf::DupEvent>();
      return fmt::format("oldfd={} newfd={}", d.oldfd, d.newfd);
    }
    case K::kFork: {
      const auto& d = ev.as<tf::ForkEvent>();
      return fmt::format("child={} how={}", d.child_pid, d.how);
    }
    case K::kInherit:
    case K::kExecInherit: {
      const auto& d = ev.as<tf::InheritEvent>();
      return fmt::format("fd={} parent_conn={}", d.fd, d.parent_conn);
    }
    case K::kTlsHandshake: {
      const auto& d = ev.as<tf::TlsHandshakeEvent>();
      auto z = [](const char* p, size_t n) { return quoted({p, strnlen(p, n)}); };
      return fmt::format("fd={} dur={} error={} version={:#06x} library={} resumed={} cipher={} sni={} alpn={}",
                         d.fd, d.dur_ns, d.error, d.version, d.library, d.resumed, z(d.cipher, sizeof d.cipher),
                         z(d.sni, sizeof d.sni), z(d.alpn, sizeof d.alpn));
    }
    case K::kTlsClose: {
      const auto& d = ev.as<tf::TlsCloseEvent>();
      return fmt::format("fd={} library={} how={}", d.fd, d.library, d.how);
    }
    case K::kExec: {
      const auto& d = ev.as<tf::ExecEvent>();
      return fmt::format("path={}", quoted({reinterpret_cast<const char*>(ev.tail<tf::ExecEvent>()), d.path_len}));
    }
    case K::kStack: {
      const auto& d = ev.as<tf::StackEvent>();
      const uint8_t* p = ev.tail<tf::StackEvent>();
      std::string s = fmt::format("depth={}", d.depth);
      for (uint32_t i = 0; i < d.depth; ++i) {
        uint64_t a;
        std::memcpy(&a, p + 8 * i, 8);
        s += fmt::format(" {:#x}", a);
      }
      return s;
    }
    case K::kAccept: {
      const auto& d = ev.as<tf::AcceptEvent>();
      return fmt::format("fd={} listen_fd={} dur={} peer={} local={}", d.fd, d.listen_fd, d.dur_ns,
                         d.peer.family ? format_addr(d.peer, true) : "-",
                         d.local.family ? format_addr(d.local, true) : "-");
    }
    case K::kLost: {
      const auto& d = ev.as<tf::LostEvent>();
      return fmt::format("count={} cause={}", d.count, drop_cause_text(d.cause));
    }
    case K::kThread: {
      const auto& d = ev.as<tf::ThreadEvent>();
      return fmt::format("tid={} uid={} seq={}", d.tid, d.thread_uid, d.thread_seq);
    }
    case K::kAddrPath: {
      const auto& d = ev.as<tf::AddrPathEvent>();
      return fmt::format("fd={} {} path={}", d.fd, d.which == 0 ? "peer" : d.which == 1 ? "local" : "which?",
                         quoted({reinterpret_cast<const char*>(ev.tail<tf::AddrPathEvent>()), d.path_len}));
    }
    case K::kModule: {
      const auto& d = ev.as<tf::ModuleEvent>();
      return fmt::format("bias={:#x} text={:#x}-{:#x} build_id_len={} flags={:#x} path={}", d.bias, d.text_start,
                         d.text_end, d.build_id_len, d.flags,
                         quoted({reinterpret_cast<const char*>(ev.tail<tf::ModuleEvent>()), d.path_len}));
    }
    case K::kH2Headers: {
      // The fields are the allow-listed ones (method, path, authority, status, traceparent).
      const auto& d = ev.as<tf::H2HeadersEvent>();
      std::string s = fmt::format("stream={} {} flags={:#x}", d.stream, d.dir == 0 ? "send" : "recv", d.flags);
      static constexpr const char* kNames[tf::kH2Fields] = {":method", ":path", ":authority", ":status", "traceparent"};
      const char* p = reinterpret_cast<const char*>(ev.tail<tf::H2HeadersEvent>());
      for (int f = 0; f < tf::kH2Fields; ++f) {
        if (!(d.fields & (1u << f))) continue;
        s += fmt::format(" {}={}", kNames[f], quoted({p, d.len[f]}));
        p += d.len[f];
      }
      return s;
    }
  }
  return "";
}

}  // namespace

void write_dump(TraceSet& traces, std::FILE* out) {
  for (const auto& f : traces.files()) {
    std::string argv;
    for (const auto& a : f.argv) argv += (argv.empty() ? "" : " ") + a;
    std::string causes;
    for (size_t i = 0; i < f.dropped_by_cause.size(); ++i)
      if (f.dropped_by_cause[i])
        causes += fmt::format("{}{}:{}", causes.empty() ? " dropped_by_cause=" : ",", drop_cause_text(i),
                              f.dropped_by_cause[i]);
    fmt::print(out, "# {} version={} pid={} ppid={} exe={} argv={} dropped={}{} mono_anchor={} real_anchor={}\n",
               quoted(f.path), f.version, f.pid, f.ppid, quoted(f.exe), quoted(argv), f.dropped_events, causes,
               f.mono_anchor_ns, f.real_anchor_ns);
  }
  // The order time is shown where it differs from the start (reads, completions): it is what the
  // stream is sorted by. uid= where the thread's id is more than its tid (v2).
  Event ev;
  while (traces.next(ev)) {
    std::string extra;
    if (ev.order_ns != ev.h->ts_ns) extra += fmt::format(" order={}", ev.order_ns);
    if (ev.thread_uid != uint64_t(uint32_t(ev.tid))) extra += fmt::format(" uid={}", ev.thread_uid);
    fmt::print(out, "{} {} {} {} conn={} {}{}\n", ev.pid, ev.tid, ev.h->ts_ns, event_kind_name(ev.h->kind),
               ev.h->conn, fields(ev), extra);
  }
}

int cmd_dump(const Args& args) {
  std::vector<std::string> paths;
  for (const auto& a : args) {
    if (a.size() > 1 && a[0] == '-') return usage_error(fmt::format("dump: unknown option {}", a));
    paths.push_back(a);
  }
  if (paths.empty()) return usage_error("dump: no TRACE given");
  TraceSet traces;
  if (!open_traces(paths, traces)) return 1;
  write_dump(traces, stdout);
  return 0;
}

}  // namespace httptrace::analyzer
