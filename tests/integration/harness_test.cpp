// The harness and the test server on their own, untraced: if these fail, every other failure in
// the suite is suspect.
#include "tests/integration/harness.h"
#include "tests/integration/packet_capture.h"

#include <gtest/gtest.h>

#include <csignal>

namespace httptrace::itest {
namespace {

TEST(Harness, RunCapturesOutputAndStatus) {
  RunResult r = run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(Harness, RunKillsOnTimeout) {
  // `exec` so the shell is the sleeping process; the group kill covers it either way.
  RunResult r = run({"/bin/sh", "-c", "echo started; exec sleep 30"}, {.timeout = milliseconds{300}});
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.out, "started\n");
}

TEST(Harness, MissingProgramIsAnError) {
  RunResult r = run({"/nonexistent/program"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.err.find("cannot run"), std::string::npos) << r.err;
}

TEST(Harness, ServerRoutes) {
  TestServer server;
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run({"curl", "-s", "-w", " %{http_code}\n", server.url("/"), server.url("/status/404"),
                     server.url("/bytes/3"), server.url("/chunked/2")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out,
            "hello from httptrace-test\n 200\n"
            "status 404\n 404\n"
            "xxx 200\n"
            "chunk 0\nchunk 1\n 200\n");
}

TEST(Harness, ServerDelaysFirstByte) {
  TestServer server;
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run({"curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}",
                     server.url("/delay/150")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_GE(std::stod(r.out), 0.150);
}

TEST(Harness, ServerOverIpv6) {
  TestServer server({.ipv6 = true});
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run({"curl", "-s", "http://[::1]:" + server.port_str() + "/"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from httptrace-test\n");
}

TEST(Harness, ServerOverTls) {
  TempDir dir;
  TlsFiles tls;
  std::string error;
  ASSERT_TRUE(make_self_signed_cert(dir.path(), &tls, &error)) << error;
  TestServer server({.tls = tls});
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run({"curl", "-s", "--cacert", tls.cert.string(), server.url("/a"),
                     server.url("/chunked/1")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from httptrace-test\nchunk 0\n");
}

TEST(Harness, OwnClientAgainstServer) {
  TestServer server;
  ASSERT_TRUE(server.ok()) << server.error();
  RunResult r = run({paths().client.string(), "nonblock", "localhost", server.port_str(), "/a",
                     "/chunked/3", "/status/204", "/bytes/100000"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200 26\n/chunked/3 200 24\n/status/204 204 0\n/bytes/100000 200 100000\n");
}

// A tail loss probe sends a packet's bytes again; the program reads them once. Lines as
// tcpdump -nn -tt -S prints them.
TEST(Harness, WireCountsARetransmittedPacketOnce) {
  const char* lines[] = {
      "1764713000.000000001 IP 127.0.0.1.40000 > 127.0.0.1.8443: Flags [S], seq 4294967000, win 65495, length 0",
      "1764713000.000000002 IP 127.0.0.1.40000 > 127.0.0.1.8443: Flags [P.], seq 4294967001:4294967101, ack 7, "
      "win 512, length 100",
      "1764713000.000000003 IP 127.0.0.1.8443 > 127.0.0.1.40000: Flags [P.], seq 7:262, ack 4294967101, win 512, "
      "length 255",
      "1764713000.000000004 IP 127.0.0.1.8443 > 127.0.0.1.40000: Flags [P.], seq 7:262, ack 4294967101, win 512, "
      "length 255",
      // Across the sequence-number wrap, half of it seen before.
      "1764713000.000000005 IP 127.0.0.1.40000 > 127.0.0.1.8443: Flags [P.], seq 4294967051:4294967396, ack 262, "
      "win 512, length 345",
      "1764713000.000000006 IP 127.0.0.1.8443 > 127.0.0.1.40000: Flags [.], ack 100, win 512, length 0",
  };
  std::vector<WirePacket> packets;
  for (const char* l : lines) {
    WirePacket p;
    ASSERT_TRUE(parse_tcpdump_line(l, &p)) << l;
    packets.push_back(p);
  }
  const auto seen = connections_from(packets, 8443, {});
  ASSERT_EQ(seen.size(), 1u);
  const WireConnection& c = seen.at(40000);
  EXPECT_EQ(c.syn_ns, 1764713000000000001u);
  EXPECT_EQ(c.bytes_to_client, 255u);
  EXPECT_EQ(c.bytes_to_server, 395u);
  EXPECT_EQ(c.retransmitted, 255u + 50u);
  ASSERT_EQ(c.payload.size(), 3u);
  EXPECT_EQ(c.payload[2].second.length, 295u);
}

}  // namespace
}  // namespace httptrace::itest
