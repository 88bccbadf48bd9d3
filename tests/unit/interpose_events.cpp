// The recorder behind the hooks, driven directly (no LD_PRELOAD): socket life-cycle events,
// pending connects, direction changes with captures, stale descriptor numbers, DNS.
// The process-wide recorder starts once, writing to a temporary directory.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "interpose/record/events.h"
#include "interpose/record/lifecycle.h"
#include "interpose/record/recorder.h"
#include "interpose_test_trace.h"

namespace httptrace {
namespace {

using format::EventKind;
using testing::as;

// One trace per test binary: the recorder is process-wide by design.
const std::string& trace_path() {
  static testing::TempDir dir;
  static const std::string path = [] {
    setenv("HTTPTRACE_OUTPUT", (dir.path() + "/events.%p.trace").c_str(), 1);
    unsetenv("HTTPTRACE_DISABLE");
    EXPECT_EQ(start_recorder(), RecorderState::kRecording);
    EXPECT_FALSE(trace_writer().active()) << "no file before the first network event";
    EXPECT_TRUE(open_trace_file());
    return std::string(trace_writer().path());
  }();
  return path;
}

// Every event this thread has recorded so far, in order.
std::vector<std::vector<uint8_t>> events() {
  const auto v = testing::parse_trace(trace_path());
  std::vector<std::vector<uint8_t>> out;
  for (const auto& s : v.segments) {
    if (s.header.tid != gettid()) continue;
    out.insert(out.end(), s.events.begin(), s.events.end());
  }
  return out;
}

uint16_t kind(const std::vector<uint8_t>& ev) { return as<format::EventHeader>(ev).kind; }

TEST(RecorderEvents, SocketConnectDataCloseAndAStaleNumber) {
  trace_path();
  const size_t before = events().size();
  const int fd = 700;  // a number, not a real descriptor: the recorder only needs the table
  on_socket(fd, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, 100);
  const uint32_t conn = conn_of_fd(fd);
  ASSERT_NE(conn, 0u);

  sockaddr_in peer = {};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(8080);
  inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
  on_connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer), 200, 210, -1, EINPROGRESS);
  EXPECT_TRUE(FdTable::pending(g_fd_table.load(fd)));

  std::string req = "GET /a HTTP/1.1\r\nAuthorization: secret\r\nHost: h\r\n\r\n";
  iovec v{req.data(), req.size()};
  record_data(fd, format::Direction::kSend, format::DataCall::kSend, 0, 300, 310,
              static_cast<int64_t>(req.size()), &v, 1);
  record_data(fd, format::Direction::kSend, format::DataCall::kSend, 0, 320, 330, 5, &v, 1);
  record_data(fd, format::Direction::kRecv, format::DataCall::kRecv, 0, 340, 350, -EAGAIN, &v, 1);
  on_new_fd(fd, 400);  // e.g. open() returned the number: the socket was closed unseen
  EXPECT_EQ(conn_of_fd(fd), 0u);
  record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 410, 420, 4, &v, 1);

  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 7u);
  const auto* e = &evs[before];
  EXPECT_EQ(kind(e[0]), static_cast<uint16_t>(EventKind::kSocket));
  const auto c = as<format::ConnectEvent>(e[1]);
  EXPECT_EQ(c.h.kind, static_cast<uint16_t>(EventKind::kConnect));
  EXPECT_EQ(c.h.conn, conn);
  EXPECT_EQ(c.error, EINPROGRESS);
  EXPECT_EQ(c.dur_ns, 10u);
  EXPECT_EQ(c.peer.port, 8080);
  const auto done = as<format::ConnectDoneEvent>(e[2]);
  EXPECT_EQ(done.h.kind, static_cast<uint16_t>(EventKind::kConnectDone));
  EXPECT_EQ(done.how, static_cast<uint8_t>(format::ConnectDoneHow::kFirstWrite));
  const auto d1 = as<format::DataEvent>(e[3]);
  EXPECT_EQ(d1.flags, format::kDataDirChange);
  EXPECT_EQ(d1.capture_kind, static_cast<uint8_t>(format::CaptureKind::kHttpReq));
  const std::string cap(reinterpret_cast<const char*>(e[3].data()) + sizeof(format::DataEvent),
                        d1.cap_len);
  EXPECT_EQ(cap, "GET /a HTTP/1.1\r\nHost: h");
  const auto d2 = as<format::DataEvent>(e[4]);
  EXPECT_EQ(d2.flags, 0u);  // same direction: no capture
  EXPECT_EQ(d2.cap_len, 0u);
  const auto d3 = as<format::DataEvent>(e[5]);
  EXPECT_EQ(d3.result, -EAGAIN);
  EXPECT_EQ(d3.flags, 0u);  // a failed read does not turn the conversation around
  const auto cl = as<format::CloseEvent>(e[6]);
  EXPECT_EQ(cl.h.kind, static_cast<uint16_t>(EventKind::kClose));
  EXPECT_EQ(cl.h.conn, conn);
}

