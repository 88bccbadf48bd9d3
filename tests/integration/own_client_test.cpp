// tests/clients/http_client: one subcommand per interception path (non-blocking connect,
// vectored I/O, threads, fork, refused connect, one connection per request).
#include <set>

#include <algorithm>

#include "tests/integration/fixture.h"

namespace httptrace::itest {
namespace {

class OwnClient : public TracedTest {
 protected:
  // The exact bytes http_client sends for one request (see send_request there).
  size_t request_size(const std::string& path) const {
    return std::string("GET " + path + " HTTP/1.1\r\nHost: localhost:" + server_.port_str() +
                       "\r\nUser-Agent: httptrace-test-client\r\nAccept: */*\r\n\r\n")
        .size();
  }
};

TEST_F(OwnClient, NonBlockingConnectThenKeepAlive) {
  RunResult r = traced(client("nonblock", {"/a", "/b"}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200 26\n/b 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["connect"].is_object());
  EXPECT_TRUE(c["connect"]["error"].is_null());
  EXPECT_LE(c["start_ns"].get<uint64_t>(), c["connect"]["start_ns"].get<uint64_t>());
  // The connect completes (EINPROGRESS, poll, SO_ERROR) before the first request is written.
  EXPECT_LE(c["connect"]["start_ns"].get<uint64_t>() + c["connect"]["duration_ns"].get<uint64_t>(),
            c["requests"][0]["start_ns"].get<uint64_t>());
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true}));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 200}));
  EXPECT_EQ(c["host"], "localhost");
  EXPECT_EQ(c["requests"][0]["bytes_sent"], request_size("/a"));
  EXPECT_EQ(c["bytes_sent"], request_size("/a") + request_size("/b"));

  // http_client resolves "localhost" with getaddrinfo: that lookup produced this peer.
  ASSERT_TRUE(c["dns"].is_object());
  bool found = false;
  for (const auto& d : doc["dns"]) {
    if (d["host"] != "localhost") continue;
    found = true;
    EXPECT_TRUE(d["error"].is_null());
    EXPECT_NE(std::find(d["addresses"].begin(), d["addresses"].end(), "127.0.0.1"),
              d["addresses"].end());
    EXPECT_EQ(c["dns"]["start_ns"], d["start_ns"]);
  }
  EXPECT_TRUE(found) << doc["dns"].dump();
  EXPECT_EQ(doc["summary"]["failed_connects"], 0);
}

TEST_F(OwnClient, VectoredAndMessageCalls) {
  RunResult r = traced(client("iov", {"/a", "/b", "/chunked/3", "/bytes/70000"}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200 26\n/b 200 26\n/chunked/3 200 24\n/bytes/70000 200 70000\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  EXPECT_EQ(targets(c), (std::vector<std::string>{"/a", "/b", "/chunked/3", "/bytes/70000"}));
  EXPECT_EQ(statuses(c), (std::vector<int>{200, 200, 200, 200}));
  EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true, true, true}));
  uint64_t sent = 0, received = 0;
  const std::vector<std::string> paths_sent = {"/a", "/b", "/chunked/3", "/bytes/70000"};
  for (size_t i = 0; i < paths_sent.size(); ++i) {
    // writev (even) and sendmsg (odd) each carry the request line and headers as two iovecs.
    EXPECT_EQ(c["requests"][i]["bytes_sent"], request_size(paths_sent[i])) << i;
    sent += c["requests"][i]["bytes_sent"].get<uint64_t>();
    received += c["requests"][i]["bytes_received"].get<uint64_t>();
  }
  // The 70000-byte body arrives through several readv calls: all of it is counted.
  EXPECT_GT(c["requests"][3]["bytes_received"].get<uint64_t>(), 70000u);
  EXPECT_EQ(c["bytes_sent"], sent);
  EXPECT_EQ(c["bytes_received"], received);
}

