// Unit test of the types box: the layout facts the other boxes rely on. The
// shared structures compile as C11 (with _Atomic) and as C++17 (with
// std::atomic); a lock-free atomic has the size and alignment of its plain
// type in both, so a C++ test sees the structures as the C code lays them out.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "gtest/gtest.h"
#include "hakmem/core/types.h"

namespace {

// Each atomic type the structures use: always lock-free, and laid out as the
// plain type (what C11's _Atomic gives for these sizes on x86-64).
template <typename T> void ExpectPlainAtomic() {
  static_assert(std::atomic<T>::is_always_lock_free, "no hidden lock");
  static_assert(sizeof(HAK_ATOMIC(T)) == sizeof(T), "same size");
  static_assert(alignof(HAK_ATOMIC(T)) == alignof(T), "same alignment");
  HAK_ATOMIC(T) a{};
  EXPECT_TRUE(a.is_lock_free());
}

TEST(Types, AtomicsAreLockFreeAndPlainSized) {
  ExpectPlainAtomic<uintptr_t>();
  ExpectPlainAtomic<uint64_t>();
  ExpectPlainAtomic<int>();
  ExpectPlainAtomic<hak_heap *>();
  ExpectPlainAtomic<uint8_t *>();
}

// hak_slab with plain fields in place of its atomics: the layout C sees.
struct PlainSlab {
  void *free;
  uintptr_t remote;
  hak_heap *owner;
  hak_slab *next, *prev;
  uint8_t *start;
  uint32_t block_size;
  uint16_t capacity, carved, used;
  uint8_t class_idx, state, slot, trimmed;
  uint8_t pad_[2];
};

#define EXPECT_SAME_OFFSET(A, B, field) EXPECT_EQ(offsetof(A, field), offsetof(B, field)) << #field

TEST(Types, SlabIsOneCacheLineLaidOutAsInC) {
  EXPECT_EQ(sizeof(hak_slab), size_t{HAK_CACHELINE});
  EXPECT_EQ(sizeof(hak_slab), sizeof(PlainSlab));
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, free);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, remote);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, owner);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, next);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, start);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, block_size);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, used);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, class_idx);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, state);
  EXPECT_SAME_OFFSET(hak_slab, PlainSlab, trimmed);
  // A slab's block count fits its 16-bit fields: 16-byte blocks in 64 KiB.
  EXPECT_LE((size_t{1} << HAK_SLAB_SHIFT_SMALL) / 16, size_t{UINT16_MAX});
}

// hak_heap with plain fields in place of its atomics.
struct PlainHeap {
  hak_class_heap cls[HAK_NUM_CLASSES];
  hak_class_counters counters[HAK_NUM_CLASSES];
  hak_tcache_bin *tcache;
  hak_heap *next, *prev;
  pthread_t thread;
  bool live;
  int lock;
  uint64_t last_slow_ms;
  uint64_t trimmed_ms;
  int idle_trimmed;
  int retrim;
};

TEST(Types, HeapLaidOutAsInC) {
  EXPECT_EQ(sizeof(hak_heap), sizeof(PlainHeap));
  EXPECT_SAME_OFFSET(hak_heap, PlainHeap, tcache);
  EXPECT_SAME_OFFSET(hak_heap, PlainHeap, lock);
  EXPECT_SAME_OFFSET(hak_heap, PlainHeap, last_slow_ms);
  EXPECT_SAME_OFFSET(hak_heap, PlainHeap, trimmed_ms);
  EXPECT_SAME_OFFSET(hak_heap, PlainHeap, idle_trimmed);
  EXPECT_SAME_OFFSET(hak_heap, PlainHeap, retrim);
}

// The SuperSlab header: the slabs' metadata starts on its own cache line, and
// the whole header fits the page at the SuperSlab's base (slot 0's granule).
TEST(Types, SuperSlabHeaderFitsItsPage) {
  EXPECT_LE(sizeof(hak_superslab), HAK_SS_HEADER_SIZE);
  EXPECT_EQ(offsetof(hak_superslab, slabs), size_t{HAK_CACHELINE});
  EXPECT_EQ(offsetof(hak_superslab, slabs) % alignof(hak_slab), 0u);
  // One bit per page of the largest slab.
  EXPECT_EQ(sizeof(hak_superslab::purged_pages[0]) * 8, HAK_SLAB_MAX_PAGES);
  EXPECT_EQ(HAK_SS_HEADER_SIZE, HAK_PAGE_SIZE);
}

