// Unit test of the page arena: freed regions are cached and reused, idle ones
// go back to the OS after the decay time (or at once when forced), and the
// cache stays within its bounds.
#include "hakmem/core/page_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/prctl.h>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"
#include "hakmem/core/purge.h"
#include "hakmem/core/stats.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kRegion = 2 * kMiB;

// Whether [p, p + size) is mapped, asked of the kernel.
bool IsMapped(void *p, size_t size) {
  std::vector<unsigned char> vec((size + 4095) / 4096);
  return mincore(p, size, vec.data()) == 0;
}

// Pages of [p, p + size) that are resident, asked of the kernel.
size_t ResidentPages(void *p, size_t size) {
  std::vector<unsigned char> vec((size + 4095) / 4096);
  if (mincore(p, size, vec.data()) != 0)
    return SIZE_MAX;
  size_t n = 0;
  for (unsigned char v : vec)
    n += v & 1;
  return n;
}

uint64_t Mapped() { return hak_stats_global.mapped.load(); }
uint64_t MappedPeak() { return hak_stats_global.mapped_peak.load(); }
uint64_t Cached() { return hak_stats_global.cached.load(); }
uint64_t Purged() { return hak_stats_global.purged.load(); }

// The arena's part of the pass that maintenance registers at init: what a
// tick runs once a deadline has passed.
uint64_t ArenaPass() { return hak_page_arena_decay_next(false); }

class PageArenaTest : public ::testing::Test {
protected:
  void SetUp() override {
    static std::once_flag once;
    std::call_once(once, [] {
      hak_options_load(); // set options only afterwards
      // The test steers decay through ticks and changes options while it
      // runs: no purge thread may decay (or read the options) behind its back.
      hak_options_current.purge_thread = 0;
      hak_purge_set_pass(ArenaPass);
    });
    saved_decay_ = hak_options_current.decay_ms;
    saved_cache_ = hak_options_current.arena_cache_bytes;
    hak_options_current.decay_ms = 60000;
    hak_options_current.arena_cache_bytes = 64 * kMiB;
    hak_page_arena_decay(true); // start with an empty cache
    ASSERT_EQ(Cached(), 0u);
  }
  void TearDown() override {
    hak_page_arena_decay(true);
    hak_options_current.decay_ms = saved_decay_;
    hak_options_current.arena_cache_bytes = saved_cache_;
  }

  // A region as a large block asks for it: up to a quarter larger.
  void *Alloc(size_t size, size_t *mapped = nullptr, bool *zeroed = nullptr) {
    size_t m = 0, touched = 0;
    void *p = hak_page_arena_alloc_extent(size, size, &m, &touched);
    if (mapped)
      *mapped = m;
    if (zeroed)
      *zeroed = touched == 0;
    return p;
  }

  static void SetDecayMs(uint32_t ms) { hak_options_current.decay_ms = ms; }
  static void SetCacheBytes(size_t bytes) { hak_options_current.arena_cache_bytes = bytes; }

  uint32_t saved_decay_ = 0;
  size_t saved_cache_ = 0;
};

TEST_F(PageArenaTest, FreshRegionsAreAlignedAndZeroed) {
  const uint64_t mapped = Mapped();
  for (size_t size : {kRegion, 3 * kRegion, 16 * kMiB}) {
    size_t got = 0;
    bool zeroed = false;
    void *p = Alloc(size, &got, &zeroed);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kRegion, 0u);
    EXPECT_EQ(got, size);
    EXPECT_TRUE(zeroed);
    EXPECT_EQ(static_cast<unsigned char *>(p)[size - 1], 0);
    EXPECT_EQ(Mapped(), mapped + size);
    EXPECT_GE(MappedPeak(), Mapped());
    hak_page_arena_free(p, size);
    hak_page_arena_decay(true);
    EXPECT_EQ(Mapped(), mapped);
  }
}

TEST_F(PageArenaTest, FreedRegionIsReusedAtSameAddress) {
  void *a = Alloc(2 * kRegion);
  ASSERT_NE(a, nullptr);
  std::memset(a, 0x42, 2 * kRegion);
  const uint64_t mapped = Mapped();
  hak_page_arena_free(a, 2 * kRegion);
  EXPECT_EQ(Cached(), 2 * kRegion);
  EXPECT_EQ(Mapped(), mapped) << "a cached region stays mapped";
  EXPECT_TRUE(IsMapped(a, 2 * kRegion));

  size_t got = 0;
  bool zeroed = true;
  void *b = Alloc(2 * kRegion, &got, &zeroed);
  EXPECT_EQ(b, a);
  EXPECT_EQ(got, 2 * kRegion);
  EXPECT_FALSE(zeroed) << "a reused region is dirty";
  EXPECT_EQ(static_cast<unsigned char *>(b)[12345], 0x42);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped);
  hak_page_arena_free(b, 2 * kRegion);
}

