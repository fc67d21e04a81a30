// Unit test of the large-block box: blocks beyond the largest slab class in
// mappings of their own, found by masking, resized in place, and zeroed when
// a zeroed block reuses a dirty cached mapping. (Which requests come here,
// and realloc's moves, are the api box's.)
#include "hakmem/core/large.h"

#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"
#include "hakmem/core/page_arena.h"
#include "hakmem/core/purge.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/stats.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kRegion = 2 * kMiB;

using Bytes = unsigned char *;
Bytes B(void *p) { return static_cast<Bytes>(p); }

void Fill(void *p, size_t n, unsigned seed) {
  auto *w = static_cast<uint32_t *>(p);
  for (size_t i = 0; i < n / 4; ++i)
    w[i] = static_cast<uint32_t>(i * 2654435761u) ^ seed;
}
// Index of the first word that differs, or SIZE_MAX.
size_t Check(const void *p, size_t n, unsigned seed) {
  auto *w = static_cast<const uint32_t *>(p);
  for (size_t i = 0; i < n / 4; ++i) {
    if (w[i] != (static_cast<uint32_t>(i * 2654435761u) ^ seed))
      return i;
  }
  return SIZE_MAX;
}
size_t FirstNonZero(const void *p, size_t n) {
  auto *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0)
      return i;
  }
  return SIZE_MAX;
}

unsigned Kind(const void *p) { return hak_segmap_kind(p); }
// The header of block p, found as free() finds it; NULL for anything else.
hak_large *Of(const void *p) {
  const uint8_t kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_LARGE && kind != HAK_REGION_LARGE_TAIL)
    return nullptr;
  return hak_large_of(p, kind);
}
// What hak_malloc, hak_aligned_alloc and hak_calloc do for a large size.
void *Alloc(size_t size, size_t align = 0) { return hak_large_alloc(size, align, false); }
void *Calloc(size_t size) { return hak_large_alloc(size, 0, true); }
void Free(void *p) {
  hak_large *hdr = Of(p);
  ASSERT_NE(hdr, nullptr) << p;
  hak_large_free(hdr);
}
uint64_t Allocs() { return hak_stats_global.large_allocs.load(); }
uint64_t Frees() { return hak_stats_global.large_frees.load(); }
uint64_t LiveBytes() { return hak_stats_global.large_live_bytes.load(); }
uint64_t Mapped() { return hak_stats_global.mapped.load(); }
uint64_t Cached() { return hak_stats_global.cached.load(); }
void DropCache() { hak_page_arena_decay(true); }

// Hands a region the test mapped itself to the page arena's cache, as if a
// block had just been freed there, so the next large block of that size
// lands at a known address.
void Donate(void *base, size_t size) {
  hak_page_arena_account(static_cast<int64_t>(size));
  hak_page_arena_free(base, size);
}

// The arena's part of the pass that maintenance registers at init.
uint64_t ArenaPass() { return hak_page_arena_decay_next(false); }

class LargeTest : public ::testing::Test {
protected:
  void SetUp() override {
    // Most tests here are of mappings that end at the block's last page, as
    // under a limit on address space; WholeRegionsWithoutALimit is of the other.
    hak_large_set_granule(4096);
    static std::once_flag once;
    std::call_once(once, [] {
      hak_options_load();
      // Decay runs only from this thread's ticks, so options can change.
      hak_options_current.purge_thread = 0;
      hak_purge_set_pass(ArenaPass);
    });
    saved_decay_ = hak_options_current.decay_ms;
    hak_options_current.decay_ms = 60000; // no time-based purging while a test runs
  }
  void TearDown() override {
    hak_options_current.decay_ms = saved_decay_;
    DropCache();
  }
  uint32_t saved_decay_ = 0;
};

