// Unit test of the sampler box: the rates of both clients, events that land
// exactly where a bin was told to stop, none lost when a bin hands out more
// than it was told, and nothing at all while both clients are off.
#include "hakmem/core/sampler.h"

#include <cmath>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"
#include "hakmem/core/prof_sample.h"

namespace {

constexpr uint64_t kBytes = 4096; // the profiler's mean interval
constexpr uint64_t kAllocs = 100; // the guarded pool's

TEST(Sampler, OffMeansNoEventsAndNoBound) {
  hak_sampler_set(0, 0);
  EXPECT_FALSE(hak_sampler_on);
  uint32_t limit = 0;
  for (uint64_t k = 0; k < 100000; k++) {
    ASSERT_EQ(hak_sampler_count(64, HAK_SAMPLE_ALL), 0u);
    ASSERT_EQ(hak_sampler_miss(3, 64, k * 10, &limit), 0u);
    ASSERT_EQ(limit, UINT32_MAX);
  }
}

// Weighted profiler samples estimate the allocations they stand for.
TEST(Sampler, ProfilerWeightsEstimateTheTotals) {
  hak_sampler_set(kBytes, 0);
  EXPECT_TRUE(hak_sampler_on);
  for (uint64_t size : {uint64_t{64}, uint64_t{65536}}) {
    double est = 0;
    // Enough samples (about 125,000 of 64-byte blocks) that 3% is many
    // standard deviations: 400,000 gave 6,250 and failed about one run in 60.
    const uint64_t n = size < kBytes ? 8000000 : 400000;
    for (uint64_t k = 0; k < n; k++) {
      unsigned ev = hak_sampler_count(size, HAK_SAMPLE_ALL);
      ASSERT_EQ(ev & HAK_SAMPLE_GUARD, 0u);
      if (ev & HAK_SAMPLE_PROF)
        est += hak_prof_sample_weight(size, (double)kBytes);
    }
    EXPECT_NEAR(est, (double)n, n * 0.03) << size;
  }
  hak_sampler_set(0, 0);
}

TEST(Sampler, GuardRateIsOnePerMeanAllocations) {
  hak_sampler_set(0, kAllocs);
  const uint64_t n = 1000000;
  uint64_t events = 0, gaps = 0, last = 0;
  double sq = 0;
  for (uint64_t k = 1; k <= n; k++)
    if (hak_sampler_count(48, HAK_SAMPLE_ALL) & HAK_SAMPLE_GUARD) {
      double gap = (double)(k - last);
      sq += gap * gap;
      gaps += k - last;
      last = k;
      events++;
    }
  EXPECT_NEAR((double)events, (double)n / kAllocs, n / kAllocs * 0.03);
  // Random gaps, not a fixed stride: uniform in [1, 2N - 1], whose deviation
  // is about N / sqrt(3).
  double mean = (double)gaps / events, sd = std::sqrt(sq / events - mean * mean);
  EXPECT_NEAR(sd, mean / std::sqrt(3.0), mean * 0.05);
  // A client not allowed gets nothing, and its countdown is left alone.
  for (uint64_t k = 0; k < 10 * kAllocs; k++)
    ASSERT_EQ(hak_sampler_count(48, HAK_SAMPLE_PROF), 0u);
  hak_sampler_set(0, 0);
}

// A bin that hands out exactly the blocks it is told (limit, this miss's
// block included) misses again just at the next event: every event falls on
// a miss, and the rate is right.
TEST(Sampler, BinThatObeysItsLimitMissesAtEachEvent) {
  hak_sampler_set(kBytes, kAllocs);
  hak_sampler_reset_bins();
  const unsigned bin = 5;
  const uint64_t size = 64;
  uint64_t allocs = 0; // the bin's count of fast allocations
  uint64_t total = 0, guard = 0, prof = 0, misses = 0;
  while (total < 2000000) {
    uint32_t limit;
    unsigned ev = hak_sampler_miss(bin, size, allocs, &limit);
    misses++;
    ASSERT_GE(limit, 1u);
    guard += (ev & HAK_SAMPLE_GUARD) != 0;
    prof += (ev & HAK_SAMPLE_PROF) != 0;
    if (ev & HAK_SAMPLE_GUARD) {
      total++; // served by the pool: the bin stays empty
      continue;
    }
    // This block, then limit - 1 from the bin (at most a refill's 64).
    uint64_t fast = limit - 1 < 63 ? limit - 1 : 63;
    allocs += fast;
    total += 1 + fast;
  }
  EXPECT_NEAR((double)guard, (double)total / kAllocs, total / kAllocs * 0.05);
  EXPECT_NEAR((double)prof, (double)(total * size) / kBytes, total * size / kBytes * 0.05);
  EXPECT_LT(misses, total / 10) << "refills of up to 64 blocks";
  hak_sampler_set(0, 0);
}

// A bin that hands out more than it was told (frees refilled it) reports the
// event it passed at its next miss: late, never lost.
TEST(Sampler, EventsPassedByTheHitPathComeAtTheNextMiss) {
  hak_sampler_set(0, kAllocs);
  hak_sampler_reset_bins();
  const unsigned bin = 7;
  uint64_t allocs = 0, guard = 0, total = 0;
  while (total < 1000000) {
    uint32_t limit;
    unsigned ev = hak_sampler_miss(bin, 32, allocs, &limit);
    // Each miss but the first comes after the point: each reports an event.
    if (total > 0) {
      ASSERT_NE(ev & HAK_SAMPLE_GUARD, 0u) << "at miss " << guard;
    }
    guard += (ev & HAK_SAMPLE_GUARD) != 0;
    allocs += 3 * (uint64_t)limit; // far past the point
    total += 1 + 3 * (uint64_t)limit;
  }
  hak_sampler_set(0, 0);
}

// HAKMEM_GUARD_SAMPLE=1: every allocation, counted or at a miss, is guarded.
TEST(Sampler, GuardRateOfOneGuardsEveryAllocation) {
  hak_sampler_set(0, 1);
  hak_sampler_reset_bins();
  uint32_t limit;
  // The thread's own countdown still holds an interval drawn at the old rate.
  for (int k = 0; k < 1000 && hak_sampler_count(16, HAK_SAMPLE_ALL) == 0; k++) {
  }
  for (uint64_t k = 0; k < 1000; k++) {
    ASSERT_EQ(hak_sampler_count(16, HAK_SAMPLE_ALL), (unsigned)HAK_SAMPLE_GUARD);
    ASSERT_EQ(hak_sampler_miss(1, 16, 0, &limit), (unsigned)HAK_SAMPLE_GUARD);
    ASSERT_EQ(limit, 1u) << "the next allocation is the next event";
  }
  hak_sampler_set(0, 0);
}

// Countdowns are per thread: another thread's misses do not move this one's.
TEST(Sampler, CountdownsArePerThread) {
  hak_sampler_set(0, 1000000);
  hak_sampler_reset_bins();
  uint32_t mine, again;
  hak_sampler_miss(2, 16, 0, &mine);
  std::thread other([] {
    uint32_t limit;
    for (uint64_t k = 1; k <= 100; k++)
      hak_sampler_miss(2, 16, k * 1000, &limit);
  });
  other.join();
  hak_sampler_miss(2, 16, 0, &again); // no fast allocations since: one more counted
  EXPECT_EQ(again, mine - 1);
  hak_sampler_set(0, 0);
}

} // namespace
