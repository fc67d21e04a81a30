// Unit test of the SuperSlab box: 2 MiB aligned regions with a header page,
// found from any interior pointer by masking, carved into fixed-size slabs.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
void ss_init(void);
void *ss_create(unsigned kind);
void ss_destroy(void *ss);
void *ss_of(const void *p);
void *ss_slab_of(const void *p, unsigned kind);
void *ss_slab_at(void *ss, unsigned i);
int ss_magic_ok(const void *ss);
unsigned ss_kind(const void *ss);
unsigned ss_slab_shift(const void *ss);
unsigned ss_nslabs(const void *ss);
uint32_t ss_free_mask(const void *ss);
void *ss_init_slab(void *ss, unsigned slot, unsigned cls);
void *ss_slab_start(const void *s);
unsigned ss_slab_capacity(const void *s);
unsigned ss_slab_block_size(const void *s);
unsigned ss_slab_carved(const void *s);
unsigned ss_slab_used(const void *s);
unsigned ss_slab_class(const void *s);
unsigned ss_slab_slot(const void *s);
unsigned ss_slab_state(const void *s);
int ss_slab_has_free(const void *s);
void ss_slab_set_carved(void *s, unsigned n);
void ss_slab_set_state(void *s, unsigned state);
int ss_is_block(const void *s, const void *p);
unsigned ss_segmap_kind(const void *p);
uint64_t ss_count(void);
uint64_t ss_total(void);
int ss_hardened(void);
unsigned ss_num_classes(void);
unsigned ss_class_kind(unsigned cls);
size_t ss_class_size(unsigned cls);
size_t ss_size(void);
size_t ss_header_size(void);
size_t ss_slab_meta_size(void);
size_t ss_header_struct_size(void);
unsigned ss_small(void);
unsigned ss_medium(void);
unsigned ss_none(void);
unsigned ss_state_free(void);
unsigned ss_state_active(void);
}

namespace {

using Bytes = unsigned char *;

Bytes B(void *p) { return static_cast<Bytes>(p); }

// The hardened variant keeps the last page of every SuperSlab inaccessible.
size_t GuardBytes() { return ss_hardened() ? 4096 : 0; }

class SuperSlabTest : public ::testing::Test {
protected:
  void SetUp() override { ss_init(); }
};

TEST_F(SuperSlabTest, HeaderLayout) {
  EXPECT_EQ(ss_slab_meta_size(), 64u);
  EXPECT_LE(ss_header_struct_size(), ss_header_size());
  EXPECT_EQ(ss_size(), size_t{2} << 20);
}

void CheckFresh(void *ss, unsigned kind, unsigned shift, unsigned nslabs, uint32_t mask) {
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ss) % ss_size(), 0u) << "not 2 MiB aligned";
  EXPECT_TRUE(ss_magic_ok(ss));
  EXPECT_EQ(ss_kind(ss), kind);
  EXPECT_EQ(ss_slab_shift(ss), shift);
  EXPECT_EQ(ss_nslabs(ss), nslabs);
  EXPECT_EQ(ss_free_mask(ss), mask);
  EXPECT_EQ(size_t{nslabs} << shift, ss_size());
  for (unsigned i = 0; i < nslabs; ++i) {
    EXPECT_EQ(ss_slab_slot(ss_slab_at(ss, i)), i);
    EXPECT_EQ(ss_slab_state(ss_slab_at(ss, i)), ss_state_free());
  }
  // The whole region is registered with the SuperSlab's kind.
  EXPECT_EQ(ss_segmap_kind(ss), kind);
  EXPECT_EQ(ss_segmap_kind(B(ss) + ss_size() / 2), kind);
  EXPECT_EQ(ss_segmap_kind(B(ss) + ss_size() - 1), kind);
  // The memory is writable throughout (but for the hardened variant's guard
  // page at the end).
  B(ss)[ss_header_size()] = 1;
  B(ss)[ss_size() - GuardBytes() - 1] = 1;
}

TEST_F(SuperSlabTest, CreateSmall) {
  const uint64_t before = ss_count(), total_before = ss_total();
  void *ss = ss_create(ss_small());
  // Slot 0 of a small SuperSlab is its header's granule, never lent out.
  CheckFresh(ss, ss_small(), 16, 32, 0xfffffffeu);
  EXPECT_EQ(ss_count(), before + 1);
  EXPECT_EQ(ss_total(), total_before + 1);
  ss_destroy(ss);
  EXPECT_EQ(ss_count(), before);
}

TEST_F(SuperSlabTest, CreateMedium) {
  const uint64_t before = ss_count();
  void *ss = ss_create(ss_medium());
  CheckFresh(ss, ss_medium(), 19, 4, 0xfu);
  EXPECT_EQ(ss_count(), before + 1);
  ss_destroy(ss);
  EXPECT_EQ(ss_count(), before);
}

