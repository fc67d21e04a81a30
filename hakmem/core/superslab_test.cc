// Unit test of the SuperSlab box: 2 MiB aligned regions with a header page,
// found from any interior pointer by masking, carved into fixed-size slabs.
#include "hakmem/core/superslab.h"

#include <cstddef>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <sys/prctl.h>

#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"
#include "hakmem/core/page_arena.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/stats.h"

namespace {

using Bytes = unsigned char *;

Bytes B(void *p) { return static_cast<Bytes>(p); }

// The hardened variant keeps the last page of every SuperSlab inaccessible.
constexpr size_t kGuardBytes = HAKMEM_HARDENED ? HAK_PAGE_SIZE : 0;

uint64_t Count() { return hak_stats_global.superslabs.load(); }
uint64_t Total() { return hak_stats_global.superslabs_total.load(); }

class SuperSlabTest : public ::testing::Test {
protected:
  void SetUp() override {
    // What hak_maintenance_init does for this box: the arena's bounds, the free key
    // and the checking level, the class map.
    static std::once_flag once;
    std::call_once(once, [] {
      hak_options_load();
      hak_integrity_link_init();
      hak_segmap_class_init();
    });
  }
};

// The VmFlags line of the mapping holding p (/proc/self/smaps), "" if none.
std::string VmFlagsOf(const void *p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2)
      inside = lo <= a && a < hi; // a mapping's first line; field lines fail the scan
    if (inside && line.rfind("VmFlags:", 0) == 0)
      return line + " ";
  }
  return "";
}

// HAKMEM_THP reaches madvise: a SuperSlab's mapping carries the hugepage
// flag ("hg") with it and not without it.
TEST_F(SuperSlabTest, HugepageAdviceFollowsTheOption) {
  hak_os_stats before;
  hak_os_stats_get(&before);
  for (bool on : {false, true}) {
    SCOPED_TRACE(on);
    hak_page_arena_decay(true); // no cached region: a fresh mapping
    hak_os_set_thp(on);
    hak_superslab *ss = hak_superslab_create(HAK_REGION_SS_SMALL);
    ASSERT_NE(ss, nullptr);
    const std::string flags = VmFlagsOf(ss);
    ASSERT_NE(flags, "");
    EXPECT_EQ(flags.find(" hg ") != std::string::npos, on) << flags;
    hak_superslab_destroy(ss);
  }
  hak_os_set_thp(false);
  hak_os_stats after;
  hak_os_stats_get(&after);
  EXPECT_EQ(after.thp_advised - before.thp_advised, HAK_SS_SIZE);
}

TEST_F(SuperSlabTest, HeaderLayout) {
  EXPECT_EQ(sizeof(hak_slab), 64u);
  EXPECT_LE(sizeof(hak_superslab), HAK_SS_HEADER_SIZE);
  EXPECT_EQ(HAK_SS_SIZE, size_t{2} << 20);
}

void CheckFresh(hak_superslab *ss, unsigned kind, unsigned shift, unsigned nslabs, uint32_t mask) {
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ss) % HAK_SS_SIZE, 0u) << "not 2 MiB aligned";
  EXPECT_EQ(ss->magic, HAK_SS_MAGIC ^ reinterpret_cast<uintptr_t>(ss));
  EXPECT_EQ(ss->kind, kind);
  EXPECT_EQ(ss->slab_shift, shift);
  EXPECT_EQ(ss->nslabs, nslabs);
  EXPECT_EQ(ss->free_mask, mask);
  EXPECT_EQ(hak_superslab_slot_mask(ss), mask);
  EXPECT_EQ(size_t{nslabs} << shift, HAK_SS_SIZE);
  for (unsigned i = 0; i < nslabs; ++i) {
    EXPECT_EQ(ss->slabs[i].slot, i);
    EXPECT_EQ(ss->slabs[i].state, HAK_SLAB_FREE);
  }
  // The whole region is registered with the SuperSlab's kind.
  EXPECT_EQ(hak_segmap_kind(ss), kind);
  EXPECT_EQ(hak_segmap_kind(B(ss) + HAK_SS_SIZE / 2), kind);
  EXPECT_EQ(hak_segmap_kind(B(ss) + HAK_SS_SIZE - 1), kind);
  // The memory is writable throughout (but for the hardened variant's guard
  // page at the end).
  B(ss)[HAK_SS_HEADER_SIZE] = 1;
  B(ss)[HAK_SS_SIZE - kGuardBytes - 1] = 1;
}

