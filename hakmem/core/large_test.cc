// Unit test of the large-block box: blocks beyond the largest slab class in
// mappings of their own, found by masking, resized in place, and zeroed when
// a calloc reuses a dirty cached mapping.
#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
void lg_init(void);
unsigned lg_kind(const void *p);
void *lg_of(const void *p);
void *lg_of_kind(const void *p, unsigned kind);
size_t lg_map_size(const void *hdr);
size_t lg_offset(const void *hdr);
size_t lg_usable(const void *hdr);
size_t lg_touched(const void *hdr);
void *lg_ptr(void *hdr);
int lg_resize(void *hdr, void *p, size_t size);
void *lg_alloc(size_t size, size_t align, int zero);
void lg_free(void *hdr);
void lg_donate(void *base, size_t size);
uint64_t lg_allocs(void);
uint64_t lg_frees(void);
uint64_t lg_live_bytes(void);
uint64_t lg_mapped(void);
uint64_t lg_cached(void);
void lg_drop_cache(void);
uint32_t lg_decay_ms(void);
void lg_set_decay_ms(uint32_t ms);
unsigned lg_region_large(void);
unsigned lg_region_tail(void);
unsigned lg_region_none(void);
size_t lg_header_size(void);
}

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

class LargeTest : public ::testing::Test {
protected:
  void SetUp() override {
    lg_init();
    saved_decay_ = lg_decay_ms();
    lg_set_decay_ms(60000); // no time-based purging while a test runs
  }
  void TearDown() override {
    lg_set_decay_ms(saved_decay_);
    lg_drop_cache();
  }
  uint32_t saved_decay_ = 0;
};

TEST_F(LargeTest, SizesFromJustAboveSlabsTo64MiB) {
  const size_t sizes[] = {128 * kKiB + 1, 128 * kKiB + 4096, 200000,          kMiB,
                          kRegion - 64,   kRegion - 63,      kRegion,         3 * kMiB + 7,
                          8 * kMiB,       16 * kMiB + 1,     33 * kMiB + 999, 64 * kMiB};
  for (size_t size : sizes) {
    SCOPED_TRACE(size);
    const uint64_t allocs = lg_allocs(), frees = lg_frees(), live = lg_live_bytes();
    void *p = hak_malloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_EQ(lg_kind(p), lg_region_large());
    void *hdr = lg_of(p);
    ASSERT_NE(hdr, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(hdr) % kRegion, 0u);
    EXPECT_EQ(lg_ptr(hdr), p);
    EXPECT_EQ(lg_offset(hdr), lg_header_size());
    EXPECT_GE(lg_usable(hdr), size);
    EXPECT_EQ((lg_offset(hdr) + lg_usable(hdr)) % 4096, 0u);
    EXPECT_LE(lg_offset(hdr) + lg_usable(hdr), lg_map_size(hdr));
    EXPECT_EQ(lg_map_size(hdr) % kRegion, 0u);
    EXPECT_GE(lg_map_size(hdr), lg_header_size() + size);
    EXPECT_EQ(hak_usable_size(p), lg_usable(hdr));
    EXPECT_NE(hak_owns(p), 0);
    // The end of the block lies in the same mapping.
    const unsigned end_kind = lg_kind(B(p) + size - 1);
    EXPECT_EQ(end_kind, lg_header_size() + size <= kRegion ? lg_region_large() : lg_region_tail());
    EXPECT_EQ(lg_allocs(), allocs + 1);
    EXPECT_EQ(lg_live_bytes(), live + lg_map_size(hdr));
    // Every byte is usable.
    std::memset(p, 0xc3, lg_usable(hdr));

    hak_free(p);
    EXPECT_EQ(lg_kind(p), lg_region_none());
    EXPECT_EQ(lg_kind(B(p) + size - 1), lg_region_none());
    EXPECT_EQ(hak_owns(p), 0);
    EXPECT_EQ(lg_frees(), frees + 1);
    EXPECT_EQ(lg_live_bytes(), live);
  }
}

