// Unit test of the slab layer: local free lists, carving, the active /
// partial / full life of a slab, release of empty slabs to the shared pool,
// and remote frees collected by the owner.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
void *sl_heap(void);
void *sl_next(const void *p);
int sl_hardened(void);
void *sl_current_heap(void);
uint32_t sl_take(void *h, unsigned cls, uint32_t n, void **list);
int sl_refill(void *h, unsigned cls);
void *sl_slab_of(const void *p);
void sl_free(void *h, void *p);
unsigned sl_state(const void *s);
unsigned sl_used(const void *s);
unsigned sl_carved(const void *s);
unsigned sl_capacity(const void *s);
unsigned sl_block_size(const void *s);
unsigned sl_slot(const void *s);
void *sl_start(const void *s);
void *sl_owner(const void *s);
unsigned sl_local_free_len(const void *s);
uintptr_t sl_remote_word(const void *s);
unsigned sl_remote_len(const void *s);
int sl_remote_has(const void *s, const void *p);
void *sl_active(void *h, unsigned cls);
int sl_in_partial(void *h, unsigned cls, const void *s);
int sl_in_full(void *h, unsigned cls, const void *s);
unsigned sl_partial_len(void *h, unsigned cls);
unsigned sl_full_len(void *h, unsigned cls);
unsigned sl_nfull(void *h, unsigned cls);
unsigned sl_nslabs(void *h, unsigned cls);
uint64_t sl_gslabs(unsigned cls);
unsigned sl_class_of(size_t size);
size_t sl_class_size(unsigned cls);
unsigned sl_batch(unsigned cls);
unsigned sl_state_free(void);
unsigned sl_state_active(void);
unsigned sl_state_partial(void);
unsigned sl_state_full(void);
}

