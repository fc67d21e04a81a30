// Unit test of the slab layer: local free lists, carving, the active /
// partial / full life of a slab, release of empty slabs to the shared pool,
// and remote frees collected by the owner. The test builds its heaps itself
// (as the thread-heap registry would) and calls the slab functions on them;
// a thread that frees remotely passes its own heap, or none.
#include "hakmem/core/slab.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/heap.h"
#include "hakmem/core/options.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/stats.h"
#include "hakmem/core/superslab.h"

namespace {

using hakmem_box_test::RunInThread;
using hakmem_box_test::Worker;

// What hak_maintenance_init does for the boxes below the registry: options, the free
// mark's key and the class map.
class SlabEnvironment : public ::testing::Environment {
public:
  void SetUp() override {
    hak_options_load();
    hak_integrity_init();
    hak_segmap_class_init();
  }
};
::testing::Environment *const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new SlabEnvironment);

// Classes that no other test in this binary touches, one per scenario, so
// that the global slab counters can be compared exactly.
constexpr size_t kLifoSize = 3000; // 3072-byte class
constexpr size_t kTakeSize = 4096; // small slabs of 15 or 16 blocks
constexpr size_t kPartialSize = 2048;
constexpr size_t kRemoteSize = 1536;
constexpr size_t kSweepSize = 1280;
constexpr size_t kCountedSize = 1000;  // 1024-byte class
constexpr size_t kMediumSize = 100000; // medium slabs of 4 or 5 blocks

// A new heap as the registry makes one: zeroed, every class on the empty
// slab. Heap structs are never freed (a remote free may read the owner's
// after the push), so they live in a deque until the process exits.
hak_heap *NewHeap() {
  static std::mutex mu;
  static std::deque<hak_heap> heaps;
  std::lock_guard<std::mutex> lock(mu);
  hak_heap *h = &heaps.emplace_back(); // value-initialised: all zeros
  hak_slab_class_heaps_init(h);
  return h;
}

// What the thread's exit does to the slabs of its heap: empty ones go back
// to the pool, others are abandoned.
void Retire(hak_heap *h) { hak_slab_abandon_all(h); }

hak_slab *SlabOf(const void *p) {
  const unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return nullptr;
  return hak_superslab_slab_of(p, kind);
}

unsigned State(const hak_slab *s) { return HAK_SLAB_STATE(s); }
hak_heap *Owner(const hak_slab *s) { return s->owner.load(std::memory_order_relaxed); }
uintptr_t RemoteWord(const hak_slab *s) { return s->remote.load(std::memory_order_relaxed); }
char *BlockAt(const hak_slab *s, size_t i) {
  return reinterpret_cast<char *>(s->start) + i * s->block_size;
}

unsigned ChainLen(const void *p) {
  unsigned n = 0;
  for (; p != nullptr; p = hak_integrity_link_get(p))
    n++;
  return n;
}
unsigned LocalFreeLen(const hak_slab *s) { return ChainLen(s->free); }
const void *RemoteChain(const hak_slab *s) {
  return reinterpret_cast<const void *>(RemoteWord(s) & ~HAK_REMOTE_ABANDONED);
}
unsigned RemoteLen(const hak_slab *s) { return ChainLen(RemoteChain(s)); }
bool RemoteHas(const hak_slab *s, const void *p) {
  for (const void *q = RemoteChain(s); q != nullptr; q = hak_integrity_link_get(q))
    if (q == p)
      return true;
  return false;
}

// The class heap's active slab, NULL while it is the empty sentinel.
hak_slab *Active(hak_heap *h, unsigned cls) {
  hak_slab *s = h->cls[cls].active;
  return s == &hak_slab_empty ? nullptr : s;
}
bool InList(const hak_slab *head, const hak_slab *s) {
  for (; head != nullptr; head = head->next)
    if (head == s)
      return true;
  return false;
}
unsigned ListLen(const hak_slab *head) {
  unsigned n = 0;
  for (; head != nullptr; head = head->next)
    n++;
  return n;
}
bool InPartial(hak_heap *h, unsigned cls, const hak_slab *s) {
  return InList(h->cls[cls].partial, s);
}
bool InFull(hak_heap *h, unsigned cls, const hak_slab *s) { return InList(h->cls[cls].full, s); }