TEST_F(OwnClient, ThreadsEachOwnConnection) {
  constexpr int kThreads = 4, kPerThread = 3;
  RunResult r = traced(client("threads", {std::to_string(kThreads), std::to_string(kPerThread)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), static_cast<size_t>(kThreads)) << doc.dump(1);
  std::set<std::string> ids;
  std::set<std::string> seen_targets;
  for (const auto& c : conns) {
    SCOPED_TRACE(describe(c));
    ids.insert(c["id"].get<std::string>());
    EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true, true}));
    auto t = targets(c);
    ASSERT_EQ(t.size(), static_cast<size_t>(kPerThread));
    EXPECT_EQ(t[0], t[1]);
    EXPECT_EQ(t[1], t[2]);
    seen_targets.insert(t[0]);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads));
  EXPECT_EQ(seen_targets,
            (std::set<std::string>{"/thread/0", "/thread/1", "/thread/2", "/thread/3"}));
  EXPECT_EQ(doc["summary"]["requests"], kThreads * kPerThread);
  EXPECT_EQ(doc["summary"]["reused_requests"], kThreads * (kPerThread - 1));
}

TEST_F(OwnClient, HundredThreads) {
  constexpr int kThreads = 100, kPerThread = 2;
  RunResult r = traced(client("threads", {std::to_string(kThreads), std::to_string(kPerThread)}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), static_cast<size_t>(kThreads));
  std::set<std::string> ids;
  for (const auto& c : conns) {
    ids.insert(c["id"].get<std::string>());
    EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false, true})) << describe(c);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads));
  EXPECT_EQ(doc["summary"]["requests"], kThreads * kPerThread);
  EXPECT_EQ(doc["summary"]["dropped_events"], 0);
}

TEST_F(OwnClient, LongKeepAlive) {
  RunResult r = traced(client("keepalive", {"1000"}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "keepalive 1000 requests 1000 ok\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(conns[0]["requests"].size(), 1000u);
  EXPECT_EQ(conns[0]["bytes_sent"], 1000 * request_size("/"));
  EXPECT_EQ(doc["summary"]["requests"], 1000);
  EXPECT_EQ(doc["summary"]["reused_requests"], 999);
  EXPECT_EQ(doc["summary"]["dropped_events"], 0);
}

// A vfork child runs in our memory: its close() of the shared descriptor must not end the
// parent's connection, and it records nothing. posix_spawn children never run our hooks.
TEST_F(OwnClient, VforkLikeChildrenAndPosixSpawnLeaveTheParentsConnectionAlone) {
  auto argv = client("spawn", {});
  RunResult plain = untraced(argv);
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, plain.out);
  EXPECT_EQ(r.out, "/spawn/1 200 26\n/spawn/2 200 26\n");

  HT_EXPORT(doc, dir_.path());
  EXPECT_EQ(doc["processes"].size(), 1u) << "/bin/true never touches the network: no file";
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  EXPECT_EQ(targets(conns[0]), (std::vector<std::string>{"/spawn/1", "/spawn/2"}));
  EXPECT_EQ(reuse_flags(conns[0]), (std::vector<bool>{false, true}));
  ASSERT_TRUE(conns[0]["close_ns"].is_number());
  EXPECT_GE(conns[0]["close_ns"].get<uint64_t>(), conns[0]["requests"][1]["end_ns"].get<uint64_t>())
      << "the vfork child's close() is not the connection's";
}

// Closing every descriptor (ours included) must neither break the program nor stop recording:
// the mapping outlives the descriptor.
TEST_F(OwnClient, ClosingEveryDescriptorKeepsRecording) {
  auto argv = client("closeall", {});
  RunResult plain = untraced(argv);
  RunResult r = traced(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, plain.out);
  EXPECT_EQ(r.out, "/before 200 26\n/after 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 2u) << doc.dump(1);
  EXPECT_EQ(targets(conns[0]).size() + targets(conns[1]).size(), 2u);
  std::vector<std::string> all = targets(conns[0]);
  for (const auto& x : targets(conns[1])) all.push_back(x);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::string>{"/after", "/before"}));
  EXPECT_EQ(doc["summary"]["dropped_events"], 0);
}

// fork() runs the atfork handlers; clone() without CLONE_VM makes the same kind of child and
// runs none: the recorder must give the child its own file either way.
class ForkChild : public OwnClient, public ::testing::WithParamInterface<const char*> {};

INSTANTIATE_TEST_SUITE_P(Calls, ForkChild, ::testing::Values("fork", "clone"));