TEST_F(SuperSlabTest, CreateSmall) {
  const uint64_t before = Count(), total_before = Total();
  hak_superslab *ss = hak_superslab_create(HAK_REGION_SS_SMALL);
  // Slot 0 of a small SuperSlab is its header's granule, never lent out.
  CheckFresh(ss, HAK_REGION_SS_SMALL, 16, 32, 0xfffffffeu);
  EXPECT_EQ(Count(), before + 1);
  EXPECT_EQ(Total(), total_before + 1);
  hak_superslab_destroy(ss);
  EXPECT_EQ(Count(), before);
}

TEST_F(SuperSlabTest, CreateMedium) {
  const uint64_t before = Count();
  hak_superslab *ss = hak_superslab_create(HAK_REGION_SS_MEDIUM);
  CheckFresh(ss, HAK_REGION_SS_MEDIUM, 19, 4, 0xfu);
  EXPECT_EQ(Count(), before + 1);
  hak_superslab_destroy(ss);
  EXPECT_EQ(Count(), before);
}

// Recreated from the arena's cache (dirty memory), a SuperSlab is still fresh.
TEST_F(SuperSlabTest, RecreatedSuperSlabIsClean) {
  hak_superslab *a = hak_superslab_create(HAK_REGION_SS_SMALL);
  ASSERT_NE(a, nullptr);
  for (unsigned i = 0; i < 32; ++i) {
    hak_slab *s = hak_superslab_init_slab(a, i, 3);
    s->carved = 10;
  }
  // Back to free, as the pool leaves a SuperSlab it destroys.
  for (unsigned i = 0; i < 32; ++i)
    a->slabs[i].state = HAK_SLAB_FREE;
  hak_superslab_destroy(a);
  hak_superslab *b = hak_superslab_create(HAK_REGION_SS_MEDIUM);
  EXPECT_EQ(b, a) << "the page arena should have handed the cached region back";
  CheckFresh(b, HAK_REGION_SS_MEDIUM, 19, 4, 0xfu);
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(b->slabs[i].carved, 0u);
    EXPECT_EQ(b->slabs[i].block_size, 0u);
  }
  hak_superslab_destroy(b);
}

// The hardened variant's guard page faults on access; the page before it
// is ordinary memory.
TEST_F(SuperSlabTest, GuardPageOfHardenedVariant) {
  if (!HAKMEM_HARDENED)
    GTEST_SKIP() << "no guard page in this variant";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  hak_superslab *ss = hak_superslab_create(HAK_REGION_SS_SMALL);
  ASSERT_NE(ss, nullptr);
  volatile unsigned char *b = B(ss);
  b[HAK_SS_SIZE - HAK_PAGE_SIZE - 1] = 1;
  EXPECT_DEATH(b[HAK_SS_SIZE - HAK_PAGE_SIZE] = 1, "");
  EXPECT_DEATH(b[HAK_SS_SIZE - 1] = 1, "");
  hak_superslab_destroy(ss);
  // Once destroyed, the region (cached by the page arena) is writable again:
  // whoever the arena hands it to next (a large block, say) can write its
  // last byte.
  size_t mapped = 0;
  bool zeroed = true;
  void *region = hak_page_arena_alloc(HAK_SS_SIZE, &mapped, &zeroed);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(region, static_cast<void *>(ss)) << "the cached region was reused";
  EXPECT_FALSE(zeroed);
  B(region)[HAK_SS_SIZE - 1] = 1;
  hak_page_arena_free(region, mapped);
}

TEST_F(SuperSlabTest, DestroyClearsSegmentMap) {
  for (uint8_t kind : {HAK_REGION_SS_SMALL, HAK_REGION_SS_MEDIUM}) {
    hak_superslab *ss = hak_superslab_create(kind);
    ASSERT_NE(ss, nullptr);
    ASSERT_EQ(hak_segmap_kind(B(ss) + 100), kind);
    hak_superslab_destroy(ss);
    // (hakmem no longer owns it: hak_owns reads this same map.)
    EXPECT_EQ(hak_segmap_kind(ss), HAK_REGION_NONE);
    EXPECT_EQ(hak_segmap_kind(B(ss) + 100), HAK_REGION_NONE);
    EXPECT_EQ(hak_segmap_kind(B(ss) + HAK_SS_SIZE - 1), HAK_REGION_NONE);
  }
}

