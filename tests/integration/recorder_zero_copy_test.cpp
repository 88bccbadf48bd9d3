// Transfers without a user buffer or with several messages per call (sendfile, splice,
// sendmmsg/recvmmsg; interpose/hooks/zero_copy.cpp and net.cpp) on real programs: python's
// socket.sendfile, nginx serving a static file with `sendfile on` (master + worker, epoll,
// accept4), and tests/clients/mmsg_client. Each traced run must behave exactly as the untraced
// one; what it sent is checked against the peer's own count, in the JSON export and in the raw
// trace (the unit tests' reader, independent of the analyzer).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/integration/fixture.h"
#include "tests/unit/interpose_test_trace.h"

namespace httptrace::itest {
namespace {

using httptrace::testing::as;

// DataEvents of every trace file in dir, as (call, result) pairs.
std::vector<std::pair<format::DataCall, int64_t>> data_calls(const fs::path& dir) {
  std::vector<std::pair<format::DataCall, int64_t>> out;
  for (const auto& f : files_in(dir)) {
    for (const auto& s : httptrace::testing::parse_trace(f.string()).segments) {
      for (const auto& ev : s.events) {
        if (as<format::EventHeader>(ev).kind != static_cast<uint16_t>(format::EventKind::kData))
          continue;
        const auto d = as<format::DataEvent>(ev);
        out.emplace_back(static_cast<format::DataCall>(d.call), d.result);
      }
    }
  }
  return out;
}

int64_t sum_of(const std::vector<std::pair<format::DataCall, int64_t>>& calls,
               format::DataCall which, size_t* count = nullptr) {
  int64_t sum = 0;
  size_t n = 0;
  for (const auto& [call, result] : calls) {
    if (call != which || result <= 0) continue;
    sum += result;
    ++n;
  }
  if (count != nullptr) *count = n;
  return sum;
}

// Accepts one connection, counts what arrives until EOF, prints "GOT <n>".
constexpr char kSink[] =
    "import socket\n"
    "ls = socket.create_server(('127.0.0.1', 0))\n"
    "ls.settimeout(20)\n"
    "print('PORT', ls.getsockname()[1], flush=True)\n"
    "c, _ = ls.accept()\n"
    "c.settimeout(20)\n"
    "n = 0\n"
    "while True:\n"
    "    d = c.recv(65536)\n"
    "    if not d: break\n"
    "    n += len(d)\n"
    "print('GOT', n, flush=True)\n";

// socket.sendfile on a blocking socket goes through os.sendfile, i.e. libc's sendfile.
constexpr char kSender[] =
    "import socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "with open(sys.argv[2], 'rb') as f:\n"
    "    print('SENT', s.sendfile(f), flush=True)\n"
    "s.close()\n";

class ZeroCopy : public TracedTest {
 protected:
  // One sendfile run (options o) against a fresh sink; returns the sink's port, *got what it
  // counted.
  static int send_file(const fs::path& file, const RunOptions& o, RunResult* sender,
                       std::string* got) {
    Child sink;
    std::string error, line;
    if (!sink.start({paths().python.string(), "-c", kSink}, RunOptions{}, false, &error)) {
      ADD_FAILURE() << error;
      return 0;
    }
    if (!sink.read_line(&line, milliseconds{10000}) || line.rfind("PORT ", 0) != 0) {
      ADD_FAILURE() << "sink did not start: " << line << sink.wait(milliseconds{1000}).describe();
      return 0;
    }
    const std::string port = line.substr(5);
    *sender = run({paths().python.string(), "-c", kSender, port, file.string()}, o);
    EXPECT_TRUE(sink.read_line(got, milliseconds{20000})) << sink.wait(milliseconds{1000}).describe();
    EXPECT_EQ(sink.wait(milliseconds{10000}).exit_code, 0);
    return std::stoi(port);
  }
};

TEST_F(ZeroCopy, PythonSocketSendfileCountsTheWholeFile) {
  TempDir data;
  const fs::path file = data / "payload.bin";
  constexpr size_t kSize = 300007;  // no multiple of a page or a block
  {
    std::ofstream out(file, std::ios::binary);
    for (size_t i = 0; i < kSize; ++i) out.put(static_cast<char>(i * 7));
  }
  RunResult plain, r;
  std::string plain_got, got;
  send_file(file, RunOptions{}, &plain, &plain_got);
  ASSERT_EQ(plain.exit_code, 0) << plain.describe();
  RunOptions o;
  o.preload = true;
  o.env = trace_env(dir_.path());
  const int port = send_file(file, o, &r, &got);
  last_traced_ = r;
  ASSERT_GT(port, 0);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, plain.out);
  EXPECT_EQ(r.out, "SENT " + std::to_string(kSize) + "\n");
  EXPECT_EQ(got, "GOT " + std::to_string(kSize));
  EXPECT_EQ(got, plain_got);
  EXPECT_EQ(r.err, plain.err);

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, port);
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  EXPECT_EQ(conns[0]["bytes_sent"].get<uint64_t>(), kSize) << conns[0].dump(1);
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  size_t n = 0;
  EXPECT_EQ(sum_of(data_calls(dir_.path()), format::DataCall::kSendfile, &n), int64_t{kSize});
  EXPECT_GE(n, 1u) << "no sendfile event";
}

