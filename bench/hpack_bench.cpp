// Cost per HTTP/2 header block of what the recorder does on every h2 call (record/h2_conn.h):
// the frame walk alone (what was there before: frame headers only) against the walk with HPACK
// decoding of each block through libnghttp2's inflater and the allow-list.
//
//   build/bench/hpack_bench --benchmark_counters_tabular=true
//
// The blocks are produced by libnghttp2's deflater in connection order (so later blocks hit the
// dynamic table, as on a real connection): 256 blocks per pass, one pass per iteration, the
// connection's decoding state set up afresh each pass (its cost included, spread over the 256).
#include <benchmark/benchmark.h>
#include <nghttp2/nghttp2.h>

#include <string>
#include <vector>

#include "interpose/record/h2_conn.h"
#include "interpose/tls/h2.h"

namespace {

using httptrace::h2::Conn;
using httptrace::h2::FrameOut;
using httptrace::h2::Walk;

constexpr int kBlocks = 256;

nghttp2_nv nv(const char* n, const std::string& v) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(n)), reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())),
          strlen(n), v.size(), NGHTTP2_NV_FLAG_NONE};
}

std::string frame_of(const std::vector<uint8_t>& block, uint32_t stream) {
  std::string f;
  const size_t n = block.size();
  f += {char(n >> 16), char(n >> 8), char(n), 1, 5, char(stream >> 24), char(stream >> 16), char(stream >> 8),
        char(stream)};
  f.append(block.begin(), block.end());
  return f;
}

// kBlocks HEADERS frames as a client (browser-like request headers) or a server (nginx-like
// response headers) would send them on one connection.
std::string stream_of(bool response) {
  nghttp2_hd_deflater* d = nullptr;
  nghttp2_hd_deflate_new(&d, 4096);
  std::string out;
  for (int i = 0; i < kBlocks; ++i) {
    const std::string path = "/static/app-" + std::to_string(i) + ".js", date = "Tue, 01 Dec 2026 23:5" +
                             std::to_string(i % 10) + ":00 GMT", len = std::to_string(1000 + i);
    std::vector<nghttp2_nv> h;
    const std::string get = "GET", https = "https", host = "www.example.com", status = "200";
    const std::string ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0";
    const std::string accept = "*/*", enc = "gzip, deflate, br", lang = "en-US,en;q=0.9";
    const std::string cookie = "session=0123456789abcdef0123456789abcdef; theme=dark";
    const std::string server = "nginx/1.22.1", ctype = "application/javascript";
    if (response) {
      h = {nv(":status", status), nv("server", server), nv("date", date), nv("content-type", ctype),
           nv("content-length", len)};
    } else {
      h = {nv(":method", get), nv(":scheme", https), nv(":authority", host), nv(":path", path),
           nv("user-agent", ua), nv("accept", accept), nv("accept-encoding", enc),
           nv("accept-language", lang), nv("cookie", cookie)};
    }
    std::vector<uint8_t> buf(nghttp2_hd_deflate_bound(d, h.data(), h.size()));
    const ssize_t n = nghttp2_hd_deflate_hd(d, buf.data(), buf.size(), h.data(), h.size());
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    out += frame_of(buf, 1 + 2 * static_cast<uint32_t>(i));
  }
  nghttp2_hd_deflate_del(d);
  return out;
}

Conn g_conn;

void walk_pass(const std::string& s, benchmark::State& state) {
  int blocks = 0;
  for (auto _ : state) {
    Walk& w = g_conn.dir[0];
    w.reset();  // a new connection's decoding state
    uint8_t buf[httptrace::format::kH2CaptureMaxFrames * 9];
    FrameOut out{buf, httptrace::format::kH2CaptureMaxFrames};
    blocks = 0;
    httptrace::h2::walk_dir(w, g_conn.table_allow[1], g_conn.table_allow[0],
                            reinterpret_cast<const uint8_t*>(s.data()), s.size(), out,
                            [](void* ctx, const Walk& wk) {
                              ++*static_cast<int*>(ctx);
                              benchmark::DoNotOptimize(wk.fields.len[1]);
                            },
                            &blocks);
  }
  if (blocks != kBlocks) state.SkipWithError("not every block decoded");
  state.SetItemsProcessed(state.iterations() * kBlocks);
  state.counters["ns_per_block"] =
      benchmark::Counter(double(state.iterations()) * kBlocks, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["bytes_per_block"] = double(s.size()) / kBlocks;
}

void BM_DecodeRequests(benchmark::State& state) { walk_pass(stream_of(false), state); }
void BM_DecodeResponses(benchmark::State& state) { walk_pass(stream_of(true), state); }

// The frame-header walk alone over the same bytes (the recorder before HPACK decoding).
void frames_only(const std::string& s, benchmark::State& state) {
  for (auto _ : state) {
    httptrace::tls::H2Cursor c{};
    uint8_t buf[httptrace::format::kH2CaptureMaxFrames * 9];
    benchmark::DoNotOptimize(c.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size(), buf,
                                    httptrace::format::kH2CaptureMaxFrames));
  }
  state.SetItemsProcessed(state.iterations() * kBlocks);
  state.counters["ns_per_block"] =
      benchmark::Counter(double(state.iterations()) * kBlocks, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
void BM_FramesOnlyRequests(benchmark::State& state) { frames_only(stream_of(false), state); }
void BM_FramesOnlyResponses(benchmark::State& state) { frames_only(stream_of(true), state); }

// One connection's set-up alone: pool slot reset and inflater creation in the arena.
void BM_ConnectionSetup(benchmark::State& state) {
  for (auto _ : state) {
    g_conn.dir[0].reset();
    benchmark::DoNotOptimize(g_conn.dir[0].dec.broken());
  }
}

BENCHMARK(BM_FramesOnlyRequests);
BENCHMARK(BM_DecodeRequests);
BENCHMARK(BM_FramesOnlyResponses);
BENCHMARK(BM_DecodeResponses);
BENCHMARK(BM_ConnectionSetup);

}  // namespace

BENCHMARK_MAIN();