TEST_F(LargeTest, ManyLiveBlocksAreDisjoint) {
  std::vector<std::pair<void *, size_t>> live;
  for (unsigned i = 0; i < 24; ++i) {
    const size_t size = 130 * kKiB + i * 300 * kKiB;
    void *p = hak_malloc(size);
    ASSERT_NE(p, nullptr);
    Fill(p, size, i);
    live.emplace_back(p, size);
  }
  for (unsigned i = 0; i < live.size(); ++i) {
    EXPECT_EQ(Check(live[i].first, live[i].second, i), SIZE_MAX) << i;
  }
  for (auto &[p, size] : live)
    hak_free(p);
}

TEST_F(LargeTest, AlignmentUpTo16MiB) {
  for (size_t align = 16; align <= 16 * kMiB; align *= 2) {
    for (size_t size : {size_t{200000}, 3 * kMiB + 5}) {
      SCOPED_TRACE(testing::Message() << "align " << align << " size " << size);
      void *p = hak_aligned_alloc(align, size);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
      const unsigned kind = lg_kind(p);
      EXPECT_TRUE(kind == lg_region_large() || kind == lg_region_tail()) << kind;
      // Blocks aligned to 2 MiB or more start one alignment unit into their
      // mapping, in a later region.
      EXPECT_EQ(kind, align >= kRegion ? lg_region_tail() : lg_region_large());
      void *hdr = lg_of(p);
      ASSERT_NE(hdr, nullptr);
      EXPECT_EQ(lg_ptr(hdr), p);
      EXPECT_GE(lg_usable(hdr), size);
      EXPECT_EQ(hak_usable_size(p), lg_usable(hdr));
      const size_t end_off = static_cast<size_t>(B(p) + size - 1 - B(hdr));
      EXPECT_EQ(lg_kind(B(p) + size - 1),
                end_off >= kRegion ? lg_region_tail() : lg_region_large());
      std::memset(p, 0x11, size);
      hak_free(p);
      EXPECT_EQ(lg_kind(p), lg_region_none());
      EXPECT_EQ(lg_kind(hdr), lg_region_none());
    }
  }
}

// Alignments beyond a page send even small sizes to a large mapping.
TEST_F(LargeTest, OverAlignedSmallSizes) {
  for (size_t align = 8192; align <= 4 * kMiB; align *= 2) {
    SCOPED_TRACE(align);
    void *p = nullptr;
    ASSERT_EQ(hak_posix_memalign(&p, align, 100), 0);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    EXPECT_NE(lg_of(p), nullptr);
    EXPECT_GE(hak_usable_size(p), 100u);
    hak_free(p);
  }
}

TEST_F(LargeTest, LargeOfRejectsInteriorPointers) {
  void *p = hak_malloc(5 * kMiB);
  ASSERT_NE(p, nullptr);
  void *hdr = lg_of(p);
  ASSERT_NE(hdr, nullptr);
  const unsigned large = lg_region_large(), tail = lg_region_tail();
  EXPECT_EQ(lg_of_kind(p, large), hdr);
  EXPECT_EQ(lg_of_kind(B(p) + 16, large), nullptr);
  EXPECT_EQ(lg_of_kind(B(p) + 1, large), nullptr);
  EXPECT_EQ(lg_of_kind(B(p) + 4096, large), nullptr);
  EXPECT_EQ(lg_of_kind(B(p) - 16, large), nullptr); // inside the header
  EXPECT_EQ(lg_of_kind(hdr, large), nullptr);       // the mapping's base
  // Pointers in later regions of the mapping walk back to the header and
  // still are not the block.
  EXPECT_EQ(lg_of_kind(B(hdr) + kRegion, tail), nullptr);
  EXPECT_EQ(lg_of_kind(B(hdr) + kRegion + lg_offset(hdr), tail), nullptr);
  EXPECT_EQ(lg_of_kind(B(p) + 4 * kMiB, tail), nullptr);

  // Over-aligned: the block is in a tail region, its header regions before.
  void *q = hak_aligned_alloc(4 * kMiB, 300 * kKiB);
  ASSERT_NE(q, nullptr);
  void *qh = lg_of(q);
  ASSERT_NE(qh, nullptr);
  EXPECT_EQ(lg_of_kind(q, tail), qh);
  EXPECT_EQ(lg_of_kind(B(q) + 64, tail), nullptr);
  EXPECT_EQ(lg_of_kind(B(q) - kRegion, tail), nullptr);
  hak_free(q);
  hak_free(p);
}