uint64_t GlobalSlabs(unsigned cls) { return hak_stats_global.slabs[cls].load(); }

// Frees p from the calling thread, whose heap is h (NULL: none).
void Free(hak_heap *h, void *p) { hak_slab_free_any(h, SlabOf(p), p); }

std::vector<void *> ListToVector(void *list) {
  std::vector<void *> v;
  for (void *p = list; p != nullptr; p = hak_integrity_link_get(p))
    v.push_back(p);
  return v;
}

// Takes exactly n blocks, one call at a time.
std::vector<void *> TakeN(hak_heap *h, unsigned cls, unsigned n) {
  std::vector<void *> out;
  while (out.size() < n) {
    void *list = nullptr;
    uint32_t got = hak_slab_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    if (got != 1)
      break;
    out.push_back(list);
  }
  return out;
}

// Takes every block of the heap's active slab of cls (refilling it first),
// leaving the slab with no local free block and nothing left to carve.
std::vector<void *> TakeWholeSlab(hak_heap *h, unsigned cls, hak_slab **slab_out) {
  std::vector<void *> out;
  void *list = nullptr;
  if (hak_slab_take(h, cls, 1, &list) != 1)
    return out;
  out.push_back(list);
  hak_slab *s = SlabOf(list);
  *slab_out = s;
  while (s->carved < s->capacity || LocalFreeLen(s) > 0) {
    if (hak_slab_take(h, cls, 1, &list) != 1)
      break;
    EXPECT_EQ(SlabOf(list), s);
    out.push_back(list);
  }
  return out;
}

TEST(SlabLayer, FreeListIsLastInFirstOut) {
  const unsigned cls = hak_size_class_of(kLifoSize);
  const uint64_t base = GlobalSlabs(cls);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    std::vector<void *> one = TakeN(h, cls, 1);
    ASSERT_EQ(one.size(), 1u);
    void *p = one[0];
    Free(h, p);
    EXPECT_EQ(TakeN(h, cls, 1), std::vector<void *>{p}) << "the block just freed comes back first";
    void *q = TakeN(h, cls, 1)[0];
    Free(h, q);
    Free(h, p);
    EXPECT_EQ(TakeN(h, cls, 2), (std::vector<void *>{p, q}));
    Free(h, p);
    Free(h, q);

    // Two slabs' worth of blocks: all distinct, each a block of its slab.
    std::vector<void *> blocks;
    std::set<void *> seen;
    for (int i = 0; i < 60; ++i) {
      void *list = nullptr;
      ASSERT_EQ(hak_slab_take(h, cls, 1, &list), 1u);
      void *b = list;
      ASSERT_TRUE(seen.insert(b).second) << "block handed out twice";
      hak_slab *s = SlabOf(b);
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->block_size, hak_size_class_bytes(cls));
      EXPECT_EQ(Owner(s), h);
      EXPECT_TRUE(hak_superslab_is_block(s, b));
      EXPECT_EQ((static_cast<char *>(b) - BlockAt(s, 0)) % s->block_size, 0);
      blocks.push_back(b);
    }
    EXPECT_GE(GlobalSlabs(cls), base + 3); // 60 blocks of 3 KiB need 3 slabs
    for (void *b : blocks)
      Free(h, b);
    // Empty slabs went back to the pool; only the active one stays.
    EXPECT_EQ(GlobalSlabs(cls), base + 1);
    // The thread's exit releases the active slab too.
    Retire(h);
    EXPECT_EQ(GlobalSlabs(cls), base);
  });
}

