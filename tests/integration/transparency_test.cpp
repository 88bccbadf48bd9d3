// The recorder must not change what a program does: same stdout, same exit status, with or
// without LD_PRELOAD, and whatever state the HTTPTRACE_* environment is in.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include <algorithm>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

constexpr char kPythonTwoRequests[] = R"(
import http.client, sys
c = http.client.HTTPConnection("localhost", int(sys.argv[1]))
for path in ("/a", "/chunked/3"):
    c.request("GET", path)
    r = c.getresponse()
    print(path, r.status, r.read().decode())
)";

// Prints the descriptor numbers the program was given: the recorder's own descriptors must not
// take any of them.
constexpr char kPythonFds[] = R"(
import http.client, os, socket, sys
c = http.client.HTTPConnection("localhost", int(sys.argv[1]))
c.request("GET", "/a")
c.getresponse().read()
extra = socket.socket()
fd = os.open("/dev/null", os.O_RDONLY)
print(c.sock.fileno(), extra.fileno(), fd, os.dup(fd))
)";

constexpr char kNode[] = R"(
const http = require('http');
http.get({ host: 'localhost', port: Number(process.argv[1]), path: '/chunked/3' }, (res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { console.log(res.statusCode, JSON.stringify(body)); });
});
)";

class Transparency : public TracedTest {
 protected:
  // Runs argv untraced, then traced with extra environment, and compares what the program
  // showed the world. Returns the traced result for further checks.
  RunResult expect_same(const std::vector<std::string>& argv, const Env& extra = {}) {
    RunResult plain = untraced(argv);
    EXPECT_FALSE(plain.timed_out) << plain.describe();
    RunResult with = traced(argv, extra);
    EXPECT_FALSE(with.timed_out) << with.describe();
    EXPECT_EQ(with.exit_code, plain.exit_code) << "untraced:\n"
                                               << plain.describe() << "\ntraced:\n"
                                               << with.describe();
    EXPECT_EQ(with.signal, plain.signal);
    EXPECT_EQ(with.out, plain.out);
    return with;
  }

  std::vector<std::string> curl3() const {
    return {"curl", "-s", server_.url("/a"), server_.url("/chunked/4"), server_.url("/status/404")};
  }
};

TEST_F(Transparency, Curl) {
  RunResult r = expect_same(curl3());
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(Transparency, CurlRefusedExitStatus) {
  ClosedPort closed;
  RunResult r = expect_same({"curl", "-s", "http://127.0.0.1:" + closed.port_str() + "/"});
  EXPECT_EQ(r.exit_code, 7);  // CURLE_COULDNT_CONNECT, both ways
}

TEST_F(Transparency, Python) {
  RunResult r = expect_same({paths().python.string(), "-c", kPythonTwoRequests, server_.port_str()});
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(Transparency, PythonRefusedException) {
  ClosedPort closed;
  RunResult r = expect_same({paths().python.string(), "-c", kPythonTwoRequests, closed.port_str()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ConnectionRefusedError"), std::string::npos) << r.err;
}

TEST_F(Transparency, DescriptorNumbers) {
  RunResult r = expect_same({paths().python.string(), "-c", kPythonFds, server_.port_str()});
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(Transparency, Node) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  RunResult r = expect_same({"/usr/bin/node", "-e", kNode, server_.port_str()});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "200 \"chunk 0\\nchunk 1\\nchunk 2\\n\"\n");
}

TEST_F(Transparency, Wget) {
  RunResult r = expect_same({"wget", "-q", "-O", "-", server_.url("/bytes/100")});
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(Transparency, OwnClientEverySubcommand) {
  ClosedPort closed;
  const std::vector<std::vector<std::string>> cases = {
      client("nonblock", {"/a", "/chunked/2", "/status/204", "/bytes/5000"}),
      client("iov", {"/a", "/b", "/bytes/70000"}),
      client("threads", {"3", "2"}),
      client("fork", {}),
      client("sequential-new", {"2"}),
      client("keepalive", {"50"}),
      {paths().client.string(), "refused", "127.0.0.1", closed.port_str()},
      {paths().client.string(), "bogus-subcommand", "x", "y"},  // usage error: exit 2
  };
  for (const auto& argv : cases) {
    SCOPED_TRACE(argv[1]);
    expect_same(argv);
  }
}

// Broken configuration must cost the trace, never the program.
TEST_F(Transparency, HostileEnvironment) {
  fs::path not_a_dir = dir_ / "regular-file";
  std::ofstream(not_a_dir) << "x";
  const std::vector<Env> envs = {
      {{"HTTPTRACE_OUTPUT", (dir_ / "missing" / "deeper" / "t.%p").string()}},
      {{"HTTPTRACE_OUTPUT", (not_a_dir / "t.%p").string()}},
      {{"HTTPTRACE_OUTPUT", ""}},
      {{"HTTPTRACE_OUTPUT", "/proc/t.%p"}},
      {{"HTTPTRACE_MAX_MB", "lots"}},
      {{"HTTPTRACE_MAX_MB", "-5"}},
      {{"HTTPTRACE_MAX_MB", "0"}},
      {{"HTTPTRACE_MAX_MB", "99999999999999999999999"}},
      {{"HTTPTRACE_STACKS", "yes please"}},
      {{"HTTPTRACE_DISABLE", "maybe"}},
  };
  for (const auto& env : envs) {
    SCOPED_TRACE(env[0].first + "=" + env[0].second);
    // HTTPTRACE_OUTPUT from `env` replaces the fixture's, see child_environment().
    expect_same(client("nonblock", {"/a", "/b"}), env);
    expect_same(curl3(), env);
  }
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
}

TEST_F(Transparency, DisabledRecordsNothing) {
  expect_same(curl3(), {{"HTTPTRACE_DISABLE", "1"}});
  expect_same(client("fork", {}), {{"HTTPTRACE_DISABLE", "1"}});
  EXPECT_TRUE(files_in(dir_.path()).empty());
}

}  // namespace
}  // namespace httptrace::itest