TEST_F(LargeTest, ResizeInPlaceWithinMapping) {
  void *p = hak_malloc(3 * kMiB); // a 4 MiB mapping
  ASSERT_NE(p, nullptr);
  Fill(p, 3 * kMiB, 7);
  void *hdr = lg_of(p);
  const size_t map = lg_map_size(hdr);
  ASSERT_EQ(map, 4 * kMiB);
  const uint64_t mapped = lg_mapped();
  ASSERT_EQ(lg_resize(hdr, p, 4 * kMiB - 64), 0);
  EXPECT_EQ(lg_map_size(hdr), map);
  EXPECT_EQ(lg_usable(hdr), 4 * kMiB - 64);
  EXPECT_EQ(lg_mapped(), mapped);
  ASSERT_EQ(lg_resize(hdr, p, 3 * kMiB), 0);
  // usable runs to the end of the block's last page
  EXPECT_EQ(lg_usable(hdr), 3 * kMiB + 4096 - lg_header_size());
  EXPECT_EQ(Check(p, 3 * kMiB, 7), SIZE_MAX);
  hak_free(p);
}

TEST_F(LargeTest, ShrinkInPlaceReturnsRegions) {
  void *p = hak_malloc(10 * kMiB); // a 12 MiB mapping
  ASSERT_NE(p, nullptr);
  Fill(p, 3 * kMiB, 9);
  void *hdr = lg_of(p);
  ASSERT_EQ(lg_map_size(hdr), 12 * kMiB);
  const uint64_t mapped = lg_mapped(), live = lg_live_bytes();
  void *q = hak_realloc(p, 3 * kMiB);
  ASSERT_EQ(q, p) << "shrinking a large block keeps it in place";
  EXPECT_EQ(lg_map_size(hdr), 4 * kMiB);
  EXPECT_GE(lg_usable(hdr), 3 * kMiB);
  EXPECT_EQ(lg_mapped(), mapped - 8 * kMiB);
  EXPECT_EQ(lg_live_bytes(), live - 8 * kMiB);
  EXPECT_EQ(lg_kind(B(hdr) + kRegion), lg_region_tail());
  EXPECT_EQ(lg_kind(B(hdr) + 4 * kMiB), lg_region_none());
  EXPECT_EQ(lg_kind(B(hdr) + 12 * kMiB - 1), lg_region_none());
  EXPECT_EQ(Check(p, 3 * kMiB, 9), SIZE_MAX);
  hak_free(p);
  EXPECT_EQ(lg_mapped(), mapped - 8 * kMiB) << "the freed mapping is cached, not unmapped";
  EXPECT_EQ(lg_live_bytes(), live - 12 * kMiB);
}

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
  lg_drop_cache();
  void *base = MapWithHoleAfter(4 * kMiB, 32 * kMiB);
  ASSERT_NE(base, nullptr);
  lg_donate(base, 4 * kMiB);
  void *p = hak_malloc(3 * kMiB);
  ASSERT_NE(p, nullptr);
  void *hdr = lg_of(p);
  ASSERT_EQ(hdr, base) << "the cached region was used";
  Fill(p, 3 * kMiB, 11);
  const uint64_t mapped = lg_mapped(), live = lg_live_bytes();

  ASSERT_EQ(lg_resize(hdr, p, 9 * kMiB), 0);
  EXPECT_EQ(lg_map_size(hdr), 10 * kMiB);
  EXPECT_GE(lg_usable(hdr), 9 * kMiB);
  EXPECT_EQ(lg_mapped(), mapped + 6 * kMiB);
  EXPECT_EQ(lg_live_bytes(), live + 6 * kMiB);
  for (size_t off = kRegion; off < 10 * kMiB; off += kRegion) {
    EXPECT_EQ(lg_kind(B(hdr) + off), lg_region_tail()) << off;
  }
  EXPECT_EQ(lg_kind(B(hdr) + 10 * kMiB), lg_region_none());
  std::memset(B(p) + 3 * kMiB, 0x77, 6 * kMiB); // the new part is usable
  EXPECT_EQ(Check(p, 3 * kMiB, 11), SIZE_MAX);

  // Through realloc: grows in place again.
  void *q = hak_realloc(p, 20 * kMiB);
  EXPECT_EQ(q, p);
  EXPECT_EQ(lg_map_size(hdr), 22 * kMiB);
  EXPECT_EQ(Check(q, 3 * kMiB, 11), SIZE_MAX);
  std::memset(B(q) + 9 * kMiB, 0x78, 11 * kMiB);
  hak_free(q);
  EXPECT_EQ(lg_kind(B(hdr) + 20 * kMiB), lg_region_none());
  EXPECT_EQ(lg_live_bytes(), live - 4 * kMiB);
}