// The capture reads a single buffer in place and gathers split ones; either way it looks only at
// the bytes the call really transferred.
TEST(RecorderEvents, CaptureSeesOnlyTransferredBytesInOneOrSeveralBuffers) {
  trace_path();
  const size_t before = events().size();
  const int fd = 701;
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
  std::string one = "GET /one HTTP/1.1\r\nHost: never-sent\r\n\r\n";
  iovec v{one.data(), one.size()};
  record_data(fd, format::Direction::kSend, format::DataCall::kSend, 0, 200, 210, 12, &v, 1);
  std::string status = "HTTP/1.1 204 No Content\r\n\r\n";
  iovec r{status.data(), status.size()};
  record_data(fd, format::Direction::kRecv, format::DataCall::kRecv, 0, 220, 230,
              static_cast<int64_t>(status.size()), &r, 1);
  std::string a = "GET /s", b = "plit HTTP/1.1\r\nHost: split\r\n\r\n";
  iovec two[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  record_data(fd, format::Direction::kSend, format::DataCall::kWritev, 0, 240, 250,
              static_cast<int64_t>(a.size() + b.size()), two, 2);
  record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 260);

  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 5u);
  auto capture = [&](size_t i) {
    const auto d = as<format::DataEvent>(evs[before + i]);
    return std::string(reinterpret_cast<const char*>(evs[before + i].data()) +
                           sizeof(format::DataEvent), d.cap_len);
  };
  EXPECT_EQ(capture(1), "GET /one HTT");  // 12 bytes transferred: a cut request line, no Host
  EXPECT_EQ(capture(2), "HTTP/1.1 204 No Content");
  EXPECT_EQ(capture(3), "GET /split HTTP/1.1\r\nHost: split");
}

// A presigned URL's request line is longer than the target budget: the event says the target
// was cut, and the headers after it (read in place, past the 2 KiB a split transfer gathers)
// are still found.
TEST(RecorderEvents, LongTargetIsFlaggedCutAndItsHostKept) {
  trace_path();
  const size_t before = events().size();
  const int fd = 705;
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
  const std::string target = "/b/k?X-Amz-Signature=" + std::string(3000, 'f');
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: b.s3.amazonaws.com\r\n\r\n";
  iovec v{req.data(), req.size()};
  record_data(fd, format::Direction::kSend, format::DataCall::kSend, 0, 200, 210,
              static_cast<int64_t>(req.size()), &v, 1);
  record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 220);
  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 3u);
  const auto d = as<format::DataEvent>(evs[before + 1]);
  EXPECT_EQ(d.flags, format::kDataDirChange | format::kDataCaptureCut);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(evs[before + 1].data()) +
                            sizeof(format::DataEvent), d.cap_len),
            "GET " + target.substr(0, format::kTargetMax) + " HTTP/1.1\r\nHost: b.s3.amazonaws.com");
}

