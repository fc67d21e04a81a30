// Unit test of the segment map: which 2 MiB regions belong to hakmem.
// Regions are registered at addresses chosen far from anything the process
// maps; the map never dereferences them.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
unsigned sm_kind(const void *p);
int sm_set(void *base, size_t size, unsigned first_kind, unsigned kind);
void sm_clear(void *base, size_t size);
int sm_l1_present(size_t index);
size_t sm_l1_size(void);
size_t sm_region_size(void);
size_t sm_l1_span(void);
unsigned sm_none(void);
unsigned sm_small(void);
unsigned sm_medium(void);
unsigned sm_large(void);
unsigned sm_large_tail(void);
unsigned sm_cmap_bin(const void *p);
void sm_cmap_set(const void *start, size_t size, unsigned bin);
size_t sm_cmap_granule(void);
int sm_cmap_ready(void);
unsigned sm_class_of(size_t size);
}

namespace {

using hakmem_box_test::RunInThread;

const size_t kRegion = sm_region_size();

void *Addr(uintptr_t a) { return reinterpret_cast<void *>(a); }

// The base of region `r` inside level-1 entry `l1`.
uintptr_t RegionIn(size_t l1, size_t r) { return l1 * sm_l1_span() + r * kRegion; }

// A level-1 entry with no table yet, searched upwards from `from` (so a
// repeated run of the tests still finds fresh ones). These addresses, around
// 12-30 TiB, are far from where Linux places mappings.
size_t FreshL1(size_t from, size_t count = 1) {
  for (size_t i = from; i + count <= sm_l1_size(); ++i) {
    bool fresh = true;
    for (size_t j = 0; j < count; ++j)
      fresh = fresh && !sm_l1_present(i + j);
    if (fresh)
      return i;
  }
  return 0;
}

TEST(SegmentMap, Geometry) {
  EXPECT_EQ(kRegion, size_t{2} << 20);
  // 47-bit user address space.
  EXPECT_EQ(sm_l1_size() * sm_l1_span(), uintptr_t{1} << 47);
}

TEST(SegmentMap, ForeignAndInvalidAddressesAreNone) {
  int local = 0;
  static int global_var;
  EXPECT_EQ(sm_kind(nullptr), sm_none());
  EXPECT_EQ(sm_kind(&local), sm_none());
  EXPECT_EQ(sm_kind(&global_var), sm_none());
  EXPECT_EQ(sm_kind(Addr(1)), sm_none());
  // Non-canonical and kernel-half addresses.
  EXPECT_EQ(sm_kind(Addr(uintptr_t{1} << 47)), sm_none());
  EXPECT_EQ(sm_kind(Addr(uintptr_t{1} << 60)), sm_none());
  EXPECT_EQ(sm_kind(Addr(0xffff800000000000ull)), sm_none());
  EXPECT_EQ(sm_kind(Addr(~uintptr_t{0})), sm_none());
  EXPECT_EQ(sm_kind(Addr(~uintptr_t{0} - 4095)), sm_none());
  // Level-1 entries that were never created.
  const size_t fresh = FreshL1(100);
  ASSERT_NE(fresh, 0u);
  EXPECT_EQ(sm_kind(Addr(RegionIn(fresh, 123))), sm_none());
  EXPECT_EQ(hak_owns(&local), 0);
  EXPECT_EQ(hak_owns(nullptr), 0);
}

TEST(SegmentMap, SetKindAndClear) {
  const uintptr_t base = RegionIn(150, 10);
  ASSERT_EQ(sm_set(Addr(base), kRegion, sm_small(), sm_small()), 0);
  EXPECT_EQ(sm_kind(Addr(base)), sm_small());
  EXPECT_EQ(sm_kind(Addr(base + 1)), sm_small());
  EXPECT_EQ(sm_kind(Addr(base + kRegion / 2)), sm_small());
  EXPECT_EQ(sm_kind(Addr(base + kRegion - 1)), sm_small());
  EXPECT_EQ(sm_kind(Addr(base + kRegion)), sm_none());
  EXPECT_EQ(sm_kind(Addr(base - 1)), sm_none());

  // Re-registering changes the kind.
  ASSERT_EQ(sm_set(Addr(base), kRegion, sm_medium(), sm_medium()), 0);
  EXPECT_EQ(sm_kind(Addr(base + 4096)), sm_medium());

  sm_clear(Addr(base), kRegion);
  EXPECT_EQ(sm_kind(Addr(base)), sm_none());
  EXPECT_EQ(sm_kind(Addr(base + kRegion - 1)), sm_none());
  EXPECT_EQ(hak_owns(Addr(base + 100)), 0);
}

TEST(SegmentMap, FirstKindVersusKind) {
  const uintptr_t base = RegionIn(151, 100);
  const size_t n = 7;
  ASSERT_EQ(sm_set(Addr(base), n * kRegion, sm_large(), sm_large_tail()), 0);
  EXPECT_EQ(sm_kind(Addr(base - 1)), sm_none());
  EXPECT_EQ(sm_kind(Addr(base)), sm_large());
  EXPECT_EQ(sm_kind(Addr(base + kRegion - 1)), sm_large());
  for (size_t r = 1; r < n; ++r) {
    EXPECT_EQ(sm_kind(Addr(base + r * kRegion)), sm_large_tail()) << r;
    EXPECT_EQ(sm_kind(Addr(base + r * kRegion + 12345)), sm_large_tail()) << r;
  }
  EXPECT_EQ(sm_kind(Addr(base + n * kRegion)), sm_none());

  // Clearing part of it (a shrink) leaves the rest.
  sm_clear(Addr(base + 3 * kRegion), 4 * kRegion);
  EXPECT_EQ(sm_kind(Addr(base)), sm_large());
  EXPECT_EQ(sm_kind(Addr(base + 2 * kRegion)), sm_large_tail());
  EXPECT_EQ(sm_kind(Addr(base + 3 * kRegion)), sm_none());
  EXPECT_EQ(sm_kind(Addr(base + 6 * kRegion)), sm_none());
  sm_clear(Addr(base), 3 * kRegion);
  for (size_t r = 0; r <= n; ++r)
    EXPECT_EQ(sm_kind(Addr(base + r * kRegion)), sm_none()) << r;
}

// A size that is not a multiple of 2 MiB covers every region it touches.
TEST(SegmentMap, PartialSizeCoversTouchedRegions) {
  const uintptr_t base = RegionIn(152, 50);
  ASSERT_EQ(sm_set(Addr(base), kRegion + 1, sm_large(), sm_large_tail()), 0);
  EXPECT_EQ(sm_kind(Addr(base)), sm_large());
  EXPECT_EQ(sm_kind(Addr(base + kRegion)), sm_large_tail());
  EXPECT_EQ(sm_kind(Addr(base + 2 * kRegion)), sm_none());
  sm_clear(Addr(base), kRegion + 1);
  EXPECT_EQ(sm_kind(Addr(base)), sm_none());
  EXPECT_EQ(sm_kind(Addr(base + kRegion)), sm_none());
}

TEST(SegmentMap, RangeAcrossLevelOneBoundary) {
  const size_t l1 = FreshL1(100, 2);
  ASSERT_NE(l1, 0u);
  // Three regions before the boundary and three after.
  const uintptr_t boundary = RegionIn(l1 + 1, 0);
  const uintptr_t base = boundary - 3 * kRegion;
  ASSERT_EQ(sm_set(Addr(base), 6 * kRegion, sm_large(), sm_large_tail()), 0);
  EXPECT_TRUE(sm_l1_present(l1));
  EXPECT_TRUE(sm_l1_present(l1 + 1));
  EXPECT_EQ(sm_kind(Addr(base)), sm_large());
  EXPECT_EQ(sm_kind(Addr(boundary - 1)), sm_large_tail());
  EXPECT_EQ(sm_kind(Addr(boundary)), sm_large_tail());
  EXPECT_EQ(sm_kind(Addr(boundary + 3 * kRegion - 1)), sm_large_tail());
  EXPECT_EQ(sm_kind(Addr(boundary + 3 * kRegion)), sm_none());
  EXPECT_EQ(sm_kind(Addr(base - kRegion)), sm_none());
  sm_clear(Addr(base), 6 * kRegion);
  for (int r = -1; r <= 6; ++r) {
    EXPECT_EQ(sm_kind(Addr(base + static_cast<intptr_t>(r) * static_cast<intptr_t>(kRegion))),
              sm_none())
        << r;
  }
}

// Clearing where no level-2 table exists creates none.
TEST(SegmentMap, ClearOfUnknownRangeAllocatesNothing) {
  const size_t l1 = FreshL1(100);
  ASSERT_NE(l1, 0u);
  sm_clear(Addr(RegionIn(l1, 5)), 3 * kRegion);
  EXPECT_FALSE(sm_l1_present(l1));
}

TEST(SegmentMap, HighestAndLowestRegions) {
  const uintptr_t top = (uintptr_t{1} << 47) - kRegion;
  ASSERT_EQ(sm_set(Addr(top), kRegion, sm_medium(), sm_medium()), 0);
  EXPECT_EQ(sm_kind(Addr(top)), sm_medium());
  EXPECT_EQ(sm_kind(Addr((uintptr_t{1} << 47) - 1)), sm_medium());
  EXPECT_EQ(sm_kind(Addr(uintptr_t{1} << 47)), sm_none());
  sm_clear(Addr(top), kRegion);
  EXPECT_EQ(sm_kind(Addr(top)), sm_none());

  // Region 0 is a valid index; NULL stays NONE once cleared.
  ASSERT_EQ(sm_set(Addr(0), kRegion, sm_small(), sm_small()), 0);
  EXPECT_EQ(sm_kind(Addr(4096)), sm_small());
  sm_clear(Addr(0), kRegion);
  EXPECT_EQ(sm_kind(nullptr), sm_none());
  EXPECT_EQ(sm_kind(Addr(4096)), sm_none());
}

// What the allocator registers for its own blocks.
TEST(SegmentMap, KindsOfRealBlocks) {
  void *tiny = hak_malloc(64);
  void *medium = hak_malloc(20000);
  void *large = hak_malloc(5 << 20);
  ASSERT_NE(tiny, nullptr);
  ASSERT_NE(medium, nullptr);
  ASSERT_NE(large, nullptr);
  EXPECT_EQ(sm_kind(tiny), sm_small());
  EXPECT_EQ(sm_kind(medium), sm_medium());
  EXPECT_EQ(sm_kind(large), sm_large());
  auto *lb = static_cast<unsigned char *>(large);
  EXPECT_EQ(sm_kind(lb + (3 << 20)), sm_large_tail());
  EXPECT_EQ(sm_kind(lb + (5 << 20) - 1), sm_large_tail());
  EXPECT_NE(hak_owns(tiny), 0);
  EXPECT_NE(hak_owns(medium), 0);
  EXPECT_NE(hak_owns(large), 0);
  hak_free(large);
  EXPECT_EQ(sm_kind(large), sm_none());
  EXPECT_EQ(sm_kind(lb + (3 << 20)), sm_none());
  hak_free(medium);
  hak_free(tiny);
}

// Threads register and look up regions at once, racing to create the same
// fresh level-2 tables: no registration may be lost and no lookup may see a
// kind that was never stored there.
TEST(SegmentMap, ConcurrentSetAndLookup) {
  constexpr int kThreads = 4;
  constexpr size_t kPerThread = 64;
  for (size_t round = 0; round < 12; ++round) {
    const size_t l1 = FreshL1(100);
    ASSERT_NE(l1, 0u);
    hakmem_box_test::StartLine start(kThreads);
    std::atomic<int> bad{0};
    auto kind_for = [](int t, size_t i) { return ((t + i) & 1) ? sm_small() : sm_medium(); };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.ArriveAndWait();
        for (size_t i = 0; i < kPerThread; ++i) {
          const uintptr_t base = RegionIn(l1, t * kPerThread + i);
          if (sm_set(Addr(base), kRegion, kind_for(t, i), kind_for(t, i)) != 0)
            bad++;
          if (sm_kind(Addr(base + 777)) != kind_for(t, i))
            bad++;
          // Peek at the other threads' regions: empty or theirs, nothing else.
          for (int o = 0; o < kThreads; ++o) {
            const size_t j = (i * 7) % kPerThread;
            const unsigned k = sm_kind(Addr(RegionIn(l1, o * kPerThread + j)));
            if (k != sm_none() && k != kind_for(o, j))
              bad++;
          }
        }
      });
    }
    for (auto &th : threads)
      th.join();
    EXPECT_EQ(bad.load(), 0) << "round " << round;
    for (int t = 0; t < kThreads; ++t) {
      for (size_t i = 0; i < kPerThread; ++i) {
        ASSERT_EQ(sm_kind(Addr(RegionIn(l1, t * kPerThread + i))), kind_for(t, i))
            << "round " << round << " thread " << t << " region " << i << " was lost";
      }
    }
    sm_clear(Addr(RegionIn(l1, 0)), kThreads * kPerThread * kRegion);
    for (size_t r = 0; r < kThreads * kPerThread; ++r) {
      ASSERT_EQ(sm_kind(Addr(RegionIn(l1, r))), sm_none());
    }
  }
}