TEST_F(ZeroCopy, MmsgOverATcpPairUnchangedAndCounted) {
  const fs::path client = paths().build / "tests" / "mmsg_client";
  ASSERT_TRUE(fs::exists(client)) << client << " missing: run make integration";
  const RunResult plain = untraced({client.string()});
  ASSERT_EQ(plain.exit_code, 0) << plain.describe();
  const RunResult r = traced({client.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  // Every line but the first (the port the kernel gave) must be the same.
  auto body = [](const std::string& s) { return s.substr(s.find('\n') + 1); };
  EXPECT_EQ(body(r.out), body(plain.out));
  EXPECT_NE(r.out.find("request intact"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recvmmsg nothing pending: -1 EAGAIN buffer unset"), std::string::npos);
  EXPECT_NE(r.out.find("sendmmsg after peer closed: -1 EPIPE-or-ECONNRESET"), std::string::npos);
  EXPECT_EQ(r.err, plain.err);
  const int port = std::stoi(r.out.substr(5, r.out.find('\n') - 5));

  HT_EXPORT(doc, dir_.path());
  // The client end (peer = the listening port): its first exchange is the GET, answered 200;
  // the request line came from the first message of a sendmmsg, the status from a recvmmsg.
  auto out = connections_to(doc, port);
  ASSERT_EQ(out.size(), 1u) << doc.dump(1);
  SCOPED_TRACE(out[0].dump(1));
  ASSERT_FALSE(out[0]["requests"].empty());
  EXPECT_EQ(methods(out[0])[0], "GET");
  EXPECT_EQ(targets(out[0])[0], "/mmsg");
  EXPECT_EQ(statuses(out[0])[0], 200);
  EXPECT_EQ(out[0]["bytes_received"].get<uint64_t>(), 62u);
  // The accepted end: the 58-byte request in, the 62-byte response out.
  const std::string local = "127.0.0.1:" + std::to_string(port);
  const auto all = doc["connections"];
  auto in = std::find_if(all.begin(), all.end(), [&](const json& c) { return c["local"] == local; });
  ASSERT_NE(in, all.end()) << doc.dump(1);
  EXPECT_EQ((*in)["bytes_received"].get<uint64_t>(), 58u);
  EXPECT_EQ((*in)["bytes_sent"].get<uint64_t>(), 62u);

  const auto calls = data_calls(dir_.path());
  EXPECT_EQ(sum_of(calls, format::DataCall::kRecvmmsg), 58 + 62);
  size_t failed = 0;
  for (const auto& [call, result] : calls) failed += call == format::DataCall::kRecvmmsg && result == -EAGAIN;
  EXPECT_EQ(failed, 1u) << "the EAGAIN recvmmsg is recorded with its errno";
}

// Both directions of splice in one process, over a loopback TCP pair: pipe -> the connecting
// end, the accepted end -> another pipe. Prints what went through and whether it arrived intact.
constexpr char kSplicer[] =
    "import os, socket\n"
    "ls = socket.create_server(('127.0.0.1', 0))\n"
    "c = socket.create_connection(ls.getsockname())\n"
    "s, _ = ls.accept()\n"
    "r1, w1 = os.pipe()\n"
    "r2, w2 = os.pipe()\n"
    "data = bytes(range(256)) * 200\n"
    "sent, out = 0, b''\n"
    "while sent < len(data):\n"
    "    chunk = data[sent:sent + 16384]\n"
    "    os.write(w1, chunk)\n"
    "    n = 0\n"
    "    while n < len(chunk):\n"
    "        n += os.splice(r1, c.fileno(), len(chunk) - n)\n"
    "    sent += n\n"
    "    m = 0\n"
    "    while m < n:\n"
    "        k = os.splice(s.fileno(), w2, n - m)\n"
    "        m += k\n"
    "        out += os.read(r2, k)\n"
    "print('port', ls.getsockname()[1])\n"
    "print('spliced', sent, len(out), out == data)\n";

TEST_F(ZeroCopy, SpliceBothWaysIsCountedOnTheRightConnection) {
  const RunResult plain = untraced({paths().python.string(), "-c", kSplicer});
  ASSERT_EQ(plain.exit_code, 0) << plain.describe();
  const RunResult r = traced({paths().python.string(), "-c", kSplicer});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto body = [](const std::string& s) { return s.substr(s.find('\n') + 1); };
  EXPECT_EQ(body(r.out), body(plain.out));
  EXPECT_EQ(body(r.out), "spliced 51200 51200 True\n");
  const int port = std::stoi(r.out.substr(5, r.out.find('\n') - 5));

  HT_EXPORT(doc, dir_.path());
  auto out = connections_to(doc, port);
  ASSERT_EQ(out.size(), 1u) << doc.dump(1);
  EXPECT_EQ(out[0]["bytes_sent"].get<uint64_t>(), 51200u) << out[0].dump(1);
  const std::string local = "127.0.0.1:" + std::to_string(port);
  const auto all = doc["connections"];
  auto in = std::find_if(all.begin(), all.end(), [&](const json& c) { return c["local"] == local; });
  ASSERT_NE(in, all.end()) << doc.dump(1);
  EXPECT_EQ((*in)["bytes_received"].get<uint64_t>(), 51200u) << in->dump(1);
  const auto calls = data_calls(dir_.path());
  EXPECT_EQ(sum_of(calls, format::DataCall::kSpliceOut), 51200);
  EXPECT_EQ(sum_of(calls, format::DataCall::kSpliceIn), 51200);
}

// nginx in the foreground (daemon off), its error log on our pipe: the master's "start worker
// processes" line comes after its listening socket is bound, so it is the readiness signal.
class Nginx {
 public:
  Nginx(const fs::path& dir, const fs::path& root, const RunOptions& o) {
    port_ = free_port();
    const std::string d = dir.string();
    const fs::path conf = dir / "nginx.conf";
    std::ofstream(conf) << "pid " << d << "/nginx.pid;\n"
                        << "error_log /dev/stdout notice;\n"
                        << "daemon off;\n"
                        << "worker_processes 1;\n"
                        << "events { worker_connections 64; use epoll; }\n"
                        << "http {\n  access_log off;\n  sendfile on;\n"
                        << "  client_body_temp_path " << d << "/body;\n"
                        << "  proxy_temp_path " << d << "/proxy;\n"
                        << "  fastcgi_temp_path " << d << "/fastcgi;\n"
                        << "  uwsgi_temp_path " << d << "/uwsgi;\n"
                        << "  scgi_temp_path " << d << "/scgi;\n"
                        << "  server {\n    listen 127.0.0.1:" << port_ << ";\n"
                        << "    root " << root.string() << ";\n  }\n}\n";
    std::string error;
    if (!child_.start({"nginx", "-e", "/dev/stdout", "-p", d, "-c", conf.string()}, o, false,
                      &error)) {
      error_ = error;
      return;
    }
    std::string line;
    for (int i = 0; i < 50 && child_.read_line(&line, milliseconds{10000}); ++i) {
      log_ += line + "\n";
      if (line.find("start worker processes") != std::string::npos) {
        ready_ = true;
        return;
      }
    }
    error_ = "nginx did not start: " + log_;
  }
  bool ready() const { return ready_; }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  pid_t pid() { return child_.pid(); }
  // SIGQUIT: graceful shutdown, the worker finishing first. The whole log, with what came
  // before readiness.
  RunResult quit() {
    child_.signal(SIGQUIT);
    RunResult r = child_.wait(milliseconds{20000});
    r.out = log_ + r.out;
    return r;
  }

 private:
  static int free_port() {
    ClosedPort p;  // bound and released: nginx binds it a moment later
    return p.port();
  }
  Child child_;
  int port_ = 0;
  bool ready_ = false;
  std::string error_, log_;
};

// An error log with every number (times, pids, connection numbers) blanked, its lines sorted:
// the master's and the worker's lines interleave differently from run to run.
std::vector<std::string> shape(const std::string& log) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  std::string line;
  const std::regex digits("[0-9]+");
  while (std::getline(in, line)) lines.push_back(std::regex_replace(line, digits, "N"));
  std::sort(lines.begin(), lines.end());
  return lines;
}

struct CurlResult {
  RunResult run;
  uint64_t bytes = 0;  // size_download + size_header
  int local_port = 0;
};

CurlResult fetch(int port, const std::string& path) {
  CurlResult c;
  c.run = run({"curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{size_header} %{local_port}",
               "http://127.0.0.1:" + std::to_string(port) + path});
  std::istringstream in(c.run.out);
  uint64_t body = 0, head = 0;
  in >> body >> head >> c.local_port;
  c.bytes = body + head;
  return c;
}

TEST_F(ZeroCopy, NginxSendfileTracedBehavesAndCountsWhatCurlGot) {
  if (run({"sh", "-c", "command -v nginx && command -v curl"}).exit_code != 0)
    GTEST_SKIP() << "nginx or curl not installed";
  // Started as root, nginx's worker runs as nobody: it must read the files and write its trace.
  TempDir www, conf_plain, conf_traced;
  const fs::path traces = dir_ / "traces";
  fs::create_directory(traces);
  for (const fs::path& p : {www.path(), dir_.path(), traces}) {
    ASSERT_EQ(chmod(p.c_str(), p == traces ? 01777 : 0755), 0);
  }
  std::ofstream(www / "big.bin", std::ios::binary) << std::string(65536 + 123, 'x');

  Nginx plain(conf_plain.path(), www.path(), RunOptions{});
  ASSERT_TRUE(plain.ready()) << plain.error();
  const CurlResult plain_get = fetch(plain.port(), "/big.bin");
  const RunResult plain_end = plain.quit();
  ASSERT_EQ(plain_get.run.exit_code, 0) << plain_get.run.describe();
  ASSERT_EQ(plain_end.exit_code, 0) << plain_end.describe();

  RunOptions o;
  o.preload = true;
  o.env = trace_env(traces);
  Nginx nginx(conf_traced.path(), www.path(), o);
  ASSERT_TRUE(nginx.ready()) << nginx.error();
  const pid_t master = nginx.pid();
  const CurlResult get = fetch(nginx.port(), "/big.bin");
  const RunResult end = nginx.quit();
  last_traced_ = end;
  ASSERT_EQ(get.run.exit_code, 0) << get.run.describe();
  EXPECT_EQ(get.bytes, plain_get.bytes);
  EXPECT_EQ(end.exit_code, 0) << end.describe();
  EXPECT_EQ(end.signal, 0);
  EXPECT_EQ(shape(end.out), shape(plain_end.out)) << "traced log:\n" << end.out
                                                  << "untraced log:\n" << plain_end.out;
  EXPECT_EQ(end.err, plain_end.err);

  // One file per nginx process (the master and its worker), read without a warning.
  EXPECT_EQ(files_in(traces).size(), 2u);
  HT_EXPORT(doc, traces);
  EXPECT_EQ(doc["summary"]["processes"], 2);
  EXPECT_EQ(doc["summary"]["warnings"], 0);
  EXPECT_EQ(doc["summary"]["dropped_events"], 0);
  const std::string local = "127.0.0.1:" + std::to_string(nginx.port());
  const std::string peer = "127.0.0.1:" + std::to_string(get.local_port);
  std::vector<json> accepted;
  for (const json& c : doc["connections"])
    if (c["local"] == local && c["peer"] == peer) accepted.push_back(c);
  ASSERT_EQ(accepted.size(), 1u) << doc.dump(1);
  SCOPED_TRACE(accepted[0].dump(1));
  EXPECT_NE(accepted[0]["pid"].get<long>(), static_cast<long>(master)) << "accepted by the worker";
  EXPECT_EQ(accepted[0]["bytes_sent"].get<uint64_t>(), get.bytes);
  // The body went out through sendfile, the head through writev.
  size_t n = 0;
  EXPECT_EQ(sum_of(data_calls(traces), format::DataCall::kSendfile, &n), 65536 + 123);
  EXPECT_GE(n, 1u);
}

}  // namespace
}  // namespace httptrace::itest