// OpenSSL's socket BIO reads a TLS record's 5-byte header, then its body: the body of a
// handshake record is captured too (the ServerHello tells the version), and only that one read.
TEST(RecorderEvents, HandshakeRecordBodyAfterABareHeaderIsCaptured) {
  trace_path();
  const size_t before = events().size();
  const int fd = 703;
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
  std::string hello = "\x16\x03\x01\x00\x04\x01\x00\x00\x00";  // a (tiny) ClientHello record
  iovec h{hello.data(), hello.size()};
  record_data(fd, format::Direction::kSend, format::DataCall::kWrite, 0, 200, 210,
              static_cast<int64_t>(hello.size()), &h, 1);
  std::string header("\x16\x03\x03\x00\x06", 5), body("\x02\x00\x00\x02\x03\x03", 6);
  iovec hv{header.data(), header.size()}, bv{body.data(), body.size()};
  record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 220, 230, 5, &hv, 1);
  record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 240, 250, 6, &bv, 1);
  record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 260, 270, 6, &bv, 1);
  record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 280);

  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 6u);
  auto kind_of = [&](size_t i) { return as<format::DataEvent>(evs[before + i]).capture_kind; };
  EXPECT_EQ(kind_of(2), uint8_t(format::CaptureKind::kTls));
  EXPECT_EQ(as<format::DataEvent>(evs[before + 2]).cap_len, 5u);
  EXPECT_EQ(kind_of(3), uint8_t(format::CaptureKind::kTlsBody));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(evs[before + 3].data()) +
                            sizeof(format::DataEvent), 6),
            body);
  EXPECT_EQ(kind_of(4), uint8_t(format::CaptureKind::kNone)) << "only the read right after";
}

// A TLS 1.3 client that writes its ChangeCipherSpec alone (java) has the next write's record
// header captured (its Finished: where the request behind it begins); the write after that is
// not, nor the write after a CCS that came with its Finished.
TEST(RecorderEvents, TheWriteAfterALoneChangeCipherSpecIsCaptured) {
  trace_path();
  for (const bool alone : {true, false}) {
    SCOPED_TRACE(alone ? "CCS alone" : "CCS and Finished together");
    const size_t before = events().size();
    const int fd = 707;
    on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
    std::string hello = "\x16\x03\x01\x00\x04\x01\x00\x00\x00", server = "\x16\x03\x03\x00\x04\x02\x00\x00\x00";
    std::string ccs("\x14\x03\x03\x00\x01\x01", 6), finished = std::string("\x17\x03\x03\x00\x55", 5) + std::string(85, 'f');
    std::string flight = alone ? ccs : ccs + finished, request = std::string("\x17\x03\x03\x00\x85", 5) + std::string(133, 'r');
    iovec hv{hello.data(), hello.size()}, sv{server.data(), server.size()}, cv{flight.data(), flight.size()},
        fv{finished.data(), finished.size()}, rv{request.data(), request.size()};
    auto wr = [&](const iovec& v, uint64_t t) {
      record_data(fd, format::Direction::kSend, format::DataCall::kWrite, 0, t, t + 5, static_cast<int64_t>(v.iov_len), &v, 1);
    };
    wr(hv, 200);
    record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 300, 305, static_cast<int64_t>(server.size()), &sv, 1);
    wr(cv, 400);
    if (alone) wr(fv, 500);
    wr(rv, 600);
    record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 700);
    std::vector<std::string> caps;
    const auto evs = events();
    for (size_t i = before; i < evs.size(); ++i) {
      if (kind(evs[i]) != uint16_t(format::EventKind::kData)) continue;
      const auto d = as<format::DataEvent>(evs[i]);
      if (d.dir != uint8_t(format::Direction::kSend)) continue;
      caps.push_back(std::string(reinterpret_cast<const char*>(evs[i].data()) + sizeof d, d.cap_len));
    }
    if (alone) EXPECT_EQ(caps, (std::vector<std::string>{hello, ccs.substr(0, 5), finished.substr(0, 5), ""}));
    else EXPECT_EQ(caps, (std::vector<std::string>{hello, ccs.substr(0, 5), ""}));
  }
}