// Frees from another thread are counted in that thread's heap and the blocks
// return to the owner, which reuses them before acquiring new slabs.
TEST(SlabLayer, RemoteFreesAreCountedAndReachTheOwner) {
  const unsigned cls = hak_size_class_of(kCountedSize);
  const uint64_t base = GlobalSlabs(cls);
  constexpr int kBlocks = 200;
  std::vector<void *> blocks;
  hak_heap *h = nullptr;
  {
    Worker owner;
    owner.Run([&] {
      h = NewHeap();
      blocks = TakeN(h, cls, kBlocks);
    });
    ASSERT_EQ(blocks.size(), static_cast<size_t>(kBlocks));
    const uint64_t slabs_in_use = GlobalSlabs(cls);
    EXPECT_GE(slabs_in_use, base + 3);
    hak_heap *other = nullptr;
    RunInThread([&] {
      other = NewHeap();
      for (void *p : blocks)
        Free(other, p);
    });
    EXPECT_EQ(other->counters[cls].remote_frees, static_cast<uint64_t>(kBlocks));
    EXPECT_EQ(other->counters[cls].frees, static_cast<uint64_t>(kBlocks));
    EXPECT_EQ(h->counters[cls].frees, 0u);
    // The owner allocates again: once its active slab's unused blocks are
    // gone, the remotely freed blocks are reused instead of new slabs being
    // acquired.
    owner.Run([&] {
      std::set<void *> old(blocks.begin(), blocks.end());
      std::vector<void *> again;
      size_t reused = 0;
      for (int i = 0; i < 2 * kBlocks && reused < old.size(); ++i) {
        void *list = nullptr;
        ASSERT_EQ(hak_slab_take(h, cls, 1, &list), 1u);
        reused += old.count(list);
        again.push_back(list);
        ASSERT_LE(GlobalSlabs(cls), slabs_in_use) << "a new slab after " << i << " allocations";
      }
      EXPECT_EQ(reused, old.size());
      for (void *p : again)
        Free(h, p);
      Retire(h);
    });
  }
  EXPECT_EQ(GlobalSlabs(cls), base);
}

