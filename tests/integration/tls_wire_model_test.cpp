// What the model reads off the wire of real TLS clients (issue 8.7): the cipher from the
// ServerHello, no empty exchange for the client's close_notify, the first request coalesced
// into node's Finished flight, and PostgreSQL's SSLRequest round trip before its handshake.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/integration/client_programs.h"
#include "tests/integration/tls_fixture.h"

namespace httptrace::itest {
namespace {

class TlsWireModel : public TlsTest {};

// A loopback port nobody uses right now (bound, read, released) for a server that takes a number.
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

// tls_static_client's libssl is invisible to our hooks; it ends with SSL_shutdown, whose
// close_notify goes out after the last response.
TEST_F(TlsWireModel, OwnTlsStackHasItsCipherAndNoCloseNotifyExchange) {
  const fs::path client = paths().build / "tests" / "tls_static_client";
  ASSERT_TRUE(fs::exists(client)) << client << " missing: run make integration";
  RunResult r = traced({client.string(), "localhost", server_.port_str(), "localhost", "/s1", "/s2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  ASSERT_TRUE(c["tls"].is_object()) << c.dump(1);
  EXPECT_EQ(c["tls"]["library"], "wire");
  EXPECT_TRUE(c["tls"]["cipher"].is_string() && c["tls"]["cipher"].get<std::string>().rfind("TLS_", 0) == 0)
      << c["tls"];
  ASSERT_EQ(c["requests"].size(), 2u) << "the close_notify is not a request: " << c.dump(1);
  for (const auto& x : c["requests"]) EXPECT_GT(x["bytes_received"].get<uint64_t>(), 0u) << x;
}

constexpr char kNodeTwoGets[] = R"(
const https = require('https');
const port = Number(process.argv[1]);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
function get(path, next) {
  https.get({ host: 'localhost', port, path, agent, rejectUnauthorized: false }, (res) => {
    let n = 0;
    res.on('data', (d) => { n += d.length; });
    res.on('end', () => { console.log(path, res.statusCode, n); next(); });
  });
}
get('/a', () => get('/b', () => agent.destroy()));
)";

// node's TLS is read from the wire; it sends the first request in the same write as its Finished.
TEST_F(TlsWireModel, NodeCipherAndTheFirstRequestBehindTheFinished) {
  if (!fs::exists("/usr/bin/node")) GTEST_SKIP() << "no /usr/bin/node";
  RunResult r = traced({"/usr/bin/node", "-e", kNodeTwoGets, server_.port_str()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "/a 200 26\n/b 200 26\n");

  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  ASSERT_TRUE(c["tls"].is_object()) << c.dump(1);
  if (c["tls"]["library"] != "wire") GTEST_SKIP() << "this node's TLS went through the hooks";
  EXPECT_TRUE(c["tls"]["cipher"].is_string()) << c["tls"];
  ASSERT_EQ(c["requests"].size(), 2u) << c.dump(1);
  // Two GETs of the same shape: the same size, the first one included.
  EXPECT_EQ(c["requests"][0]["bytes_sent"], c["requests"][1]["bytes_sent"]) << c.dump(1);
  EXPECT_LE(c["requests"][0]["start_ns"].get<uint64_t>(), c["requests"][0]["sent_ns"].get<uint64_t>());
}

// A TLS 1.3 server sends its session tickets as soon as it has the client's Finished; node, java
// and python's asyncio read them on their own, long before a slow response. The server's /delay/<ms> sends
// nothing of its response for <ms>: that is the wait, and the tickets are no part of it (they
// had been taken for the first byte: a wait of 1 ms where the server waited 200).
struct WireClient {
  const char* name;
  std::vector<std::string> (*argv)(const std::string& base_url, const fs::path& work);
};

constexpr int kDelayMs = 150;  // the first path's; the second waits a millisecond more

const WireClient kWireClients[] = {
    {"node",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{"node", "-e", kNodeHttpsGets, u, "/delay/150", "/delay/151"};
     }},
    // asyncio's TLS runs on memory BIOs: read from the wire too.
    {"python3",
     [](const std::string& u, const fs::path&) {
       return std::vector<std::string>{paths().python.string(), "-c", kAsyncioHttpsGets, u, "/delay/150",
                                       "/delay/151"};
     }},
    {"java",
     [](const std::string& u, const fs::path& work) {
       std::string src = kJavaHttpsGet;
       const std::string paths = "{\"/j1\", \"/j2\"}";
       src.replace(src.find(paths), paths.size(), "{\"/delay/150\", \"/delay/151\"}");
       std::ofstream(work / "Get.java") << src;
       return std::vector<std::string>{"java", (work / "Get.java").string(), u};
     }},
};

class TicketsBeforeTheResponse : public TlsTest, public ::testing::WithParamInterface<WireClient> {};

INSTANTIATE_TEST_SUITE_P(Clients, TicketsBeforeTheResponse, ::testing::ValuesIn(kWireClients),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_P(TicketsBeforeTheResponse, AreNotTheResponsesFirstByte) {
  const WireClient& client = GetParam();
  if (run({client.name, client.name == std::string("java") ? "-version" : "--version"}).exit_code != 0)
    GTEST_SKIP() << client.name << " is not installed";
  TempDir work;
  const RunResult r = traced(client.argv(server_.url("", "127.0.0.1"), work.path()));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  HT_EXPORT(doc, dir_.path());
  auto conns = connections_to(doc, server_.port());
  ASSERT_EQ(conns.size(), 1u) << doc.dump(1);
  const json& c = conns[0];
  SCOPED_TRACE(describe(c));
  ASSERT_TRUE(c["tls"].is_object());
  if (c["tls"]["library"] != "wire") GTEST_SKIP() << "this client's TLS went through the hooks";
  ASSERT_EQ(c["tls"]["version"], "TLSv1.3");
  ASSERT_EQ(c["requests"].size(), 2u);
  for (const json& q : c["requests"]) {
    SCOPED_TRACE("request " + q["index"].dump());
    ASSERT_TRUE(q["first_byte_ns"].is_number());
    // The server's clock starts when it has read the request, after the client began writing it
    // (not after its write returned: a loaded machine may run the server first).
    EXPECT_GE(q["first_byte_ns"].get<int64_t>() - q["start_ns"].get<int64_t>(), int64_t{kDelayMs} * 1'000'000);
    // The whole response came in the reads after the wait (the two are of one size).
    EXPECT_LT(q["end_ns"].get<int64_t>() - q["first_byte_ns"].get<int64_t>(), int64_t{kDelayMs} * 1'000'000);
  }
  EXPECT_EQ(c["requests"][0]["bytes_received"], c["requests"][1]["bytes_received"]);
  // The tickets are the connection's bytes all the same.
  EXPECT_GT(c["bytes_received"].get<uint64_t>(),
            c["requests"][0]["bytes_received"].get<uint64_t>() + c["requests"][1]["bytes_received"].get<uint64_t>());
}

// A real PostgreSQL server with ssl=on, run as the postgres user; psql (libpq, OpenSSL) asks
// for TLS with an SSLRequest and the server's one-byte answer before the ClientHello.
class Postgres : public ::testing::Test {
 protected:
  static constexpr const char* kBin = "/usr/lib/postgresql/15/bin";
  void TearDown() override {
    if (started_) run({"runuser", "-u", "postgres", "--", std::string(kBin) + "/pg_ctl", "-D", data(), "-m",
                       "immediate", "-w", "stop"});
  }
  std::string data() const { return (root_.path() / "data").string(); }

  TempDir root_;
  TempDir traces_;
  bool started_ = false;
};

TEST_F(Postgres, SslRequestRoundTripIsTheFirstExchange) {
  if (getuid() != 0 || !getpwnam("postgres") || !fs::exists(std::string(kBin) + "/initdb") ||
      !fs::exists("/usr/bin/psql"))
    GTEST_SKIP() << "needs root, the postgres user and PostgreSQL 15";
  ASSERT_EQ(chown(root_.path().c_str(), getpwnam("postgres")->pw_uid, getpwnam("postgres")->pw_gid), 0);
  RunResult init = run({"runuser", "-u", "postgres", "--", std::string(kBin) + "/initdb", "-D", data(), "-A",
                        "trust", "-U", "postgres"},
                       {.timeout = milliseconds(60000)});
  ASSERT_EQ(init.exit_code, 0) << init.describe();
  TlsFiles tls;
  std::string err;
  ASSERT_TRUE(make_self_signed_cert(data(), &tls, &err)) << err;
  ASSERT_EQ(chown(tls.key.c_str(), getpwnam("postgres")->pw_uid, 0), 0);
  ASSERT_EQ(chown(tls.cert.c_str(), getpwnam("postgres")->pw_uid, 0), 0);
  chmod(tls.key.c_str(), 0600);
  const std::string port = std::to_string(free_port());
  const std::string opts = "-p " + port + " -k " + root_.path().string() +
                           " -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=" + tls.cert.string() +
                           " -c ssl_key_file=" + tls.key.string();
  RunResult start = run({"runuser", "-u", "postgres", "--", std::string(kBin) + "/pg_ctl", "-D", data(), "-o",
                         opts, "-l", (root_.path() / "log").string(), "-w", "start"},
                        {.timeout = milliseconds(60000)});
  ASSERT_EQ(start.exit_code, 0) << start.describe();
  started_ = true;

  RunOptions o;
  o.preload = true;
  o.env = trace_env(traces_.path());
  RunResult r = run({"/usr/bin/psql", "host=127.0.0.1 port=" + port + " user=postgres dbname=postgres sslmode=require",
                     "-Atc", "select 41 + 1"},
                    o);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "42\n");

  Export e = export_json(traces_.path());
  ASSERT_TRUE(e.ok) << e.error;
  auto conns = connections_to(e.doc, std::stoi(port));
  ASSERT_EQ(conns.size(), 1u) << e.doc.dump(1);
  const json& c = conns[0];
  ASSERT_TRUE(c["tls"].is_object()) << c.dump(1);
  ASSERT_GE(c["requests"].size(), 2u) << c.dump(1);
  const json& ssl_request = c["requests"][0];
  EXPECT_EQ(ssl_request["bytes_sent"], 8) << "SSLRequest: length + code";
  EXPECT_EQ(ssl_request["bytes_received"], 1) << "'S'";
  EXPECT_LE(ssl_request["end_ns"].get<uint64_t>(), c["tls"]["start_ns"].get<uint64_t>());
  EXPECT_EQ(c["requests"][1]["reused"], true);
  for (size_t i = 0; i < c["requests"].size(); ++i) EXPECT_EQ(c["requests"][i]["index"], i);
}

}  // namespace
}  // namespace httptrace::itest