TEST_F(PageArenaTest, NewestOfEqualSizeFirst) {
  void *a = Alloc(kRegion);
  void *b = Alloc(kRegion);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  hak_page_arena_free(a, kRegion);
  hak_page_arena_free(b, kRegion);
  EXPECT_EQ(Alloc(kRegion), b);
  EXPECT_EQ(Alloc(kRegion), a);
  hak_page_arena_free(a, kRegion);
  hak_page_arena_free(b, kRegion);
}

// A SuperSlab takes exactly 2 MiB, from a larger idle region too: the pages
// past it go back to the OS (they could not start a region of their own).
TEST_F(PageArenaTest, SuperSlabTakesExactlyTwoMiB) {
  const size_t size = kRegion + 400 * kKiB;
  void *big = Alloc(size);
  ASSERT_NE(big, nullptr);
  hak_page_arena_free(big, size);
  ASSERT_EQ(Cached(), size);
  const uint64_t mapped = Mapped();
  size_t got = 0;
  bool zeroed = true;
  void *ss = hak_page_arena_alloc(kRegion, &got, &zeroed);
  EXPECT_EQ(ss, big);
  EXPECT_EQ(got, kRegion);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped - 400 * kKiB);
  EXPECT_FALSE(IsMapped(static_cast<unsigned char *>(big) + kRegion, 400 * kKiB));
  hak_page_arena_free(ss, kRegion);
}

// A large block's region ends at its last page: the rest of a bigger idle
// region goes back to the OS up to the next 2 MiB boundary, and is cached
// past it.
TEST_F(PageArenaTest, RegionsAreCutAtPagesAndSplitAtBoundaries) {
  void *big = Alloc(5 * kMiB);
  ASSERT_NE(big, nullptr);
  std::memset(big, 0x33, 5 * kMiB);
  hak_page_arena_free(big, 5 * kMiB);
  const uint64_t mapped = Mapped();
  size_t got = 0;
  void *p = Alloc(kMiB + 4 * kKiB, &got);
  EXPECT_EQ(p, big);
  EXPECT_EQ(got, kMiB + 4 * kKiB);
  unsigned char *b = static_cast<unsigned char *>(big);
  EXPECT_FALSE(IsMapped(b + got, kRegion - got)) << "between the block and the boundary";
  EXPECT_TRUE(IsMapped(b + kRegion, 3 * kMiB)) << "the dense tail stays cached";
  EXPECT_EQ(Cached(), 3 * kMiB);
  EXPECT_EQ(Mapped(), mapped - (kRegion - got));
  hak_page_arena_free(p, got);
}

