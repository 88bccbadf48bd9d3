#include "analyzer/model/h2_streams.h"

#include <algorithm>
#include <charconv>

namespace httptrace::analyzer {

namespace {

enum : uint8_t { kData = 0, kHeaders = 1, kRst = 3, kPush = 5 };
constexpr uint8_t kEndStream = 0x1;
// A hostile trace must not make a connection hold unbounded state.
constexpr size_t kMaxStreams = 1u << 20;

}  // namespace

H2Streams::Stream& H2Streams::stream(uint32_t id, uint64_t when) {
  auto [it, fresh] = index_.try_emplace(id, streams_.size());
  if (fresh) {
    streams_.emplace_back();
    Stream& s = streams_.back();
    s.x.stream = id;
    s.x.index = base_ + static_cast<uint32_t>(streams_.size() - 1);
    s.x.start_ns = s.x.sent_ns = s.x.end_ns = when;
    s.last = when;
  }
  return streams_[it->second];
}

void H2Streams::start(Stream& s, uint64_t when) {
  s.started = true;
  s.x.start_ns = when;
  const size_t k = static_cast<size_t>(&s - streams_.data());
  opened_.push_back(k);
  if (!s.ended) open_.push_back(k);
}

void H2Streams::end(Stream& s, uint64_t when) {
  s.ended = true;
  s.x.end_ns = when;
  std::erase(open_, static_cast<size_t>(&s - streams_.data()));
}

Exchange* H2Streams::only_open() { return open_.size() == 1 ? &streams_[open_[0]].x : nullptr; }

Exchange* H2Streams::by_index(uint32_t index) {
  if (index < base_ || index - base_ >= streams_.size()) return nullptr;
  return &streams_[index - base_].x;
}

bool H2Streams::on_http1_status(int status, const Exchange& x, uint64_t at) {
  if (status != 101 || !upgrade_offered_ || upgraded_ || !streams_.empty()) return false;
  upgraded_ = true;
  base_ = x.index;
  Stream& s = stream(1, x.start_ns);
  s.started = s.sent = true;
  // Its request, and where it sits in a trace, were decided when it opened as HTTP/1.
  Exchange& y = s.x;
  y.start_ns = x.start_ns;
  y.sent_ns = x.sent_ns;
  y.method = x.method;
  y.target = x.target;
  y.target_cut = x.target_cut;
  y.traceparent = x.traceparent;
  y.parent = x.parent;
  y.parent_confidence = x.parent_confidence;
  y.linked = x.linked;
  y.trace_id = x.trace_id;
  y.span_id = x.span_id;
  y.parent_span_id = x.parent_span_id;
  y.children_ns = x.children_ns;
  // The 101 and whatever came with it in the same call (the server's SETTINGS, often stream 1's
  // response itself) are this stream's.
  y.bytes_sent = x.bytes_sent;
  y.bytes_received = x.bytes_received;
  y.status = status;
  y.first_byte_ns = at;
  y.end_ns = s.last = std::max(at, x.end_ns);
  open_.push_back(0);
  return true;
}

void H2Streams::on_frames(std::string_view frames, bool from_client, bool is_send, uint64_t ts,
                          uint64_t end, bool frames_cut) {
  // Byte counts are then only a floor; Exchange has no "unknown" for them (kDataH2FramesCut).
  if (frames_cut) bytes_cut_ = true;
  // A read happened when its bytes were there (its end), a write when it began.
  const uint64_t at = is_send ? ts : end;
  for (size_t i = 0; i + 9 <= frames.size(); i += 9) {
    const auto* f = reinterpret_cast<const uint8_t*>(frames.data() + i);
    const uint32_t len = (uint32_t{f[0]} << 16) | (uint32_t{f[1]} << 8) | f[2];
    const uint8_t type = f[3], flags = f[4];
    const uint32_t id = ((uint32_t{f[5]} << 24) | (uint32_t{f[6]} << 16) | (uint32_t{f[7]} << 8) | f[8]) & 0x7fffffffu;
    if (id == 0) continue;  // connection-level frames
    const bool known = index_.count(id) != 0;
    // Streams open with the client's HEADERS (or are promised by the server's PUSH_PROMISE,
    // whose header block opens them in on_headers); other frames on unknown streams are noise.
    if (!known && !(type == kHeaders && from_client)) continue;
    if (!known && streams_.size() >= kMaxStreams) continue;
    Stream& s = stream(id, at);
    s.last = std::max(s.last, end);
    // The request's side counts as sent, as the exchange builder counts (emit swaps them inbound).
    (from_client ? s.x.bytes_sent : s.x.bytes_received) += 9 + uint64_t{len};
    if (from_client) {
      if (type == kHeaders && !s.started) start(s, at);
      if ((type == kHeaders || type == kData) && (flags & kEndStream) && !s.sent) {
        s.sent = true;
        s.x.sent_ns = end;
      }
    } else {
      if (type == kHeaders && !s.x.first_byte_ns) s.x.first_byte_ns = at;
      if ((type == kHeaders || type == kData) && (flags & kEndStream) && !s.ended) this->end(s, end);
    }
    if (type == kRst && !s.ended) this->end(s, end);
  }
}

void H2Streams::on_headers(const format::H2HeadersEvent& e, std::string_view fields, bool from_client,
                           uint64_t when) {
  const uint32_t id = e.stream & 0x7fffffffu;
  if (id == 0) return;
  const bool push = e.flags & format::kH2PushPromise;
  // A promise is the server's request on an even stream; otherwise the request is the client's.
  const bool request = push ? !from_client : from_client;
  if (index_.count(id) == 0 && (!request || streams_.size() >= kMaxStreams)) return;
  Stream& s = stream(id, when);
  size_t off = 0;
  std::string_view v[format::kH2Fields];
  for (int f = 0; f < format::kH2Fields; ++f) {
    const size_t n = (e.fields & (1u << f)) ? e.len[f] : 0;
    if (off + n > fields.size()) return;
    v[f] = fields.substr(off, n);
    off += n;
  }
  const auto has = [&](int f) { return (e.fields & (1u << f)) != 0; };
  if (request) {
    if (!s.started && !push) start(s, when);
    if (s.x.method.empty() && has(format::kH2FieldMethod)) s.x.method.assign(v[format::kH2FieldMethod]);
    if (s.x.target.empty() && has(format::kH2FieldPath)) {
      s.x.target.assign(v[format::kH2FieldPath]);
      s.x.target_cut = e.flags & format::kH2PathCut;
    }
    if (s.x.traceparent.empty() && has(format::kH2FieldTraceparent))
      s.x.traceparent.assign(v[format::kH2FieldTraceparent]);
    if (first_authority_.empty() && has(format::kH2FieldAuthority))
      first_authority_.assign(v[format::kH2FieldAuthority]);
    return;
  }
  if (!has(format::kH2FieldStatus) || s.final_status) return;
  int status = 0;
  const std::string_view st = v[format::kH2FieldStatus];
  auto [p, ec] = std::from_chars(st.data(), st.data() + st.size(), status);
  if (ec != std::errc() || p != st.data() + st.size() || status < 100 || status > 999) return;
  s.x.status = status;
  s.final_status = status >= 200;  // a 1xx is replaced by the final status
  if (!s.x.first_byte_ns) s.x.first_byte_ns = when;
}

uint32_t H2Streams::take(std::vector<Exchange>& out) {
  // An upgraded connection's HTTP/1 requests before the upgrade (rare: curl upgrades its first).
  std::erase_if(out, [&](const Exchange& x) { return !upgraded_ || x.index >= base_; });
  out.reserve(out.size() + streams_.size());
  uint64_t open_until = out.empty() ? 0 : out.back().end_ns;  // the latest end among those before
  uint32_t answered = 0;
  for (size_t i = 0; i < streams_.size(); ++i) {
    Stream& s = streams_[i];
    Exchange& x = s.x;
    if (!s.ended) x.end_ns = std::max(x.end_ns, s.last);
    // Never out of order, whatever the evidence: start <= sent <= end, first byte within.
    x.sent_ns = std::max(x.sent_ns, x.start_ns);
    x.end_ns = std::max(x.end_ns, x.sent_ns);
    if (x.first_byte_ns) x.first_byte_ns = std::clamp(*x.first_byte_ns, x.start_ns, x.end_ns);
    x.index = base_ + static_cast<uint32_t>(i);
    x.reused = x.index > 0;
    if (x.reused && x.start_ns >= open_until) x.idle_ns = x.start_ns - open_until;
    else x.idle_ns.reset();
    open_until = std::max(open_until, x.end_ns);
    answered += (x.stream.value_or(0) & 1) && x.first_byte_ns;
    out.push_back(std::move(x));
  }
  streams_.clear();
  index_.clear();
  opened_.clear();
  open_.clear();
  return answered;
}

}  // namespace httptrace::analyzer
