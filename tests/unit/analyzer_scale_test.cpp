// The pieces that make the analyzer fast and flat in memory on huge traces: the JSON writer's
// buffer and escaping, the open-connection table, the exporter's thread hand-off, the progress
// bar's terminal check, and lookup accounting that needs no memory of past lookups.
#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "analyzer/model/conn_table.h"
#include "analyzer/export/connection_pipe.h"
#include "analyzer/export/json_writer.h"
#include "analyzer/progress.h"
#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

template <class F> std::string json_of(F&& f) {
  return capture_output([&](std::FILE* out) {
    JsonWriter w(out);
    f(w);
  });
}

TEST(JsonWriter, EscapesControlQuotesAndInvalidUtf8) {
  const std::string s = json_of([](JsonWriter& w) {
    w.begin_array();
    w.value(std::string_view("a\"b\\c\n\r\t\x01\x7f\0", 11));  // NUL too
    w.value("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // valid 2-, 3- and 4-byte sequences pass
    w.value("\xc3 \xed\xa0\x80 \xc0\xaf \xff");           // cut, surrogate, overlong, invalid
    w.end_array();
  });
  EXPECT_EQ(s, "[\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u007f\\u0000\",\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
               "\"\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd \\ufffd\"]");
}

TEST(JsonWriter, NumbersAndNestingSeparators) {
  const std::string s = json_of([](JsonWriter& w) {
    w.begin_object();
    w.key("min").value(INT64_MIN);
    w.key("max").value(UINT64_MAX);
    w.key("i32").value(int32_t{-7});
    w.key("a").begin_array().begin_object().end_object().begin_array().end_array().null().value(true).end_array();
    w.key("o").begin_object().key("x").value(false).end_object();
    w.end_object();
  });
  EXPECT_EQ(s, "{\"min\":-9223372036854775808,\"max\":18446744073709551615,\"i32\":-7,"
               "\"a\":[{},[],null,true],\"o\":{\"x\":false}}\n");
}

// Strings longer than the buffer are escaped in slices: nothing may be lost or split at the seams,
// including a multi-byte sequence or an escape that straddles one.
TEST(JsonWriter, StringsLargerThanTheBuffer) {
  std::string big;
  std::string want = "\"";
  for (int i = 0; big.size() < (3u << 20); ++i) {
    big += "x\xe2\x82\xac\"\x02";
    want += "x\xe2\x82\xac\\\"\\u0002";
  }
  want += "\"";
  const std::string s = json_of([&](JsonWriter& w) { w.value(big); });
  EXPECT_EQ(s.size(), want.size());
  EXPECT_TRUE(s == want);
}

TEST(JsonWriter, SpliceCopiesASpooledSectionAsOneValue) {
  std::FILE* spool = std::tmpfile();
  ASSERT_NE(spool, nullptr);
  {
    JsonWriter sw(spool);
    sw.begin_array();
    for (int i = 0; i < 200000; ++i) sw.value(i);  // more than one buffer's worth
    sw.end_array();
  }
  std::fflush(spool);
  const std::string s = json_of([&](JsonWriter& w) {
    w.begin_object().key("n").value(1).key("spooled");
    w.splice(spool).key("after").value(2).end_object();
  });
  std::fclose(spool);
  ASSERT_GT(s.size(), 1000000u);
  EXPECT_EQ(s.substr(0, 22), "{\"n\":1,\"spooled\":[0,1,");
  EXPECT_EQ(s.substr(s.size() - 20), ",199999],\"after\":2}\n");
}

TEST(ConnTable, MatchesAMapThroughChurnAndShrinksBack) {
  ConnTable<int> t;
  std::map<uint32_t, int> ref;
  uint32_t seed = 7;
  for (int round = 0; round < 200000; ++round) {
    seed = seed * 1103515245 + 12345;
    const uint32_t id = (seed >> 8) % 5000;
    if (ref.count(id)) {
      std::unique_ptr<int> v = t.take(id);
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, ref[id]);
      ref.erase(id);
    } else {
      ASSERT_EQ(t.find(id), nullptr);
      t.insert(id, std::make_unique<int>(round));
      ref[id] = round;
    }
    ASSERT_EQ(t.size(), ref.size());
  }
  for (const auto& [id, v] : ref) {
    ASSERT_NE(t.find(id), nullptr) << id;
    EXPECT_EQ(*t.find(id), v);
  }
  size_t seen = 0;
  t.for_each([&](uint32_t id, int v) { seen += ref.at(id) == v; });
  EXPECT_EQ(seen, ref.size());
  const size_t peak = t.capacity();
  for (const auto& [id, v] : ref) EXPECT_TRUE(t.take(id));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_LT(t.capacity(), peak / 8);  // memory follows the open connections back down
  EXPECT_EQ(t.take(1), nullptr);
}