TEST_P(ForkChild, HasItsOwnTrace) {
  RunResult r = traced(client(GetParam(), {}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/parent/1 200 26\n/child/1 200 26\n/parent/2 200 26\n");

  auto files = files_in(dir_.path());
  ASSERT_EQ(files.size(), 2u) << "one trace file per process";
  HT_EXPORT(doc, dir_.path());
  auto all = pids(doc);
  ASSERT_EQ(all.size(), 2u) << doc["processes"].dump();
  // The child is the process whose parent is the other one.
  long parent = all[0], child = all[1];
  if (process(doc, parent)["ppid"] == child) std::swap(parent, child);
  ASSERT_EQ(process(doc, child)["ppid"], parent);
  for (long pid : {parent, child}) {
    const auto name = "httptrace." + std::to_string(pid) + ".trace";
    EXPECT_TRUE(std::any_of(files.begin(), files.end(),
                            [&](const fs::path& f) { return f.filename() == name; }))
        << name;
  }

  auto parent_conns = with_requests(connections_of(doc, parent));
  ASSERT_EQ(parent_conns.size(), 1u) << doc.dump(1);
  EXPECT_EQ(targets(parent_conns[0]), (std::vector<std::string>{"/parent/1", "/parent/2"}));
  EXPECT_EQ(reuse_flags(parent_conns[0]), (std::vector<bool>{false, true}));

  auto child_conns = with_requests(connections_of(doc, child));
  ASSERT_EQ(child_conns.size(), 1u) << doc.dump(1);
  EXPECT_EQ(child_conns[0]["pid"], child);
  EXPECT_EQ(targets(child_conns[0]), (std::vector<std::string>{"/child/1"}));
  EXPECT_EQ(reuse_flags(child_conns[0]), (std::vector<bool>{false}));
  EXPECT_NE(child_conns[0]["id"], parent_conns[0]["id"]);
  // The child also holds the parent's socket (inherited at fork, never used there): if it is
  // listed, it carries nothing.
  for (const auto& c : connections_of(doc, child)) {
    if (c["id"] == child_conns[0]["id"]) continue;
    EXPECT_EQ(c["peer"], parent_conns[0]["peer"]) << describe(c);
    EXPECT_TRUE(c["requests"].empty()) << describe(c);
    EXPECT_EQ(c["bytes_sent"], 0) << describe(c);
  }
  EXPECT_LE(connections_of(doc, child).size(), 2u);

  EXPECT_EQ(doc["summary"]["processes"], 2);
  EXPECT_EQ(doc["summary"]["requests"], 3);
  EXPECT_EQ(doc["summary"]["reused_requests"], 1);
}

TEST_F(OwnClient, RefusedConnectIsRecorded) {
  ClosedPort closed;
  ASSERT_GT(closed.port(), 0);
  // 127.0.0.1 rather than localhost: exactly one address, so exactly one failed attempt.
  RunResult r = traced({paths().client.string(), "refused", "127.0.0.1", closed.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "ECONNREFUSED\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, closed.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  EXPECT_EQ(conns[0]["connect"]["error"], "ECONNREFUSED");
  EXPECT_TRUE(conns[0]["requests"].empty());
  EXPECT_EQ(conns[0]["bytes_sent"], 0);
  EXPECT_EQ(doc["summary"]["failed_connects"], 1);
  EXPECT_EQ(doc["summary"]["requests"], 0);
}

TEST_F(OwnClient, NewConnectionPerRequest) {
  RunResult r = traced(client("sequential-new", {"3"}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/seq/0 200 26\n/seq/1 200 26\n/seq/2 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 3u) << doc.dump(1);
  std::set<std::string> ids;
  for (const auto& c : conns) {
    ids.insert(c["id"].get<std::string>());
    EXPECT_EQ(reuse_flags(c), (std::vector<bool>{false})) << describe(c);
    EXPECT_TRUE(c["close_ns"].is_number()) << describe(c);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(doc["summary"]["requests"], 3);
  EXPECT_EQ(doc["summary"]["reused_requests"], 0);
}

}  // namespace
}  // namespace httptrace::itest