TEST_F(LargeTest, SizesFromJustAboveSlabsTo64MiB) {
  const size_t sizes[] = {128 * kKiB + 1, 128 * kKiB + 4096, 200000,          kMiB,
                          kRegion - 64,   kRegion - 63,      kRegion,         3 * kMiB + 7,
                          8 * kMiB,       16 * kMiB + 1,     33 * kMiB + 999, 64 * kMiB};
  for (size_t size : sizes) {
    SCOPED_TRACE(size);
    const uint64_t allocs = Allocs(), frees = Frees(), live = LiveBytes();
    void *p = Alloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_EQ(Kind(p), HAK_REGION_LARGE);
    hak_large *hdr = Of(p);
    ASSERT_NE(hdr, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(hdr) % kRegion, 0u);
    EXPECT_EQ(hak_large_ptr(hdr), p);
    EXPECT_EQ(hdr->offset, HAK_LARGE_HEADER_SIZE);
    EXPECT_GE(hdr->usable, size);
    EXPECT_EQ((hdr->offset + hdr->usable) % 4096, 0u);
    EXPECT_LE(hdr->offset + hdr->usable, hdr->map_size);
    // The mapping ends at the block's last page, or up to a quarter later
    // when an idle one was reused.
    const size_t end = hdr->offset + hdr->usable;
    EXPECT_EQ(hdr->map_size % 4096, 0u);
    EXPECT_GE(hdr->map_size, end);
    EXPECT_LE(hdr->map_size, end + end / 4);
    EXPECT_NE(Kind(p), HAK_REGION_NONE); // hak_owns
    // The end of the block lies in the same mapping.
    const unsigned end_kind = Kind(B(p) + size - 1);
    EXPECT_EQ(end_kind,
              HAK_LARGE_HEADER_SIZE + size <= kRegion ? HAK_REGION_LARGE : HAK_REGION_LARGE_TAIL);
    EXPECT_EQ(Allocs(), allocs + 1);
    EXPECT_EQ(LiveBytes(), live + hdr->map_size);
    // Every byte is usable.
    std::memset(p, 0xc3, hdr->usable);

    Free(p);
    EXPECT_EQ(Kind(p), HAK_REGION_NONE);
    EXPECT_EQ(Kind(B(p) + size - 1), HAK_REGION_NONE);
    EXPECT_EQ(Frees(), frees + 1);
    EXPECT_EQ(LiveBytes(), live);
  }
}

TEST_F(LargeTest, ManyLiveBlocksAreDisjoint) {
  std::vector<std::pair<void *, size_t>> live;
  for (unsigned i = 0; i < 24; ++i) {
    const size_t size = 130 * kKiB + i * 300 * kKiB;
    void *p = Alloc(size);
    ASSERT_NE(p, nullptr);
    Fill(p, size, i);
    live.emplace_back(p, size);
  }
  for (unsigned i = 0; i < live.size(); ++i) {
    EXPECT_EQ(Check(live[i].first, live[i].second, i), SIZE_MAX) << i;
  }
  for (auto &[p, size] : live)
    Free(p);
}

TEST_F(LargeTest, AlignmentUpTo16MiB) {
  for (size_t align = 16; align <= 16 * kMiB; align *= 2) {
    for (size_t size : {size_t{200000}, 3 * kMiB + 5}) {
      SCOPED_TRACE(testing::Message() << "align " << align << " size " << size);
      void *p = Alloc(size, align);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
      const unsigned kind = Kind(p);
      EXPECT_TRUE(kind == HAK_REGION_LARGE || kind == HAK_REGION_LARGE_TAIL) << kind;
      // Blocks aligned to 2 MiB or more start one alignment unit into their
      // mapping, in a later region.
      EXPECT_EQ(kind, align >= kRegion ? HAK_REGION_LARGE_TAIL : HAK_REGION_LARGE);
      hak_large *hdr = Of(p);
      ASSERT_NE(hdr, nullptr);
      EXPECT_EQ(hak_large_ptr(hdr), p);
      EXPECT_GE(hdr->usable, size);
      const size_t end_off = static_cast<size_t>(B(p) + size - 1 - B(hdr));
      EXPECT_EQ(Kind(B(p) + size - 1),
                end_off >= kRegion ? HAK_REGION_LARGE_TAIL : HAK_REGION_LARGE);
      std::memset(p, 0x11, size);
      Free(p);
      EXPECT_EQ(Kind(p), HAK_REGION_NONE);
      EXPECT_EQ(Kind(hdr), HAK_REGION_NONE);
    }
  }
}