// Recreated from the arena's cache (dirty memory), a SuperSlab is still fresh.
TEST_F(SuperSlabTest, RecreatedSuperSlabIsClean) {
  void *a = ss_create(ss_small());
  ASSERT_NE(a, nullptr);
  for (unsigned i = 0; i < 32; ++i) {
    void *s = ss_init_slab(a, i, 3);
    ss_slab_set_carved(s, 10);
  }
  ss_destroy(a);
  void *b = ss_create(ss_medium());
  EXPECT_EQ(b, a) << "the page arena should have handed the cached region back";
  CheckFresh(b, ss_medium(), 19, 4, 0xfu);
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(ss_slab_carved(ss_slab_at(b, i)), 0u);
    EXPECT_EQ(ss_slab_block_size(ss_slab_at(b, i)), 0u);
  }
  ss_destroy(b);
}

// The hardened variant's guard page faults on access; the page before it
// is ordinary memory.
TEST_F(SuperSlabTest, GuardPageOfHardenedVariant) {
  if (!ss_hardened())
    GTEST_SKIP() << "no guard page in this variant";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void *ss = ss_create(ss_small());
  ASSERT_NE(ss, nullptr);
  volatile unsigned char *b = B(ss);
  b[ss_size() - 4096 - 1] = 1;
  EXPECT_DEATH(b[ss_size() - 4096] = 1, "");
  EXPECT_DEATH(b[ss_size() - 1] = 1, "");
  ss_destroy(ss);
  // Once destroyed, the region (cached by the page arena) is writable again:
  // a large block that reuses it can write its last byte.
  void *big = hak_malloc(ss_size() - 64);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(B(big) - 64, B(ss)) << "the cached region was reused";
  B(big)[ss_size() - 64 - 1] = 1;
  hak_free(big);
}

TEST_F(SuperSlabTest, DestroyClearsSegmentMap) {
  for (unsigned kind : {ss_small(), ss_medium()}) {
    void *ss = ss_create(kind);
    ASSERT_NE(ss, nullptr);
    ASSERT_EQ(ss_segmap_kind(B(ss) + 100), kind);
    ss_destroy(ss);
    EXPECT_EQ(ss_segmap_kind(ss), ss_none());
    EXPECT_EQ(ss_segmap_kind(B(ss) + 100), ss_none());
    EXPECT_EQ(ss_segmap_kind(B(ss) + ss_size() - 1), ss_none());
    EXPECT_EQ(hak_owns(B(ss) + 100), 0);
  }
}

// Masking finds the SuperSlab and the slab of every pointer in every slot.
TEST_F(SuperSlabTest, SuperSlabAndSlabOfEveryPointer) {
  for (unsigned kind : {ss_small(), ss_medium()}) {
    void *ss = ss_create(kind);
    ASSERT_NE(ss, nullptr);
    const size_t slab = size_t{1} << ss_slab_shift(ss);
    for (unsigned i = 0; i < ss_nslabs(ss); ++i) {
      SCOPED_TRACE(i);
      const Bytes lo = B(ss) + i * slab;
      const Bytes probes[] = {lo, lo + 1, lo + 16, lo + slab / 2, lo + slab - 16, lo + slab - 1};
      for (Bytes p : probes) {
        EXPECT_EQ(ss_of(p), ss);
        EXPECT_EQ(ss_slab_of(p, kind), ss_slab_at(ss, i));
      }
    }
    // Steps through the whole region, one page at a time.
    for (size_t off = 0; off < ss_size(); off += 4096) {
      ASSERT_EQ(ss_of(B(ss) + off + 8), ss);
      ASSERT_EQ(ss_slab_of(B(ss) + off + 8, kind), ss_slab_at(ss, off / slab));
    }
    ss_destroy(ss);
  }
}

// init_slab places the blocks and counts how many fit; slot 0 skips the
// header page.
TEST_F(SuperSlabTest, InitSlabCapacityForEveryClass) {
  for (unsigned kind : {ss_small(), ss_medium()}) {
    void *ss = ss_create(kind);
    ASSERT_NE(ss, nullptr);
    const size_t slab = size_t{1} << ss_slab_shift(ss);
    for (unsigned cls = 0; cls < ss_num_classes(); ++cls) {
      if (ss_class_kind(cls) != kind)
        continue;
      const size_t bs = ss_class_size(cls);
      for (unsigned slot = 0; slot < ss_nslabs(ss); ++slot) {
        SCOPED_TRACE(testing::Message() << "class " << cls << " slot " << slot);
        void *s = ss_init_slab(ss, slot, cls);
        ASSERT_EQ(s, ss_slab_at(ss, slot));
        const size_t skip = slot == 0 ? ss_header_size() : 0;
        const size_t guard = slot == ss_nslabs(ss) - 1 ? GuardBytes() : 0;
        EXPECT_EQ(ss_slab_start(s), B(ss) + slot * slab + skip);
        EXPECT_EQ(ss_slab_capacity(s), (slab - skip - guard) / bs);
        EXPECT_GE(ss_slab_capacity(s), 1u);
        EXPECT_EQ(ss_slab_block_size(s), bs);
        EXPECT_EQ(ss_slab_class(s), cls);
        EXPECT_EQ(ss_slab_slot(s), slot);
        EXPECT_EQ(ss_slab_carved(s), 0u);
        EXPECT_EQ(ss_slab_used(s), 0u);
        EXPECT_FALSE(ss_slab_has_free(s));
        EXPECT_EQ(ss_slab_state(s), ss_state_active());
        // The last block ends inside the slab and the slab maps back to it.
        const Bytes last = B(ss_slab_start(s)) + (ss_slab_capacity(s) - 1) * bs;
        EXPECT_LE(last + bs, B(ss) + (slot + 1) * slab - guard);
        EXPECT_EQ(ss_slab_of(last, kind), s);
        EXPECT_EQ(ss_slab_of(last + bs - 1, kind), s);
        ss_slab_set_state(s, ss_state_free());
      }
    }
    ss_destroy(ss);
  }
}