TEST(ConnectionPipe, DeliversEveryConnectionInOrderOnAnotherThread) {
  struct Recorder : ConnectionSink {
    void on_connection(const Connection& c) override {
      ids.push_back(c.conn);
      requests += c.requests.size();
      other_thread = other_thread && std::this_thread::get_id() != caller;
    }
    std::vector<uint32_t> ids;
    size_t requests = 0;
    std::thread::id caller = std::this_thread::get_id();
    bool other_thread = true;
  } rec;
  size_t sent = 0;
  {
    ConnectionPipe pipe(rec);
    for (uint32_t i = 0; i < 20000; ++i) {
      Connection c;
      c.conn = i;
      c.requests.resize(i % 701 == 0 ? 40000 : i % 3);  // a few heavier than the whole queue
      sent += c.requests.size();
      pipe.on_connection(std::move(c));
    }
    pipe.close();
    ASSERT_EQ(rec.ids.size(), 20000u);
  }
  for (uint32_t i = 0; i < rec.ids.size(); ++i) ASSERT_EQ(rec.ids[i], i);
  EXPECT_EQ(rec.requests, sent);
  EXPECT_TRUE(rec.other_thread);
}

TEST(Progress, SilentWhenNotATerminal) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  {
    Progress bar(1000, p[1], /*delay_ns=*/0);
    EXPECT_FALSE(bar.enabled());
    bar.update(500);
    EXPECT_FALSE(bar.shown());
  }
  close(p[1]);
  char c;
  EXPECT_EQ(read(p[0], &c, 1), 0);  // nothing was written
  close(p[0]);
}

TEST(Progress, DrawsAndErasesOnATerminal) {
  int master = -1, slave = -1;
  if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) GTEST_SKIP() << "no pty available";
  {
    Progress bar(2'000'000, slave, /*delay_ns=*/0);
    EXPECT_TRUE(bar.enabled());
    bar.update(1'000'000);
    EXPECT_TRUE(bar.shown());
  }
  close(slave);
  std::string got;
  char buf[512];
  for (int i = 0; i < 16; ++i) {  // bounded: the pty holds all of it already
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, size_t(n));
  }
  close(master);
  EXPECT_NE(got.find("[###############               ]  50% 1.0/2.0 MB"), std::string::npos) << got;
  EXPECT_NE(got.find("\r" + std::string(70, ' ') + "\r"), std::string::npos);  // erased at the end
}

// One lookup serving two connections to port 80 and one to 443: its time counts once per
// endpoint and once in the total, decided when each connection is tied, not by remembering.
TEST(Model, LookupFirstUseFlagsPerPort) {
  TraceBuilder b;
  b.dns(1, 1000, "api.example", 500, {ipv4("10.1.1.1")});
  for (uint32_t i = 1; i <= 3; ++i) {
    b.socket(1, 2000 + i * 1000, i, int32_t(2 + i));
    b.connect(1, 2100 + i * 1000, i, int32_t(2 + i), ipv4("10.1.1.1", i == 3 ? 443 : 80), 50);
  }
  for (uint32_t i = 1; i <= 3; ++i) b.close(1, 9000 + i, i, int32_t(2 + i));
  Collected got = model_of({&b});
  ASSERT_EQ(got.conns.size(), 3u);
  const Connection *c1 = got.by_conn(1), *c2 = got.by_conn(2), *c3 = got.by_conn(3);
  ASSERT_TRUE(c1 && c2 && c3 && c1->dns && c2->dns && c3->dns);
  EXPECT_TRUE(c1->dns_first_use && c1->dns_first_for_port);
  EXPECT_FALSE(c2->dns_first_use || c2->dns_first_for_port);
  EXPECT_TRUE(!c3->dns_first_use && c3->dns_first_for_port);

  TempDir dir;
  TraceSet ts;
  ASSERT_TRUE(open_built(ts, dir, {&b}));
  const std::string report = capture_output([&](std::FILE* out) { write_reuse(ts, out); });
  // 500ns once for each endpoint row and once (not twice) in the total.
  EXPECT_NE(report.find("api.example:80 "), std::string::npos) << report;
  size_t rows = 0;
  const std::string table = report.substr(0, report.find("\n\n"));  // not the percentiles below
  for (size_t at = 0; (at = table.find("500ns", at)) != std::string::npos; ++at) ++rows;
  EXPECT_EQ(rows, 3u) << report;
}

}  // namespace
}  // namespace httptrace::testing