namespace {

// The heap stash is off here (see NoHeapStash).
::testing::Environment *const kNoHeapStash =
    ::testing::AddGlobalTestEnvironment(new hakmem_box_test::NoHeapStash);

using hakmem_box_test::RunInThread;
using hakmem_box_test::Worker;

// Classes that no other test in this binary touches, one per scenario, so
// that the global slab counters can be compared exactly. Sizes requested
// through the API stay well below their class size: debug builds add a
// trailer to each block.
constexpr size_t kApiSize = 3000;  // 3072-byte class
constexpr size_t kTakeSize = 4096; // small slabs of 15 or 16 blocks
constexpr size_t kPartialSize = 2048;
constexpr size_t kRemoteSize = 1536;
constexpr size_t kSweepSize = 1280;
constexpr size_t kApiRemoteSize = 1000; // 1024-byte class
constexpr size_t kMediumSize = 100000;  // medium slabs of 4 or 5 blocks

std::vector<void *> ListToVector(void *list) {
  std::vector<void *> v;
  for (void *p = list; p != nullptr; p = sl_next(p))
    v.push_back(p);
  return v;
}

// Takes exactly n blocks, one call at a time.
std::vector<void *> TakeN(void *h, unsigned cls, unsigned n) {
  std::vector<void *> out;
  while (out.size() < n) {
    void *list = nullptr;
    uint32_t got = sl_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    if (got != 1)
      break;
    out.push_back(list);
  }
  return out;
}

// Takes every block of the heap's active slab of cls (refilling it first),
// leaving the slab with no local free block and nothing left to carve.
std::vector<void *> TakeWholeSlab(void *h, unsigned cls, void **slab_out) {
  std::vector<void *> out;
  void *list = nullptr;
  if (sl_take(h, cls, 1, &list) != 1)
    return out;
  out.push_back(list);
  void *s = sl_slab_of(list);
  *slab_out = s;
  while (sl_carved(s) < sl_capacity(s) || sl_local_free_len(s) > 0) {
    if (sl_take(h, cls, 1, &list) != 1)
      break;
    EXPECT_EQ(sl_slab_of(list), s);
    out.push_back(list);
  }
  return out;
}

// ---- through the public API -------------------------------------------------

TEST(SlabApi, FreeListIsLastInFirstOut) {
  const unsigned cls = sl_class_of(kApiSize);
  const uint64_t base = sl_gslabs(cls);
  RunInThread([&] {
    void *p = hak_malloc(kApiSize);
    ASSERT_NE(p, nullptr);
    hak_free(p);
    EXPECT_EQ(hak_malloc(kApiSize), p) << "the block just freed comes back first";
    void *q = hak_malloc(kApiSize);
    hak_free(q);
    hak_free(p);
    EXPECT_EQ(hak_malloc(kApiSize), p);
    EXPECT_EQ(hak_malloc(kApiSize), q);
    hak_free(p);
    hak_free(q);

    // Two slabs' worth of blocks: all distinct, each a block of its slab.
    std::vector<void *> blocks;
    std::set<void *> seen;
    void *first_slab = nullptr;
    for (int i = 0; i < 60; ++i) {
      void *b = hak_malloc(kApiSize);
      ASSERT_NE(b, nullptr);
      ASSERT_TRUE(seen.insert(b).second) << "block handed out twice";
      void *s = sl_slab_of(b);
      ASSERT_NE(s, nullptr);
      if (first_slab == nullptr)
        first_slab = s;
      EXPECT_EQ(sl_block_size(s), sl_class_size(cls));
      // (Debug builds report the size asked for; others the block size.)
      EXPECT_GE(hak_usable_size(b), kApiSize);
      EXPECT_LE(hak_usable_size(b), sl_block_size(s));
      EXPECT_EQ(sl_owner(s), sl_current_heap());
      EXPECT_EQ((static_cast<unsigned char *>(b) - static_cast<unsigned char *>(sl_start(s))) %
                    sl_block_size(s),
                0);
      blocks.push_back(b);
    }
    EXPECT_GE(sl_gslabs(cls), base + 3); // 60 blocks of 3 KiB need 3 slabs
    for (void *b : blocks)
      hak_free(b);
    hak_thread_flush();
    // Empty slabs went back to the pool; only the active one stays.
    EXPECT_EQ(sl_gslabs(cls), base + 1);
  });
  // Thread exit releases the active slab too.
  EXPECT_EQ(sl_gslabs(cls), base);
}

// Blocks freed remotely through the API are counted and return to the owner.
TEST(SlabApi, RemoteFreesReachTheOwner) {
  const unsigned cls = sl_class_of(kApiRemoteSize);
  const uint64_t base = sl_gslabs(cls);
  hak_stats before;
  hak_stats_get(&before);
  constexpr int kBlocks = 200;
  std::vector<void *> blocks;
  {
    Worker owner;
    owner.Run([&] {
      for (int i = 0; i < kBlocks; ++i) {
        void *p = hak_malloc(kApiRemoteSize);
        ASSERT_NE(p, nullptr);
        blocks.push_back(p);
      }
    });
    ASSERT_EQ(blocks.size(), static_cast<size_t>(kBlocks));
    const uint64_t slabs_in_use = sl_gslabs(cls);
    EXPECT_GE(slabs_in_use, base + 3);
    RunInThread([&] {
      for (void *p : blocks)
        hak_free(p);
    }); // exit flushes the freeing thread's cache
    hak_stats mid;
    hak_stats_get(&mid);
    EXPECT_EQ(mid.classes[cls].remote_frees - before.classes[cls].remote_frees,
              static_cast<uint64_t>(kBlocks));
    EXPECT_EQ(mid.classes[cls].frees - before.classes[cls].frees, static_cast<uint64_t>(kBlocks));
    // The owner allocates again: once its active slab's unused blocks are
    // gone, the remotely freed blocks are reused instead of new slabs being
    // acquired.
    owner.Run([&] {
      std::set<void *> old(blocks.begin(), blocks.end());
      std::vector<void *> again;
      size_t reused = 0;
      for (int i = 0; i < 2 * kBlocks && reused < old.size(); ++i) {
        void *p = hak_malloc(kApiRemoteSize);
        ASSERT_NE(p, nullptr);
        reused += old.count(p);
        again.push_back(p);
        ASSERT_LE(sl_gslabs(cls), slabs_in_use) << "a new slab after " << i << " allocations";
      }
      EXPECT_EQ(reused, old.size());
      for (void *p : again)
        hak_free(p);
    });
  }
  EXPECT_EQ(sl_gslabs(cls), base);
}

// ---- through the slab functions ---------------------------------------------

TEST(SlabLayer, TakeRefillAndCarveCounts) {
  const unsigned cls = sl_class_of(kTakeSize);
  const unsigned batch = sl_batch(cls);
  const uint64_t base = sl_gslabs(cls);
  RunInThread([&] {
    void *h = sl_heap();
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(sl_active(h, cls), nullptr) << "a new heap has no slab";

    // The first take acquires a slab and carves what it asks for.
    void *list = nullptr;
    uint32_t got = sl_take(h, cls, batch, &list);
    EXPECT_EQ(got, batch);
    std::vector<void *> first = ListToVector(list);
    ASSERT_EQ(first.size(), got) << "list is NULL-terminated with `got` blocks";
    void *s = sl_slab_of(first[0]);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(sl_active(h, cls), s);
    EXPECT_EQ(sl_owner(s), h);
    EXPECT_EQ(sl_state(s), sl_state_active());
    EXPECT_EQ(sl_nslabs(h, cls), 1u);
    EXPECT_EQ(sl_gslabs(cls), base + 1);
    EXPECT_EQ(sl_carved(s), batch);
    EXPECT_EQ(sl_used(s), batch);
    EXPECT_EQ(sl_local_free_len(s), 0u);
    // Carving hands out the slab's first blocks: walking memory forwards,
    // or in a random order in the hardened variant.
    if (!sl_hardened()) {
      EXPECT_EQ(first[0], sl_start(s));
      for (size_t i = 1; i < first.size(); ++i) {
        EXPECT_EQ(static_cast<char *>(first[i]) - static_cast<char *>(first[i - 1]),
                  static_cast<ptrdiff_t>(sl_block_size(s)));
      }
    }
    std::set<void *> want_first, have_first(first.begin(), first.end());
    for (unsigned i = 0; i < batch; ++i) {
      want_first.insert(static_cast<char *>(sl_start(s)) + i * sl_block_size(s));
    }
    EXPECT_EQ(have_first, want_first);

    // A smaller take carves only that much: carving touches pages.
    got = sl_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    EXPECT_EQ(sl_carved(s), batch + 1);
    EXPECT_EQ(sl_used(s), batch + 1);
    EXPECT_EQ(sl_local_free_len(s), 0u);
    got = sl_take(h, cls, batch - 1, &list);
    EXPECT_EQ(got, batch - 1);
    EXPECT_EQ(sl_carved(s), 2 * batch);
    EXPECT_EQ(sl_local_free_len(s), 0u);

    // Refill on a slab with blocks left carves a batch without taking, and
    // takes list blocks before carving more.
    EXPECT_EQ(sl_refill(h, cls), 0);
    EXPECT_EQ(sl_used(s), 2 * batch);
    EXPECT_EQ(sl_local_free_len(s), std::min(batch, sl_capacity(s) - 2 * batch));
    const unsigned carved_now = sl_carved(s);
    got = sl_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    EXPECT_EQ(sl_carved(s), carved_now) << "no carving while the free list has blocks";
    sl_free(h, list);

    // Freeing through the slab layer pushes locally; the next take pops it.
    void *back = first[1];
    sl_free(h, back);
    EXPECT_EQ(sl_used(s), 2 * batch - 1);
    got = sl_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    EXPECT_EQ(list, back);

    // Give everything back: the active slab stays, even empty.
    void *all = nullptr;
    std::vector<void *> rest;
    while (sl_carved(s) < sl_capacity(s) || sl_local_free_len(s) > 0) {
      if (sl_take(h, cls, 1, &all) != 1)
        break;
      rest.push_back(all);
    }
    EXPECT_EQ(sl_used(s), sl_capacity(s));
    // Recover every block of the slab from its geometry and free them.
    for (unsigned i = 0; i < sl_capacity(s); ++i) {
      sl_free(h, static_cast<char *>(sl_start(s)) + i * sl_block_size(s));
    }
    EXPECT_EQ(sl_used(s), 0u);
    EXPECT_EQ(sl_state(s), sl_state_active());
    EXPECT_EQ(sl_active(h, cls), s);
    EXPECT_EQ(sl_gslabs(cls), base + 1);
  });
  EXPECT_EQ(sl_gslabs(cls), base);
}

// Blocks already touched come before fresh ones: the active slab's remote
// frees are collected before it carves more.
TEST(SlabLayer, RemoteFreesComeBeforeCarving) {
  const unsigned cls = sl_class_of(kTakeSize);
  RunInThread([&] {
    void *h = sl_heap();
    void *list = nullptr;
    ASSERT_EQ(sl_take(h, cls, 4, &list), 4u);
    std::vector<void *> blocks = ListToVector(list);
    void *s = sl_slab_of(blocks[0]);
    ASSERT_EQ(sl_carved(s), 4u);
    ASSERT_LT(4u, sl_capacity(s));
    std::thread([&] { sl_free(sl_heap(), blocks[2]); }).join(); // a remote free
    ASSERT_EQ(sl_remote_len(s), 1u);
    void *again = nullptr;
    ASSERT_EQ(sl_take(h, cls, 1, &again), 1u);
    EXPECT_EQ(again, blocks[2]);
    EXPECT_EQ(sl_carved(s), 4u) << "nothing carved while a freed block waited";
    blocks[2] = again;
    for (void *b : blocks)
      sl_free(h, b);
  });
}

// ... and a partial slab's free blocks come before the active slab carves:
// the active slab is parked on the partial list with its room.
TEST(SlabLayer, PartialSlabsComeBeforeCarving) {
  const unsigned cls = sl_class_of(kTakeSize);
  RunInThread([&] {
    void *h = sl_heap();
    void *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_NE(s1, nullptr);
    void *list = nullptr;
    ASSERT_EQ(sl_take(h, cls, 1, &list), 1u);
    void *s2 = sl_slab_of(list);
    ASSERT_NE(s2, s1);
    ASSERT_EQ(sl_carved(s2), 1u);
    sl_free(h, b1[5]); // s1 becomes partial with one free block
    ASSERT_TRUE(sl_in_partial(h, cls, s1));
    void *next = nullptr;
    ASSERT_EQ(sl_take(h, cls, 1, &next), 1u);
    EXPECT_EQ(next, b1[5]);
    EXPECT_EQ(sl_active(h, cls), s1);
    EXPECT_EQ(sl_state(s2), sl_state_partial());
    EXPECT_TRUE(sl_in_partial(h, cls, s2));
    EXPECT_EQ(sl_carved(s2), 1u);
    // The parked slab carves again once the partial blocks are gone.
    void *more = nullptr;
    ASSERT_EQ(sl_take(h, cls, 1, &more), 1u);
    EXPECT_EQ(sl_slab_of(more), s2);
    EXPECT_EQ(sl_carved(s2), 2u);
    b1[5] = next;
    for (void *b : b1)
      sl_free(h, b);
    sl_free(h, list);
    sl_free(h, more);
  });
}

TEST(SlabLayer, FullThenPartialThenReleased) {
  const unsigned cls = sl_class_of(kTakeSize);
  const uint64_t base = sl_gslabs(cls);
  RunInThread([&] {
    void *h = sl_heap();
    void *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_NE(s1, nullptr);
    ASSERT_EQ(b1.size(), sl_capacity(s1));
    const unsigned expect_cap = (sl_slot(s1) == 0 ? 65536 - 4096 : 65536) / 4096;
    EXPECT_EQ(sl_capacity(s1), expect_cap);
    EXPECT_EQ(sl_state(s1), sl_state_active()) << "stays active until the next refill";

    // The next take finds it dry: it goes to the full list, a new slab comes.
    void *list = nullptr;
    ASSERT_EQ(sl_take(h, cls, 1, &list), 1u);
    void *s2 = sl_slab_of(list);
    EXPECT_NE(s2, s1);
    EXPECT_EQ(sl_state(s1), sl_state_full());
    EXPECT_TRUE(sl_in_full(h, cls, s1));
    EXPECT_EQ(sl_nfull(h, cls), 1u);
    EXPECT_EQ(sl_active(h, cls), s2);
    EXPECT_EQ(sl_nslabs(h, cls), 2u);
    EXPECT_EQ(sl_gslabs(cls), base + 2);

    // One free moves the full slab to the partial list.
    sl_free(h, b1[3]);
    EXPECT_EQ(sl_state(s1), sl_state_partial());
    EXPECT_FALSE(sl_in_full(h, cls, s1));
    EXPECT_TRUE(sl_in_partial(h, cls, s1));
    EXPECT_EQ(sl_nfull(h, cls), 0u);
    EXPECT_EQ(sl_used(s1), sl_capacity(s1) - 1);

    // Freeing the rest empties it: it goes back to the pool.
    for (size_t i = 0; i < b1.size(); ++i) {
      if (i != 3)
        sl_free(h, b1[i]);
    }
    EXPECT_EQ(sl_state(s1), sl_state_free());
    EXPECT_FALSE(sl_in_partial(h, cls, s1));
    EXPECT_EQ(sl_partial_len(h, cls), 0u);
    EXPECT_EQ(sl_nslabs(h, cls), 1u);
    EXPECT_EQ(sl_gslabs(cls), base + 1);

    sl_free(h, list);
    EXPECT_EQ(sl_used(s2), 0u);
    EXPECT_EQ(sl_state(s2), sl_state_active());
  });
  EXPECT_EQ(sl_gslabs(cls), base);
}

// When the active slab runs dry, a partial slab takes its place before any
// new slab is acquired, and its freed blocks come back newest first.
TEST(SlabLayer, PartialSlabIsReusedBeforeANewOne) {
  const unsigned cls = sl_class_of(kPartialSize);
  const uint64_t base = sl_gslabs(cls);
  RunInThread([&] {
    void *h = sl_heap();
    void *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_FALSE(b1.empty());
    void *s2 = nullptr;
    std::vector<void *> b2 = TakeWholeSlab(h, cls, &s2);
    ASSERT_FALSE(b2.empty());
    ASSERT_NE(s1, s2);
    EXPECT_EQ(sl_state(s1), sl_state_full());
    EXPECT_EQ(sl_gslabs(cls), base + 2);

    sl_free(h, b1[0]);
    sl_free(h, b1[5]);
    sl_free(h, b1[9]);
    EXPECT_EQ(sl_state(s1), sl_state_partial());

    std::vector<void *> got = TakeN(h, cls, 3);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], b1[9]);
    EXPECT_EQ(got[1], b1[5]);
    EXPECT_EQ(got[2], b1[0]);
    EXPECT_EQ(sl_active(h, cls), s1);
    EXPECT_EQ(sl_state(s1), sl_state_active());
    EXPECT_EQ(sl_state(s2), sl_state_full());
    EXPECT_EQ(sl_gslabs(cls), base + 2) << "no new slab while a partial one had room";

    for (void *p : b1)
      sl_free(h, p);
    for (void *p : b2)
      sl_free(h, p);
    EXPECT_EQ(sl_gslabs(cls), base + 1);
  });
  EXPECT_EQ(sl_gslabs(cls), base);
}

