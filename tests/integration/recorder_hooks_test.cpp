// The recorder's hooks on programs built to hit their hard cases (tests/clients/hooks_client.cpp):
// thread interleavings, raw-syscall closes. These read the raw trace (the unit tests' reader,
// independent of the analyzer) so they check exactly what was recorded.
#include <sys/socket.h>
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

format::FileHeader header_of(const fs::path& file) {
  return httptrace::testing::parse_trace(file.string()).header;
}

std::string argv_of(const fs::path& file) {
  const auto h = header_of(file);
  std::string a(h.argv, h.argv_len);
  for (char& c : a) c = c == '\0' ? ' ' : c;
  return a;
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
// fcntl(F_DUPFD), a UDP socket(), inotify_init1() or SCM_RIGHTS: the file's bytes are not the
// socket's, and the old connection is closed.
TEST_F(RecorderHooks, NumberReusedAfterARawCloseIsNotTheOldSocket) {
  const fs::path file = dir_ / "data.txt";
  RunResult r = traced({hooks_client(), "rawclose", server_.port_str(), file.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5) << r.out;

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
  EXPECT_EQ(sockets.size(), 5u);
  EXPECT_EQ(sends, 5);
  EXPECT_EQ(closed, sockets) << "each raw-closed socket is closed when its number is reused";
}

// An HTTP/1.1 server on a Unix socket (python3's http.server handler on a UnixStreamServer),
// serving one request per connection until its stdin closes.
constexpr char kUnixServer[] = R"(
import http.server, socketserver, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"unix-ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
    def address_string(self): return "unix"
s = socketserver.UnixStreamServer(sys.argv[1], H)
threading.Thread(target=s.serve_forever, daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
)";

std::string path_of(const Event& e) {
  const auto p = e.get<format::AddrPathEvent>();
  return std::string(reinterpret_cast<const char*>(e.bytes.data()) + sizeof(p), p.path_len);
}

// 7.19: HTTP over a Unix socket (curl --unix-socket, as to /var/run/docker.sock) is a connection
// like a TCP one, with the socket's path.
TEST_F(RecorderHooks, UnixSocketClientIsTracedLikeTcp) {
  const std::string sock = (dir_ / "api.sock").string();
  Child server;
  std::string error, line;
  RunOptions o;
  ASSERT_TRUE(server.start({paths().python.string(), "-c", kUnixServer, sock}, o, true, &error))
      << error;
  ASSERT_TRUE(server.read_line(&line, milliseconds(10000)));
  ASSERT_EQ(line, "READY");
  RunResult r = traced({"curl", "-sS", "--unix-socket", sock, "http://localhost/x"});
  server.close_stdin();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "unix-ok\n");

  const auto evs = only_trace();
  std::vector<std::string> seen;
  uint32_t conn = 0;
  for (const Event& e : evs) {
    if (e.kind == static_cast<uint16_t>(EventKind::kSocket)) {
      EXPECT_EQ(e.get<format::SocketEvent>().domain, AF_UNIX);
      conn = e.conn;
      seen.push_back("socket");
    } else if (e.kind == static_cast<uint16_t>(EventKind::kConnect)) {
      const auto c = e.get<format::ConnectEvent>();
      EXPECT_EQ(c.error, 0);
      EXPECT_EQ(c.peer.family, AF_UNIX);
      seen.push_back("connect");
    } else if (e.kind == static_cast<uint16_t>(EventKind::kAddrPath)) {
      EXPECT_EQ(e.get<format::AddrPathEvent>().which, 0);
      EXPECT_EQ(path_of(e), sock);
      seen.push_back("path");
    } else if (e.kind == static_cast<uint16_t>(EventKind::kData) &&
               e.get<format::DataEvent>().capture_kind != 0) {
      seen.push_back(e.capture().substr(0, e.capture().find("\r\n")));
    } else if (e.kind == static_cast<uint16_t>(EventKind::kClose)) {
      seen.push_back("close");
    }
    if (e.kind != static_cast<uint16_t>(EventKind::kDns)) {
      EXPECT_EQ(e.conn, conn);
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"socket", "connect", "path", "GET /x HTTP/1.1",
                                            "HTTP/1.0 200 OK", "close"}));
}