TEST(SlabLayer, TakeRefillAndCarveCounts) {
  const unsigned cls = hak_size_class_of(kTakeSize);
  const unsigned batch = hak_size_class_table[cls].batch;
  const uint64_t base = GlobalSlabs(cls);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    EXPECT_EQ(Active(h, cls), nullptr) << "a new heap has no slab";

    // The first take acquires a slab and carves what it asks for.
    void *list = nullptr;
    uint32_t got = hak_slab_take(h, cls, batch, &list);
    EXPECT_EQ(got, batch);
    std::vector<void *> first = ListToVector(list);
    ASSERT_EQ(first.size(), got) << "list is NULL-terminated with `got` blocks";
    hak_slab *s = SlabOf(first[0]);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(Active(h, cls), s);
    EXPECT_EQ(Owner(s), h);
    EXPECT_EQ(State(s), HAK_SLAB_ACTIVE);
    EXPECT_EQ(h->cls[cls].nslabs, 1u);
    EXPECT_EQ(GlobalSlabs(cls), base + 1);
    EXPECT_EQ(s->carved, batch);
    EXPECT_EQ(s->used, batch);
    EXPECT_EQ(LocalFreeLen(s), 0u);
    // Carving hands out the slab's first blocks: walking memory forwards,
    // or in a random order in the hardened variant.
    if (!HAKMEM_HARDENED) {
      EXPECT_EQ(first[0], BlockAt(s, 0));
      for (size_t i = 1; i < first.size(); ++i) {
        EXPECT_EQ(static_cast<char *>(first[i]) - static_cast<char *>(first[i - 1]),
                  static_cast<ptrdiff_t>(s->block_size));
      }
    }
    std::set<void *> want_first, have_first(first.begin(), first.end());
    for (unsigned i = 0; i < batch; ++i)
      want_first.insert(BlockAt(s, i));
    EXPECT_EQ(have_first, want_first);

    // A smaller take carves only that much: carving touches pages.
    got = hak_slab_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    EXPECT_EQ(s->carved, batch + 1);
    EXPECT_EQ(s->used, batch + 1);
    EXPECT_EQ(LocalFreeLen(s), 0u);
    got = hak_slab_take(h, cls, batch - 1, &list);
    EXPECT_EQ(got, batch - 1);
    EXPECT_EQ(s->carved, 2 * batch);
    EXPECT_EQ(LocalFreeLen(s), 0u);

    // Refill on a slab with blocks left carves a batch without taking, and
    // takes list blocks before carving more.
    EXPECT_EQ(hak_slab_refill(h, cls, batch), 0);
    EXPECT_EQ(s->used, 2 * batch);
    EXPECT_EQ(LocalFreeLen(s), std::min<unsigned>(batch, s->capacity - 2 * batch));
    const unsigned carved_now = s->carved;
    got = hak_slab_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    EXPECT_EQ(s->carved, carved_now) << "no carving while the free list has blocks";
    Free(h, list);

    // Freeing through the slab layer pushes locally; the next take pops it.
    void *back = first[1];
    Free(h, back);
    EXPECT_EQ(s->used, 2 * batch - 1);
    got = hak_slab_take(h, cls, 1, &list);
    EXPECT_EQ(got, 1u);
    EXPECT_EQ(list, back);

    // Give everything back: the active slab stays, even empty.
    void *all = nullptr;
    while (s->carved < s->capacity || LocalFreeLen(s) > 0) {
      if (hak_slab_take(h, cls, 1, &all) != 1)
        break;
    }
    EXPECT_EQ(s->used, s->capacity);
    // Recover every block of the slab from its geometry and free them.
    for (unsigned i = 0; i < s->capacity; ++i)
      Free(h, BlockAt(s, i));
    EXPECT_EQ(s->used, 0u);
    EXPECT_EQ(State(s), HAK_SLAB_ACTIVE);
    EXPECT_EQ(Active(h, cls), s);
    EXPECT_EQ(GlobalSlabs(cls), base + 1);
    Retire(h);
    EXPECT_EQ(GlobalSlabs(cls), base);
  });
}

// Blocks already touched come before fresh ones: the active slab's remote
// frees are collected before it carves more. The freeing thread has no heap
// here (one being torn down): its free is counted as an orphan's.
TEST(SlabLayer, RemoteFreesComeBeforeCarving) {
  const unsigned cls = hak_size_class_of(kTakeSize);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    void *list = nullptr;
    ASSERT_EQ(hak_slab_take(h, cls, 4, &list), 4u);
    std::vector<void *> blocks = ListToVector(list);
    hak_slab *s = SlabOf(blocks[0]);
    ASSERT_EQ(s->carved, 4u);
    ASSERT_LT(4u, s->capacity);
    const uint64_t orphans = hak_heap_orphan_frees(cls);
    std::thread([&] { Free(nullptr, blocks[2]); }).join(); // a remote free
    ASSERT_EQ(RemoteLen(s), 1u);
    EXPECT_EQ(hak_heap_orphan_frees(cls), orphans + 1);
    void *again = nullptr;
    ASSERT_EQ(hak_slab_take(h, cls, 1, &again), 1u);
    EXPECT_EQ(again, blocks[2]);
    EXPECT_EQ(s->carved, 4u) << "nothing carved while a freed block waited";
    blocks[2] = again;
    for (void *b : blocks)
      Free(h, b);
    Retire(h);
  });
}