// One thread flips regions between kinds while others read them.
TEST(SegmentMap, LookupsDuringSetAndClear) {
  const size_t l1 = 230;
  const uintptr_t base = RegionIn(l1, 1000);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t r = 0; r < 8; ++r) {
          const unsigned k = sm_kind(Addr(base + r * kRegion + 64));
          const bool ok = r == 0 ? (k == sm_none() || k == sm_large())
                                 : (k == sm_none() || k == sm_large_tail());
          if (!ok)
            bad++;
        }
      }
    });
  }
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(sm_set(Addr(base), 8 * kRegion, sm_large(), sm_large_tail()), 0);
    sm_clear(Addr(base), 8 * kRegion);
  }
  stop = true;
  for (auto &th : readers)
    th.join();
  EXPECT_EQ(bad.load(), 0);
}

// ---- the class map ----------------------------------------------------------

TEST(ClassMap, NamesTheBinOfEveryLiveSlabBlockAndNothingElse) {
  ASSERT_TRUE(sm_cmap_ready()) << "the class map could not be reserved";
  int on_stack = 0;
  EXPECT_EQ(sm_cmap_bin(nullptr), 0u);
  EXPECT_EQ(sm_cmap_bin(&on_stack), 0u);
  // Non-canonical and kernel addresses are masked into the table: no fault.
  EXPECT_EQ(sm_cmap_bin(Addr(0xffff800000000000ull)), 0u);
  EXPECT_EQ(sm_cmap_bin(Addr(~uintptr_t{0})), 0u);
  for (size_t size : {1, 16, 100, 1000, 5000, 20000, 120000}) {
    SCOPED_TRACE(size);
    void *p = hak_malloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(sm_cmap_bin(p), sm_class_of(size) + 1);
    EXPECT_EQ(sm_cmap_bin(static_cast<char *>(p) + size - 1), sm_class_of(size) + 1);
    hak_free(p);
  }
  void *big = hak_malloc(1u << 20); // a large mapping: not in any slab
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(sm_cmap_bin(big), 0u);
  hak_free(big);
}