// 7.19: the server side. A traced python3 http.server: the listening socket is no connection,
// each accepted one is (an AcceptEvent), and its request is read, its response written.
TEST_F(RecorderHooks, AcceptedConnectionsAreRecorded) {
  Child server;
  std::string error, line;
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir_.path());
  ASSERT_TRUE(server.start({paths().python.string(), "-u", "-m", "http.server", "0", "--bind",
                            "127.0.0.1", "--directory", dir_.path().string()},
                           o, false, &error))
      << error;
  ASSERT_TRUE(server.read_line(&line, milliseconds(10000)));
  const size_t at = line.find(" port ");
  ASSERT_NE(at, std::string::npos) << line;
  const int port = std::atoi(line.c_str() + at + 6);
  RunResult r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://127.0.0.1:" + std::to_string(port) + "/"});
  EXPECT_EQ(r.out, "200") << r.describe();
  server.signal(SIGINT);
  server.wait(milliseconds(10000));

  const auto evs = only_trace();
  std::map<uint32_t, std::vector<std::string>> by_conn;
  int listen_fd = -1;
  for (const Event& e : evs) {
    if (e.kind == static_cast<uint16_t>(EventKind::kSocket)) {
      listen_fd = e.get<format::SocketEvent>().fd;
      by_conn[e.conn].push_back("socket");
    } else if (e.kind == static_cast<uint16_t>(EventKind::kAccept)) {
      const auto a = e.get<format::AcceptEvent>();
      EXPECT_EQ(a.listen_fd, listen_fd);
      EXPECT_EQ(a.peer.family, AF_INET);
      EXPECT_EQ(a.local.family, AF_INET);
      EXPECT_EQ(a.local.port, port);
      EXPECT_NE(a.peer.port, port);
      by_conn[e.conn].push_back("accept");
    } else if (e.kind == static_cast<uint16_t>(EventKind::kData)) {
      const auto d = e.get<format::DataEvent>();
      if (d.capture_kind != 0) {
        by_conn[e.conn].push_back(
            std::string(d.dir == static_cast<uint8_t>(format::Direction::kRecv) ? "in " : "out ") +
            e.capture().substr(0, e.capture().find("\r\n")));
      }
    } else if (e.kind == static_cast<uint16_t>(EventKind::kClose)) {
      by_conn[e.conn].push_back("close");
    }
  }
  ASSERT_EQ(by_conn.size(), 2u);
  // The listening socket: created, never connected, never read or written.
  EXPECT_EQ(by_conn.begin()->second, (std::vector<std::string>{"socket"}));
  const auto& accepted = std::next(by_conn.begin())->second;
  ASSERT_GE(accepted.size(), 3u);
  EXPECT_EQ(accepted[0], "accept");
  EXPECT_EQ(accepted[1], "in GET / HTTP/1.1");
  EXPECT_EQ(accepted[2], "out HTTP/1.0 200 OK");
}

