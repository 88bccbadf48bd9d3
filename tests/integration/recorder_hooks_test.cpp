// The recorder's hooks on programs built to hit their hard cases (tests/clients/hooks_client.cpp):
// thread interleavings, raw-syscall closes. These read the raw trace (the unit tests' reader,
// independent of the analyzer) so they check exactly what was recorded.
#include <sys/stat.h>

#include <map>
#include <set>

#include "tests/integration/fixture.h"
#include "tests/unit/interpose_test_trace.h"

namespace httptrace::itest {
namespace {

using format::EventKind;
using httptrace::testing::as;

struct Event {
  uint16_t kind;
  uint32_t conn;
  std::vector<uint8_t> bytes;
  template <typename T>
  T get() const { return as<T>(bytes); }
  // The bytes after the fixed part of a DataEvent.
  std::string capture() const {
    const auto d = get<format::DataEvent>();
    return std::string(reinterpret_cast<const char*>(bytes.data()) + sizeof(format::DataEvent),
                       d.cap_len);
  }
};

// Every event of one trace file, segment by segment (one thread's events stay in order).
std::vector<Event> read_events(const fs::path& file) {
  std::vector<Event> out;
  const auto v = httptrace::testing::parse_trace(file.string());
  for (const auto& s : v.segments) {
    for (const auto& e : s.events) {
      const auto h = as<format::EventHeader>(e);
      out.push_back({h.kind, h.conn, e});
    }
  }
  return out;
}

std::vector<fs::path> traces(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& f : files_in(dir)) {
    if (f.filename().string().find(".trace") != std::string::npos) out.push_back(f);
  }
  return out;
}

class RecorderHooks : public TracedTest {
 protected:
  std::string hooks_client() const { return (paths().build / "tests" / "hooks_client").string(); }
  void SetUp() override {
    TracedTest::SetUp();
    ASSERT_TRUE(fs::exists(hooks_client())) << "run make integration";
  }
  // The single trace file a run left; fails the test when there is not exactly one.
  std::vector<Event> only_trace() {
    const auto files = traces(dir_.path());
    EXPECT_EQ(files.size(), 1u) << last_traced_.describe();
    if (files.size() != 1) return {};
    return read_events(files[0]);
  }
};

// 7.17: the response is read by one thread while another is still inside send() of the request
// (Java's HttpClient does this): both captures are recorded.
TEST_F(RecorderHooks, ResponseReadWhileTheRequestIsStillBeingSent) {
  const fs::path fifo = dir_ / "go";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Child server;
  std::string error, line;
  ASSERT_TRUE(server.start({hooks_client(), "early-server", fifo.string()}, {}, false, &error))
      << error;
  ASSERT_TRUE(server.read_line(&line, milliseconds(10000)));
  ASSERT_EQ(line.rfind("PORT ", 0), 0u) << line;
  const std::string port = line.substr(5);

  RunResult r = traced({hooks_client(), "early-response", port, fifo.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out,
            "first: HTTP/1.1 200 OK 2\nearly: HTTP/1.1 200 OK 2, read while sending: yes\n");
  EXPECT_EQ(server.wait(milliseconds(10000)).exit_code, 0);

  std::vector<std::string> requests, responses;
  for (const Event& e : only_trace()) {
    if (e.kind != static_cast<uint16_t>(EventKind::kData)) continue;
    const auto d = e.get<format::DataEvent>();
    if (d.capture_kind == static_cast<uint8_t>(format::CaptureKind::kHttpReq)) {
      requests.push_back(e.capture().substr(0, e.capture().find("\r\n")));
    }
    if (d.capture_kind == static_cast<uint8_t>(format::CaptureKind::kHttpResp)) {
      responses.push_back(e.capture());
    }
  }
  EXPECT_EQ(requests, (std::vector<std::string>{"GET /first HTTP/1.1", "POST /upload HTTP/1.1"}));
  EXPECT_EQ(responses,
            (std::vector<std::string>{"HTTP/1.1 200 OK\r\nConnection: keep-alive",
                                      "HTTP/1.1 200 OK\r\nConnection: keep-alive"}));
}

// 7.8: a socket closed by a raw system call, its number then handed out by dup(),
// fcntl(F_DUPFD) or a UDP socket(): the file's bytes are not the socket's, and the old
// connection is closed.
TEST_F(RecorderHooks, NumberReusedAfterARawCloseIsNotTheOldSocket) {
  const fs::path file = dir_ / "data.txt";
  RunResult r = traced({hooks_client(), "rawclose", server_.port_str(), file.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.size() > 0 && std::count(r.out.begin(), r.out.end(), '\n') == 3, true) << r.out;

  std::set<uint32_t> sockets, closed;
  int sends = 0;
  for (const Event& e : only_trace()) {
    if (e.kind == static_cast<uint16_t>(EventKind::kSocket)) sockets.insert(e.conn);
    if (e.kind == static_cast<uint16_t>(EventKind::kClose)) closed.insert(e.conn);
    if (e.kind == static_cast<uint16_t>(EventKind::kData) &&
        e.get<format::DataEvent>().dir == static_cast<uint8_t>(format::Direction::kSend)) {
      ++sends;
      EXPECT_NE(e.get<format::DataEvent>().result, 11) << "the file's write taken for the socket's";
    }
  }
  EXPECT_EQ(sockets.size(), 3u);
  EXPECT_EQ(sends, 3);
  EXPECT_EQ(closed, sockets) << "each raw-closed socket is closed when its number is reused";
}

}  // namespace
}  // namespace httptrace::itest
