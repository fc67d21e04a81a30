// Unit test of the statistics box: the process-wide counters, gauges with
// their peaks, and the counted mutex. (The report built from them,
// hak_stats_get and its text and JSON, is stats_report_test's.)
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/stats.h"

namespace {

uint64_t Load(const HAK_ATOMIC(uint64_t) & c) { return c.load(std::memory_order_relaxed); }

// The counters are C11 atomics in C and std::atomic in C++: one layout.
static_assert(sizeof(HAK_ATOMIC(uint64_t)) == sizeof(uint64_t), "atomic counter is one word");
static_assert(sizeof(hak_global_stats) == (22 + 2 * HAK_NUM_CLASSES) * sizeof(uint64_t),
              "every counter is one word, no padding");

TEST(Stats, AddCountsUpAndDown) {
  HAK_ATOMIC(uint64_t) c{0};
  hak_stats_add(&c, 5);
  EXPECT_EQ(Load(c), 5u);
  hak_stats_add(&c, -3);
  EXPECT_EQ(Load(c), 2u);
  hak_stats_add(&c, int64_t{1} << 40);
  EXPECT_EQ(Load(c), (uint64_t{1} << 40) + 2);
  hak_stats_add(&c, -((int64_t{1} << 40) + 2));
  EXPECT_EQ(Load(c), 0u);
}

TEST(Stats, AddOnTheProcessCounters) {
  const uint64_t before = Load(hak_stats_global.slabs[3]);
  hak_stats_add(&hak_stats_global.slabs[3], 2);
  EXPECT_EQ(Load(hak_stats_global.slabs[3]), before + 2);
  hak_stats_add(&hak_stats_global.slabs[3], -2);
  EXPECT_EQ(Load(hak_stats_global.slabs[3]), before);
}

// A gauge's peak follows it up, never down.
TEST(Stats, GaugeRaisesItsPeakOnlyWhenPassed) {
  HAK_ATOMIC(uint64_t) gauge{0}, peak{0};
  hak_stats_gauge(&gauge, &peak, 10);
  EXPECT_EQ(Load(gauge), 10u);
  EXPECT_EQ(Load(peak), 10u);
  hak_stats_gauge(&gauge, &peak, -4);
  EXPECT_EQ(Load(gauge), 6u);
  EXPECT_EQ(Load(peak), 10u);
  hak_stats_gauge(&gauge, &peak, 3);
  EXPECT_EQ(Load(gauge), 9u);
  EXPECT_EQ(Load(peak), 10u) << "below the old peak";
  hak_stats_gauge(&gauge, &peak, 2);
  EXPECT_EQ(Load(gauge), 11u);
  EXPECT_EQ(Load(peak), 11u);
  hak_stats_gauge(&gauge, &peak, -11);
  EXPECT_EQ(Load(gauge), 0u);
  EXPECT_EQ(Load(peak), 11u);
  // A peak set higher elsewhere (a snapshot taken earlier) is kept.
  peak.store(100);
  hak_stats_gauge(&gauge, &peak, 50);
  EXPECT_EQ(Load(peak), 100u);
}

// Threads move one gauge at once: no update is lost, and the peak is a value
// the gauge can have reached (each thread holds at most kStep at a time).
TEST(Stats, GaugeUnderConcurrentUpdates) {
  constexpr int kThreads = 4;
  constexpr int64_t kStep = 1000;
  constexpr int kRounds = 20000;
  HAK_ATOMIC(uint64_t) gauge{0}, peak{0};
  hakmem_box_test::StartLine start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.ArriveAndWait();
      for (int i = 0; i < kRounds; ++i) {
        hak_stats_gauge(&gauge, &peak, kStep);
        hak_stats_gauge(&gauge, &peak, -kStep);
      }
    });
  }
  for (auto &th : threads)
    th.join();
  EXPECT_EQ(Load(gauge), 0u);
  EXPECT_GE(Load(peak), static_cast<uint64_t>(kStep));
  EXPECT_LE(Load(peak), static_cast<uint64_t>(kThreads * kStep));
}

// Every hak_stats_mutex_lock is an acquisition; a contended one only when another
// thread held the lock.
TEST(Stats, MutexCountsAcquisitions) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  const uint64_t acquires = Load(hak_stats_global.mutex_acquires);
  const uint64_t contended = Load(hak_stats_global.mutex_contended);
  for (int i = 0; i < 10; ++i) {
    hak_stats_mutex_lock(&m);
    pthread_mutex_unlock(&m);
  }
  EXPECT_EQ(Load(hak_stats_global.mutex_acquires) - acquires, 10u);
  EXPECT_EQ(Load(hak_stats_global.mutex_contended), contended);
}

TEST(Stats, MutexCountsContention) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  const uint64_t acquires = Load(hak_stats_global.mutex_acquires);
  const uint64_t contended = Load(hak_stats_global.mutex_contended);
  std::atomic<bool> got{false};
  pthread_mutex_lock(&m);
  std::thread waiter([&] {
    hak_stats_mutex_lock(&m);
    got = true;
    pthread_mutex_unlock(&m);
  });
  // The waiter counts its contention before it blocks.
  while (Load(hak_stats_global.mutex_contended) == contended)
    std::this_thread::yield();
  EXPECT_FALSE(got.load()) << "it waits while the lock is held";
  pthread_mutex_unlock(&m);
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(Load(hak_stats_global.mutex_acquires) - acquires, 1u);
  EXPECT_EQ(Load(hak_stats_global.mutex_contended) - contended, 1u);
}

// The counted mutex excludes: a plain counter under it stays exact, and every
// acquisition is counted once.
TEST(Stats, MutexExcludesUnderLoad) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  uint64_t guarded = 0;
  const uint64_t acquires = Load(hak_stats_global.mutex_acquires);
  const uint64_t contended = Load(hak_stats_global.mutex_contended);
  hakmem_box_test::StartLine start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.ArriveAndWait();
      for (int i = 0; i < kRounds; ++i) {
        hak_stats_mutex_lock(&m);
        ++guarded;
        pthread_mutex_unlock(&m);
      }
    });
  }
  for (auto &th : threads)
    th.join();
  EXPECT_EQ(guarded, uint64_t{kThreads} * kRounds);
  EXPECT_EQ(Load(hak_stats_global.mutex_acquires) - acquires, uint64_t{kThreads} * kRounds);
  EXPECT_LE(Load(hak_stats_global.mutex_contended) - contended, uint64_t{kThreads} * kRounds);
}

} // namespace
