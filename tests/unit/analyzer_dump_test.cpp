// `dump`: every field of every record, any value a damaged trace may hold, and version 2 records.
#include <climits>

#include <gtest/gtest.h>

#include "analyzer/reports.h"
#include "tests/unit/analyzer_test_util.h"

namespace httptrace::testing {
namespace {

std::string dump_of(const TraceBuilder& b) {
  TempDir dir;
  TraceSet ts;
  if (!open_built(ts, dir, {&b})) return "";
  return capture_output([&](std::FILE* f) { write_dump(ts, f); });
}

TEST(Dump, ExtremeResultsAndErrorsArePrintedAsNumbers) {
  TraceBuilder b;
  b.data(1, 10, 1, 3, tf::Direction::kRecv, INT64_MIN, 1);
  b.data(1, 20, 1, 3, tf::Direction::kRecv, -104, 1);
  b.data(1, 30, 1, 3, tf::Direction::kRecv, -5000, 1);
  b.connect(1, 40, 2, 4, ipv4("10.0.0.1", 80), 5, INT_MIN);
  b.close(1, 50, 2, 4, 123456);
  const std::string out = dump_of(b);
  EXPECT_NE(out.find("result=-9223372036854775808 "), std::string::npos) << out;
  EXPECT_NE(out.find("result=ECONNRESET "), std::string::npos) << out;
  EXPECT_NE(out.find("result=-5000 "), std::string::npos) << out;
  EXPECT_NE(out.find("error=-2147483648 "), std::string::npos) << out;
  EXPECT_NE(out.find("error=123456 "), std::string::npos) << out;
}

TEST(Dump, ShowsVersion2RecordsOrderTimesAndDropCauses) {
  TraceBuilder b;
  b.header().dropped_events = 4;
  b.header().dropped_by_cause[uint8_t(tf::DropCause::kDiskFull)] = 3;
  b.header().dropped_by_cause[uint8_t(tf::DropCause::kTooLarge)] = 1;
  b.set_thread(1, 7, 21);
  b.recv(1, 100, 1, 10, 50);
  b.lost(1, 200, 3, tf::DropCause::kDiskFull);
  b.accept(1, 300, 2, 8, 6, ipv4("127.0.0.1", 5555), 40);
  b.addr_path(1, 310, 2, 8, 0, std::string("\0abs", 4));
  b.handoff(1, 400, 9, 22, 0);
  b.socket(1, 410, 3, 5);
  const std::string out = dump_of(b);
  EXPECT_NE(out.find("version=2 "), std::string::npos) << out;
  EXPECT_NE(out.find("dropped=4 dropped_by_cause=disk_full:3,too_large:1 "), std::string::npos) << out;
  EXPECT_NE(out.find("1000 7 100 data conn=1 fd=3 recv call=19 result=10 dur=50 flags=0x0 order=150 uid=21"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("lost conn=0 count=3 cause=disk_full"), std::string::npos) << out;
  EXPECT_NE(out.find("accept conn=2 fd=8 listen_fd=6 dur=40 peer=127.0.0.1:5555 local=127.0.0.1:8080"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("addr_path conn=2 fd=8 peer path=\"\\x00abs\""), std::string::npos) << out;
  EXPECT_NE(out.find("1000 9 400 thread conn=0 tid=9 uid=22 seq=0 uid=22"), std::string::npos) << out;
  EXPECT_NE(out.find("1000 9 410 socket conn=3"), std::string::npos) << out;
}

}  // namespace
}  // namespace httptrace::testing
