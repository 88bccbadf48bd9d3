// The fd table: tracking, closing and reuse of descriptor numbers, dup, pending connects,
// per-kind direction changes, and descriptors outside the table.
#include "interpose/record/fd_table.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace httptrace {
namespace {

using format::Direction;

class FdTableTest : public ::testing::Test {
 protected:
  void SetUp() override { table().reset_for_test(); }
  static FdTable& table() {
    static FdTable t;  // 8 MiB of .bss, only the touched pages become resident
    return t;
  }
};

TEST_F(FdTableTest, UntrackedDescriptorsReadAsZero) {
  EXPECT_EQ(table().load(0), 0u);
  EXPECT_EQ(table().load(12345), 0u);
  EXPECT_EQ(table().untrack(3), 0u);
  EXPECT_EQ(table().high_water(), 0);
}

TEST_F(FdTableTest, TrackThenCloseThenReuseTheNumber) {
  table().track(5, 1);
  EXPECT_EQ(FdTable::conn_of(table().load(5)), 1u);
  EXPECT_EQ(table().high_water(), 6);
  EXPECT_EQ(FdTable::conn_of(table().untrack(5)), 1u);
  EXPECT_EQ(table().load(5), 0u);
  // The number comes back for a new socket: a new connection with clean state.
  table().track(5, 2);
  EXPECT_EQ(FdTable::conn_of(table().load(5)), 2u);
  EXPECT_FALSE(FdTable::pending(table().load(5)));
  EXPECT_TRUE(table().note_direction(5, 2, Direction::kSend, false));
}

TEST_F(FdTableTest, DupSharesTheConnectionButNotTheSlot) {
  table().track(5, 3);
  table().track(9, FdTable::conn_of(table().load(5)));
  EXPECT_EQ(FdTable::conn_of(table().load(9)), 3u);
  table().untrack(5);
  EXPECT_EQ(FdTable::conn_of(table().load(9)), 3u);
  EXPECT_EQ(table().high_water(), 10);
}

TEST_F(FdTableTest, OutOfRangeDescriptorsAreIgnored) {
  for (int fd : {-1, FdTable::kCapacity, FdTable::kCapacity + 7, 1 << 30}) {
    table().track(fd, 4);
    EXPECT_EQ(table().load(fd), 0u) << fd;
    EXPECT_FALSE(table().note_direction(fd, 4, Direction::kSend, false));
    EXPECT_EQ(table().untrack(fd), 0u);
  }
  table().track(FdTable::kCapacity - 1, 4);
  EXPECT_EQ(FdTable::conn_of(table().load(FdTable::kCapacity - 1)), 4u);
  table().untrack(FdTable::kCapacity - 1);
}

TEST_F(FdTableTest, PendingConnectClearsExactlyOnce) {
  table().track(7, 1);
  table().set_pending(7, 1);
  EXPECT_TRUE(FdTable::pending(table().load(7)));
  EXPECT_TRUE(table().clear_pending(7, 1));
  EXPECT_FALSE(table().clear_pending(7, 1));
  EXPECT_FALSE(FdTable::pending(table().load(7)));
  EXPECT_EQ(FdTable::conn_of(table().load(7)), 1u);
}

TEST_F(FdTableTest, UpdatesForAnOldConnectionDoNotTouchTheNewOne) {
  table().track(7, 1);
  table().untrack(7);
  table().track(7, 2);
  table().set_pending(7, 1);
  EXPECT_FALSE(FdTable::pending(table().load(7)));
  EXPECT_FALSE(table().note_direction(7, 1, Direction::kRecv, false));
  EXPECT_TRUE(table().note_direction(7, 2, Direction::kRecv, false));
}

TEST_F(FdTableTest, DirectionChangesAreReportedOncePerTurn) {
  table().track(4, 1);
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, false));   // first ever
  EXPECT_FALSE(table().note_direction(4, 1, Direction::kSend, false));  // same way again
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kRecv, false));
  EXPECT_FALSE(table().note_direction(4, 1, Direction::kRecv, false));
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, false));
}

TEST_F(FdTableTest, PlaintextDirectionIsTrackedApartFromTheWire) {
  table().track(4, 1);
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, false));
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, true));  // first plaintext write
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kRecv, false));
  EXPECT_FALSE(table().note_direction(4, 1, Direction::kSend, true));  // plaintext did not turn
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kRecv, true));
}

// Java's HttpClient: the selector thread reads the early 200 while the writer thread is still
// inside send() of the request; the write's completion comes after the read's.
TEST_F(FdTableTest, AResponseReadWhileTheRequestIsStillBeingSentIsATurn) {
  table().track(4, 1);
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, false));  // request 1
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kRecv, false));  // response 1
  table().begin_transfer(4, table().load(4), Direction::kRecv, false);  // reader waits
  table().begin_transfer(4, table().load(4), Direction::kSend, false);  // writer: request 2
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kRecv, false)) << "the early response";
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, false)) << "request 2";
  EXPECT_FALSE(table().note_direction(4, 1, Direction::kSend, false)) << "more of its body";
}

TEST_F(FdTableTest, ATransferThatMovedNothingGivesItsTurnBack) {
  table().track(4, 1);
  EXPECT_TRUE(table().note_direction(4, 1, Direction::kSend, false));
  // A non-blocking read finds nothing (EAGAIN) between two writes of the same body.
  const bool took = table().begin_transfer(4, table().load(4), Direction::kRecv, false);
  EXPECT_TRUE(took);
  table().undo_begin(4, 1, Direction::kRecv, false);
  EXPECT_FALSE(table().note_direction(4, 1, Direction::kSend, false));
  // Nothing to take the second time: the bit is already clear, no store.
  EXPECT_TRUE(table().begin_transfer(4, table().load(4), Direction::kRecv, false));
  EXPECT_FALSE(table().begin_transfer(4, table().load(4), Direction::kRecv, false));
}

TEST_F(FdTableTest, RenumberKeepsTheOtherBits) {
  table().track(6, 10);
  table().set_pending(6, 10);
  table().note_direction(6, 10, Direction::kSend, false);
  table().renumber(6, 1);
  const uint64_t w = table().load(6);
  EXPECT_EQ(FdTable::conn_of(w), 1u);
  EXPECT_TRUE(FdTable::pending(w));
  EXPECT_FALSE(table().note_direction(6, 1, Direction::kSend, false));
}

TEST_F(FdTableTest, ConcurrentDirectionFlipsReportEachTurnOnce) {
  // Two threads alternately writing and reading the same fd still see a consistent word.
  table().track(8, 9);
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([t] {
      for (int i = 0; i < 10000; ++i) {
        table().note_direction(8, 9, (i + t) % 2 ? Direction::kSend : Direction::kRecv, false);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(FdTable::conn_of(table().load(8)), 9u);
  EXPECT_FALSE(FdTable::pending(table().load(8)));
}

}  // namespace
}  // namespace httptrace
