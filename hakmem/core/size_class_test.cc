// Unit test of the size-class box: every request size maps to the smallest
// class that holds it, rounding waste stays bounded, and aligned lookups give
// classes whose blocks are all aligned; the tables the hit paths read (the
// size lookup, the division and block-start magic) agree with the sizes.
#include <cstddef>
#include <cstdint>

#include "gtest/gtest.h"
#include "hakmem/core/size_class.h"

namespace {

constexpr unsigned kClasses = HAK_NUM_CLASSES;

TEST(SizeClassTable, SizesAreIncreasingMultiplesOf16) {
  const unsigned n = kClasses;
  ASSERT_GT(n, 0u);
  EXPECT_EQ(hak_size_class_bytes(0), 16u);
  EXPECT_EQ(hak_size_class_bytes(n - 1), HAK_MEDIUM_MAX);
  for (unsigned c = 0; c < n; ++c) {
    SCOPED_TRACE(c);
    EXPECT_EQ(hak_size_class_bytes(c) % 16, 0u);
    if (c > 0) {
      EXPECT_GT(hak_size_class_bytes(c), hak_size_class_bytes(c - 1));
    }
  }
}

TEST(SizeClassTable, RegionKindFollowsSmallLimit) {
  for (unsigned c = 0; c < kClasses; ++c) {
    SCOPED_TRACE(c);
    const unsigned want = hak_size_class_bytes(c) <= HAK_SMALL_MAX ? unsigned{HAK_REGION_SS_SMALL}
                                                                   : unsigned{HAK_REGION_SS_MEDIUM};
    EXPECT_EQ(unsigned{hak_size_class_table[c].region_kind}, want);
  }
}

TEST(SizeClassTable, CacheBoundsAndBatches) {
  for (unsigned c = 0; c < kClasses; ++c) {
    SCOPED_TRACE(c);
    // About 32 KiB of blocks per bin (what an idle thread's bin can hold),
    // at least one block, at most 256.
    EXPECT_GE(unsigned{hak_size_class_table[c].cache_cap}, 1u);
    EXPECT_LE(unsigned{hak_size_class_table[c].cache_cap}, 256u);
    if (unsigned{hak_size_class_table[c].cache_cap} > 1u) {
      EXPECT_LE(unsigned{hak_size_class_table[c].cache_cap} * hak_size_class_bytes(c), 32768u);
    }
    EXPECT_GE(unsigned{hak_size_class_table[c].batch}, 1u);
    EXPECT_LE(unsigned{hak_size_class_table[c].batch}, unsigned{hak_size_class_table[c].cache_cap});
  }
}

TEST(SizeClass, ZeroMapsToSmallestClass) { EXPECT_EQ(hak_size_class_of(0), 0u); }

// Every size up to the largest slab block: the class holds it, and the class
// below does not (the mapping is minimal).
TEST(SizeClass, EverySizeGetsSmallestFittingClass) {
  const size_t max = HAK_MEDIUM_MAX;
  const unsigned n = kClasses;
  size_t failures = 0;
  for (size_t size = 1; size <= max && failures < 20; ++size) {
    const unsigned c = hak_size_class_of(size);
    if (c >= n) {
      ADD_FAILURE() << "size " << size << " -> class " << c << " out of range";
      ++failures;
      continue;
    }
    const size_t cs = hak_size_class_bytes(c);
    if (cs < size) {
      ADD_FAILURE() << "size " << size << " -> class " << c << " of only " << cs;
      ++failures;
    }
    if (c > 0 && hak_size_class_bytes(c - 1) >= size) {
      ADD_FAILURE() << "size " << size << " -> class " << c << " (" << cs << ") but class " << c - 1
                    << " (" << hak_size_class_bytes(c - 1) << ") fits";
      ++failures;
    }
  }
  EXPECT_EQ(failures, 0u);
}

TEST(SizeClass, RoundingWasteIsBounded) {
  const size_t max = HAK_MEDIUM_MAX;
  size_t failures = 0;
  for (size_t size = 1; size <= max && failures < 20; ++size) {
    const size_t waste = hak_size_class_bytes(hak_size_class_of(size)) - size;
    const bool ok = size <= 128 ? waste <= 15 : waste * 4 <= size;
    if (!ok) {
      ADD_FAILURE() << "size " << size << " wastes " << waste << " bytes";
      ++failures;
    }
  }
  EXPECT_EQ(failures, 0u);
}

TEST(SizeClass, BoundariesOfEveryClass) {
  for (unsigned c = 0; c < kClasses; ++c) {
    SCOPED_TRACE(c);
    const size_t cs = hak_size_class_bytes(c);
    EXPECT_EQ(hak_size_class_of(cs), c);
    EXPECT_EQ(hak_size_class_of(cs - 1), cs - 1 == 0 ? 0u : c) << "one below class size";
    if (c + 1 < kClasses) {
      EXPECT_EQ(hak_size_class_of(cs + 1), c + 1);
    }
  }
}

// hak_size_class_aligned for every power-of-two alignment the slabs serve.
TEST(SizeClassAligned, EverySizeAndAlignment) {
  const size_t max = HAK_MEDIUM_MAX;
  const unsigned n = kClasses;
  for (size_t align = 32; align <= HAK_PAGE_SIZE; align *= 2) {
    SCOPED_TRACE(align);
    size_t failures = 0;
    for (size_t size = 1; size <= max && failures < 10; ++size) {
      const unsigned c = hak_size_class_aligned(size, align);
      if (c >= n) {
        ADD_FAILURE() << "size " << size << " has no class aligned to " << align;
        ++failures;
        continue;
      }
      const size_t cs = hak_size_class_bytes(c);
      if (cs < size || cs % align != 0) {
        ADD_FAILURE() << "size " << size << " -> class size " << cs;
        ++failures;
        continue;
      }
      // Minimal: no smaller class both fits and is aligned.
      for (unsigned d = hak_size_class_of(size); d < c; ++d) {
        if (hak_size_class_bytes(d) % align == 0) {
          ADD_FAILURE() << "size " << size << ": class " << d << " (" << hak_size_class_bytes(d)
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
    EXPECT_EQ(hak_size_class_aligned(size, 16), hak_size_class_of(size)) << size;
  }
}

TEST(SizeClassAligned, OutOfRangeHasNoClass) {
  const unsigned n = kClasses;
  EXPECT_EQ(hak_size_class_aligned(HAK_MEDIUM_MAX + 1, 64), n);
  EXPECT_EQ(hak_size_class_aligned(100, HAK_PAGE_SIZE * 2), n);
  EXPECT_EQ(hak_size_class_aligned(HAK_MEDIUM_MAX, HAK_PAGE_SIZE), n - 1);
}

// The exact division test: off % size == 0 iff off * div_magic < div_magic,
// for every offset within a SuperSlab and a sample of larger ones.
TEST(SizeClassTable, DivMagicFindsMultiples) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c) {
    SCOPED_TRACE(c);
    const uint64_t size = hak_size_class_table[c].size;
    const uint64_t magic = hak_size_class_table[c].div_magic;
    EXPECT_EQ(magic, UINT64_MAX / size + 1);
    size_t failures = 0;
    for (uint64_t off = 0; off < HAK_SS_SIZE && failures < 10; ++off) {
      if ((off * magic < magic) != (off % size == 0)) {
        ADD_FAILURE() << "offset " << off;
        ++failures;
      }
    }
    for (uint64_t off = HAK_SS_SIZE; off < (uint64_t{1} << 32) && failures < 10;
         off += 0x10001 + 16 * c) {
      for (uint64_t o : {off, off - off % size}) {
        if ((o * magic < magic) != (o % size == 0)) {
          ADD_FAILURE() << "offset " << o;
          ++failures;
        }
      }
    }
  }
}

// The free hit path's block-start test (see hak_class_info): exhaustive over
// a 64 KiB granule for every small class, none for medium ones.
TEST(SizeClassTable, BlockStartCheckIsExact) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c) {
    SCOPED_TRACE(c);
    const hak_class_info &k = hak_size_class_table[c];
    if (k.size > HAK_SMALL_MAX) {
      EXPECT_EQ(k.chk_mul, 0u);
      EXPECT_EQ(k.chk_lim, 0u);
      continue;
    }
    const uint32_t whole = 65536u / k.size; // blocks that fit in the granule
    size_t failures = 0;
    for (uint32_t off = 0; off < 65536u && failures < 10; ++off) {
      const bool start = off % k.size == 0 && off / k.size < whole;
      if ((static_cast<uint32_t>(off * k.chk_mul) < k.chk_lim) != start) {
        ADD_FAILURE() << "offset " << off << (start ? " is" : " is not") << " a block start";
        ++failures;
      }
    }
  }
}

// The one-load table of the malloc hit path agrees with the computed classes.
TEST(SizeClassTable, LookupTableHoldsBinSlots) {
  EXPECT_EQ(hak_size_class_lookup[0], 0u) << "size 0 names bin 0, which never holds blocks";
  for (size_t size = 1; size <= HAK_LOOKUP_MAX; ++size) {
    const unsigned slot = hak_size_class_lookup[size];
    ASSERT_EQ(slot % HAK_BIN_SLOT(1), 0u) << size;
    const unsigned cls = slot / HAK_BIN_SLOT(1) - 1;
    ASSERT_LT(cls, kClasses) << size;
    EXPECT_GE(hak_size_class_bytes(cls), size);
    EXPECT_TRUE(cls == 0 || hak_size_class_bytes(cls - 1) < size) << size;
  }
  // Past the table, the computed path takes over where the table stops.
  EXPECT_EQ(hak_size_class_of(HAK_LOOKUP_MAX + 1), hak_size_class_of(HAK_LOOKUP_MAX) + 1);
}

} // namespace