// The geometry: masks find a SuperSlab's base, slab shifts follow the region
// kinds (13 + 3 * kind), and the slabs tile the SuperSlab.
TEST(Types, SuperSlabGeometry) {
  EXPECT_EQ(HAK_SS_SIZE, size_t{2} << 20);
  EXPECT_EQ(HAK_SS_MASK, HAK_SS_SIZE - 1);
  EXPECT_EQ(HAK_SS_SIZE & HAK_SS_MASK, 0u) << "a power of two";
  const uintptr_t base = uintptr_t{77} << HAK_SS_SHIFT;
  for (uintptr_t off : {uintptr_t{0}, uintptr_t{1}, uintptr_t{4096}, uintptr_t{HAK_SS_SIZE - 1}}) {
    EXPECT_EQ((base + off) & ~uintptr_t{HAK_SS_MASK}, base) << off;
    EXPECT_EQ((base + off) & HAK_SS_MASK, off) << off;
  }
  EXPECT_EQ(((base + HAK_SS_SIZE) & ~uintptr_t{HAK_SS_MASK}), base + HAK_SS_SIZE);

  EXPECT_EQ(13 + 3 * HAK_REGION_SS_SMALL, HAK_SLAB_SHIFT_SMALL);
  EXPECT_EQ(13 + 3 * HAK_REGION_SS_MEDIUM, HAK_SLAB_SHIFT_MEDIUM);
  EXPECT_EQ(size_t{HAK_SS_MAX_SLABS} << HAK_SLAB_SHIFT_SMALL, HAK_SS_SIZE);
  EXPECT_EQ(size_t{4} << HAK_SLAB_SHIFT_MEDIUM, HAK_SS_SIZE);
  EXPECT_EQ(HAK_SLAB_MAX_PAGES, (size_t{1} << HAK_SLAB_SHIFT_MEDIUM) / HAK_PAGE_SIZE);
  // The largest blocks fit their slabs (a medium slot 0 loses the header page).
  EXPECT_LE(HAK_SMALL_MAX, size_t{1} << HAK_SLAB_SHIFT_SMALL);
  EXPECT_LE(HAK_MEDIUM_MAX, (size_t{1} << HAK_SLAB_SHIFT_MEDIUM) - HAK_SS_HEADER_SIZE);
  EXPECT_LE(HAK_LOOKUP_MAX, HAK_SMALL_MAX);
  // A large mapping's size plus its slack never overflows ptrdiff_t.
  EXPECT_EQ(HAK_MAX_REQUEST + 2 * HAK_SS_SIZE, size_t{PTRDIFF_MAX});
  EXPECT_GE(HAK_LARGE_HEADER_SIZE, sizeof(hak_large));
  EXPECT_EQ(HAK_LARGE_HEADER_SIZE % 16, 0u);
  // The abandoned flag shares the remote word with 16-byte aligned blocks.
  EXPECT_EQ(HAK_REMOTE_ABANDONED & 15, HAK_REMOTE_ABANDONED);
}

// The fast cache's packed bins: a bin's head and word are 8 bytes apart (one
// cache line per hit), the word's low 16 bits are the room, and one add of
// HAK_BIN_POP counts an allocation and makes room.
TEST(Types, BinHeadAndWordSitSideBySide) {
  hak_tcache_bin bins{};
  for (unsigned i = 1; i < HAK_NUM_BINS; ++i) {
    const unsigned slot = HAK_BIN_SLOT(i);
    const auto head = reinterpret_cast<uintptr_t>(&bins.hot.head[slot]);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&bins.hot.w.word[slot]), head + 8) << i;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&bins.hot.r.e[slot].room), head + 8) << i;
  }
  const unsigned slot = HAK_BIN_SLOT(5);
  bins.hot.w.word[slot] = (uint64_t{1234} << HAK_BIN_ROOM_BITS) | 77;
  EXPECT_EQ(bins.hot.r.e[slot].room, 77u);
  bins.hot.w.word[slot] += HAK_BIN_POP;
  EXPECT_EQ(bins.hot.w.word[slot] & HAK_BIN_ROOM_MASK, 78u);
  EXPECT_EQ(bins.hot.w.word[slot] >> HAK_BIN_ROOM_BITS, 1235u);
  --bins.hot.r.e[slot].room; // the free hit path's subtract
  EXPECT_EQ(bins.hot.w.word[slot], (uint64_t{1235} << HAK_BIN_ROOM_BITS) | 77);
  // No view of the union reaches past the heads' array.
  EXPECT_EQ(sizeof(bins.hot), sizeof(void *) * 2 * HAK_NUM_BINS);
  EXPECT_EQ(HAK_BIN_SLOT(0), 0u);
}

// The slab-state and counter macros the boxes share.
TEST(Types, StateAndCounterMacros) {
  hak_slab s{};
  HAK_SLAB_SET_STATE(&s, HAK_SLAB_ABANDONED);
  EXPECT_EQ(HAK_SLAB_STATE(&s), HAK_SLAB_ABANDONED);
  EXPECT_EQ(s.state, HAK_SLAB_ABANDONED);
  HAK_SLAB_SET_STATE(&s, HAK_SLAB_FREE);
  EXPECT_EQ(HAK_SLAB_STATE(&s), HAK_SLAB_FREE);
  uint64_t c = 5;
  HAK_COUNT(c, 3);
  EXPECT_EQ(c, 8u);
  HAK_COUNT(c, uint64_t(-1));
  EXPECT_EQ(c, 7u);
}

} // namespace