// ... and a partial slab's free blocks come before the active slab carves:
// the active slab is parked on the partial list with its room.
TEST(SlabLayer, PartialSlabsComeBeforeCarving) {
  const unsigned cls = hak_size_class_of(kTakeSize);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    hak_slab *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_NE(s1, nullptr);
    void *list = nullptr;
    ASSERT_EQ(hak_slab_take(h, cls, 1, &list), 1u);
    hak_slab *s2 = SlabOf(list);
    ASSERT_NE(s2, s1);
    ASSERT_EQ(s2->carved, 1u);
    Free(h, b1[5]); // s1 becomes partial with one free block
    ASSERT_TRUE(InPartial(h, cls, s1));
    void *next = nullptr;
    ASSERT_EQ(hak_slab_take(h, cls, 1, &next), 1u);
    EXPECT_EQ(next, b1[5]);
    EXPECT_EQ(Active(h, cls), s1);
    EXPECT_EQ(State(s2), HAK_SLAB_PARTIAL);
    EXPECT_TRUE(InPartial(h, cls, s2));
    EXPECT_EQ(s2->carved, 1u);
    // The parked slab carves again once the partial blocks are gone.
    void *more = nullptr;
    ASSERT_EQ(hak_slab_take(h, cls, 1, &more), 1u);
    EXPECT_EQ(SlabOf(more), s2);
    EXPECT_EQ(s2->carved, 2u);
    b1[5] = next;
    for (void *b : b1)
      Free(h, b);
    Free(h, list);
    Free(h, more);
    Retire(h);
  });
}

TEST(SlabLayer, FullThenPartialThenReleased) {
  const unsigned cls = hak_size_class_of(kTakeSize);
  const uint64_t base = GlobalSlabs(cls);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    hak_slab *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_NE(s1, nullptr);
    ASSERT_EQ(b1.size(), s1->capacity);
    // A 64 KiB slab, less the header page in slot 0 and the hardened
    // variant's guard page in the last slot.
    size_t bytes = 65536;
    if (s1->slot == 0)
      bytes -= 4096;
    if (HAKMEM_HARDENED && s1->slot == HAK_SS_MAX_SLABS - 1)
      bytes -= 4096;
    EXPECT_EQ(s1->capacity, bytes / 4096);
    EXPECT_EQ(State(s1), HAK_SLAB_ACTIVE) << "stays active until the next refill";

    // The next take finds it dry: it goes to the full list, a new slab comes.
    void *list = nullptr;
    ASSERT_EQ(hak_slab_take(h, cls, 1, &list), 1u);
    hak_slab *s2 = SlabOf(list);
    EXPECT_NE(s2, s1);
    EXPECT_EQ(State(s1), HAK_SLAB_FULL);
    EXPECT_TRUE(InFull(h, cls, s1));
    EXPECT_EQ(h->cls[cls].nfull, 1u);
    EXPECT_EQ(Active(h, cls), s2);
    EXPECT_EQ(h->cls[cls].nslabs, 2u);
    EXPECT_EQ(GlobalSlabs(cls), base + 2);

    // One free moves the full slab to the partial list.
    Free(h, b1[3]);
    EXPECT_EQ(State(s1), HAK_SLAB_PARTIAL);
    EXPECT_FALSE(InFull(h, cls, s1));
    EXPECT_TRUE(InPartial(h, cls, s1));
    EXPECT_EQ(h->cls[cls].nfull, 0u);
    EXPECT_EQ(s1->used, s1->capacity - 1);

    // Freeing the rest empties it: it goes back to the pool.
    for (size_t i = 0; i < b1.size(); ++i) {
      if (i != 3)
        Free(h, b1[i]);
    }
    EXPECT_EQ(State(s1), HAK_SLAB_FREE);
    EXPECT_FALSE(InPartial(h, cls, s1));
    EXPECT_EQ(ListLen(h->cls[cls].partial), 0u);
    EXPECT_EQ(h->cls[cls].nslabs, 1u);
    EXPECT_EQ(GlobalSlabs(cls), base + 1);

    Free(h, list);
    EXPECT_EQ(s2->used, 0u);
    EXPECT_EQ(State(s2), HAK_SLAB_ACTIVE);
    Retire(h);
    EXPECT_EQ(GlobalSlabs(cls), base);
  });
}