// Frees from another thread land on the slab's remote stack; the owner takes
// them when its local list runs dry.
TEST(SlabLayer, RemoteFreesCollectedWhenOwnerRunsDry) {
  const unsigned cls = sl_class_of(kRemoteSize);
  const uint64_t base = sl_gslabs(cls);
  Worker owner;
  void *h = nullptr;
  void *s = nullptr;
  std::vector<void *> blocks;
  owner.Run([&] {
    h = sl_heap();
    blocks = TakeWholeSlab(h, cls, &s);
  });
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(blocks.size(), sl_capacity(s));
  EXPECT_EQ(sl_gslabs(cls), base + 1);

  // Another thread frees every other block.
  std::vector<void *> freed;
  for (size_t i = 0; i < blocks.size(); i += 2)
    freed.push_back(blocks[i]);
  RunInThread([&] {
    void *other = sl_heap();
    ASSERT_NE(other, h);
    for (void *p : freed)
      sl_free(other, p);
  });
  EXPECT_EQ(sl_remote_len(s), freed.size());
  for (void *p : freed)
    EXPECT_TRUE(sl_remote_has(s, p));
  EXPECT_EQ(sl_used(s), sl_capacity(s)) << "remote frees are not the owner's to count yet";
  EXPECT_EQ(sl_local_free_len(s), 0u);
  EXPECT_EQ(sl_state(s), sl_state_active());

  owner.Run([&] {
    // The owner's next take collects the whole remote stack in one go and
    // keeps allocating from the same slab.
    std::vector<void *> got = TakeN(h, cls, static_cast<unsigned>(freed.size()));
    EXPECT_EQ(sl_remote_word(s), 0u);
    EXPECT_EQ(sl_gslabs(cls), base + 1) << "no new slab was needed";
    EXPECT_EQ(sl_active(h, cls), s);
    std::set<void *> want(freed.begin(), freed.end());
    std::set<void *> have(got.begin(), got.end());
    EXPECT_EQ(have, want);
    EXPECT_EQ(sl_used(s), sl_capacity(s));
    for (void *p : blocks)
      sl_free(h, p);
    EXPECT_EQ(sl_used(s), 0u);
  });
}