// Exact size first; else the smallest cached region that fits, up to a
// quarter larger as it is, and trimmed to the request when bigger than that.
TEST_F(PageArenaTest, ExactSizePreferredThenSmallestFit) {
  void *big = Alloc(10 * kMiB);
  void *exact = Alloc(8 * kMiB);
  ASSERT_NE(big, nullptr);
  ASSERT_NE(exact, nullptr);
  hak_page_arena_free(exact, 8 * kMiB);
  hak_page_arena_free(big, 10 * kMiB); // newer, but not exact
  size_t got = 0;
  EXPECT_EQ(Alloc(8 * kMiB, &got), exact);
  EXPECT_EQ(got, 8 * kMiB);
  // Now only the 10 MiB region is cached: 8 MiB takes it (25% more)...
  void *again = Alloc(8 * kMiB, &got);
  EXPECT_EQ(again, big);
  EXPECT_EQ(got, 10 * kMiB) << "the caller learns the real size";
  hak_page_arena_free(again, got);
  // ...and 6 MiB takes it too, split: the 4 MiB tail stays cached as a
  // region of its own, resident pages and all.
  std::memset(again, 0x5a, 10 * kMiB);
  const uint64_t mapped = Mapped(), purged = Purged();
  bool zeroed = true;
  void *trimmed = Alloc(6 * kMiB, &got, &zeroed);
  EXPECT_EQ(trimmed, big);
  EXPECT_EQ(got, 6 * kMiB) << "never more than a quarter over the request";
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(Cached(), 4 * kMiB);
  EXPECT_EQ(Mapped(), mapped);
  EXPECT_EQ(Purged(), purged);
  unsigned char *tail = static_cast<unsigned char *>(big) + 6 * kMiB;
  EXPECT_TRUE(IsMapped(tail, 4 * kMiB));
  EXPECT_EQ(ResidentPages(tail, 4 * kMiB), 4 * kMiB / 4096);
  hak_page_arena_free(trimmed, got);
  // A request larger than anything cached gathers the cached regions, most
  // resident first, into a new mapping: their pages move, with no fault.
  void *larger = Alloc(12 * kMiB, &got, &zeroed);
  ASSERT_NE(larger, nullptr);
  EXPECT_NE(larger, big);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(larger) % kRegion, 0u);
  EXPECT_EQ(got, 12 * kMiB);
  EXPECT_FALSE(zeroed) << "moved pages are dirty";
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped + 2 * kMiB) << "12 MiB mapped, 10 MiB moved into it";
  unsigned char *l = static_cast<unsigned char *>(larger);
  EXPECT_EQ(ResidentPages(l, 10 * kMiB), 10 * kMiB / 4096);
  EXPECT_EQ(l[0], 0x5a);
  EXPECT_EQ(l[10 * kMiB - 1], 0x5a);
  EXPECT_EQ(l[12 * kMiB - 1], 0) << "past the moved pages: fresh zeros";
  EXPECT_FALSE(IsMapped(big, 10 * kMiB)) << "the old addresses are gone";
  hak_page_arena_free(larger, 12 * kMiB);
  hak_page_arena_free(exact, 8 * kMiB);
}

// The extent a gathered mapping reports as possibly nonzero ends with the
// last moved region's resident part; beyond it the mapping reads as zeros.
TEST_F(PageArenaTest, GatherReportsTheDirtyExtent) {
  void *a = Alloc(4 * kMiB);
  ASSERT_NE(a, nullptr);
  std::memset(a, 0x11, 3 * kMiB);
  hak_page_arena_free_extent(a, 4 * kMiB, 3 * kMiB);
  size_t got = 0, touched = 0;
  unsigned char *p =
      static_cast<unsigned char *>(hak_page_arena_alloc_extent(8 * kMiB, 8 * kMiB, &got, &touched));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(got, 8 * kMiB);
  EXPECT_EQ(touched, 3 * kMiB);
  EXPECT_EQ(p[3 * kMiB - 1], 0x11);
  for (size_t off = 3 * kMiB; off < 8 * kMiB; off += 4096)
    ASSERT_EQ(p[off], 0) << off;
  hak_page_arena_free_extent(p, 8 * kMiB, 8 * kMiB);
  // A region with under 1 MiB resident is not worth a move: a fresh mapping.
  void *b = hak_page_arena_alloc_extent(8 * kMiB, 8 * kMiB, &got, &touched);
  ASSERT_EQ(b, p) << "exact fit first";
  hak_page_arena_free_extent(b, 8 * kMiB, 512 * 1024);
  void *c = hak_page_arena_alloc_extent(10 * kMiB, 10 * kMiB, &got, &touched);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(touched, 0u);
  EXPECT_EQ(Cached(), 8 * kMiB) << "the barely-touched region stays cached";
  hak_page_arena_free_extent(c, 10 * kMiB, 0);
}

