// Unit test of the size-class box: every request size maps to the smallest
// class that holds it, rounding waste stays bounded, and aligned lookups give
// classes whose blocks are all aligned.
#include <cstddef>
#include <cstdint>

#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
unsigned sc_num_classes(void);
size_t sc_medium_max(void);
size_t sc_small_max(void);
size_t sc_page_size(void);
unsigned sc_class_of(size_t size);
size_t sc_class_size(unsigned cls);
unsigned sc_class_aligned(size_t size, size_t align);
unsigned sc_region_kind(unsigned cls);
unsigned sc_region_small(void);
unsigned sc_region_medium(void);
unsigned sc_cache_cap(unsigned cls);
unsigned sc_batch(unsigned cls);
}

namespace {

TEST(SizeClassTable, SizesAreIncreasingMultiplesOf16) {
  const unsigned n = sc_num_classes();
  ASSERT_GT(n, 0u);
  ASSERT_LE(n, static_cast<unsigned>(HAK_STATS_MAX_CLASSES));
  EXPECT_EQ(sc_class_size(0), 16u);
  EXPECT_EQ(sc_class_size(n - 1), sc_medium_max());
  for (unsigned c = 0; c < n; ++c) {
    SCOPED_TRACE(c);
    EXPECT_EQ(sc_class_size(c) % 16, 0u);
    if (c > 0) {
      EXPECT_GT(sc_class_size(c), sc_class_size(c - 1));
    }
  }
}

TEST(SizeClassTable, RegionKindFollowsSmallLimit) {
  for (unsigned c = 0; c < sc_num_classes(); ++c) {
    SCOPED_TRACE(c);
    const unsigned want =
        sc_class_size(c) <= sc_small_max() ? sc_region_small() : sc_region_medium();
    EXPECT_EQ(sc_region_kind(c), want);
  }
}

TEST(SizeClassTable, CacheBoundsAndBatches) {
  for (unsigned c = 0; c < sc_num_classes(); ++c) {
    SCOPED_TRACE(c);
    // About 32 KiB of blocks per bin (what an idle thread's bin can hold),
    // at least one block, at most 256.
    EXPECT_GE(sc_cache_cap(c), 1u);
    EXPECT_LE(sc_cache_cap(c), 256u);
    if (sc_cache_cap(c) > 1u) {
      EXPECT_LE(sc_cache_cap(c) * sc_class_size(c), 32768u);
    }
    EXPECT_GE(sc_batch(c), 1u);
    EXPECT_LE(sc_batch(c), sc_cache_cap(c));
  }
}

TEST(SizeClass, ZeroMapsToSmallestClass) { EXPECT_EQ(sc_class_of(0), 0u); }

// Every size up to the largest slab block: the class holds it, and the class
// below does not (the mapping is minimal).
TEST(SizeClass, EverySizeGetsSmallestFittingClass) {
  const size_t max = sc_medium_max();
  const unsigned n = sc_num_classes();
  size_t failures = 0;
  for (size_t size = 1; size <= max && failures < 20; ++size) {
    const unsigned c = sc_class_of(size);
    if (c >= n) {
      ADD_FAILURE() << "size " << size << " -> class " << c << " out of range";
      ++failures;
      continue;
    }
    const size_t cs = sc_class_size(c);
    if (cs < size) {
      ADD_FAILURE() << "size " << size << " -> class " << c << " of only " << cs;
      ++failures;
    }
    if (c > 0 && sc_class_size(c - 1) >= size) {
      ADD_FAILURE() << "size " << size << " -> class " << c << " (" << cs << ") but class " << c - 1
                    << " (" << sc_class_size(c - 1) << ") fits";
      ++failures;
    }
  }
  EXPECT_EQ(failures, 0u);
}

TEST(SizeClass, RoundingWasteIsBounded) {
  const size_t max = sc_medium_max();
  size_t failures = 0;
  for (size_t size = 1; size <= max && failures < 20; ++size) {
    const size_t waste = sc_class_size(sc_class_of(size)) - size;
    const bool ok = size <= 128 ? waste <= 15 : waste * 4 <= size;
    if (!ok) {
      ADD_FAILURE() << "size " << size << " wastes " << waste << " bytes";
      ++failures;
    }
  }
  EXPECT_EQ(failures, 0u);
}

TEST(SizeClass, BoundariesOfEveryClass) {
  for (unsigned c = 0; c < sc_num_classes(); ++c) {
    SCOPED_TRACE(c);
    const size_t cs = sc_class_size(c);
    EXPECT_EQ(sc_class_of(cs), c);
    EXPECT_EQ(sc_class_of(cs - 1), cs - 1 == 0 ? 0u : c) << "one below class size";
    if (c + 1 < sc_num_classes()) {
      EXPECT_EQ(sc_class_of(cs + 1), c + 1);
    }
  }
}

// hak_size_class_aligned for every power-of-two alignment the slabs serve.
TEST(SizeClassAligned, EverySizeAndAlignment) {
  const size_t max = sc_medium_max();
  const unsigned n = sc_num_classes();
  for (size_t align = 32; align <= sc_page_size(); align *= 2) {
    SCOPED_TRACE(align);
    size_t failures = 0;
    for (size_t size = 1; size <= max && failures < 10; ++size) {
      const unsigned c = sc_class_aligned(size, align);
      if (c >= n) {
        ADD_FAILURE() << "size " << size << " has no class aligned to " << align;
        ++failures;
        continue;
      }
      const size_t cs = sc_class_size(c);
      if (cs < size || cs % align != 0) {
        ADD_FAILURE() << "size " << size << " -> class size " << cs;
        ++failures;
        continue;
      }
      // Minimal: no smaller class both fits and is aligned.
      for (unsigned d = sc_class_of(size); d < c; ++d) {
        if (sc_class_size(d) % align == 0) {
          ADD_FAILURE() << "size " << size << ": class " << d << " (" << sc_class_size(d)
                        << ") fits and is aligned, but got class " << c;
          ++failures;
          break;
        }
      }
    }
    EXPECT_EQ(failures, 0u);
  }
}

TEST(SizeClassAligned, SmallAlignmentsAreOrdinaryClasses) {
  for (size_t size = 1; size <= 4096; ++size) {
    EXPECT_EQ(sc_class_aligned(size, 16), sc_class_of(size)) << size;
  }
}

TEST(SizeClassAligned, OutOfRangeHasNoClass) {
  const unsigned n = sc_num_classes();
  EXPECT_EQ(sc_class_aligned(sc_medium_max() + 1, 64), n);
  EXPECT_EQ(sc_class_aligned(100, sc_page_size() * 2), n);
  EXPECT_EQ(sc_class_aligned(sc_medium_max(), sc_page_size()), n - 1);
}

// The blocks the allocator returns for an aligned class really are aligned,
// including ones further into a slab.
TEST(SizeClassAligned, AllocatedBlocksAreAligned) {
  const size_t sizes[] = {1, 17, 100, 1000, 3000, 5000, 20000, 100000};
  for (size_t align = 32; align <= sc_page_size(); align *= 2) {
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
