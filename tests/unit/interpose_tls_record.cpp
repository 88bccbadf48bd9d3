// TLS plaintext turns (tls/record.h): a plaintext call begins its direction before the real call,
// so a response read while the request's SSL_write has not returned yet is still a turn and keeps
// its status capture (issue 7 item 17), and a read that moved nothing gives the turn back.
#include "interpose/tls/record.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "interpose/record/events.h"
#include "interpose/record/lifecycle.h"
#include "interpose_test_trace.h"

namespace httptrace::tls {
namespace {

using format::Direction;
using testing::as;

// The recorder is process-wide: reuse the file another test of this binary opened, if any.
std::string trace_path() {
  static testing::TempDir dir;
  if (!trace_writer().active()) {
    setenv("HTTPTRACE_OUTPUT", (dir.path() + "/tls-record.%p.trace").c_str(), 1);
    unsetenv("HTTPTRACE_DISABLE");
    EXPECT_EQ(start_recorder(), RecorderState::kRecording);
    EXPECT_TRUE(open_trace_file());
  }
  return trace_writer().path();
}

// This thread's data events on conn, in order.
std::vector<format::DataEvent> data_events(uint32_t conn) {
  std::vector<format::DataEvent> out;
  for (const auto& s : testing::parse_trace(trace_path()).segments) {
    if (s.header.tid != gettid()) continue;
    for (const auto& ev : s.events) {
      const auto& h = as<format::EventHeader>(ev);
      if (h.kind == static_cast<uint16_t>(format::EventKind::kData) && h.conn == conn)
        out.push_back(as<format::DataEvent>(ev));
    }
  }
  return out;
}

class TlsPlaintextTurns : public ::testing::Test {
 protected:
  void SetUp() override {
    trace_path();
    sessions_reset_for_test();
    on_socket(fd_, AF_INET, SOCK_STREAM, 0, 100);
    s_ = session_get(reinterpret_cast<const void*>(0x5000));
    ASSERT_NE(s_, nullptr);
    s_->fd = fd_;
    s_->conn = conn_of_fd(fd_);
    ASSERT_NE(s_->conn, 0u);
  }
  void TearDown() override {
    httptrace::record_close(fd_, untrack_for_close(fd_), 0, format::CloseHow::kClose, 900);
    sessions_reset_for_test();
  }
  void plain(const DataStart& st, Direction dir, const std::string& bytes, uint64_t t) {
    record_plaintext(st, *s_, dir,
                     dir == Direction::kSend ? format::DataCall::kSslWrite
                                             : format::DataCall::kSslRead,
                     t, t + 1, static_cast<int64_t>(bytes.size()), bytes.data());
  }
  const int fd_ = 741;
  Session* s_ = nullptr;
  const std::string req_ = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string resp_ = "HTTP/1.1 200 OK\r\n\r\n";
};

TEST_F(TlsPlaintextTurns, ResponseReadWhileTheRequestWriteIsStillInsideIsATurn) {
  plain(begin_plaintext(*s_, Direction::kSend), Direction::kSend, req_, 200);
  plain(begin_plaintext(*s_, Direction::kRecv), Direction::kRecv, resp_, 300);
  // The second request's SSL_write begins, and the response is read before it returns.
  const DataStart writing = begin_plaintext(*s_, Direction::kSend);
  plain(begin_plaintext(*s_, Direction::kRecv), Direction::kRecv, resp_, 500);
  plain(writing, Direction::kSend, req_, 400);
  const auto evs = data_events(s_->conn);
  ASSERT_EQ(evs.size(), 4u);
  for (const auto& d : evs) EXPECT_TRUE(d.flags & format::kDataTlsPlaintext);
  const auto& early = evs[2];
  EXPECT_EQ(early.dir, static_cast<uint8_t>(Direction::kRecv));
  EXPECT_TRUE(early.flags & format::kDataDirChange);
  EXPECT_EQ(early.capture_kind, static_cast<uint8_t>(format::CaptureKind::kHttpResp));
}

TEST_F(TlsPlaintextTurns, AReadThatMovedNothingGivesTheTurnBack) {
  plain(begin_plaintext(*s_, Direction::kSend), Direction::kSend, req_, 200);
  plain(begin_plaintext(*s_, Direction::kRecv), Direction::kRecv, resp_, 300);
  // A non-blocking SSL_write that could not send (EAGAIN), then the real one: one request.
  const DataStart again = begin_plaintext(*s_, Direction::kSend);
  record_plaintext(again, *s_, Direction::kSend, format::DataCall::kSslWrite, 400, 401, -EAGAIN,
                   req_.data());
  plain(begin_plaintext(*s_, Direction::kRecv), Direction::kRecv, resp_, 450);
  const auto evs = data_events(s_->conn);
  ASSERT_EQ(evs.size(), 4u);
  EXPECT_FALSE(evs[3].flags & format::kDataDirChange) << "the EAGAIN write was no request";
}

TEST_F(TlsPlaintextTurns, AnUnboundSessionStartsNothingAndIsRecordedFromItsSlot) {
  s_->conn = 0;
  const DataStart st = begin_plaintext(*s_, Direction::kSend);
  EXPECT_EQ(st.word, 0u);
  s_->conn = conn_of_fd(fd_);  // bound by the call itself
  plain(st, Direction::kSend, req_, 200);
  const auto evs = data_events(s_->conn);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(evs[0].flags & format::kDataDirChange);
  EXPECT_EQ(evs[0].capture_kind, static_cast<uint8_t>(format::CaptureKind::kHttpReq));
}

// A session whose library does not know its descriptor (curl's own BIO) is bound to the socket
// its wire I/O went through. Other bytes moved on the thread inside the same call (a signal
// handler's send, a BIO callback logging over TCP) must not take the session to their socket.
TEST_F(TlsPlaintextTurns, ASessionIsBoundByItsTlsRecordsNotByOtherBytesInTheCall) {
  const int other = 742;
  on_socket(other, AF_INET, SOCK_STREAM, 0, 110);
  ASSERT_NE(conn_of_fd(other), 0u);
  s_->conn = 0;
  s_->fd = -1;
  auto wire = [](int fd, const std::string& bytes, uint64_t t) {
    iovec v = {const_cast<char*>(bytes.data()), bytes.size()};
    record_data(fd, Direction::kSend, format::DataCall::kSend, 0, t, t + 1,
                static_cast<int64_t>(bytes.size()), &v, 1);
  };
  {
    CallGuard call(nullptr);
    wire(fd_, std::string("\x16\x03\x01\x00\x05hello", 10), 200);  // the ClientHello's record
    wire(other, "x", 210);                                            // a signal handler's byte
    wire(other, "log line\n", 220);                                   // a logging callback's
    EXPECT_TRUE(bind_socket(*s_, -1));
  }
  EXPECT_EQ(s_->fd, fd_);
  EXPECT_EQ(s_->conn, conn_of_fd(fd_));
  httptrace::record_close(other, untrack_for_close(other), 0, format::CloseHow::kClose, 900);
}

}  // namespace
}  // namespace httptrace::tls