// Regions whose pages were touched sparsely (under a quarter resident) are
// not worth the system calls of a move: a larger request maps afresh, and a
// too-big region's sparse tail goes to the OS rather than the cache.
TEST_F(PageArenaTest, SparseRegionsAreNeitherMovedNorKept) {
  // Pages, not folios: a kernel set to multi-size THP (64 KiB anonymous
  // folios, as one CI machine was) makes a written byte's whole folio resident.
  ASSERT_EQ(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
  auto *a = static_cast<unsigned char *>(Alloc(8 * kMiB));
  ASSERT_NE(a, nullptr);
  for (size_t off = 0; off < 8 * kMiB; off += 64 * 1024)
    a[off] = 1; // one page in 16
  hak_page_arena_free(a, 8 * kMiB);
  size_t got = 0, touched = 0;
  void *b = hak_page_arena_alloc_extent(12 * kMiB, 12 * kMiB, &got, &touched);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(touched, 0u) << "a fresh mapping";
  EXPECT_EQ(Cached(), 8 * kMiB) << "the sparse region stays cached";
  EXPECT_TRUE(IsMapped(a, 8 * kMiB));
  // 4 MiB of it: the 4 MiB tail is sparse, so it goes back to the OS.
  const uint64_t purged = Purged();
  void *c = hak_page_arena_alloc_extent(4 * kMiB, 4 * kMiB, &got, &touched);
  EXPECT_EQ(c, a);
  EXPECT_EQ(got, 4 * kMiB);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Purged(), purged + 4 * kMiB);
  EXPECT_FALSE(IsMapped(a + 4 * kMiB, 4 * kMiB));
  hak_page_arena_free_extent(c, 4 * kMiB, 4 * kMiB);
  hak_page_arena_free_extent(b, 12 * kMiB, 0);
}

// Among cached regions of one size, the one whose resident extent covers the
// request with the least to spare; else the one with the most resident.
TEST_F(PageArenaTest, BestFitByResidentExtent) {
  constexpr size_t kKiB = 1024;
  void *r[3];
  for (void *&p : r) {
    p = Alloc(kRegion);
    ASSERT_NE(p, nullptr);
  }
  // Freed in an order where taking the newest would be wrong every time.
  hak_page_arena_free_extent(r[1], kRegion, 1024 * kKiB);
  hak_page_arena_free_extent(r[2], kRegion, 512 * kKiB);
  hak_page_arena_free_extent(r[0], kRegion, 256 * kKiB);
  EXPECT_EQ(Cached(), 3 * kRegion);
  size_t got = 0, touched = 0;
  EXPECT_EQ(hak_page_arena_alloc_extent(kRegion, 400 * kKiB, &got, &touched), r[2]);
  EXPECT_EQ(got, kRegion);
  EXPECT_EQ(touched, 512 * kKiB) << "a near fit keeps its pages";
  EXPECT_EQ(hak_page_arena_alloc_extent(kRegion, 2 * kMiB, &got, &touched), r[1])
      << "nothing covers 2 MiB: the most resident";
  EXPECT_EQ(touched, 1024 * kKiB);
  EXPECT_EQ(hak_page_arena_alloc_extent(kRegion, 128 * kKiB, &got, &touched), r[0]);
  EXPECT_EQ(touched, 256 * kKiB);
  EXPECT_EQ(Cached(), 0u);
  for (void *p : r)
    hak_page_arena_free(p, kRegion);
}

// A reused region whose resident pages are more than three times what the
// new block needs keeps twice the need and gives the rest back; its head
// keeps its contents, the rest reads as zeros.
TEST_F(PageArenaTest, ReuseGivesBackResidentPagesBeyondNeed) {
  constexpr size_t kKiB = 1024;
  size_t got = 0, touched = 1;
  void *a = hak_page_arena_alloc_extent(kRegion, kRegion, &got, &touched);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(touched, 0u) << "fresh";
  std::memset(a, 0x5a, kRegion);
  ASSERT_EQ(ResidentPages(a, kRegion), kRegion / 4096);
  hak_page_arena_free_extent(a, kRegion, kRegion);
  const uint64_t mapped = Mapped(), purged = Purged();
  void *b = hak_page_arena_alloc_extent(kRegion, 256 * kKiB, &got, &touched);
  EXPECT_EQ(b, a);
  EXPECT_EQ(touched, 512 * kKiB);
  EXPECT_EQ(Purged(), purged + kRegion - 512 * kKiB);
  EXPECT_EQ(Mapped(), mapped) << "the region stays mapped";
  EXPECT_EQ(ResidentPages(a, 512 * kKiB), 512 * kKiB / 4096);
  EXPECT_EQ(ResidentPages(static_cast<unsigned char *>(a) + 512 * kKiB, kRegion - 512 * kKiB), 0u);
  EXPECT_EQ(static_cast<unsigned char *>(a)[512 * kKiB - 1], 0x5a);
  EXPECT_EQ(static_cast<unsigned char *>(a)[512 * kKiB], 0);
  // Up to three times the need, the pages stay.
  hak_page_arena_free_extent(a, kRegion, touched);
  void *c = hak_page_arena_alloc_extent(kRegion, 176 * kKiB, &got, &touched);
  EXPECT_EQ(c, a);
  EXPECT_EQ(touched, 512 * kKiB);
  EXPECT_EQ(Purged(), purged + kRegion - 512 * kKiB);
  EXPECT_EQ(ResidentPages(a, 512 * kKiB), 512 * kKiB / 4096);
  hak_page_arena_free(c, kRegion);
}

