// Unit test of the segment map: which 2 MiB regions belong to hakmem.
// Regions are registered at addresses chosen far from anything the process
// maps; the map never dereferences them.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/segmap.h"

namespace {

constexpr size_t kRegion = HAK_SS_SIZE;
// The address span of one level-1 entry.
constexpr size_t kL1Span = size_t{1} << (HAK_SS_SHIFT + HAK_SEGMAP_L2_BITS);

void *Addr(uintptr_t a) { return reinterpret_cast<void *>(a); }

bool L1Present(size_t index) {
  return hak_segmap_l1[index].load(std::memory_order_acquire) != nullptr;
}

// The map holds bin slots; the test speaks of bins (class + 1).
unsigned CmapBin(const void *p) { return hak_segmap_class_slot(p) / HAK_BIN_SLOT(1); }

// The base of region `r` inside level-1 entry `l1`.
uintptr_t RegionIn(size_t l1, size_t r) { return l1 * kL1Span + r * kRegion; }

// A level-1 entry with no table yet, searched upwards from `from` (so a
// repeated run of the tests still finds fresh ones). These addresses, around
// 12-30 TiB, are far from where Linux places mappings.
size_t FreshL1(size_t from, size_t count = 1) {
  for (size_t i = from; i + count <= HAK_SEGMAP_L1_SIZE; ++i) {
    bool fresh = true;
    for (size_t j = 0; j < count; ++j)
      fresh = fresh && !L1Present(i + j);
    if (fresh)
      return i;
  }
  return 0;
}

TEST(SegmentMap, Geometry) {
  EXPECT_EQ(kRegion, size_t{2} << 20);
  // 47-bit user address space.
  EXPECT_EQ(HAK_SEGMAP_L1_SIZE * kL1Span, uintptr_t{1} << 47);
}

TEST(SegmentMap, ForeignAndInvalidAddressesAreNone) {
  int local = 0;
  static int global_var;
  EXPECT_EQ(hak_segmap_kind(nullptr), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(&local), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(&global_var), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(1)), HAK_REGION_NONE);
  // Non-canonical and kernel-half addresses.
  EXPECT_EQ(hak_segmap_kind(Addr(uintptr_t{1} << 47)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(uintptr_t{1} << 60)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(0xffff800000000000ull)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(~uintptr_t{0})), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(~uintptr_t{0} - 4095)), HAK_REGION_NONE);
  // Level-1 entries that were never created.
  const size_t fresh = FreshL1(100);
  ASSERT_NE(fresh, 0u);
  EXPECT_EQ(hak_segmap_kind(Addr(RegionIn(fresh, 123))), HAK_REGION_NONE);
}

TEST(SegmentMap, SetKindAndClear) {
  const uintptr_t base = RegionIn(150, 10);
  ASSERT_EQ(hak_segmap_set(Addr(base), kRegion, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_SS_SMALL);
  EXPECT_EQ(hak_segmap_kind(Addr(base + 1)), HAK_REGION_SS_SMALL);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion / 2)), HAK_REGION_SS_SMALL);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion - 1)), HAK_REGION_SS_SMALL);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(base - 1)), HAK_REGION_NONE);

  // Re-registering changes the kind.
  ASSERT_EQ(hak_segmap_set(Addr(base), kRegion, HAK_REGION_SS_MEDIUM, HAK_REGION_SS_MEDIUM), 0);
  EXPECT_EQ(hak_segmap_kind(Addr(base + 4096)), HAK_REGION_SS_MEDIUM);

  hak_segmap_clear(Addr(base), kRegion);
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion - 1)), HAK_REGION_NONE);
}