// The server side over a Unix socket: the accepted connection carries the listening path.
TEST_F(RecorderHooks, AcceptOnAUnixSocketRecordsItsPath) {
  const std::string sock = (dir_ / "srv.sock").string();
  Child server;
  std::string error, line;
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir_.path());
  ASSERT_TRUE(server.start({paths().python.string(), "-c", kUnixServer, sock}, o, true, &error))
      << error;
  ASSERT_TRUE(server.read_line(&line, milliseconds(10000)));
  RunResult r = run({"curl", "-sS", "--unix-socket", sock, "http://localhost/y"});
  EXPECT_EQ(r.out, "unix-ok\n") << r.describe();
  server.close_stdin();
  EXPECT_EQ(server.wait(milliseconds(10000)).exit_code, 0);

  int accepts = 0;
  std::vector<std::string> paths_seen, captures;
  for (const Event& e : only_trace()) {
    if (e.kind == static_cast<uint16_t>(EventKind::kAccept)) {
      ++accepts;
      EXPECT_EQ(e.get<format::AcceptEvent>().local.family, AF_UNIX);
    }
    if (e.kind == static_cast<uint16_t>(EventKind::kAddrPath)) {
      paths_seen.push_back(std::to_string(e.get<format::AddrPathEvent>().which) + " " + path_of(e));
    }
    if (e.kind == static_cast<uint16_t>(EventKind::kData) &&
        e.get<format::DataEvent>().capture_kind != 0) {
      captures.push_back(e.capture().substr(0, e.capture().find("\r\n")));
    }
  }
  EXPECT_EQ(accepts, 1);
  EXPECT_EQ(paths_seen, (std::vector<std::string>{"1 " + sock}));  // the client end has no name
  EXPECT_EQ(captures, (std::vector<std::string>{"GET /y HTTP/1.1", "HTTP/1.0 200 OK"}));
}