// A 103 Early Hints head read on its own: the next read on the same layer (the final response's
// head) is captured too, though it is no turn of the conversation, and the read after it is not.
// Under a TLS library the socket's record reads in between neither take nor lose that.
TEST(RecorderEvents, TheFinalHeadAfterAnInterimOneIsCaptured) {
  trace_path();
  for (const uint8_t layer : {uint8_t{0}, uint8_t{format::kDataTlsPlaintext}}) {
    SCOPED_TRACE(layer ? "plaintext" : "wire");
    const size_t before = events().size();
    const int fd = 704;
    on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
    std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n", record("\x17\x03\x03\x00\x20", 5);
    std::string hints = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n";
    std::string final_head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", body = "HTTP/1.1 999 body";
    iovec rv{req.data(), req.size()}, tv{record.data(), record.size()}, hv{hints.data(), hints.size()},
        fv{final_head.data(), final_head.size()}, bv{body.data(), body.size()};
    auto rd = [&](const iovec& v, uint8_t flags, uint64_t t) {
      record_data(fd, format::Direction::kRecv, format::DataCall::kRead, flags, t, t + 5,
                  static_cast<int64_t>(v.iov_len), &v, 1);
    };
    record_data(fd, format::Direction::kSend, format::DataCall::kWrite, layer, 200, 210,
                static_cast<int64_t>(req.size()), &rv, 1);
    if (layer) rd(tv, 0, 290);
    rd(hv, layer, 300);
    if (layer) rd(tv, 0, 390);
    rd(fv, layer, 400);
    rd(bv, layer, 500);
    record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 600);
    std::vector<std::string> heads;
    const auto evs = events();
    for (size_t i = before; i < evs.size(); ++i) {
      if (kind(evs[i]) != uint16_t(format::EventKind::kData)) continue;
      const auto d = as<format::DataEvent>(evs[i]);
      if ((d.flags & format::kDataTlsPlaintext) != layer || d.dir != uint8_t(format::Direction::kRecv)) continue;
      heads.push_back(d.capture_kind == uint8_t(format::CaptureKind::kHttpResp)
                          ? std::string(reinterpret_cast<const char*>(evs[i].data()) + sizeof d, d.cap_len)
                          : std::string("-"));
    }
    EXPECT_EQ(heads, (std::vector<std::string>{"HTTP/1.1 103 Early Hints", "HTTP/1.1 200 OK\r\nConnection: close", "-"}));
  }
}

// curl reads an HTTP proxy's answer to CONNECT a byte at a time: after a read that ended inside
// the status line, the next reads carry the rest of that line (kDataStatusLineMore) up to its
// "\n", and nothing after it (the next header lines are no business of ours).
TEST(RecorderEvents, AStatusLineReadAByteAtATimeIsCapturedToItsEnd) {
  trace_path();
  const size_t before = events().size();
  const int fd = 705;
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
  std::string req = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n";
  iovec rv{req.data(), req.size()};
  record_data(fd, format::Direction::kSend, format::DataCall::kWrite, 0, 200, 210, static_cast<int64_t>(req.size()), &rv, 1);
  const std::string answer = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n";
  for (size_t i = 0; i < answer.size(); ++i) {
    iovec one{const_cast<char*>(answer.data() + i), 1};
    record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 300 + 10 * i, 305 + 10 * i, 1, &one, 1);
  }
  record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 2000);

  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 2 + answer.size() + 1);  // socket, the CONNECT, each read, close
  std::string line;
  size_t captured = 0;
  for (size_t i = 0; i < answer.size(); ++i) {
    const auto& ev = evs[before + 2 + i];
    const auto& d = as<format::DataEvent>(ev);
    if (d.cap_len == 0) continue;
    ++captured;
    EXPECT_EQ(d.capture_kind, uint8_t(format::CaptureKind::kHttpResp)) << i;
    EXPECT_EQ((d.flags & format::kDataStatusLineMore) != 0, i > 0) << i;
    line.append(reinterpret_cast<const char*>(ev.data()) + sizeof(format::DataEvent), d.cap_len);
  }
  EXPECT_EQ(line, "HTTP/1.1 407 Proxy Authentication Required\r\n");
  EXPECT_EQ(captured, line.size());
}

// Bytes that only looked like a status line's start keep nothing once they stop being printable
// text, and a line that never ends is given up after kStatusLineReads reads.
TEST(RecorderEvents, AStatusLineThatIsNotOneIsNotFollowed) {
  trace_path();
  for (const bool binary : {true, false}) {
    const size_t before = events().size();
    const int fd = 706;
    on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
    std::string req = "GET / HTTP/1.1\r\n\r\n";
    iovec rv{req.data(), req.size()};
    record_data(fd, format::Direction::kSend, format::DataCall::kWrite, 0, 200, 210, static_cast<int64_t>(req.size()), &rv, 1);
    std::string stream = "H";
    const size_t reads = format::kStatusLineReads + 20;
    for (size_t i = 1; i < reads; ++i) stream += binary ? (i == 3 ? '\x01' : 'A') : 'x';
    for (size_t i = 0; i < stream.size(); ++i) {
      iovec one{stream.data() + i, 1};
      record_data(fd, format::Direction::kRecv, format::DataCall::kRead, 0, 300 + 10 * i, 305 + 10 * i, 1, &one, 1);
    }
    record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 9000);
    const auto evs = events();
    ASSERT_EQ(evs.size() - before, 2 + stream.size() + 1);
    std::string kept;
    for (size_t i = 0; i < stream.size(); ++i) {
      const auto& ev = evs[before + 2 + i];
      kept.append(reinterpret_cast<const char*>(ev.data()) + sizeof(format::DataEvent), as<format::DataEvent>(ev).cap_len);
    }
    EXPECT_EQ(kept, binary ? "HAA" : "H" + std::string(format::kStatusLineReads, 'x')) << binary;
  }
}