// The census of one SuperSlab: in-use slabs by class with their ranges, the
// pages touched in them, their carved and used blocks; dirty free slots apart.
TEST_F(SuperSlabTest, CensusOfOneSuperSlab) {
  for (uint8_t kind : {HAK_REGION_SS_SMALL, HAK_REGION_SS_MEDIUM}) {
    SCOPED_TRACE(static_cast<int>(kind));
    hak_superslab *ss = hak_superslab_create(kind);
    ASSERT_NE(ss, nullptr);
    const unsigned shift = hak_superslab_shift_of_kind(kind);
    const unsigned nslabs = static_cast<unsigned>(HAK_SS_SIZE >> shift);
    const size_t slab = size_t{1} << shift;
    const unsigned cls = kind == HAK_REGION_SS_SMALL ? 5 : 40;
    const unsigned first = kind == HAK_REGION_SS_SMALL ? 1 : 0, last = nslabs - 1;
    // The region may come from the arena's cache, its pages resident: all
    // but the header page go, so that what is resident is what this writes.
    // With multi-size THP (a kernel set to 64 KiB anonymous folios, as CI's
    // was) one written byte makes a whole folio resident: pages, not folios.
    ASSERT_EQ(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
    hak_os_purge(B(ss) + HAK_SS_HEADER_SIZE, HAK_SS_SIZE - HAK_SS_HEADER_SIZE - kGuardBytes);
    // In use: the first and the last slot (header page, guard page).
    for (unsigned slot : {first, last}) {
      hak_slab *s = hak_superslab_init_slab(ss, slot, cls);
      s->carved = 7;
      s->used = 3;
    }
    // Two pages written in the first slab, one in the last.
    hak_slab *s0 = &ss->slabs[first];
    std::memset(s0->start, 1, 2 * HAK_PAGE_SIZE);
    std::memset(ss->slabs[last].start, 1, 100);
    // A dirty free slot (released, pages resident) and a clean one.
    const unsigned dirty = first + 1, clean = first + 2;
    hak_superslab_init_slab(ss, dirty, cls)->carved = 1;
    std::memset(ss->slabs[dirty].start, 1, 3 * HAK_PAGE_SIZE);
    ss->slabs[dirty].state = HAK_SLAB_FREE;
    hak_superslab_init_slab(ss, clean, cls)->carved = 0;
    ss->slabs[clean].state = HAK_SLAB_FREE;

    hak_ss_census acc{};
    ASSERT_TRUE(hak_superslab_census(ss, kind, &acc));
    EXPECT_EQ(acc.superslabs, 1u);
    EXPECT_EQ(acc.header_resident, HAK_PAGE_SIZE);
    EXPECT_EQ(acc.slabs[cls], 2u);
    const size_t first_len = slab - (first == 0 ? HAK_SS_HEADER_SIZE : 0);
    const size_t last_len = slab - kGuardBytes;
    EXPECT_EQ(acc.slab_bytes[cls], first_len + last_len);
    EXPECT_EQ(acc.resident[cls], 3 * HAK_PAGE_SIZE);
    EXPECT_EQ(acc.carved[cls], 14u);
    EXPECT_EQ(acc.used[cls], 6u);
    EXPECT_EQ(acc.free_slots_dirty, 1u);
    EXPECT_EQ(acc.free_slot_resident, 3 * HAK_PAGE_SIZE);
    for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c) {
      if (c != cls) {
        EXPECT_EQ(acc.slabs[c] + acc.slab_bytes[c] + acc.resident[c], 0u) << c;
      }
    }
    // A second call adds to the same sums.
    ASSERT_TRUE(hak_superslab_census(ss, kind, &acc));
    EXPECT_EQ(acc.superslabs, 2u);
    EXPECT_EQ(acc.slabs[cls], 4u);
    EXPECT_EQ(acc.used[cls], 12u);
    // The wrong kind, and a region that is no longer a SuperSlab, add nothing.
    const uint8_t other = kind == HAK_REGION_SS_SMALL ? HAK_REGION_SS_MEDIUM : HAK_REGION_SS_SMALL;
    EXPECT_FALSE(hak_superslab_census(ss, other, &acc));
    for (unsigned i = 0; i < nslabs; ++i)
      ss->slabs[i].state = HAK_SLAB_FREE;
    hak_superslab_destroy(ss);
    EXPECT_FALSE(hak_superslab_census(ss, kind, &acc));
    ASSERT_EQ(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0), 0);
    EXPECT_EQ(acc.superslabs, 2u);
  }
}

