// The TLS session table: find-or-insert, release and reuse of slots, a full table, and
// concurrent inserts from several threads never handing one slot to two sessions.
#include "interpose/tls/sessions.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace httptrace::tls {
namespace {

const void* key_of(uintptr_t n) { return reinterpret_cast<const void*>(0x100000 + n * 64); }

class TlsSessions : public ::testing::Test {
 protected:
  void SetUp() override { sessions_reset_for_test(); }
  void TearDown() override { sessions_reset_for_test(); }
};

TEST_F(TlsSessions, GetCreatesOnceAndFindSeesIt) {
  EXPECT_EQ(session_find(key_of(1)), nullptr);
  Session* s = session_get(key_of(1));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->fd, -1);
  EXPECT_EQ(s->hs, HandshakeState::kNone);
  EXPECT_EQ(s->last_dir, kNoDir);
  s->fd = 7;
  EXPECT_EQ(session_get(key_of(1)), s);
  EXPECT_EQ(session_find(key_of(1)), s);
  EXPECT_EQ(session_find(key_of(2)), nullptr);
}

TEST_F(TlsSessions, NullAndSentinelKeysAreRefused) {
  EXPECT_EQ(session_get(nullptr), nullptr);
  EXPECT_EQ(session_get(reinterpret_cast<const void*>(kDeletedKey)), nullptr);
  EXPECT_EQ(session_find(nullptr), nullptr);
}

TEST_F(TlsSessions, ReleasedSlotIsGoneAndReusedWithFreshFields) {
  Session* s = session_get(key_of(1));
  ASSERT_NE(s, nullptr);
  s->fd = 9;
  s->hs = HandshakeState::kDone;
  session_release(s);
  EXPECT_EQ(session_find(key_of(1)), nullptr);
  // Same address again (the allocator reuses freed SSL objects): a new session, not the old one.
  Session* again = session_get(key_of(1));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->fd, -1);
  EXPECT_EQ(again->hs, HandshakeState::kNone);
}

TEST_F(TlsSessions, KeysBehindAReleasedSlotStayFindable) {
  std::vector<Session*> live;
  for (uintptr_t n = 0; n < 1000; ++n) live.push_back(session_get(key_of(n)));
  for (uintptr_t n = 0; n < 1000; n += 2) session_release(live[n]);
  for (uintptr_t n = 1; n < 1000; n += 2) EXPECT_EQ(session_find(key_of(n)), live[n]) << n;
  for (uintptr_t n = 0; n < 1000; n += 2) EXPECT_EQ(session_find(key_of(n)), nullptr) << n;
}

TEST_F(TlsSessions, FullTableReturnsNullThenRecoversAfterRelease) {
  std::vector<Session*> all;
  for (uintptr_t n = 0; n < kSessionSlots; ++n) {
    Session* s = session_get(key_of(n));
    ASSERT_NE(s, nullptr) << n;
    all.push_back(s);
  }
  EXPECT_EQ(session_get(key_of(kSessionSlots)), nullptr);
  EXPECT_EQ(session_find(key_of(kSessionSlots)), nullptr);  // bounded probe, no hang
  session_release(all[123]);
  EXPECT_NE(session_get(key_of(kSessionSlots)), nullptr);
}

TEST_F(TlsSessions, ConcurrentInsertsGetDistinctSlots) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 400;  // 3200 of 4096 slots: long probe chains, many CAS races
  std::vector<std::vector<Session*>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &got] {
      for (int i = 0; i < kPerThread; ++i) {
        const void* key = key_of(static_cast<uintptr_t>(t * kPerThread + i));
        Session* s = session_get(key);
        got[t].push_back(s);
        if (s != nullptr) s->fd = t * kPerThread + i;
        // Churn: release every third one so reuse of freed slots races with inserts.
        if (s != nullptr && i % 3 == 0) session_release(s);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<Session*> live;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      if (i % 3 == 0) continue;
      Session* s = got[t][i];
      ASSERT_NE(s, nullptr);
      EXPECT_TRUE(live.insert(s).second) << "slot handed out twice";
      EXPECT_EQ(session_find(key_of(static_cast<uintptr_t>(t * kPerThread + i))), s);
      EXPECT_EQ(s->fd, t * kPerThread + i);
    }
  }
}

}  // namespace
}  // namespace httptrace::tls
