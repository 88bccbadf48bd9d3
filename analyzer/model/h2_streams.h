// HTTP/2: one Exchange per stream (SPEC §5), from two kinds of evidence on a connection:
// - the frame headers of every call (CaptureKind::kH2Frames, with the call's times): which stream
//   opened, when END_STREAM went each way, RST_STREAM, and how many bytes each stream's frames held;
// - the HPACK-decoded header blocks (H2HeadersEvent): method, path, authority, status, traceparent.
// Either may be missing (an older trace, the recorder's pool full, a frame capture cut short):
// what it would have said stays unknown (empty method, status 0, first_byte_ns null).
//
// Times, for a client (outbound) connection: start_ns the start of the write that sent the
// request's HEADERS; sent_ns the end of the write that sent its END_STREAM; first_byte_ns the end of
// the read that brought the response's first HEADERS (a 1xx included); end_ns the end of the call
// that carried the response's END_STREAM or a RST_STREAM either way (else the stream's last call).
// On a server (inbound) connection the roles swap: the request's frames are read, the response's
// written, and a read counts at its end, a write at its start, as for HTTP/1.
//
// Streams overlap, so the HTTP/1 notion of idle time between requests only holds when they do not:
// idle_ns is the gap since every earlier stream ended, and null when an earlier one was still
// open when this one started. reused: not the connection's first stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/model/model.h"

namespace httptrace::analyzer {

class H2Streams {
 public:
  // A data call's frame headers. from_client: the bytes went from the client to the server;
  // is_send: the traced program wrote them. frames_cut: the recorder left some frames out
  // (format::kDataH2FramesCut), so per-stream byte counts are no longer whole.
  void on_frames(std::string_view frames, bool from_client, bool is_send, uint64_t ts, uint64_t end,
                 bool frames_cut);
  // An H2HeadersEvent whose size the reader validated; fields are its tail bytes.
  void on_headers(const format::H2HeadersEvent& e, std::string_view fields, bool from_client, uint64_t when);

  // h2c upgrade (RFC 7540 §3.2): each HTTP/1.1 request on the connection says whether it offered
  // the upgrade (offers_h2c_upgrade); a status line then read (or, inbound, written) for its
  // exchange x comes here. True when it is the 101 that switched the connection to h2: x, the
  // upgraded request, is stream 1 from then on (its response comes in h2 frames) and keeps its
  // place among the connection's requests. at: when the 101 came, its first byte (as a 1xx is).
  void on_http1_request(bool offers_upgrade) { upgrade_offered_ = offers_upgrade; }
  bool on_http1_status(int status, const Exchange& x, uint64_t at);
  bool upgraded() const { return upgraded_; }

  // Streams whose request opened since the last call (their HEADERS, or the decoded block), for
  // the model to place them in a distributed trace as it does an HTTP/1 request that opens; the
  // pointers are good until the next on_frames / on_headers.
  template <typename F>
  void each_opened(F&& f) {
    for (size_t k : opened_) f(streams_[k].x);
    opened_.clear();
  }
  bool any_opened() const { return !opened_.empty(); }
  // The only stream whose request has come and whose response has not ended, nullptr when none
  // or several: on a server's connection, the request an outbound call is being made for.
  Exchange* only_open();
  // The stream with that request index (Exchange::index), nullptr when none.
  Exchange* by_index(uint32_t index);
  // The stream with that id, nullptr when none.
  Exchange* by_stream(uint32_t id) {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : &streams_[it->second].x;
  }
  // The stream opened just before x, nullptr for the first.
  const Exchange* before(const Exchange& x) { return x.index > base_ ? by_index(x.index - 1) : nullptr; }

  bool empty() const { return streams_.empty(); }
  // The first request's :authority, "" when none was seen (the connection's host as a last resort).
  const std::string& first_authority() const { return first_authority_; }
  // The streams as exchanges, in the order they opened, into out, which holds the connection's
  // HTTP/1 exchanges: those before an upgrade stay first; the others go. Leaves this empty.
  // Returns how many of the client's streams the server answered (a 101 upgrade included: its
  // stream 1 HEADERS may have come in the 101's own read, which holds no frame captures).
  uint32_t take(std::vector<Exchange>& out);

 private:
  struct Stream {
    Exchange x;
    bool started = false, sent = false, ended = false, final_status = false;
    uint64_t last = 0;  // the latest call on this stream
  };
  Stream& stream(uint32_t id, uint64_t when);
  void start(Stream& s, uint64_t when);
  void end(Stream& s, uint64_t when);

  std::vector<Stream> streams_;
  std::unordered_map<uint32_t, size_t> index_;
  std::vector<size_t> opened_;  // positions in streams_, for each_opened
  std::vector<size_t> open_;    // positions of the streams started and not ended
  std::string first_authority_;
  uint32_t base_ = 0;  // the request index of the first stream: the HTTP/1 exchanges before it
  bool bytes_cut_ = false;
  bool upgrade_offered_ = false, upgraded_ = false;
};

}  // namespace httptrace::analyzer