// When the address space after the mapping is taken, growth in place fails
// cleanly and realloc moves the block.
TEST_F(LargeTest, GrowInPlaceFailsWhenSpaceAfterIsTaken) {
  lg_drop_cache();
  void *base = MapWithHoleAfter(6 * kMiB, 8 * kMiB);
  ASSERT_NE(base, nullptr);
  // The last 2 MiB stay mapped (and inaccessible) by the test.
  void *blocker = B(base) + 4 * kMiB;
  ASSERT_EQ(mprotect(blocker, kRegion, PROT_NONE), 0);
  lg_donate(base, 4 * kMiB);
  void *p = hak_malloc(3 * kMiB);
  ASSERT_NE(p, nullptr);
  void *hdr = lg_of(p);
  ASSERT_EQ(hdr, base);
  Fill(p, 3 * kMiB, 12);
  const uint64_t mapped = lg_mapped();

  EXPECT_EQ(lg_resize(hdr, p, 5 * kMiB), -1);
  EXPECT_EQ(lg_map_size(hdr), 4 * kMiB) << "a failed growth changes nothing";
  EXPECT_EQ(lg_mapped(), mapped);
  EXPECT_EQ(lg_kind(blocker), lg_region_none());

  void *q = hak_realloc(p, 5 * kMiB);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  EXPECT_EQ(Check(q, 3 * kMiB, 12), SIZE_MAX);
  EXPECT_EQ(lg_kind(p), lg_region_none());
  hak_free(q);
  lg_drop_cache(); // unmaps the donated region
  munmap(blocker, kRegion);
}

TEST_F(LargeTest, ReallocToSlabSizeMoves) {
  void *p = hak_malloc(1 * kMiB);
  ASSERT_NE(p, nullptr);
  Fill(p, 64 * kKiB, 3);
  void *q = hak_realloc(p, 64 * kKiB);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  EXPECT_EQ(lg_of(q), nullptr) << "64 KiB lives in a slab";
  EXPECT_EQ(Check(q, 64 * kKiB, 3), SIZE_MAX);
  EXPECT_EQ(lg_kind(p), lg_region_none());
  hak_free(q);
}

// calloc must zero a block even when the mapping it reuses from the page
// arena's cache was written by an earlier block.
TEST_F(LargeTest, CallocZeroesReusedDirtyMapping) {
  lg_drop_cache();
  for (size_t size : {300 * kKiB, 3 * kMiB, 6 * kMiB - 64}) {
    SCOPED_TRACE(size);
    void *p = hak_malloc(size);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0xab, hak_usable_size(p));
    const uint64_t cached_before = lg_cached();
    hak_free(p);
    ASSERT_GT(lg_cached(), cached_before) << "the mapping was cached";
    void *q = hak_calloc(1, size);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q, p) << "the cached mapping was reused";
    EXPECT_EQ(FirstNonZero(q, size), SIZE_MAX);
    hak_free(q);
  }
}