// Masking finds the SuperSlab and the slab of every pointer in every slot.
TEST_F(SuperSlabTest, SuperSlabAndSlabOfEveryPointer) {
  for (uint8_t kind : {HAK_REGION_SS_SMALL, HAK_REGION_SS_MEDIUM}) {
    hak_superslab *ss = hak_superslab_create(kind);
    ASSERT_NE(ss, nullptr);
    const size_t slab = size_t{1} << ss->slab_shift;
    for (unsigned i = 0; i < ss->nslabs; ++i) {
      SCOPED_TRACE(i);
      const Bytes lo = B(ss) + i * slab;
      const Bytes probes[] = {lo, lo + 1, lo + 16, lo + slab / 2, lo + slab - 16, lo + slab - 1};
      for (Bytes p : probes) {
        EXPECT_EQ(hak_superslab_of(p), ss);
        EXPECT_EQ(hak_superslab_slab_of(p, kind), &ss->slabs[i]);
      }
    }
    // Steps through the whole region, one page at a time.
    for (size_t off = 0; off < HAK_SS_SIZE; off += HAK_PAGE_SIZE) {
      ASSERT_EQ(hak_superslab_of(B(ss) + off + 8), ss);
      ASSERT_EQ(hak_superslab_slab_of(B(ss) + off + 8, kind), &ss->slabs[off / slab]);
    }
    hak_superslab_destroy(ss);
  }
}

// init_slab places the blocks and counts how many fit; slot 0 skips the
// header page.
TEST_F(SuperSlabTest, InitSlabCapacityForEveryClass) {
  for (uint8_t kind : {HAK_REGION_SS_SMALL, HAK_REGION_SS_MEDIUM}) {
    hak_superslab *ss = hak_superslab_create(kind);
    ASSERT_NE(ss, nullptr);
    const size_t slab = size_t{1} << ss->slab_shift;
    for (unsigned cls = 0; cls < HAK_NUM_CLASSES; ++cls) {
      if (hak_size_class_table[cls].region_kind != kind)
        continue;
      const size_t bs = hak_size_class_bytes(cls);
      for (unsigned slot = 0; slot < ss->nslabs; ++slot) {
        SCOPED_TRACE(testing::Message() << "class " << cls << " slot " << slot);
        hak_slab *s = hak_superslab_init_slab(ss, slot, cls);
        ASSERT_EQ(s, &ss->slabs[slot]);
        const size_t skip = slot == 0 ? HAK_SS_HEADER_SIZE : 0;
        const size_t guard = slot == ss->nslabs - 1u ? kGuardBytes : 0;
        EXPECT_EQ(s->start, B(ss) + slot * slab + skip);
        EXPECT_EQ(s->capacity, (slab - skip - guard) / bs);
        EXPECT_GE(s->capacity, 1u);
        EXPECT_EQ(s->block_size, bs);
        EXPECT_EQ(s->class_idx, cls);
        EXPECT_EQ(s->slot, slot);
        EXPECT_EQ(s->carved, 0u);
        EXPECT_EQ(s->used, 0u);
        EXPECT_EQ(s->free, nullptr);
        EXPECT_EQ(s->state, HAK_SLAB_ACTIVE);
        // The last block ends inside the slab and the slab maps back to it.
        const Bytes last = s->start + (s->capacity - 1u) * bs;
        EXPECT_LE(last + bs, B(ss) + (slot + 1) * slab - guard);
        EXPECT_EQ(hak_superslab_slab_of(last, kind), s);
        EXPECT_EQ(hak_superslab_slab_of(last + bs - 1, kind), s);
        s->state = HAK_SLAB_FREE;
      }
    }
    hak_superslab_destroy(ss);
  }
}