// A blocking read during which another thread closes the number and gets it back for a new
// socket: the read was on the old connection, and its bytes are counted there.
TEST(RecorderEvents, DataIsRecordedOnTheConnectionTheCallBeganOn) {
  trace_path();
  const size_t before = events().size();
  const int fd = 706;
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
  const uint32_t old_conn = conn_of_fd(fd);
  const DataStart start = begin_data(fd, format::Direction::kRecv, false);
  on_new_fd(fd, 110);  // closed by a raw syscall, then...
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 120);  // ...the number is another thread's new socket
  const uint32_t new_conn = conn_of_fd(fd);
  ASSERT_NE(new_conn, old_conn);
  std::string resp = "HTTP/1.1 200 OK\r\n\r\n";
  iovec v{resp.data(), resp.size()};
  record_data(start, fd, format::Direction::kRecv, format::DataCall::kRecv, 0, 105, 130,
              static_cast<int64_t>(resp.size()), &v, 1);
  record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 140);
  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 5u);
  EXPECT_EQ(kind(evs[before + 3]), static_cast<uint16_t>(EventKind::kData));
  EXPECT_EQ(as<format::DataEvent>(evs[before + 3]).h.conn, old_conn);
}

// Java's HttpClient: the caller's write of a request returns only after the selector thread has
// read the whole response. That late return must not take the turn back from the response, or
// the next request's write is not a turn and goes uncaptured (its target lost).
TEST(RecorderEvents, AWriteReturningAfterTheResponseWasReadLeavesTheNextRequestATurn) {
  trace_path();
  const size_t before = events().size();
  const int fd = 707;
  on_socket(fd, AF_INET, SOCK_STREAM, 0, 100);
  std::string req = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", resp = "HTTP/1.1 200 OK\r\n\r\n";
  std::string req2 = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  iovec q{req.data(), req.size()}, r{resp.data(), resp.size()}, q2{req2.data(), req2.size()};
  using format::Direction;
  const DataStart write = begin_data(fd, Direction::kSend, false);
  const DataStart read = begin_data(fd, Direction::kRecv, false);
  record_data(read, fd, Direction::kRecv, format::DataCall::kRecv, 0, 110, 120, int64_t(resp.size()), &r, 1);
  record_data(write, fd, Direction::kSend, format::DataCall::kSend, 0, 105, 130, int64_t(req.size()), &q, 1);
  const DataStart next = begin_data(fd, Direction::kSend, false);
  record_data(next, fd, Direction::kSend, format::DataCall::kSend, 0, 140, 141, int64_t(req2.size()), &q2, 1);
  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 4u);  // socket, read, write, write
  for (size_t i = before + 1; i < evs.size(); ++i) {
    const auto& d = as<format::DataEvent>(evs[i]);
    EXPECT_TRUE(d.flags & format::kDataDirChange) << i - before;
    EXPECT_NE(d.capture_kind, uint8_t(format::CaptureKind::kNone)) << i - before;
  }
}

TEST(RecorderEvents, DupAndCloseKeepTheConnection) {
  trace_path();
  const size_t before = events().size();
  on_socket(701, AF_INET6, SOCK_STREAM, 0, 1);
  const uint32_t conn = conn_of_fd(701);
  on_dup(701, 702, 2);
  EXPECT_EQ(conn_of_fd(702), conn);
  EXPECT_EQ(untrack_for_close(701), conn);
  record_close(701, conn, 0, format::CloseHow::kClose, 3);
  EXPECT_EQ(conn_of_fd(701), 0u);
  EXPECT_EQ(conn_of_fd(702), conn);
  EXPECT_EQ(untrack_for_close(702), conn);
  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 3u);
  const auto dup = as<format::DupEvent>(evs[before + 1]);
  EXPECT_EQ(dup.oldfd, 701);
  EXPECT_EQ(dup.newfd, 702);
}