// The reused mapping may be up to a quarter larger than needed.
TEST_F(LargeTest, CallocZeroesReusedLargerMapping) {
  lg_drop_cache();
  void *p = hak_malloc(10 * kMiB - 64); // exactly a 10 MiB mapping
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(lg_map_size(lg_of(p)), 10 * kMiB);
  std::memset(p, 0xee, 10 * kMiB - 64);
  hak_free(p);
  void *q = hak_calloc(8, kMiB - 8); // needs 8 MiB, gets the 10 MiB one
  ASSERT_NE(q, nullptr);
  void *hdr = lg_of(q);
  ASSERT_NE(hdr, nullptr);
  EXPECT_EQ(q, p);
  EXPECT_EQ(lg_map_size(hdr), 10 * kMiB);
  EXPECT_EQ(FirstNonZero(q, 8 * (kMiB - 8)), SIZE_MAX);
  hak_free(q);
}

// A block's header records how far its mapping may be dirty: what the block
// can write, or more when it reuses a region with more resident.
TEST_F(LargeTest, TouchedExtentFollowsBlock) {
  lg_drop_cache();
  void *p = hak_malloc(300 * kKiB);
  ASSERT_NE(p, nullptr);
  void *hdr = lg_of(p);
  ASSERT_NE(hdr, nullptr);
  EXPECT_EQ(lg_touched(hdr), lg_offset(hdr) + lg_usable(hdr));
  EXPECT_EQ(lg_resize(hdr, p, 900 * kKiB), 0);
  EXPECT_EQ(lg_touched(hdr), lg_offset(hdr) + lg_usable(hdr)) << "grown in place";
  EXPECT_EQ(lg_resize(hdr, p, 200 * kKiB), 0);
  EXPECT_GE(lg_touched(hdr), lg_offset(hdr) + 900 * kKiB) << "shrinking leaves pages dirty";
  std::memset(p, 0x11, lg_usable(hdr));
  hak_free(p);
  void *q = hak_malloc(700 * kKiB); // reuses the region, 900 KiB resident
  ASSERT_EQ(q, p);
  EXPECT_GE(lg_touched(lg_of(q)), lg_offset(hdr) + 900 * kKiB);
  hak_free(q);
}

// calloc clears only the part of a reused region that may be dirty: beyond
// the old block's extent, and where the arena gave pages back, the kernel's
// zero pages are enough. Either way the block reads as zeros.
TEST_F(LargeTest, CallocZeroesRegionWithSmallerDirtyExtent) {
  lg_drop_cache();
  void *p = hak_malloc(1900 * kKiB);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xcd, 1900 * kKiB);
  hak_free(p);
  void *small = hak_malloc(200 * kKiB); // gives back all but ~400 KiB
  ASSERT_EQ(small, p);
  EXPECT_LT(lg_touched(lg_of(small)), kMiB);
  std::memset(small, 0x77, 200 * kKiB);
  hak_free(small);
  void *q = hak_calloc(1, 1800 * kKiB);
  ASSERT_EQ(q, p);
  EXPECT_EQ(FirstNonZero(q, 1800 * kKiB), SIZE_MAX);
  hak_free(q);
}

TEST_F(LargeTest, CallocOfFreshMappingIsZero) {
  lg_drop_cache();
  void *q = hak_calloc(3, kMiB);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(FirstNonZero(q, 3 * kMiB), SIZE_MAX);
  hak_free(q);
  void *z = lg_alloc(5 * kMiB, 4 * kMiB, 1); // over-aligned, zeroed
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(z) % (4 * kMiB), 0u);
  EXPECT_EQ(FirstNonZero(z, 5 * kMiB), SIZE_MAX);
  lg_free(lg_of(z));
}

TEST_F(LargeTest, ImpossibleSizesFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(hak_malloc(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_malloc(SIZE_MAX / 2), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_malloc(size_t{1} << 50), nullptr); // more than the address space
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  // Beyond the 47-bit address space: fails whatever the overcommit policy.
  EXPECT_EQ(hak_aligned_alloc(size_t{1} << 40, size_t{1} << 47), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(lg_alloc(SIZE_MAX - 100, 64, 0), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // The allocator still works.
  void *p = hak_malloc(4 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_free(p);
}

TEST_F(LargeTest, LargeAllocDirect) {
  void *p = lg_alloc(0, 0, 0); // a unique block even for size 0
  ASSERT_NE(p, nullptr);
  void *hdr = lg_of(p);
  ASSERT_NE(hdr, nullptr);
  EXPECT_GE(lg_usable(hdr), 1u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  lg_free(hdr);
}

} // namespace