// When the active slab runs dry, a partial slab takes its place before any
// new slab is acquired, and its freed blocks come back newest first.
TEST(SlabLayer, PartialSlabIsReusedBeforeANewOne) {
  const unsigned cls = hak_size_class_of(kPartialSize);
  const uint64_t base = GlobalSlabs(cls);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    hak_slab *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_FALSE(b1.empty());
    hak_slab *s2 = nullptr;
    std::vector<void *> b2 = TakeWholeSlab(h, cls, &s2);
    ASSERT_FALSE(b2.empty());
    ASSERT_NE(s1, s2);
    EXPECT_EQ(State(s1), HAK_SLAB_FULL);
    EXPECT_EQ(GlobalSlabs(cls), base + 2);

    Free(h, b1[0]);
    Free(h, b1[5]);
    Free(h, b1[9]);
    EXPECT_EQ(State(s1), HAK_SLAB_PARTIAL);

    std::vector<void *> got = TakeN(h, cls, 3);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], b1[9]);
    EXPECT_EQ(got[1], b1[5]);
    EXPECT_EQ(got[2], b1[0]);
    EXPECT_EQ(Active(h, cls), s1);
    EXPECT_EQ(State(s1), HAK_SLAB_ACTIVE);
    EXPECT_EQ(State(s2), HAK_SLAB_FULL);
    EXPECT_EQ(GlobalSlabs(cls), base + 2) << "no new slab while a partial one had room";

    for (void *p : b1)
      Free(h, p);
    for (void *p : b2)
      Free(h, p);
    EXPECT_EQ(GlobalSlabs(cls), base + 1);
    Retire(h);
    EXPECT_EQ(GlobalSlabs(cls), base);
  });
}

// Frees from another thread land on the slab's remote stack; the owner takes
// them when its local list runs dry.
TEST(SlabLayer, RemoteFreesCollectedWhenOwnerRunsDry) {
  const unsigned cls = hak_size_class_of(kRemoteSize);
  const uint64_t base = GlobalSlabs(cls);
  Worker owner;
  hak_heap *h = nullptr;
  hak_slab *s = nullptr;
  std::vector<void *> blocks;
  owner.Run([&] {
    h = NewHeap();
    blocks = TakeWholeSlab(h, cls, &s);
  });
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(blocks.size(), s->capacity);
  EXPECT_EQ(GlobalSlabs(cls), base + 1);

  // Another thread frees every other block.
  std::vector<void *> freed;
  for (size_t i = 0; i < blocks.size(); i += 2)
    freed.push_back(blocks[i]);
  RunInThread([&] {
    hak_heap *other = NewHeap();
    ASSERT_NE(other, h);
    for (void *p : freed)
      Free(other, p);
  });
  EXPECT_EQ(RemoteLen(s), freed.size());
  for (void *p : freed)
    EXPECT_TRUE(RemoteHas(s, p));
  EXPECT_EQ(s->used, s->capacity) << "remote frees are not the owner's to count yet";
  EXPECT_EQ(LocalFreeLen(s), 0u);
  EXPECT_EQ(State(s), HAK_SLAB_ACTIVE);

  owner.Run([&] {
    // The owner's next take collects the whole remote stack in one go and
    // keeps allocating from the same slab.
    std::vector<void *> got = TakeN(h, cls, static_cast<unsigned>(freed.size()));
    EXPECT_EQ(RemoteWord(s), 0u);
    EXPECT_EQ(GlobalSlabs(cls), base + 1) << "no new slab was needed";
    EXPECT_EQ(Active(h, cls), s);
    std::set<void *> want(freed.begin(), freed.end());
    std::set<void *> have(got.begin(), got.end());
    EXPECT_EQ(have, want);
    EXPECT_EQ(s->used, s->capacity);
    for (void *p : blocks)
      Free(h, p);
    EXPECT_EQ(s->used, 0u);
    Retire(h);
  });
  EXPECT_EQ(GlobalSlabs(cls), base);
}

