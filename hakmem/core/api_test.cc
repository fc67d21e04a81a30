// Unit test of the api box: the hidden hak_api_* aliases the override layer
// calls are the public functions themselves, the hit paths of fastpath.h
// round-trip a block, and the miss path serves every size. The cases about
// real blocks that lower boxes' tests cannot make (what the segment map and
// class map say of them, aligned classes handing out aligned blocks) are
// here too, since this is the lowest box that allocates.
#include <errno.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/api.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/fastpath.h"
#include "hakmem/core/include/hakmem.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/size_class.h"

namespace {

using hakmem_box_test::RunInThread;

// A function's address, hidden from the optimiser so that it cannot fold a
// comparison of two distinct declarations to false.
template <typename F> uintptr_t AddressOf(F *f) {
  uintptr_t a = reinterpret_cast<uintptr_t>(f);
  __asm__ volatile("" : "+r"(a));
  return a;
}

// The class of a request of size bytes, as hak_malloc picks it.
unsigned ClassOf(size_t size) { return hak_size_class_of(size + HAK_TRAILER); }

// Whether a freed block goes to a bin that the next malloc of its class
// pops: the fast cache, unless full checks bypass it (release builds).
bool BinsTakeFrees() {
  return HAKMEM_FASTCACHE && (HAKMEM_DEBUG || hak_integrity_level != HAK_CHECK_FULL);
}

// ---- the aliases ------------------------------------------------------------

TEST(Api, AliasesAreThePublicFunctions) {
  EXPECT_EQ(AddressOf(&hak_api_malloc), AddressOf(&hak_malloc));
  EXPECT_EQ(AddressOf(&hak_api_free), AddressOf(&hak_free));
  EXPECT_EQ(AddressOf(&hak_api_calloc), AddressOf(&hak_calloc));
  EXPECT_EQ(AddressOf(&hak_api_realloc), AddressOf(&hak_realloc));
  EXPECT_EQ(AddressOf(&hak_api_reallocarray), AddressOf(&hak_reallocarray));
  EXPECT_EQ(AddressOf(&hak_api_aligned_alloc), AddressOf(&hak_aligned_alloc));
  EXPECT_EQ(AddressOf(&hak_api_posix_memalign), AddressOf(&hak_posix_memalign));
  EXPECT_EQ(AddressOf(&hak_api_memalign), AddressOf(&hak_memalign));
  EXPECT_EQ(AddressOf(&hak_api_valloc), AddressOf(&hak_valloc));
  EXPECT_EQ(AddressOf(&hak_api_pvalloc), AddressOf(&hak_pvalloc));
  EXPECT_EQ(AddressOf(&hak_api_usable_size), AddressOf(&hak_usable_size));
  EXPECT_EQ(AddressOf(&hak_api_trim), AddressOf(&hak_trim));
}

// The aliases work as the functions do (one call each, through the alias).
TEST(Api, AliasesAllocateAndFree) {
  void *a = hak_api_malloc(100);
  ASSERT_NE(a, nullptr);
  EXPECT_GE(hak_api_usable_size(a), 100u);
  EXPECT_EQ(hak_api_malloc_usable_size(a), hak_api_usable_size(a));
  void *c = hak_api_calloc(10, 30);
  ASSERT_NE(c, nullptr);
  for (size_t i = 0; i < 300; ++i)
    ASSERT_EQ(static_cast<unsigned char *>(c)[i], 0) << i;
  std::memset(a, 0x3c, 100);
  a = hak_api_realloc(a, 5000);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(static_cast<unsigned char *>(a)[99], 0x3c);
  c = hak_api_reallocarray(c, 100, 30);
  ASSERT_NE(c, nullptr);
  errno = 0;
  EXPECT_EQ(hak_api_reallocarray(c, SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void *al = hak_api_aligned_alloc(256, 300);
  ASSERT_NE(al, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(al) % 256, 0u);
  void *pm = nullptr;
  EXPECT_EQ(hak_api_posix_memalign(&pm, 1024, 10), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pm) % 1024, 0u);
  EXPECT_EQ(hak_api_posix_memalign(&pm, 24, 10), EINVAL);
  void *ma = hak_api_memalign(64, 70);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ma) % 64, 0u);
  void *va = hak_api_valloc(10);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(va) % HAK_PAGE_SIZE, 0u);
  void *pv = hak_api_pvalloc(10);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pv) % HAK_PAGE_SIZE, 0u);
  EXPECT_GE(hak_api_usable_size(pv), HAK_PAGE_SIZE);
  for (void *p : {a, c, al, pm, ma, va, pv})
    hak_api_free(p);
  const int trimmed = hak_api_trim(0);
  EXPECT_TRUE(trimmed == 0 || trimmed == 1) << trimmed;
  EXPECT_EQ(hak_api_usable_size(nullptr), 0u);
  EXPECT_EQ(hak_api_malloc_usable_size(nullptr), 0u);
}