// Alignments beyond a page send even small sizes to a large mapping (the api
// box decides that): those blocks are aligned and as usable as any.
TEST_F(LargeTest, OverAlignedSmallSizes) {
  for (size_t align = 8192; align <= 4 * kMiB; align *= 2) {
    SCOPED_TRACE(align);
    void *p = Alloc(100, align);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    ASSERT_NE(Of(p), nullptr);
    EXPECT_GE(Of(p)->usable, 100u);
    Free(p);
  }
}

TEST_F(LargeTest, LargeOfRejectsInteriorPointers) {
  void *p = Alloc(5 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_large *hdr = Of(p);
  ASSERT_NE(hdr, nullptr);
  const unsigned large = HAK_REGION_LARGE, tail = HAK_REGION_LARGE_TAIL;
  EXPECT_EQ(hak_large_of(p, large), hdr);
  EXPECT_EQ(hak_large_of(B(p) + 16, large), nullptr);
  EXPECT_EQ(hak_large_of(B(p) + 1, large), nullptr);
  EXPECT_EQ(hak_large_of(B(p) + 4096, large), nullptr);
  EXPECT_EQ(hak_large_of(B(p) - 16, large), nullptr); // inside the header
  EXPECT_EQ(hak_large_of(hdr, large), nullptr);       // the mapping's base
  // Pointers in later regions of the mapping walk back to the header and
  // still are not the block.
  EXPECT_EQ(hak_large_of(B(hdr) + kRegion, tail), nullptr);
  EXPECT_EQ(hak_large_of(B(hdr) + kRegion + hdr->offset, tail), nullptr);
  EXPECT_EQ(hak_large_of(B(p) + 4 * kMiB, tail), nullptr);

  // Over-aligned: the block is in a tail region, its header regions before.
  void *q = Alloc(300 * kKiB, 4 * kMiB);
  ASSERT_NE(q, nullptr);
  hak_large *qh = Of(q);
  ASSERT_NE(qh, nullptr);
  EXPECT_EQ(hak_large_of(q, tail), qh);
  EXPECT_EQ(hak_large_of(B(q) + 64, tail), nullptr);
  EXPECT_EQ(hak_large_of(B(q) - kRegion, tail), nullptr);
  Free(q);
  Free(p);
}

// Without a limit on address space, mappings are whole 2 MiB regions, so
// that an idle one fits a later block of another size.
TEST_F(LargeTest, WholeRegionsWithoutALimit) {
  hak_large_set_granule(kRegion);
  DropCache();
  for (size_t size : {200 * kKiB, kMiB, 3 * kMiB + 5}) {
    SCOPED_TRACE(size);
    const uint64_t mapped = Mapped();
    void *p = Alloc(size);
    ASSERT_NE(p, nullptr);
    const size_t want = (HAK_LARGE_HEADER_SIZE + size + kRegion - 1) & ~(kRegion - 1);
    EXPECT_EQ(Of(p)->map_size, want);
    EXPECT_EQ(Mapped(), mapped + want);
    Free(p);
    DropCache();
  }
  void *p = Alloc(3 * kMiB); // a 4 MiB mapping: grows within it
  ASSERT_NE(p, nullptr);
  const uint64_t mapped = Mapped();
  EXPECT_EQ(hak_large_resize(Of(p), p, 4 * kMiB - 64, false), p);
  EXPECT_EQ(Mapped(), mapped);
  Free(p);
  hak_large_set_granule(4096);
}

// Under a limit: a fresh mapping ends at the block's last page: a 1 MiB block costs 1 MiB
// of address space, not a 2 MiB region (what `ulimit -v` counts).
TEST_F(LargeTest, FreshMappingEndsAtTheBlocksLastPage) {
  DropCache();
  for (size_t size : {200 * kKiB, kMiB, 3 * kMiB + 5, 5 * kMiB}) {
    SCOPED_TRACE(size);
    const uint64_t mapped = Mapped();
    void *p = Alloc(size);
    ASSERT_NE(p, nullptr);
    hak_large *hdr = Of(p);
    const size_t end = (HAK_LARGE_HEADER_SIZE + size + 4095) & ~size_t{4095};
    EXPECT_EQ(hdr->map_size, end);
    EXPECT_EQ(Mapped(), mapped + end);
    // The rest of the last region is not the block's: a pointer there is
    // not hakmem's, although the segment map marks the region.
    if (end % kRegion != 0) {
      const unsigned last = Kind(B(hdr) + end - 1);
      EXPECT_TRUE(hak_large_maps(B(hdr) + end - 1, last));
      EXPECT_FALSE(hak_large_maps(B(hdr) + end, last));
      EXPECT_FALSE(hak_large_maps(B(hdr) + (end | (kRegion - 1)), last));
    }
    Free(p);
    DropCache();
  }
}

TEST_F(LargeTest, ResizeInPlaceWithinMapping) {
  void *p = Alloc(3 * kMiB);
  ASSERT_NE(p, nullptr);
  Fill(p, 3 * kMiB - 8 * kKiB, 7);
  hak_large *hdr = Of(p);
  const size_t map = hdr->map_size;
  const uint64_t mapped = Mapped();
  // Shrinking by less than a quarter keeps the mapping; growing back within
  // it needs no system call.
  ASSERT_EQ(hak_large_resize(hdr, p, 3 * kMiB - 8 * kKiB, true), p);
  EXPECT_EQ(hdr->map_size, map);
  EXPECT_EQ(hdr->usable, 3 * kMiB - 8 * kKiB + 4096 - HAK_LARGE_HEADER_SIZE);
  ASSERT_EQ(hak_large_resize(hdr, p, 3 * kMiB, true), p);
  EXPECT_EQ(hdr->map_size, map);
  EXPECT_EQ(Mapped(), mapped);
  // usable runs to the end of the block's last page
  EXPECT_EQ(hdr->usable, 3 * kMiB + 4096 - HAK_LARGE_HEADER_SIZE);
  EXPECT_EQ(Check(p, 3 * kMiB - 8 * kKiB, 7), SIZE_MAX);
  Free(p);
}

TEST_F(LargeTest, ShrinkInPlaceReturnsRegions) {
  DropCache();
  void *p = Alloc(10 * kMiB - 64); // a 10 MiB mapping
  ASSERT_NE(p, nullptr);
  Fill(p, 3 * kMiB, 9);
  hak_large *hdr = Of(p);
  ASSERT_EQ(hdr->map_size, 10 * kMiB);
  const uint64_t mapped = Mapped(), live = LiveBytes();
  ASSERT_EQ(hak_large_resize(hdr, p, 3 * kMiB, true), p)
      << "shrinking a large block keeps it in place";
  EXPECT_EQ(hdr->map_size, 3 * kMiB + 4096); // to the block's last page
  EXPECT_GE(hdr->usable, 3 * kMiB);
  EXPECT_EQ(Mapped(), mapped - 7 * kMiB + 4096);
  EXPECT_EQ(LiveBytes(), live - 7 * kMiB + 4096);
  EXPECT_EQ(Kind(B(hdr) + kRegion), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(Kind(B(hdr) + 4 * kMiB), HAK_REGION_NONE);
  EXPECT_EQ(Kind(B(hdr) + 10 * kMiB - 1), HAK_REGION_NONE);
  EXPECT_EQ(Check(p, 3 * kMiB, 9), SIZE_MAX);
  Free(p);
  EXPECT_EQ(Mapped(), mapped - 7 * kMiB + 4096) << "the freed mapping is cached, not unmapped";
  EXPECT_EQ(LiveBytes(), live - 10 * kMiB);
}

// What a growth to a block ending at `end` maps: a quarter more, in pages.
size_t Roomy(size_t end) { return (end + end / 4 + 4095) & ~size_t{4095}; }

// Maps `total` bytes aligned to 2 MiB, keeps the first `keep` and unmaps the
// rest, so that the address range after the kept part is free.
void *MapWithHoleAfter(size_t keep, size_t total) {
  void *raw =
      mmap(nullptr, total + kRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return nullptr;
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t base = (r + kRegion - 1) & ~(kRegion - 1);
  if (base > r)
    munmap(raw, base - r);
  munmap(reinterpret_cast<void *>(base + keep), r + total + kRegion - (base + keep));
  return reinterpret_cast<void *>(base);
}

// Growth in place succeeds when the address space after the mapping is free:
// the block is placed (through the arena's cache) where it can grow.
TEST_F(LargeTest, GrowInPlaceIntoFreeAddressSpace) {
  DropCache();
  void *base = MapWithHoleAfter(4 * kMiB, 32 * kMiB);
  ASSERT_NE(base, nullptr);
  Donate(base, 4 * kMiB);
  void *p = Alloc(3 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_large *hdr = Of(p);
  ASSERT_EQ(hdr, base) << "the cached region was used";
  // 4 MiB is more than a quarter too big: the pages past the block went back.
  ASSERT_EQ(hdr->map_size, 3 * kMiB + 4096);
  Fill(p, 3 * kMiB, 11);
  const uint64_t mapped = Mapped(), live = LiveBytes();

  // Growth takes a quarter more than asked, so that the next growths by a
  // little need no system call.
  const size_t end9 = 9 * kMiB + 4096;
  ASSERT_EQ(hak_large_resize(hdr, p, 9 * kMiB, false), p);
  EXPECT_EQ(hdr->map_size, Roomy(end9));
  EXPECT_EQ(hdr->usable, end9 - HAK_LARGE_HEADER_SIZE);
  EXPECT_EQ(Mapped(), mapped + hdr->map_size - (3 * kMiB + 4096));
  EXPECT_EQ(LiveBytes(), live + hdr->map_size - (3 * kMiB + 4096));
  for (size_t off = kRegion; off < hdr->map_size; off += kRegion) {
    EXPECT_EQ(Kind(B(hdr) + off), HAK_REGION_LARGE_TAIL) << off;
  }
  EXPECT_EQ(Kind(B(hdr) + 12 * kMiB), HAK_REGION_NONE);
  std::memset(B(p) + 3 * kMiB, 0x77, 6 * kMiB); // the new part is usable
  EXPECT_EQ(Check(p, 3 * kMiB, 11), SIZE_MAX);
  const size_t map9 = hdr->map_size;
  ASSERT_EQ(hak_large_resize(hdr, p, 10 * kMiB, false), p);
  EXPECT_EQ(hdr->map_size, map9) << "within the quarter: no system call";

  // And again.
  ASSERT_EQ(hak_large_resize(hdr, p, 20 * kMiB, false), p);
  void *q = p;
  const size_t end20 = 20 * kMiB + 4096;
  EXPECT_EQ(hdr->map_size, Roomy(end20));
  EXPECT_EQ(Check(q, 3 * kMiB, 11), SIZE_MAX);
  std::memset(B(q) + 9 * kMiB, 0x78, 11 * kMiB);
  Free(q);
  EXPECT_EQ(Kind(B(hdr) + 20 * kMiB), HAK_REGION_NONE);
  EXPECT_EQ(LiveBytes(), live - (3 * kMiB + 4096));
}

// When the address space after the mapping is taken, growth in place fails
// cleanly (and realloc, in the api box, moves the block).
TEST_F(LargeTest, GrowInPlaceFailsWhenSpaceAfterIsTaken) {
  DropCache();
  void *base = MapWithHoleAfter(6 * kMiB, 8 * kMiB);
  ASSERT_NE(base, nullptr);
  // The last 2 MiB stay mapped (and inaccessible) by the test.
  void *blocker = B(base) + 4 * kMiB;
  ASSERT_EQ(mprotect(blocker, kRegion, PROT_NONE), 0);
  Donate(base, 4 * kMiB);
  void *p = Alloc(3 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_large *hdr = Of(p);
  ASSERT_EQ(hdr, base);
  Fill(p, 3 * kMiB, 12);
  const uint64_t mapped = Mapped(), live = LiveBytes();
  const size_t usable = hdr->usable, map = hdr->map_size;

  EXPECT_EQ(hak_large_resize(hdr, p, 5 * kMiB, false), nullptr);
  EXPECT_EQ(hdr->map_size, map) << "a failed growth changes nothing";
  EXPECT_EQ(Mapped(), mapped);
  EXPECT_EQ(Kind(blocker), HAK_REGION_NONE);
  EXPECT_EQ(hdr->usable, usable);
  EXPECT_EQ(Check(p, 3 * kMiB, 12), SIZE_MAX);

  // Allowed to move, the block's pages go to a new mapping: nothing copied,
  // the old regions are no longer hakmem's.
  void *q = hak_large_resize(hdr, p, 5 * kMiB, true);
  ASSERT_NE(q, nullptr);
  ASSERT_NE(q, p);
  hak_large *qh = Of(q);
  ASSERT_NE(qh, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(qh) % kRegion, 0u);
  EXPECT_GE(qh->usable, 5 * kMiB);
  EXPECT_EQ(Check(q, 3 * kMiB, 12), SIZE_MAX);
  EXPECT_EQ(Kind(p), HAK_REGION_NONE);
  EXPECT_EQ(Kind(base), HAK_REGION_NONE);
  EXPECT_EQ(Mapped(), mapped + qh->map_size - map);
  EXPECT_EQ(LiveBytes(), live + qh->map_size - map);
  std::memset(B(q) + 3 * kMiB, 0x5a, 2 * kMiB);
  Free(q);
  EXPECT_EQ(Kind(q), HAK_REGION_NONE);
  DropCache();
  munmap(blocker, kRegion);
}

// calloc must zero a block even when the mapping it reuses from the page
// arena's cache was written by an earlier block.
TEST_F(LargeTest, CallocZeroesReusedDirtyMapping) {
  DropCache();
  for (size_t size : {300 * kKiB, 3 * kMiB, 6 * kMiB - 64}) {
    SCOPED_TRACE(size);
    void *p = Alloc(size);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0xab, Of(p)->usable);
    const uint64_t cached_before = Cached();
    Free(p);
    ASSERT_GT(Cached(), cached_before) << "the mapping was cached";
    void *q = Calloc(size);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q, p) << "the cached mapping was reused";
    EXPECT_EQ(FirstNonZero(q, size), SIZE_MAX);
    Free(q);
  }
}

// The reused mapping may be up to a quarter larger than needed.
TEST_F(LargeTest, CallocZeroesReusedLargerMapping) {
  DropCache();
  void *p = Alloc(10 * kMiB - 64); // exactly a 10 MiB mapping
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(Of(p)->map_size, 10 * kMiB);
  std::memset(p, 0xee, 10 * kMiB - 64);
  Free(p);
  void *q = Calloc(8 * (kMiB - 8)); // needs 8 MiB, gets the 10 MiB one
  ASSERT_NE(q, nullptr);
  hak_large *hdr = Of(q);
  ASSERT_NE(hdr, nullptr);
  EXPECT_EQ(q, p);
  EXPECT_EQ(hdr->map_size, 10 * kMiB);
  EXPECT_EQ(FirstNonZero(q, 8 * (kMiB - 8)), SIZE_MAX);
  Free(q);
}

// A block's header records how far its mapping may be dirty: what the block
// can write, or more when it reuses a region with more resident.
TEST_F(LargeTest, TouchedExtentFollowsBlock) {
  DropCache();
  void *p = Alloc(300 * kKiB);
  ASSERT_NE(p, nullptr);
  hak_large *hdr = Of(p);
  ASSERT_NE(hdr, nullptr);
  EXPECT_EQ(hdr->touched, hdr->offset + hdr->usable);
  p = hak_large_resize(hdr, p, 900 * kKiB, true); // in place or moved
  ASSERT_NE(p, nullptr);
  hdr = Of(p);
  EXPECT_EQ(hdr->touched, hdr->offset + hdr->usable) << "grown";
  ASSERT_EQ(hak_large_resize(hdr, p, 880 * kKiB, true), p);
  EXPECT_EQ(hdr->touched, 904 * kKiB) << "shrinking a little leaves pages dirty";
  ASSERT_EQ(hak_large_resize(hdr, p, 200 * kKiB, true), p);
  EXPECT_EQ(hdr->map_size, 204 * kKiB) << "shrinking much gives the pages back";
  EXPECT_EQ(hdr->touched, 204 * kKiB);
  std::memset(p, 0x11, hdr->usable);
  Free(p);
  void *q = Alloc(190 * kKiB); // reuses the region, all of it dirty
  ASSERT_EQ(q, p);
  EXPECT_EQ(Of(q)->touched, 204 * kKiB);
  Free(q);
}

// calloc clears only the part of a reused region that may be dirty: beyond
// the old block's extent, and where the arena gave pages back, the kernel's
// zero pages are enough. Either way the block reads as zeros.
TEST_F(LargeTest, CallocZeroesRegionWithSmallerDirtyExtent) {
  DropCache();
  void *p = Alloc(1900 * kKiB);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xcd, 1900 * kKiB);
  Free(p);
  void *small = Alloc(200 * kKiB); // the region is cut to the block
  ASSERT_EQ(small, p);
  EXPECT_EQ(Of(small)->map_size, 204 * kKiB);
  EXPECT_EQ(Of(small)->touched, 204 * kKiB);
  std::memset(small, 0x77, 200 * kKiB);
  Free(small);
  void *q = Calloc(180 * kKiB); // the dirty region again, a little too big
  ASSERT_EQ(q, p);
  EXPECT_EQ(FirstNonZero(q, 180 * kKiB), SIZE_MAX);
  Free(q);
  // Grown back (in place or moved): the part past the old extent (204 KiB
  // from the mapping's base) is fresh.
  void *r = Calloc(180 * kKiB);
  ASSERT_NE(r, nullptr);
  std::memset(r, 0x99, 180 * kKiB);
  void *grown = hak_large_resize(Of(r), r, 1800 * kKiB, true);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(FirstNonZero(B(grown) + 204 * kKiB - HAK_LARGE_HEADER_SIZE, 1596 * kKiB), SIZE_MAX);
  Free(grown);
}

TEST_F(LargeTest, CallocOfFreshMappingIsZero) {
  DropCache();
  void *q = Calloc(3 * kMiB);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(FirstNonZero(q, 3 * kMiB), SIZE_MAX);
  Free(q);
  void *z = hak_large_alloc(5 * kMiB, 4 * kMiB, true); // over-aligned, zeroed
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(z) % (4 * kMiB), 0u);
  EXPECT_EQ(FirstNonZero(z, 5 * kMiB), SIZE_MAX);
  hak_large_free(Of(z));
}

TEST_F(LargeTest, ImpossibleSizesFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(Alloc(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(Alloc(SIZE_MAX / 2), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(Alloc(size_t{1} << 50), nullptr); // more than the address space
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  // Beyond the 47-bit address space: fails whatever the overcommit policy.
  EXPECT_EQ(Alloc(size_t{1} << 47, size_t{1} << 40), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_large_alloc(SIZE_MAX - 100, 64, false), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // The allocator still works.
  void *p = Alloc(4 * kMiB);
  ASSERT_NE(p, nullptr);
  Free(p);
}

TEST_F(LargeTest, LargeAllocDirect) {
  void *p = hak_large_alloc(0, 0, false); // a unique block even for size 0
  ASSERT_NE(p, nullptr);
  hak_large *hdr = Of(p);
  ASSERT_NE(hdr, nullptr);
  EXPECT_GE(hdr->usable, 1u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  hak_large_free(hdr);
}

// A freed block's mapping goes back to the OS once idle for the decay time
// (moved here from page_arena_test, which no longer links the allocator).
TEST_F(LargeTest, FreedMappingDecaysAfterDecayTime) {
  hak_options_current.decay_ms = 30;
  const uint64_t mapped = Mapped();
  void *p = Alloc(5 * kMiB);
  ASSERT_NE(p, nullptr);
  std::memset(p, 9, 5 * kMiB);
  EXPECT_GE(Mapped(), mapped + 5 * kMiB);
  Free(p);
  EXPECT_GE(Cached(), 5 * kMiB + 4096);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  hak_page_arena_tick();
  EXPECT_EQ(Cached(), 0u);
  EXPECT_EQ(Mapped(), mapped);
}

} // namespace