// Remote frees into a slab on the full list are found by the sweep that
// runs when the owner needs a slab, and a slab emptied that way is released.
TEST(SlabLayer, FullSlabEmptiedRemotelyIsReleasedBySweep) {
  const unsigned cls = hak_size_class_of(kSweepSize);
  const uint64_t base = GlobalSlabs(cls);
  {
    Worker owner;
    hak_heap *h = nullptr;
    hak_slab *s1 = nullptr;
    hak_slab *s2 = nullptr;
    std::vector<void *> b1, b2;
    owner.Run([&] {
      h = NewHeap();
      b1 = TakeWholeSlab(h, cls, &s1);
      b2 = TakeWholeSlab(h, cls, &s2);
      EXPECT_EQ(State(s1), HAK_SLAB_FULL);
      EXPECT_EQ(GlobalSlabs(cls), base + 2);
    });
    RunInThread([&] {
      hak_heap *other = NewHeap();
      for (void *p : b1)
        Free(other, p);
    });
    EXPECT_EQ(RemoteLen(s1), b1.size());
    EXPECT_EQ(State(s1), HAK_SLAB_FULL);
    owner.Run([&] {
      void *list = nullptr;
      ASSERT_EQ(hak_slab_take(h, cls, 1, &list), 1u);
      hak_slab *now = SlabOf(list);
      EXPECT_EQ(State(s2), HAK_SLAB_FULL);
      // s1 was swept: every block came back, so it was released (possibly
      // then handed straight back by the pool as the new active slab).
      if (now == s1) {
        EXPECT_EQ(State(s1), HAK_SLAB_ACTIVE);
        EXPECT_EQ(GlobalSlabs(cls), base + 2);
      } else {
        EXPECT_EQ(State(s1), HAK_SLAB_FREE);
        EXPECT_EQ(GlobalSlabs(cls), base + 2);
      }
      EXPECT_FALSE(InFull(h, cls, s1));
      EXPECT_EQ(h->cls[cls].nfull, 1u);
      EXPECT_EQ(RemoteWord(s1) & ~HAK_REMOTE_ABANDONED, 0u);
      Free(h, list);
      for (void *p : b2)
        Free(h, p);
      Retire(h);
    });
  }
  EXPECT_EQ(GlobalSlabs(cls), base);
}

// The same life cycle on a medium class (512 KiB slabs of a few blocks).
TEST(SlabLayer, MediumSlabLifeCycle) {
  const unsigned cls = hak_size_class_of(kMediumSize);
  const uint64_t base = GlobalSlabs(cls);
  RunInThread([&] {
    hak_heap *h = NewHeap();
    hak_slab *s1 = nullptr;
    std::vector<void *> b1 = TakeWholeSlab(h, cls, &s1);
    ASSERT_NE(s1, nullptr);
    const size_t slab = size_t{512} << 10;
    const size_t skip = s1->slot == 0 ? 4096 : 0;
    EXPECT_EQ(s1->capacity, (slab - skip) / hak_size_class_bytes(cls));
    EXPECT_EQ(b1.size(), s1->capacity);
    for (void *p : b1)
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    std::vector<void *> b2 = TakeN(h, cls, 1);
    EXPECT_EQ(State(s1), HAK_SLAB_FULL);
    for (void *p : b1)
      Free(h, p);
    EXPECT_EQ(State(s1), HAK_SLAB_FREE);
    for (void *p : b2)
      Free(h, p);
    EXPECT_EQ(GlobalSlabs(cls), base + 1);
    Retire(h);
    EXPECT_EQ(GlobalSlabs(cls), base);
  });
}

} // namespace