// The exported malloc_usable_size reports a pointer that is neither
// hakmem's nor glibc's; hak_usable_size says 0.
TEST(Api, MallocUsableSizeOfGarbageIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  alignas(16) static uint64_t not_a_block[8];
  EXPECT_EQ(hak_api_usable_size(&not_a_block[2]), 0u);
  EXPECT_DEATH(hak_api_malloc_usable_size(&not_a_block[2]),
               "hakmem: malloc_usable_size\\(\\): invalid pointer 0x[0-9a-f]+ \\(not a live block "
               "of hakmem's, nor of glibc's\\)");
}

// ---- the hit paths ------------------------------------------------------------

// A block from the hit path is a live block of the size's class; freed (by
// the hit path where the build inlines it), it is the next one handed out of
// its bin.
TEST(FastPath, MallocHitAndFreeRoundTrip) {
  RunInThread([] { // a thread of its own: its bins hold only this test's blocks
    for (size_t size : {size_t{1}, size_t{16}, size_t{24}, size_t{100}, size_t{1000},
                        size_t{HAK_LOOKUP_MAX - HAK_TRAILER}}) {
      SCOPED_TRACE(size);
      void *p = hak_fastpath_malloc(size);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(hak_segmap_kind(p), HAK_REGION_SS_SMALL);
      EXPECT_EQ(hak_segmap_class_slot(p), HAK_BIN_SLOT(ClassOf(size) + 1));
      EXPECT_GE(hak_usable_size(p), size);
      EXPECT_LE(hak_usable_size(p), hak_size_class_bytes(ClassOf(size)));
      std::memset(p, 0xa5, size);
#if HAK_INLINE_FAST_PATHS
      hak_fastpath_free(p);
#else
      hak_free(p);
#endif
      void *q = hak_fastpath_malloc(size);
      ASSERT_NE(q, nullptr);
      if (BinsTakeFrees()) {
        EXPECT_EQ(q, p) << "the bin hands back the block just freed";
      }
      void *r = hak_fastpath_malloc(size);
      ASSERT_NE(r, nullptr);
      EXPECT_NE(r, q);
      hak_free(q);
      hak_free(r);
    }
  });
}

#if HAK_INLINE_FAST_PATHS
// What the hit path of free does not take goes to the miss path: NULL, a large
// block, a medium one; misuse is reported there.
TEST(FastPath, FreeHitPassesEverythingElseOn) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  hak_fastpath_free(nullptr);
  void *large = hak_malloc(3 << 20);
  ASSERT_NE(large, nullptr);
  ASSERT_EQ(hak_segmap_kind(large), HAK_REGION_LARGE);
  hak_stats before_large;
  hak_stats_get(&before_large);
  hak_fastpath_free(large);
  EXPECT_EQ(hak_segmap_kind(large), HAK_REGION_NONE) << "its mapping is gone";
  hak_stats after_large;
  hak_stats_get(&after_large);
  EXPECT_EQ(after_large.large_frees - before_large.large_frees, 1u);
  void *medium = hak_malloc(20000); // classes over 16 KiB: 512 KiB slabs
  ASSERT_NE(medium, nullptr);
  const unsigned cls = ClassOf(20000);
  hak_stats before;
  hak_stats_get(&before);
  hak_fastpath_free(medium);
  hak_stats after;
  hak_stats_get(&after);
  EXPECT_EQ(after.classes[cls].frees - before.classes[cls].frees, 1u) << "freed, not lost";

  void *p = hak_malloc(64);
  ASSERT_NE(p, nullptr);
  EXPECT_DEATH(
      hak_fastpath_free(static_cast<char *>(p) + 16),
      "hakmem: free\\(\\): invalid pointer 0x[0-9a-f]+ \\(not a block hakmem handed out\\)");
  hak_fastpath_free(p);
  EXPECT_DEATH(hak_fastpath_free(p), "hakmem: free\\(\\): double free of 0x[0-9a-f]+");
}
#endif

// hak_fastpath_malloc_miss serves every size hak_malloc does, from the slab classes,
// large mappings, or not at all.
TEST(FastPath, MallocMissServesEverySize) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{700}, size_t{5000}, size_t{100000}}) {
    SCOPED_TRACE(size);
    void *p = hak_fastpath_malloc_miss(size);
    ASSERT_NE(p, nullptr);
    const uint8_t kind = hak_segmap_kind(p);
    EXPECT_TRUE(kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM);
    EXPECT_EQ(kind, hak_size_class_table[ClassOf(size)].region_kind);
    EXPECT_GE(hak_usable_size(p), size);
    hak_free(p);
  }
  for (size_t size : {HAK_MEDIUM_MAX + 1, size_t{1} << 20, size_t{5} << 20}) {
    SCOPED_TRACE(size);
    void *p = hak_fastpath_malloc_miss(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(hak_segmap_kind(p), HAK_REGION_LARGE);
    EXPECT_GE(hak_usable_size(p), size);
    static_cast<unsigned char *>(p)[size - 1] = 1;
    hak_free(p);
  }
  for (size_t size : {HAK_MAX_REQUEST + 1, SIZE_MAX}) {
    errno = 0;
    EXPECT_EQ(hak_fastpath_malloc_miss(size), nullptr);
    EXPECT_EQ(errno, ENOMEM);
  }
}