TEST(ClassMap, SetCoversWholeGranulesAndClears) {
  ASSERT_TRUE(sm_cmap_ready());
  const size_t g = sm_cmap_granule();
  // Far from anything mapped (the map is only read, never the memory).
  const uintptr_t base = uintptr_t{21} << 40;
  sm_cmap_set(Addr(base), 8 * g, 7);
  for (size_t i = 0; i < 8; ++i)
    EXPECT_EQ(sm_cmap_bin(Addr(base + i * g + g / 2)), 7u) << i;
  EXPECT_EQ(sm_cmap_bin(Addr(base - 1)), 0u);
  EXPECT_EQ(sm_cmap_bin(Addr(base + 8 * g)), 0u);
  sm_cmap_set(Addr(base), 8 * g, 0);
  for (size_t i = 0; i < 8; ++i)
    EXPECT_EQ(sm_cmap_bin(Addr(base + i * g)), 0u) << i;
}

TEST(ClassMap, ReleasedSlabLeavesTheMap) {
  ASSERT_TRUE(sm_cmap_ready());
  void *p = nullptr;
  // A thread allocates one block of a class nothing else here uses, frees
  // it and exits; trim gives its slab back to the pool.
  RunInThread([&] {
    p = hak_malloc(3000);
    hak_free(p);
  });
  hak_trim(0);
  EXPECT_EQ(sm_cmap_bin(p), 0u) << "a free slab slot names no class";
}

} // namespace
