// Writes the fuzzers' synthetic seed traces into DIR: small (4 KiB segments) and covering every
// record of format version 2, so mutations start from files the reader accepts.
//
//   build-fuzz/make_seeds DIR
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "tests/support/trace_builder.h"

using httptrace::testing::TraceBuilder;
using httptrace::testing::ipv4;
namespace tf = httptrace::format;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  mkdir((dir + "/events").c_str(), 0755);
  int written = 0;
  // Each seed twice: as a file, and as the events-only input of fuzz_events (the thread count
  // byte, then each segment's committed bytes in file order).
  auto save = [&](const std::string& name, const TraceBuilder& b) {
    const std::string file = b.bytes();
    written += TraceBuilder::write_file(dir + "/" + name, b.compact_bytes()) ? 1 : 0;
    tf::FileHeader h;
    std::memcpy(&h, file.data(), sizeof h);
    std::string events(1, char(3));
    for (uint64_t i = 0; i < h.segments_claimed; ++i) {
      tf::SegmentHeader sh;
      const size_t off = tf::kHeaderSize + i * h.segment_size;
      std::memcpy(&sh, file.data() + off, sizeof sh);
      events.append(file, off + sizeof sh, sh.committed);
    }
    TraceBuilder::write_file(dir + "/events/" + name, events);
  };

  {  // an HTTP/1.1 client over two threads, pipelined: the reader blocks before the write
    TraceBuilder b;
    b.set_segment_size(4096);
    b.dns(1, 100, "example.com", 50, {ipv4("10.0.0.1"), ipv4("10.0.0.2")});
    b.socket(1, 200, 1, 3);
    b.connect(1, 210, 1, 3, ipv4("10.0.0.1", 80), 30);
    b.recv(2, 250, 1, 100, 500, "HTTP/1.1 200 OK\r\nConnection: keep-alive");
    b.send(1, 300, 1, 40, 5, "GET /a HTTP/1.1\r\nHost: example.com");
    b.send(1, 900, 1, 40, 5, "GET /b HTTP/1.1\r\nHost: example.com");
    b.recv(2, 910, 1, 100, 50, "HTTP/1.1 404 Not Found");
    b.close(1, 1000, 1, 3);
    b.header().dropped_events = 3;
    b.header().dropped_by_cause[uint8_t(tf::DropCause::kSizeCap)] = 3;
    b.lost(1, 1100, 3, tf::DropCause::kSizeCap);
    save("v2_pipelined.trace", b);
  }
  {  // TLS, fork, dup, stacks, unknown kind, a handed-on segment, server side
    TraceBuilder b;
    b.set_segment_size(4096);
    b.header().flags = tf::kFileFlagStacks;
    b.socket(1, 10, 1, 4);
    b.stack(1, 10, {0x401000, 0x402000, 0x403000});
    b.connect(1, 20, 1, 4, ipv4("127.0.0.1", 443), 10, EINPROGRESS);
    b.connect_done(1, 40, 1, 4);
    b.tls_handshake(1, 50, 1, 4, 100, "h2", "h2.example");
    b.data(1, 200, 1, 4, tf::Direction::kSend, 24, 3, tf::CaptureKind::kH2Frames,
           std::string("\0\0\x06\x04\0\0\0\0\0", 9), tf::kDataTlsPlaintext);
    b.dup(1, 300, 1, 4, 9);
    b.inherit(1, 400, 2, 4, 1);
    b.accept(1, 500, 3, 7, 6, ipv4("127.0.0.1", 5000), 100);
    b.addr_path(1, 501, 3, 7, 1, "/run/app.sock");
    std::string unknown(24, '\0');
    tf::EventHeader h{77, 24, 0, 600};
    std::memcpy(unknown.data(), &h, sizeof h);
    b.add_raw(1, unknown);
    b.handoff(1, 700, 42, 9, 0);
    b.close(1, 800, 1, 4);
    b.set_thread(2, 42, 9, 1);
    b.socket(2, 900, 4, 5);
    save("v2_records.trace", b);
  }
  {  // version 1 layout: no uids, features word reserved
    TraceBuilder b;
    b.set_segment_size(4096);
    b.header().version = 1;
    b.header().min_reader_version = 1;
    for (int i = 0; i < 40; ++i) {
      b.socket(1 + i % 3, 100 + uint64_t(i) * 10, uint32_t(i + 1), 3 + i);
      b.send(1 + i % 3, 101 + uint64_t(i) * 10, uint32_t(i + 1), 10, 2, "GET / HTTP/1.1");
      b.recv(1 + i % 3, 103 + uint64_t(i) * 10, uint32_t(i + 1), 10, 2, "HTTP/1.0 200 OK");
    }
    save("v1_threads.trace", b);
  }
  std::printf("%d seeds in %s\n", written, dir.c_str());
  return written == 3 ? 0 : 1;
}