// Unix stream sockets become connections at connect()/accept(), not at socket(): most are never
// connected, or connected only by the C library to its own daemons.
TEST(RecorderEvents, UdpAndUnconnectedUnixSocketsAreNotTracked) {
  on_socket(703, AF_INET, SOCK_DGRAM, 0, 1);
  on_socket(704, AF_UNIX, SOCK_STREAM, 0, 1);
  EXPECT_EQ(conn_of_fd(703), 0u);
  EXPECT_EQ(conn_of_fd(704), 0u);
}

TEST(RecorderEvents, UnixConnectAndAcceptCarryThePath) {
  trace_path();
  testing::TempDir dir;
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  const std::string path = dir.file("s");
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  const int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  const int cfd = socket(AF_UNIX, SOCK_STREAM, 0);
  const size_t before = events().size();
  ASSERT_EQ(connect(cfd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  on_connect(cfd, reinterpret_cast<sockaddr*>(&addr), len, 100, 110, 0, 0);
  const int afd = accept(lfd, nullptr, nullptr);
  ASSERT_GE(afd, 0);
  on_accept(lfd, afd, nullptr, 0, 120, 130);
  // glibc's nscd socket: tried by every lookup, never a connection of the program's.
  sockaddr_un nscd = {};
  nscd.sun_family = AF_UNIX;
  strcpy(nscd.sun_path, "/var/run/nscd/socket");
  const int nfd = socket(AF_UNIX, SOCK_STREAM, 0);
  on_connect(nfd, reinterpret_cast<sockaddr*>(&nscd), sizeof(nscd), 140, 150, -1, ENOENT);
  EXPECT_EQ(conn_of_fd(nfd), 0u);

  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 5u);  // the client's end has no name: no local path for it
  const auto* e = &evs[before];
  EXPECT_EQ(as<format::SocketEvent>(e[0]).domain, AF_UNIX);
  EXPECT_EQ(as<format::ConnectEvent>(e[1]).peer.family, AF_UNIX);
  auto path_of = [](const std::vector<uint8_t>& ev) {
    const auto p = as<format::AddrPathEvent>(ev);
    return std::to_string(p.which) + " " +
           std::string(reinterpret_cast<const char*>(ev.data()) + sizeof(p), p.path_len);
  };
  EXPECT_EQ(kind(e[2]), static_cast<uint16_t>(EventKind::kAddrPath));
  EXPECT_EQ(path_of(e[2]), "0 " + path);
  const auto a = as<format::AcceptEvent>(e[3]);
  EXPECT_EQ(a.h.kind, static_cast<uint16_t>(EventKind::kAccept));
  EXPECT_EQ(a.fd, afd);
  EXPECT_EQ(a.listen_fd, lfd);
  EXPECT_EQ(a.local.family, AF_UNIX);
  EXPECT_EQ(a.dur_ns, 10u);
  EXPECT_NE(a.h.conn, as<format::ConnectEvent>(e[1]).h.conn);
  EXPECT_EQ(conn_of_fd(afd), a.h.conn);
  EXPECT_EQ(path_of(e[4]), "1 " + path);  // the accepted end is the listening path
  for (int fd : {cfd, afd}) record_close(fd, untrack_for_close(fd), 0, format::CloseHow::kClose, 160);
  close(cfd);
  close(afd);
  close(lfd);
  close(nfd);
}

TEST(RecorderEvents, DnsRecordsHostAndDistinctAddresses) {
  trace_path();
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  ASSERT_EQ(getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
  format::Addr addrs[8];
  const int n = collect_addrs(res, addrs, 8);
  freeaddrinfo(res);
  ASSERT_EQ(n, 1);
  const size_t before = events().size();
  record_dns(format::DnsCall::kGetaddrinfo, "example.test", 10, 25, 0, addrs, n);
  const auto evs = events();
  ASSERT_EQ(evs.size() - before, 1u);
  const auto d = as<format::DnsEvent>(evs[before]);
  EXPECT_EQ(d.dur_ns, 15u);
  EXPECT_EQ(d.naddr, 1u);
  EXPECT_EQ(d.addrs[0].family, AF_INET);
  EXPECT_EQ(d.addrs[0].ip[0], 127);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(evs[before].data()) + sizeof(d), d.host_len),
            "example.test");
}

}  // namespace
}  // namespace httptrace