// 7.14: children started with an environment of their own (execve with a custom envp,
// posix_spawn) are traced; HTTPTRACE_FOLLOW=0 leaves them alone.
TEST_F(RecorderHooks, ChildrenWithTheirOwnEnvironmentAreTraced) {
  RunResult r = traced({hooks_client(), "exec-env", server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // Each child sees exactly the environment it was given: what we added to be loaded and
  // configured there is taken out again before its main.
  EXPECT_EQ(r.out,
            "get: HTTP/1.1 200 OK 26, env PATH=/usr/bin:/bin\nexecve child: 0\n"
            "get: HTTP/1.1 200 OK 26, env FOO=bar\nposix_spawn child: 0\n"
            "get: HTTP/1.1 200 OK 26, env A=b\nvfork child: 0\n");
  const auto files = traces(dir_.path());
  ASSERT_EQ(files.size(), 3u) << "one per child; the parent made no network call";
  for (const auto& f : files) {
    EXPECT_EQ(argv_of(f), "hooks_client get " + server_.port_str() + " ");
    int requests = 0;
    for (const Event& e : read_events(f)) {
      requests += e.kind == static_cast<uint16_t>(EventKind::kData) &&
                  e.get<format::DataEvent>().capture_kind ==
                      static_cast<uint8_t>(format::CaptureKind::kHttpReq);
    }
    EXPECT_EQ(requests, 1) << f;
  }
}

TEST_F(RecorderHooks, FollowZeroLeavesSuchChildrenUntraced) {
  RunResult r = traced({hooks_client(), "exec-env", server_.port_str()}, {{"HTTPTRACE_FOLLOW", "0"}});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(traces(dir_.path()).size(), 0u);
  EXPECT_EQ(r.out, untraced({hooks_client(), "exec-env", server_.port_str()}).out);
}

// 7.14: a keep-alive socket kept across exec is adopted by the new image (kExecInherit) and its
// requests recorded there; a close-on-exec socket is recorded as closed at the exec.
TEST_F(RecorderHooks, SocketKeptAcrossExecIsAdoptedByTheNewImage) {
  RunResult r = traced({hooks_client(), "exec-keep", server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out,
            "kept: HTTP/1.1 200 OK 26\nclose-on-exec: HTTP/1.1 200 OK 26\n"
            "reuse 0: HTTP/1.1 200 OK 26\nreuse 1: HTTP/1.1 200 OK 26\n"
            "reuse 2: HTTP/1.1 200 OK 26\nreuse 3: HTTP/1.1 200 OK 26\n"
            "reuse 4: HTTP/1.1 200 OK 26\nenv []\n");
  const auto files = traces(dir_.path());
  ASSERT_EQ(files.size(), 2u);
  fs::path before = files[0], after = files[1];
  if (argv_of(before).find("reuse") != std::string::npos) std::swap(before, after);
  EXPECT_EQ(header_of(before).pid, header_of(after).pid);

  // The first image: two connections; at the exec only the close-on-exec one is closed.
  std::vector<uint32_t> conns;
  int kept_fd = -1;
  std::set<uint32_t> closed;
  bool exec_seen = false;
  for (const Event& e : read_events(before)) {
    if (e.kind == static_cast<uint16_t>(EventKind::kSocket)) {
      conns.push_back(e.conn);
      if (kept_fd < 0) kept_fd = e.get<format::SocketEvent>().fd;
    }
    if (e.kind == static_cast<uint16_t>(EventKind::kExec)) exec_seen = true;
    if (e.kind == static_cast<uint16_t>(EventKind::kClose)) {
      EXPECT_TRUE(exec_seen) << "closed at the exec, not before";
      closed.insert(e.conn);
    }
  }
  ASSERT_EQ(conns.size(), 2u);
  EXPECT_TRUE(exec_seen);
  EXPECT_EQ(closed, (std::set<uint32_t>{conns[1]}));

  // The new image adopts the kept one and records its five requests on it.
  const auto evs = read_events(after);
  ASSERT_FALSE(evs.empty());
  ASSERT_EQ(evs[0].kind, static_cast<uint16_t>(EventKind::kExecInherit));
  const auto inh = evs[0].get<format::InheritEvent>();
  EXPECT_EQ(inh.fd, kept_fd);
  EXPECT_EQ(inh.parent_conn, conns[0]);
  int requests = 0, closes = 0;
  for (const Event& e : evs) {
    if (e.kind == static_cast<uint16_t>(EventKind::kData)) {
      EXPECT_EQ(e.conn, inh.h.conn);
      requests += e.get<format::DataEvent>().capture_kind ==
                  static_cast<uint8_t>(format::CaptureKind::kHttpReq);
    }
    closes += e.kind == static_cast<uint16_t>(EventKind::kClose);
  }
  EXPECT_EQ(requests, 5);
  EXPECT_EQ(closes, 1);
}

// 7.16 and 7.18 end to end: curl with a presigned URL. The request line keeps its version
// (target cut, flagged), the Host line is whole, and the signature is masked in the argv.
TEST_F(RecorderHooks, PresignedUrlIsRecognisableAndItsSignatureMasked) {
  const std::string sig(64, 'f');
  const std::string target = "/a?X-Amz-Credential=" + std::string(400, 'c') +
                             "&X-Amz-Signature=" + sig;
  RunResult r = traced({"curl", "-sS", "-o", "/dev/null", "-H", "X-Secret: hunter2",
                        "http://localhost:" + server_.port_str() + target});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto files = traces(dir_.path());
  ASSERT_EQ(files.size(), 1u);
  const std::string argv = argv_of(files[0]);
  EXPECT_EQ(argv.find(sig), std::string::npos) << argv;
  EXPECT_EQ(argv.find("hunter2"), std::string::npos) << argv;
  EXPECT_NE(argv.find("X-Amz-Signature=" + std::string(64, '*')), std::string::npos) << argv;
  int requests = 0;
  for (const Event& e : read_events(files[0])) {
    if (e.kind != static_cast<uint16_t>(EventKind::kData)) continue;
    const auto d = e.get<format::DataEvent>();
    if (d.capture_kind != static_cast<uint8_t>(format::CaptureKind::kHttpReq)) continue;
    ++requests;
    EXPECT_TRUE(d.flags & format::kDataCaptureCut);
    EXPECT_EQ(e.capture(), "GET " + target.substr(0, format::kTargetMax) +
                               " HTTP/1.1\r\nHost: localhost:" + server_.port_str());
  }
  EXPECT_EQ(requests, 1);
}

}  // namespace
}  // namespace httptrace::itest