TEST_F(SuperSlabTest, IsBlockStartsVersusInteriorPointers) {
  void *ss = ss_create(ss_small());
  ASSERT_NE(ss, nullptr);
  const unsigned cls = 9; // 192-byte blocks: not a power of two
  ASSERT_EQ(ss_class_size(cls), 192u);
  for (unsigned slot : {0u, 1u, 31u}) {
    SCOPED_TRACE(slot);
    void *s = ss_init_slab(ss, slot, cls);
    const Bytes start = B(ss_slab_start(s));
    const unsigned cap = ss_slab_capacity(s);
    // Nothing carved yet: nothing is a block.
    EXPECT_FALSE(ss_is_block(s, start));

    ss_slab_set_carved(s, cap);
    for (unsigned i = 0; i < cap; ++i) {
      const Bytes b = start + i * 192;
      ASSERT_TRUE(ss_is_block(s, b)) << i;
      ASSERT_FALSE(ss_is_block(s, b + 1)) << i;
      ASSERT_FALSE(ss_is_block(s, b + 16)) << i;
      ASSERT_FALSE(ss_is_block(s, b + 191)) << i;
    }
    EXPECT_FALSE(ss_is_block(s, start - 192));
    EXPECT_FALSE(ss_is_block(s, start - 1));
    EXPECT_FALSE(ss_is_block(s, start + cap * 192)); // past the last block
    if (slot == 0) {
      EXPECT_FALSE(ss_is_block(s, ss)); // the header
      EXPECT_FALSE(ss_is_block(s, B(ss) + 64));
    }

    // Only carved blocks count.
    ss_slab_set_carved(s, 3);
    EXPECT_TRUE(ss_is_block(s, start + 2 * 192));
    EXPECT_FALSE(ss_is_block(s, start + 3 * 192));

    // A free slot has no blocks.
    ss_slab_set_state(s, ss_state_free());
    EXPECT_FALSE(ss_is_block(s, start));
  }
  ss_destroy(ss);
}

TEST_F(SuperSlabTest, ManySuperSlabsAreDistinct) {
  const uint64_t before = ss_count();
  std::vector<void *> all;
  for (int i = 0; i < 24; ++i) {
    void *ss = ss_create(i % 2 ? ss_small() : ss_medium());
    ASSERT_NE(ss, nullptr);
    for (void *other : all)
      ASSERT_NE(ss, other);
    all.push_back(ss);
  }
  EXPECT_EQ(ss_count(), before + 24);
  for (void *ss : all) {
    EXPECT_EQ(ss_of(B(ss) + 12345), ss);
    EXPECT_TRUE(ss_magic_ok(ss));
  }
  for (void *ss : all)
    ss_destroy(ss);
  EXPECT_EQ(ss_count(), before);
  for (void *ss : all)
    EXPECT_EQ(ss_segmap_kind(ss), ss_none());
}

// The allocator's own blocks sit in SuperSlabs that these rules describe.
TEST_F(SuperSlabTest, RealBlocksFollowTheLayout) {
  // (Debug builds add a small trailer, so sizes stay below class limits.)
  for (size_t size : {size_t{16}, size_t{200}, size_t{5000}, size_t{20000}, size_t{130000}}) {
    SCOPED_TRACE(size);
    void *p = hak_malloc(size);
    ASSERT_NE(p, nullptr);
    void *ss = ss_of(p);
    EXPECT_TRUE(ss_magic_ok(ss));
    const unsigned kind = ss_kind(ss);
    EXPECT_EQ(ss_segmap_kind(p), kind);
    EXPECT_EQ(kind, size <= 8192 ? ss_small() : ss_medium());
    void *s = ss_slab_of(p, kind);
    EXPECT_TRUE(ss_is_block(s, p));
    EXPECT_FALSE(ss_is_block(s, B(p) + 8));
    EXPECT_GE(ss_slab_block_size(s), size);
    EXPECT_GE(hak_usable_size(p), size);
    EXPECT_LE(hak_usable_size(p), ss_slab_block_size(s));
    hak_free(p);
  }
}

} // namespace