TEST(SegmentMap, FirstKindVersusKind) {
  const uintptr_t base = RegionIn(151, 100);
  const size_t n = 7;
  ASSERT_EQ(hak_segmap_set(Addr(base), n * kRegion, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL), 0);
  EXPECT_EQ(hak_segmap_kind(Addr(base - 1)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_LARGE);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion - 1)), HAK_REGION_LARGE);
  for (size_t r = 1; r < n; ++r) {
    EXPECT_EQ(hak_segmap_kind(Addr(base + r * kRegion)), HAK_REGION_LARGE_TAIL) << r;
    EXPECT_EQ(hak_segmap_kind(Addr(base + r * kRegion + 12345)), HAK_REGION_LARGE_TAIL) << r;
  }
  EXPECT_EQ(hak_segmap_kind(Addr(base + n * kRegion)), HAK_REGION_NONE);

  // Clearing part of it (a shrink) leaves the rest.
  hak_segmap_clear(Addr(base + 3 * kRegion), 4 * kRegion);
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_LARGE);
  EXPECT_EQ(hak_segmap_kind(Addr(base + 2 * kRegion)), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(hak_segmap_kind(Addr(base + 3 * kRegion)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(base + 6 * kRegion)), HAK_REGION_NONE);
  hak_segmap_clear(Addr(base), 3 * kRegion);
  for (size_t r = 0; r <= n; ++r)
    EXPECT_EQ(hak_segmap_kind(Addr(base + r * kRegion)), HAK_REGION_NONE) << r;
}

// A size that is not a multiple of 2 MiB covers every region it touches.
TEST(SegmentMap, PartialSizeCoversTouchedRegions) {
  const uintptr_t base = RegionIn(152, 50);
  ASSERT_EQ(hak_segmap_set(Addr(base), kRegion + 1, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL), 0);
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_LARGE);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion)), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(hak_segmap_kind(Addr(base + 2 * kRegion)), HAK_REGION_NONE);
  hak_segmap_clear(Addr(base), kRegion + 1);
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(base + kRegion)), HAK_REGION_NONE);
}