TEST_F(SuperSlabTest, IsBlockStartsVersusInteriorPointers) {
  hak_superslab *ss = hak_superslab_create(HAK_REGION_SS_SMALL);
  ASSERT_NE(ss, nullptr);
  const unsigned cls = 9; // 192-byte blocks: not a power of two
  ASSERT_EQ(hak_size_class_bytes(cls), 192u);
  for (unsigned slot : {0u, 1u, 31u}) {
    SCOPED_TRACE(slot);
    hak_slab *s = hak_superslab_init_slab(ss, slot, cls);
    const Bytes start = s->start;
    const unsigned cap = s->capacity;
    // Nothing carved yet: nothing is a block.
    EXPECT_FALSE(hak_superslab_is_block(s, start));

    s->carved = static_cast<uint16_t>(cap);
    for (unsigned i = 0; i < cap; ++i) {
      const Bytes b = start + i * 192;
      ASSERT_TRUE(hak_superslab_is_block(s, b)) << i;
      ASSERT_FALSE(hak_superslab_is_block(s, b + 1)) << i;
      ASSERT_FALSE(hak_superslab_is_block(s, b + 16)) << i;
      ASSERT_FALSE(hak_superslab_is_block(s, b + 191)) << i;
    }
    EXPECT_FALSE(hak_superslab_is_block(s, start - 192));
    EXPECT_FALSE(hak_superslab_is_block(s, start - 1));
    EXPECT_FALSE(hak_superslab_is_block(s, start + cap * 192)); // past the last block
    if (slot == 0) {
      EXPECT_FALSE(hak_superslab_is_block(s, ss)); // the header
      EXPECT_FALSE(hak_superslab_is_block(s, B(ss) + 64));
    }

    // Only carved blocks count.
    s->carved = 3;
    EXPECT_TRUE(hak_superslab_is_block(s, start + 2 * 192));
    EXPECT_FALSE(hak_superslab_is_block(s, start + 3 * 192));

    // A free slot has no blocks.
    s->state = HAK_SLAB_FREE;
    EXPECT_FALSE(hak_superslab_is_block(s, start));
  }
  hak_superslab_destroy(ss);
}

TEST_F(SuperSlabTest, ManySuperSlabsAreDistinct) {
  const uint64_t before = Count();
  std::vector<hak_superslab *> all;
  for (int i = 0; i < 24; ++i) {
    hak_superslab *ss = hak_superslab_create(i % 2 ? HAK_REGION_SS_SMALL : HAK_REGION_SS_MEDIUM);
    ASSERT_NE(ss, nullptr);
    for (hak_superslab *other : all)
      ASSERT_NE(ss, other);
    all.push_back(ss);
  }
  EXPECT_EQ(Count(), before + 24);
  for (hak_superslab *ss : all) {
    EXPECT_EQ(hak_superslab_of(B(ss) + 12345), ss);
    EXPECT_EQ(ss->magic, HAK_SS_MAGIC ^ reinterpret_cast<uintptr_t>(ss));
  }
  for (hak_superslab *ss : all)
    hak_superslab_destroy(ss);
  EXPECT_EQ(Count(), before);
  for (hak_superslab *ss : all)
    EXPECT_EQ(hak_segmap_kind(ss), HAK_REGION_NONE);
}

// A remote chain is spliced in front of the local free list and its blocks
// stop counting as used.
TEST_F(SuperSlabTest, SpliceRemoteMovesChainOntoFreeList) {
  hak_superslab *ss = hak_superslab_create(HAK_REGION_SS_SMALL);
  ASSERT_NE(ss, nullptr);
  const unsigned cls = 2; // 48-byte blocks
  hak_slab *s = hak_superslab_init_slab(ss, 1, cls);
  const size_t bs = s->block_size;
  s->carved = 6;
  s->used = 6;
  Bytes blk[6];
  for (unsigned i = 0; i < 6; ++i)
    blk[i] = s->start + i * bs;
  // The local list holds block 5; blocks 0, 2, 4 came back from other threads.
  hak_integrity_mark_free(blk[5]);
  hak_integrity_link_set(blk[5], nullptr);
  s->free = blk[5];
  s->used = 5;
  for (unsigned i : {0u, 2u, 4u})
    hak_integrity_mark_free(blk[i]);
  hak_integrity_link_set(blk[4], nullptr);
  hak_integrity_link_set(blk[2], blk[4]);
  hak_integrity_link_set(blk[0], blk[2]);
  hak_superslab_splice_remote(s, reinterpret_cast<uintptr_t>(blk[0]));
  EXPECT_EQ(s->used, 2u);
  std::vector<void *> list;
  for (void *b = s->free; b != nullptr; b = hak_integrity_link_next(b))
    list.push_back(b);
  EXPECT_EQ(list, (std::vector<void *>{blk[0], blk[2], blk[4], blk[5]}));
  // An empty chain changes nothing.
  hak_superslab_splice_remote(s, 0);
  EXPECT_EQ(s->used, 2u);
  EXPECT_EQ(s->free, blk[0]);
  s->state = HAK_SLAB_FREE;
  hak_superslab_destroy(ss);
}

} // namespace