TEST_F(PageArenaTest, DecayReturnsIdleRegionsAfterDecayTime) {
  SetDecayMs(40);
  void *a = Alloc(3 * kRegion);
  ASSERT_NE(a, nullptr);
  std::memset(a, 1, 3 * kRegion);
  const uint64_t mapped = Mapped(), purged = Purged();
  hak_page_arena_free(a, 3 * kRegion);
  hak_page_arena_decay(false);
  EXPECT_EQ(Mapped(), mapped) << "not idle long enough yet";
  EXPECT_EQ(Cached(), 3 * kRegion);

  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  hak_page_arena_decay(false);
  EXPECT_EQ(Mapped(), mapped - 3 * kRegion);
  EXPECT_EQ(Purged(), purged + 3 * kRegion);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_FALSE(IsMapped(a, 3 * kRegion)) << "returned to the OS";
}

TEST_F(PageArenaTest, TickDecaysOnItsOwn) {
  SetDecayMs(20);
  void *a = Alloc(kRegion);
  void *b = Alloc(kRegion);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const uint64_t mapped = Mapped(), purged = Purged();
  hak_page_arena_free(a, kRegion);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  hak_page_arena_free(b, kRegion); // b is young
  hak_page_arena_tick();
  EXPECT_EQ(Mapped(), mapped - kRegion) << "only the old region went back";
  EXPECT_EQ(Purged(), purged + kRegion);
  EXPECT_EQ(Cached(), kRegion);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  hak_page_arena_tick();
  EXPECT_EQ(Mapped(), mapped - 2 * kRegion);
  EXPECT_EQ(Cached(), 0u);
}

TEST_F(PageArenaTest, ForcedDecayReturnsEverything) {
  std::vector<void *> regions;
  for (int i = 0; i < 5; ++i)
    regions.push_back(Alloc(kRegion * (1 + i % 2)));
  const uint64_t mapped = Mapped(), purged = Purged();
  size_t total = 0;
  for (int i = 0; i < 5; ++i) {
    hak_page_arena_free(regions[i], kRegion * (1 + i % 2));
    total += kRegion * (1 + i % 2);
  }
  EXPECT_EQ(Cached(), total);
  hak_page_arena_decay(true);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped - total);
  EXPECT_EQ(Purged(), purged + total);
  // A forced decay of an empty cache gives nothing back (hak_trim reports
  // whether anything went: maintenance's test checks that).
  void *c = Alloc(kRegion);
  hak_page_arena_free(c, kRegion);
  const uint64_t purged_c = Purged();
  hak_page_arena_decay(true);
  EXPECT_EQ(Purged(), purged_c + kRegion);
  EXPECT_EQ(Cached(), 0u);
  hak_page_arena_decay(true);
  EXPECT_EQ(Purged(), purged_c + kRegion) << "nothing left to return";
}

TEST_F(PageArenaTest, ZeroDecayReturnsAtOnce) {
  SetDecayMs(0);
  void *a = Alloc(kRegion);
  ASSERT_NE(a, nullptr);
  const uint64_t mapped = Mapped(), purged = Purged();
  hak_page_arena_free(a, kRegion);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped - kRegion);
  EXPECT_EQ(Purged(), purged + kRegion);
}

TEST_F(PageArenaTest, CacheByteBoundEvictsOldest) {
  SetCacheBytes(8 * kMiB);
  const uint64_t purged0 = Purged();
  // A region over half the bound is never cached.
  void *big = Alloc(6 * kMiB);
  ASSERT_NE(big, nullptr);
  hak_page_arena_free(big, 6 * kMiB);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Purged(), purged0 + 6 * kMiB);

  void *a = Alloc(4 * kMiB);
  void *b = Alloc(4 * kMiB);
  void *c = Alloc(2 * kMiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  hak_page_arena_free(a, 4 * kMiB);
  hak_page_arena_free(b, 4 * kMiB);
  EXPECT_EQ(Cached(), 8 * kMiB);
  const uint64_t purged1 = Purged();
  hak_page_arena_free(c, 2 * kMiB); // over the bound: the oldest (a) goes
  EXPECT_EQ(Cached(), 6 * kMiB);
  EXPECT_EQ(Purged(), purged1 + 4 * kMiB);
  EXPECT_FALSE(IsMapped(a, 4 * kMiB));
  EXPECT_EQ(Alloc(4 * kMiB), b);
  EXPECT_EQ(Alloc(2 * kMiB), c);
  hak_page_arena_free(b, 4 * kMiB);
  hak_page_arena_free(c, 2 * kMiB);
}