TEST(SegmentMap, RangeAcrossLevelOneBoundary) {
  const size_t l1 = FreshL1(100, 2);
  ASSERT_NE(l1, 0u);
  // Three regions before the boundary and three after.
  const uintptr_t boundary = RegionIn(l1 + 1, 0);
  const uintptr_t base = boundary - 3 * kRegion;
  ASSERT_EQ(hak_segmap_set(Addr(base), 6 * kRegion, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL), 0);
  EXPECT_TRUE(L1Present(l1));
  EXPECT_TRUE(L1Present(l1 + 1));
  EXPECT_EQ(hak_segmap_kind(Addr(base)), HAK_REGION_LARGE);
  EXPECT_EQ(hak_segmap_kind(Addr(boundary - 1)), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(hak_segmap_kind(Addr(boundary)), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(hak_segmap_kind(Addr(boundary + 3 * kRegion - 1)), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(hak_segmap_kind(Addr(boundary + 3 * kRegion)), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(base - kRegion)), HAK_REGION_NONE);
  hak_segmap_clear(Addr(base), 6 * kRegion);
  for (int r = -1; r <= 6; ++r) {
    EXPECT_EQ(
        hak_segmap_kind(Addr(base + static_cast<intptr_t>(r) * static_cast<intptr_t>(kRegion))),
        HAK_REGION_NONE)
        << r;
  }
}

// Clearing where no level-2 table exists creates none.
TEST(SegmentMap, ClearOfUnknownRangeAllocatesNothing) {
  const size_t l1 = FreshL1(100);
  ASSERT_NE(l1, 0u);
  hak_segmap_clear(Addr(RegionIn(l1, 5)), 3 * kRegion);
  EXPECT_FALSE(L1Present(l1));
}

// The regions of a kind, in order: every one, across a level-1 boundary and
// tables that do not exist, none of another kind, none once cleared.
TEST(SegmentMap, IteratorFindsEveryRegionOfAKind) {
  const size_t l1 = FreshL1(200, 3);
  ASSERT_NE(l1, 0u);
  // Small regions at the end of l1 and in l1 + 2 (l1 + 1 gets no table),
  // a medium one between; all above any other region of this process.
  const uintptr_t a = RegionIn(l1, (size_t{1} << HAK_SEGMAP_L2_BITS) - 1);
  const uintptr_t b = RegionIn(l1 + 2, 0);
  const uintptr_t c = RegionIn(l1 + 2, 7);
  const uintptr_t m = RegionIn(l1, 3);
  ASSERT_EQ(hak_segmap_set(Addr(a), kRegion, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  ASSERT_EQ(hak_segmap_set(Addr(b), kRegion, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  ASSERT_EQ(hak_segmap_set(Addr(c), kRegion, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  ASSERT_EQ(hak_segmap_set(Addr(m), kRegion, HAK_REGION_SS_MEDIUM, HAK_REGION_SS_MEDIUM), 0);
  EXPECT_FALSE(L1Present(l1 + 1));
  auto walk = [](uint8_t kind, uintptr_t from) {
    std::vector<uintptr_t> found;
    for (uintptr_t x = from; hak_segmap_next(kind, &x); x += kRegion)
      found.push_back(x);
    return found;
  };
  const uintptr_t start = RegionIn(l1, 0);
  EXPECT_EQ(walk(HAK_REGION_SS_SMALL, start), (std::vector<uintptr_t>{a, b, c}));
  EXPECT_EQ(walk(HAK_REGION_SS_MEDIUM, start), (std::vector<uintptr_t>{m}));
  // A cursor inside a region starts at that region; one past it skips it.
  EXPECT_EQ(walk(HAK_REGION_SS_SMALL, a + 12345), (std::vector<uintptr_t>{a, b, c}));
  EXPECT_EQ(walk(HAK_REGION_SS_SMALL, a + kRegion), (std::vector<uintptr_t>{b, c}));
  // From address 0 the walk finds them too, after any of other tests.
  const std::vector<uintptr_t> all = walk(HAK_REGION_SS_SMALL, 0);
  ASSERT_GE(all.size(), 3u);
  EXPECT_EQ(std::vector<uintptr_t>(all.end() - 3, all.end()), (std::vector<uintptr_t>{a, b, c}));
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  uintptr_t past = uintptr_t{1} << 47;
  EXPECT_FALSE(hak_segmap_next(HAK_REGION_SS_SMALL, &past)) << "past the address space";
  hak_segmap_clear(Addr(b), kRegion);
  EXPECT_EQ(walk(HAK_REGION_SS_SMALL, start), (std::vector<uintptr_t>{a, c}));
  hak_segmap_clear(Addr(a), kRegion);
  hak_segmap_clear(Addr(c), kRegion);
  hak_segmap_clear(Addr(m), kRegion);
  EXPECT_TRUE(walk(HAK_REGION_SS_SMALL, start).empty());
  EXPECT_TRUE(walk(HAK_REGION_SS_MEDIUM, start).empty());
}

TEST(SegmentMap, HighestAndLowestRegions) {
  const uintptr_t top = (uintptr_t{1} << 47) - kRegion;
  ASSERT_EQ(hak_segmap_set(Addr(top), kRegion, HAK_REGION_SS_MEDIUM, HAK_REGION_SS_MEDIUM), 0);
  EXPECT_EQ(hak_segmap_kind(Addr(top)), HAK_REGION_SS_MEDIUM);
  EXPECT_EQ(hak_segmap_kind(Addr((uintptr_t{1} << 47) - 1)), HAK_REGION_SS_MEDIUM);
  EXPECT_EQ(hak_segmap_kind(Addr(uintptr_t{1} << 47)), HAK_REGION_NONE);
  hak_segmap_clear(Addr(top), kRegion);
  EXPECT_EQ(hak_segmap_kind(Addr(top)), HAK_REGION_NONE);

  // Region 0 is a valid index; NULL stays NONE once cleared.
  ASSERT_EQ(hak_segmap_set(Addr(0), kRegion, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  EXPECT_EQ(hak_segmap_kind(Addr(4096)), HAK_REGION_SS_SMALL);
  hak_segmap_clear(Addr(0), kRegion);
  EXPECT_EQ(hak_segmap_kind(nullptr), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(Addr(4096)), HAK_REGION_NONE);
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
    auto kind_for = [](int t, size_t i) {
      return ((t + i) & 1) ? HAK_REGION_SS_SMALL : HAK_REGION_SS_MEDIUM;
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.ArriveAndWait();
        for (size_t i = 0; i < kPerThread; ++i) {
          const uintptr_t base = RegionIn(l1, t * kPerThread + i);
          if (hak_segmap_set(Addr(base), kRegion, kind_for(t, i), kind_for(t, i)) != 0)
            bad++;
          if (hak_segmap_kind(Addr(base + 777)) != kind_for(t, i))
            bad++;
          // Peek at the other threads' regions: empty or theirs, nothing else.
          for (int o = 0; o < kThreads; ++o) {
            const size_t j = (i * 7) % kPerThread;
            const unsigned k = hak_segmap_kind(Addr(RegionIn(l1, o * kPerThread + j)));
            if (k != HAK_REGION_NONE && k != kind_for(o, j))
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
        ASSERT_EQ(hak_segmap_kind(Addr(RegionIn(l1, t * kPerThread + i))), kind_for(t, i))
            << "round " << round << " thread " << t << " region " << i << " was lost";
      }
    }
    hak_segmap_clear(Addr(RegionIn(l1, 0)), kThreads * kPerThread * kRegion);
    for (size_t r = 0; r < kThreads * kPerThread; ++r) {
      ASSERT_EQ(hak_segmap_kind(Addr(RegionIn(l1, r))), HAK_REGION_NONE);
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
          const unsigned k = hak_segmap_kind(Addr(base + r * kRegion + 64));
          const bool ok = r == 0 ? (k == HAK_REGION_NONE || k == HAK_REGION_LARGE)
                                 : (k == HAK_REGION_NONE || k == HAK_REGION_LARGE_TAIL);
          if (!ok)
            bad++;
        }
      }
    });
  }
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(hak_segmap_set(Addr(base), 8 * kRegion, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL), 0);
    hak_segmap_clear(Addr(base), 8 * kRegion);
  }
  stop = true;
  for (auto &th : readers)
    th.join();
  EXPECT_EQ(bad.load(), 0);
}

// ---- the class map ----------------------------------------------------------

// Before any slab registers, every address names bin 0; addresses outside the
// table (non-canonical, kernel) are masked into it, without a fault.
TEST(ClassMap, UnregisteredAddressesNameBinZero) {
  hak_segmap_class_init();
  ASSERT_NE(__atomic_load_n(&hak_segmap_class.mask, __ATOMIC_ACQUIRE), 0u)
      << "the class map could not be reserved";
  EXPECT_EQ(hak_segmap_class.mask, HAK_CMAP_ENTRIES - 1);
  int on_stack = 0;
  static int global_var;
  EXPECT_EQ(CmapBin(nullptr), 0u);
  EXPECT_EQ(CmapBin(&on_stack), 0u);
  EXPECT_EQ(CmapBin(&global_var), 0u);
  EXPECT_EQ(CmapBin(Addr(0xffff800000000000ull)), 0u);
  EXPECT_EQ(CmapBin(Addr(~uintptr_t{0})), 0u);
  EXPECT_EQ(CmapBin(Addr(uintptr_t{1} << 47)), 0u);
  // A second initialisation keeps the table (and what it holds).
  const uint8_t *map = hak_segmap_class.map;
  hak_segmap_class_init();
  EXPECT_EQ(hak_segmap_class.map, map);
}

TEST(ClassMap, SetCoversWholeGranulesAndClears) {
  hak_segmap_class_init();
  ASSERT_NE(__atomic_load_n(&hak_segmap_class.mask, __ATOMIC_ACQUIRE), 0u);
  const size_t g = (size_t{1} << HAK_CMAP_SHIFT);
  // Far from anything mapped (the map is only read, never the memory).
  const uintptr_t base = uintptr_t{21} << 40;
  hak_segmap_class_set(Addr(base), 8 * g, 7);
  for (size_t i = 0; i < 8; ++i)
    EXPECT_EQ(CmapBin(Addr(base + i * g + g / 2)), 7u) << i;
  EXPECT_EQ(CmapBin(Addr(base - 1)), 0u);
  EXPECT_EQ(CmapBin(Addr(base + 8 * g)), 0u);
  hak_segmap_class_set(Addr(base), 8 * g, 0);
  for (size_t i = 0; i < 8; ++i)
    EXPECT_EQ(CmapBin(Addr(base + i * g)), 0u) << i;
}

} // namespace