// Remote frees into a slab on the full list are found by the sweep that
// runs when the owner needs a slab, and a slab emptied that way is released.
TEST(SlabLayer, FullSlabEmptiedRemotelyIsReleasedBySweep) {
  const unsigned cls = sl_class_of(kSweepSize);
  const uint64_t base = sl_gslabs(cls);
  {
    Worker owner;
    void *h = nullptr;
    void *s1 = nullptr;
    void *s2 = nullptr;
    std::vector<void *> b1, b2;
    owner.Run([&] {
      h = sl_heap();
      b1 = TakeWholeSlab(h, cls, &s1);
      b2 = TakeWholeSlab(h, cls, &s2);
      EXPECT_EQ(sl_state(s1), sl_state_full());
      EXPECT_EQ(sl_gslabs(cls), base + 2);
    });
    RunInThread([&] {
      void *other = sl_heap();
      for (void *p : b1)
        sl_free(other, p);
    });
    EXPECT_EQ(sl_remote_len(s1), b1.size());
    EXPECT_EQ(sl_state(s1), sl_state_full());
    owner.Run([&] {
      void *list = nullptr;
      ASSERT_EQ(sl_take(h, cls, 1, &list), 1u);
      void *now = sl_slab_of(list);
      EXPECT_EQ(sl_state(s2), sl_state_full());
      // s1 was swept: every block came back, so it was released (possibly
      // then handed straight back by the pool as the new active slab).
      if (now == s1) {
        EXPECT_EQ(sl_state(s1), sl_state_active());
        EXPECT_EQ(sl_gslabs(cls), base + 2);
      } else {
        EXPECT_EQ(sl_state(s1), sl_state_free());
        EXPECT_EQ(sl_gslabs(cls), base + 2);
      }
      EXPECT_FALSE(sl_in_full(h, cls, s1));
      EXPECT_EQ(sl_nfull(h, cls), 1u);
      EXPECT_EQ(sl_remote_word(s1) & ~uintptr_t{1}, 0u);
      sl_free(h, list);
      for (void *p : b2)
        sl_free(h, p);
    });
  }
  EXPECT_EQ(sl_gslabs(cls), base);
}

// The same life cycle on a medium class (512 KiB slabs of a few blocks).
TEST(SlabLayer, MediumSlabLifeCycle) {
  const unsigned cls = sl_class_of(kMediumSize);
  const uint64_t base = sl_gslabs(cls);
  RunInThread([&] {
    void *h = sl_heap();
    void *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_NE(s1, nullptr);
    const size_t slab = size_t{512} << 10;
    const size_t skip = sl_slot(s1) == 0 ? 4096 : 0;
    EXPECT_EQ(sl_capacity(s1), (slab - skip) / sl_class_size(cls));
    EXPECT_EQ(b1.size(), sl_capacity(s1));
    for (void *p : b1)
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    std::vector<void *> b2 = TakeN(h, cls, 1);
    EXPECT_EQ(sl_state(s1), sl_state_full());
    for (void *p : b1)
      sl_free(h, p);
    EXPECT_EQ(sl_state(s1), sl_state_free());
    for (void *p : b2)
      sl_free(h, p);
    EXPECT_EQ(sl_gslabs(cls), base + 1);
  });
  EXPECT_EQ(sl_gslabs(cls), base);
}

} // namespace