// ---- real blocks, seen by the lower boxes (moved from their tests) -----------

// What the allocator registers for its own blocks (from segmap_test).
TEST(ApiBlocks, KindsOfRealBlocks) {
  void *tiny = hak_malloc(64);
  void *medium = hak_malloc(20000); // classes over 16 KiB: 512 KiB slabs
  void *large = hak_malloc(5 << 20);
  ASSERT_NE(tiny, nullptr);
  ASSERT_NE(medium, nullptr);
  ASSERT_NE(large, nullptr);
  EXPECT_EQ(hak_segmap_kind(tiny), HAK_REGION_SS_SMALL);
  EXPECT_EQ(hak_segmap_kind(medium), HAK_REGION_SS_MEDIUM);
  EXPECT_EQ(hak_segmap_kind(large), HAK_REGION_LARGE);
  auto *lb = static_cast<unsigned char *>(large);
  EXPECT_EQ(hak_segmap_kind(lb + (3 << 20)), HAK_REGION_LARGE_TAIL);
  EXPECT_EQ(hak_segmap_kind(lb + (5 << 20) - 1), HAK_REGION_LARGE_TAIL);
  EXPECT_NE(hak_owns(tiny), 0);
  EXPECT_NE(hak_owns(medium), 0);
  EXPECT_NE(hak_owns(large), 0);
  hak_free(large);
  EXPECT_EQ(hak_segmap_kind(large), HAK_REGION_NONE);
  EXPECT_EQ(hak_segmap_kind(lb + (3 << 20)), HAK_REGION_NONE);
  EXPECT_EQ(hak_owns(large), 0);
  hak_free(medium);
  hak_free(tiny);
}

// hak_owns is the segment map's answer (from segmap_test).
TEST(ApiBlocks, OwnsLiveBlocksOnly) {
  int local = 0;
  EXPECT_EQ(hak_owns(&local), 0);
  EXPECT_EQ(hak_owns(nullptr), 0);
  // A block start while it is live; not an interior pointer, not once freed.
  for (size_t size : {16, 3000, 100000, 3 << 20}) {
    SCOPED_TRACE(size);
    char *p = static_cast<char *>(hak_malloc(size));
    char *keep = static_cast<char *>(hak_malloc(size)); // keeps the region mapped
    ASSERT_NE(p, nullptr);
    EXPECT_NE(hak_owns(p), 0);
    EXPECT_EQ(hak_owns(p + 8), 0); // p + 16 is the next block in a 16 B class
    hak_free(p);
    EXPECT_EQ(hak_owns(p), 0);
    EXPECT_NE(hak_owns(keep), 0);
    hak_free(keep);
  }
}

// The class map names the bin of every live slab block, and nothing for a
// large one (from segmap_test).
TEST(ApiBlocks, ClassMapNamesTheBinOfEveryLiveSlabBlock) {
  for (size_t size : {1, 16, 100, 1000, 5000, 20000, 120000}) {
    SCOPED_TRACE(size);
    void *p = hak_malloc(size);
    ASSERT_NE(p, nullptr);
    ASSERT_NE(hak_segmap_class.mask, 0u) << "the class map could not be reserved";
    EXPECT_EQ(hak_segmap_class_slot(p), HAK_BIN_SLOT(ClassOf(size) + 1));
    EXPECT_EQ(hak_segmap_class_slot(static_cast<char *>(p) + size - 1),
              HAK_BIN_SLOT(ClassOf(size) + 1));
    hak_free(p);
  }
  void *big = hak_malloc(1u << 20); // a large mapping: not in any slab
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(hak_segmap_class_slot(big), 0u);
  hak_free(big);
}

// From segmap_test.
TEST(ApiBlocks, ReleasedSlabLeavesTheClassMap) {
  void *p = nullptr;
  // A thread allocates one block of a class nothing else here uses, frees
  // it and exits; trim gives its slab back to the pool.
  RunInThread([&] {
    p = hak_malloc(1400); // class 1536, which no other case here allocates
    hak_free(p);
  });
  hak_trim(0);
  EXPECT_EQ(hak_segmap_class_slot(p), 0u) << "a free slab slot names no class";
}

// The blocks the allocator returns for an aligned class really are aligned,
// including ones further into a slab (from size_class_test).
TEST(ApiBlocks, AlignedClassesGiveAlignedBlocks) {
  const size_t sizes[] = {1, 17, 100, 1000, 3000, 5000, 20000, 100000};
  for (size_t align = 32; align <= HAK_PAGE_SIZE; align *= 2) {
    for (size_t size : sizes) {
      void *blocks[6];
      for (void *&b : blocks) {
        b = hak_aligned_alloc(align, size);
        ASSERT_NE(b, nullptr) << "align " << align << " size " << size;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % align, 0u)
            << "align " << align << " size " << size;
        EXPECT_GE(hak_usable_size(b), size);
      }
      for (void *b : blocks)
        hak_free(b);
    }
  }
}

} // namespace