// Idle SuperSlabs are kept only up to a small number: the ones freed beyond
// it go straight back to the OS. Large blocks' regions of the same size are not
// bounded that way.
TEST_F(PageArenaTest, FewIdleSuperSlabRegionsAreKept) {
  SetCacheBytes(size_t{1} << 30);
  constexpr int kRegions = 20;
  std::vector<void *> regions;
  for (int i = 0; i < kRegions; ++i) {
    void *p = Alloc(kRegion);
    ASSERT_NE(p, nullptr);
    regions.push_back(p);
  }
  const uint64_t mapped = Mapped();
  for (void *p : regions)
    hak_page_arena_free_superslab(p);
  const uint64_t cached = Cached();
  EXPECT_EQ(cached, 8 * kRegion);
  EXPECT_EQ(Mapped(), mapped - (kRegions * kRegion - cached));
  // The first ones freed are kept, the later ones are gone.
  EXPECT_TRUE(IsMapped(regions.front(), kRegion));
  EXPECT_FALSE(IsMapped(regions.back(), kRegion));
  hak_page_arena_decay(true);
  // The same regions as large blocks' mappings are all kept.
  regions.clear();
  for (int i = 0; i < kRegions; ++i)
    regions.push_back(Alloc(kRegion));
  for (void *p : regions)
    hak_page_arena_free(p, kRegion);
  EXPECT_EQ(Cached(), kRegions * kRegion);
  hak_page_arena_decay(true);
}

// Larger regions (4 MiB here) are bounded by the cache's slots.
TEST_F(PageArenaTest, CacheSlotBoundEvictsOldest) {
  constexpr size_t kBig = 2 * kRegion;
  SetCacheBytes(size_t{1} << 30);
  const size_t kRegions = HAK_ARENA_SLOTS + 6; // more than the cache has slots for
  std::vector<void *> regions;
  for (size_t i = 0; i < kRegions; ++i) {
    void *p = Alloc(kBig);
    ASSERT_NE(p, nullptr);
    regions.push_back(p);
  }
  const uint64_t mapped = Mapped();
  for (void *p : regions)
    hak_page_arena_free(p, kBig);
  const uint64_t cached = Cached();
  EXPECT_LT(cached, kRegions * kBig) << "the cache is bounded in entries";
  EXPECT_GE(cached, 32 * kBig);
  EXPECT_EQ(Mapped(), mapped - (kRegions * kBig - cached));
  // The oldest went first: the first region is gone, the last is cached.
  EXPECT_FALSE(IsMapped(regions.front(), kBig));
  EXPECT_TRUE(IsMapped(regions.back(), kBig));
  EXPECT_EQ(Alloc(kBig), regions.back());
  hak_page_arena_free(regions.back(), kBig);
}

TEST_F(PageArenaTest, ConcurrentAllocFree) {
  SetDecayMs(1);
  const uint64_t mapped = Mapped();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 300; ++i) {
        const size_t size = kRegion * (1 + (i + t) % 3);
        size_t got = 0;
        bool zeroed = false;
        void *p = hak_page_arena_alloc(size, &got, &zeroed);
        ASSERT_NE(p, nullptr);
        ASSERT_GE(got, size);
        auto *w = static_cast<volatile uint64_t *>(p);
        w[0] = static_cast<uint64_t>(t);
        w[got / 8 - 1] = static_cast<uint64_t>(t);
        if (i % 50 == 0)
          hak_page_arena_tick();
        ASSERT_EQ(w[0], static_cast<uint64_t>(t));
        ASSERT_EQ(w[got / 8 - 1], static_cast<uint64_t>(t));
        hak_page_arena_free(p, got);
      }
    });
  }
  for (auto &th : threads)
    th.join();
  hak_page_arena_decay(true);
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped);
}

} // namespace
