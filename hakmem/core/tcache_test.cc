// Unit test of the fast cache: the bins' bounds, the push and pop of a bin,
// the refill of an empty bin from the slabs, the flush of half a full bin
// back to them, the drain of every bin, and the counts the bins keep. Each
// test runs on a thread of its own (fresh bins) with a heap the test builds
// as the registry would.
#include "hakmem/core/tcache.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/options.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/slab.h"
#include "hakmem/core/superslab.h"

namespace {

using hakmem_box_test::RunInThread;

// What hak_maintenance_init does for the boxes below the registry.
class FastCacheEnvironment : public ::testing::Environment {
public:
  void SetUp() override {
    hak_options_load();
    hak_integrity_init();
    hak_segmap_class_init();
  }
};
::testing::Environment *const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new FastCacheEnvironment);

// Whether set_caps opens the bins: not without the fast cache, nor in
// release builds at HAKMEM_CHECK=full, which send every call down the slow
// paths.
bool BinsOpen() { return HAKMEM_FASTCACHE && !(!HAKMEM_DEBUG && HAK_CHECK_IS_FULL); }

// A heap as the registry makes one; heap structs are never freed (a remote
// free may read its owner's after the push).
hak_heap *NewHeap() {
  static std::mutex mu;
  static std::deque<hak_heap> heaps;
  std::lock_guard<std::mutex> lock(mu);
  hak_heap *h = &heaps.emplace_back(); // value-initialised: all zeros
  hak_slab_class_heaps_init(h);
  return h;
}

// The calling thread's heap, set up as hak_thread_heap_get does: its bins are the
// thread's and open.
hak_heap *ThreadHeap() {
  hak_heap *h = NewHeap();
  h->tcache = hak_tls.bins;
  hak_tls.heap = h;
  hak_tcache_set_caps(hak_tls.bins, true);
  return h;
}

// As the thread's exit does: bins emptied and closed, slabs given up.
void EndThreadHeap(hak_heap *h) {
  hak_tcache_drain(h, hak_tls.bins);
  hak_tcache_set_caps(hak_tls.bins, false);
  hak_slab_abandon_all(h);
  hak_tls.heap = nullptr;
}

hak_tcache_bin *MyBins() { return hak_tls.bins; }
unsigned BinOf(unsigned cls) { return hak_tcache_bin_of_class(cls); }

hak_slab *SlabOf(const void *p) {
  const unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return nullptr;
  return hak_superslab_slab_of(p, kind);
}

bool OnChain(const void *head, const void *p) {
  for (const void *q = head; q != nullptr; q = hak_integrity_link_get(q))
    if (q == p)
      return true;
  return false;
}
unsigned ChainLen(const void *head) {
  unsigned n = 0;
  for (const void *q = head; q != nullptr; q = hak_integrity_link_get(q))
    n++;
  return n;
}

struct Counts {
  uint64_t allocs, frees;
};
Counts CountsOf(unsigned cls) {
  Counts c;
  hak_tcache_counts(MyBins(), cls, &c.allocs, &c.frees);
  return c;
}

// malloc's class path: a pop, else the slow path.
void *Alloc(hak_heap *h, unsigned cls) {
#if HAKMEM_FASTCACHE
  if (void *b = hak_tcache_pop(HAK_BIN_SLOT(BinOf(cls))))
    return b;
#endif
  return hak_tcache_alloc_slow(h, cls, UINT32_MAX);
}

// free's: a push, else the slow path.
void Free(hak_heap *h, void *p) {
  hak_slab *s = SlabOf(p);
#if HAKMEM_FASTCACHE
  if (hak_tcache_push(HAK_BIN_SLOT(BinOf(s->class_idx)), p))
    return;
#endif
  hak_tcache_free_slow(h, p, s, s->class_idx);
}

// A thread's first refill of a class asks for a page's worth of blocks.
uint32_t FirstRefill(unsigned cls) {
  uint32_t n = static_cast<uint32_t>(HAK_PAGE_SIZE / hak_size_class_bytes(cls));
  if (n > hak_size_class_table[cls].batch)
    n = hak_size_class_table[cls].batch;
  return n == 0 ? 1 : n;
}

TEST(FastCacheCaps, FromTheClassesAndTheOptions) {
  RunInThread([] {
    hak_tcache_bin *bins = MyBins();
    hak_tcache_set_caps(bins, true);
    EXPECT_EQ(bins->cap[0], 0u) << "bin 0 never holds blocks";
    EXPECT_EQ(hak_tcache_bin_room(bins, 0), 0u);
    for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c) {
      SCOPED_TRACE(c);
      const unsigned i = BinOf(c);
      uint32_t want = hak_size_class_table[c].cache_cap;
      if (want > hak_options_current.tcache_max)
        want = hak_options_current.tcache_max;
      if (!BinsOpen())
        want = 0;
      EXPECT_EQ(bins->cap[i], want);
      EXPECT_EQ(hak_tcache_bin_room(bins, i), want);
      EXPECT_EQ(hak_tcache_bin_count(bins, i), 0u);
      EXPECT_EQ(*hak_tcache_bin_head(bins, i), nullptr);
      EXPECT_EQ(bins->refill[i], FirstRefill(c));
      // The free hit path's block check: small classes of open bins only.
      const bool hit = want > 0 && HAK_INLINE_FREE_HIT;
      EXPECT_EQ(bins->chk[HAK_BIN_SLOT(i)], hit ? hak_size_class_table[c].chk_mul : 0u);
      EXPECT_EQ(bins->chk[HAK_BIN_SLOT(i) + 1], hit ? hak_size_class_table[c].chk_lim : 0u);
    }
    // HAKMEM_TCACHE_MAX bounds every bin.
    const uint32_t saved = hak_options_current.tcache_max;
    hak_options_current.tcache_max = 3;
    hak_tcache_set_caps(bins, true);
    for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c)
      EXPECT_EQ(bins->cap[BinOf(c)],
                BinsOpen() ? std::min<uint32_t>(hak_size_class_table[c].cache_cap, 3) : 0u)
          << c;
    hak_options_current.tcache_max = saved;
    // Closed: every push goes slow.
    hak_tcache_set_caps(bins, false);
    for (unsigned i = 0; i < HAK_NUM_BINS; ++i) {
      EXPECT_EQ(bins->cap[i], 0u) << i;
      EXPECT_EQ(hak_tcache_bin_room(bins, i), 0u) << i;
      EXPECT_EQ(bins->chk[HAK_BIN_SLOT(i)], 0u) << i;
    }
  });
}

// HAKMEM_CHECK=full keeps the bins closed in release builds, so that every
// call is vetted on the slow paths; debug builds vet the bins themselves.
TEST(FastCacheCaps, ClosedInReleaseBuildsAtCheckFull) {
  RunInThread([] {
    const int saved = hak_integrity_level;
    hak_integrity_level = HAK_CHECK_FULL;
    hak_tcache_set_caps(MyBins(), true);
    const unsigned i = BinOf(hak_size_class_of(64));
    EXPECT_EQ(MyBins()->cap[i] > 0, HAKMEM_FASTCACHE && HAKMEM_DEBUG);
    hak_tcache_set_caps(MyBins(), false);
    hak_integrity_level = saved;
    hak_tcache_set_caps(MyBins(), true);
    EXPECT_EQ(MyBins()->cap[i] > 0, BinsOpen());
    hak_tcache_set_caps(MyBins(), false);
  });
}

#if HAKMEM_FASTCACHE
// A push puts the block on top of its class's bin, marked free, and counts
// a free; a pop hands back the top, mark cleared, and counts an allocation.
TEST(FastCacheBins, PushPopRoundTrip) {
  if (!BinsOpen())
    GTEST_SKIP() << "the bins are closed at HAKMEM_CHECK=full in release builds";
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    const unsigned cls = hak_size_class_of(128);
    const unsigned i = BinOf(cls);
    const uintptr_t slot = HAK_BIN_SLOT(i);
    hak_tcache_bin *bins = MyBins();
    void *p = hak_tcache_alloc_slow(h, cls, UINT32_MAX);
    ASSERT_NE(p, nullptr);
    void *q = hak_tcache_pop(slot); // the refill left the rest in the bin
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, p);
    const uint32_t held = hak_tcache_bin_count(bins, i);
    const Counts before = CountsOf(cls);

    EXPECT_TRUE(hak_tcache_push(slot, p));
    EXPECT_EQ(*hak_tcache_bin_head(bins, i), p);
    EXPECT_TRUE(hak_integrity_is_marked_free(p));
    EXPECT_EQ(hak_tcache_bin_count(bins, i), held + 1);
    EXPECT_TRUE(hak_tcache_push(slot, q));
    EXPECT_EQ(*hak_tcache_bin_head(bins, i), q);
    EXPECT_EQ(hak_integrity_link_get(q), p);

    EXPECT_EQ(hak_tcache_pop(slot), q) << "last in, first out";
    EXPECT_FALSE(hak_integrity_is_marked_free(q));
    EXPECT_EQ(hak_tcache_pop(slot), p);
    EXPECT_FALSE(hak_integrity_is_marked_free(p));
    EXPECT_EQ(hak_tcache_bin_count(bins, i), held);
    const Counts after = CountsOf(cls);
    EXPECT_EQ(after.allocs - before.allocs, 2u);
    EXPECT_EQ(after.frees - before.frees, 2u);
    // The other bins saw nothing.
    const Counts other = CountsOf(hak_size_class_of(256));
    EXPECT_EQ(other.allocs, 0u);
    EXPECT_EQ(other.frees, 0u);

    // A full bin refuses the push: room is what the bound leaves.
    while (hak_tcache_bin_room(bins, i) > 0) {
      void *b = nullptr;
      ASSERT_EQ(hak_slab_take(h, cls, 1, &b), 1u);
      ASSERT_TRUE(hak_tcache_push(slot, b));
    }
    EXPECT_EQ(hak_tcache_bin_count(bins, i), bins->cap[i]);
    EXPECT_FALSE(hak_tcache_push(slot, p));
    EXPECT_EQ(hak_tcache_bin_count(bins, i), bins->cap[i]);
    hak_tcache_free_slow(h, p, SlabOf(p), cls);
    hak_tcache_free_slow(h, q, SlabOf(q), cls);
    EndThreadHeap(h);
  });
}
#endif

// The slow path of malloc takes a refill's worth from the slabs, hands out
// one and leaves the rest in the bin; each later refill asks for twice as
// many, up to the class's batch.
TEST(FastCacheSlowPaths, AllocSlowRefillsTheBin) {
  RunInThread([] {
    errno = 0;
    EXPECT_EQ(hak_tcache_alloc_slow(nullptr, 0, UINT32_MAX), nullptr) << "no heap";
    EXPECT_EQ(errno, ENOMEM);

    hak_heap *h = ThreadHeap();
    const unsigned cls = hak_size_class_of(256);
    const unsigned i = BinOf(cls);
    hak_tcache_bin *bins = MyBins();
    const uint32_t first = BinsOpen() ? FirstRefill(cls) : 1;
    void *b = hak_tcache_alloc_slow(h, cls, UINT32_MAX);
    ASSERT_NE(b, nullptr);
    EXPECT_FALSE(hak_integrity_is_marked_free(b)) << "handed out: its mark is gone";
    hak_slab *s = SlabOf(b);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->owner.load(), h);
    EXPECT_EQ(s->used, first) << "the bin's blocks count as out of the slab";
    EXPECT_EQ(hak_tcache_bin_count(bins, i), first - 1);
    for (void *q = *hak_tcache_bin_head(bins, i); q != nullptr; q = hak_integrity_link_get(q)) {
      EXPECT_EQ(SlabOf(q), s);
      EXPECT_TRUE(hak_integrity_is_marked_free(q));
      EXPECT_NE(q, b);
    }
    EXPECT_EQ(h->counters[cls].allocs, 1u);
    EXPECT_EQ(h->counters[cls].slow_allocs, 1u);
    EXPECT_EQ(h->counters[cls].refills, 1u);
    EXPECT_EQ(CountsOf(cls).allocs, 0u) << "the slow path counts in the heap, not the bin";

    // Empty the bin; the next miss asks for twice as many.
    std::vector<void *> out = {b};
    while (hak_tcache_bin_count(bins, i) > 0)
      out.push_back(Alloc(h, cls));
    const uint16_t used = s->used;
    out.push_back(hak_tcache_alloc_slow(h, cls, UINT32_MAX));
    ASSERT_NE(out.back(), nullptr);
    const uint32_t second = BinsOpen() ? std::min<uint32_t>(2 * first, bins->cap[i]) : 1;
    EXPECT_EQ(hak_tcache_bin_count(bins, i), second - 1);
    EXPECT_EQ(s->used, used + second);
    EXPECT_EQ(h->counters[cls].refills, 2u);
    for (void *p : out)
      Free(h, p);
    EndThreadHeap(h);
  });
}

// The slow path of free, on a full bin, hands the top half (a batch) back to
// the slabs and keeps the rest; with the bins closed every free goes to the
// slab at once.
TEST(FastCacheSlowPaths, FreeSlowFlushesHalfAFullBin) {
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    const unsigned cls = hak_size_class_of(1024); // a bound of 32, a batch of 16
    const unsigned i = BinOf(cls);
    hak_tcache_bin *bins = MyBins();
    const uint32_t cap = bins->cap[i];
    std::vector<void *> blocks;
    for (uint32_t k = 0; k < cap + 1; ++k) {
      blocks.push_back(Alloc(h, cls));
      ASSERT_NE(blocks.back(), nullptr);
    }
    hak_tcache_drain(h, bins); // what the refills left in the bin
    ASSERT_EQ(hak_tcache_bin_count(bins, i), 0u);
    hak_slab *s = SlabOf(blocks[0]);
    for (void *p : blocks)
      ASSERT_EQ(SlabOf(p), s) << "33 blocks of 1 KiB fit one slab";
    EXPECT_EQ(s->used, cap + 1);
    const Counts before = CountsOf(cls);
    const unsigned local_before = ChainLen(s->free);
    // Fill the bin through the slow path's own push.
    for (uint32_t k = 0; k < cap; ++k)
      hak_tcache_free_slow(h, blocks[k], s, cls);
    EXPECT_EQ(hak_tcache_bin_count(bins, i), cap);
    EXPECT_EQ(s->used, cap + 1) << "nothing went back yet";
    // The bin is full: the next free flushes the batch on top.
    hak_tcache_free_slow(h, blocks[cap], s, cls);
    if (BinsOpen()) {
      const uint32_t batch = hak_size_class_table[cls].batch;
      ASSERT_EQ(cap, 32u);
      ASSERT_EQ(batch, 16u);
      EXPECT_EQ(hak_tcache_bin_count(bins, i), cap - batch + 1);
      EXPECT_EQ(s->used, cap + 1 - batch);
      EXPECT_EQ(ChainLen(s->free), local_before + batch);
      for (uint32_t k = 0; k < cap; ++k) {
        const bool flushed = k >= cap - batch; // the last pushed are on top
        EXPECT_EQ(OnChain(s->free, blocks[k]), flushed) << k;
        EXPECT_EQ(OnChain(*hak_tcache_bin_head(bins, i), blocks[k]), !flushed) << k;
      }
      EXPECT_EQ(*hak_tcache_bin_head(bins, i), blocks[cap]);
      // Every free counts once, as a fast free would: the flush moves blocks
      // without counting.
      EXPECT_EQ(CountsOf(cls).frees - before.frees, cap + 1);
    } else {
      EXPECT_EQ(cap, 0u);
      EXPECT_EQ(hak_tcache_bin_count(bins, i), 0u);
      EXPECT_EQ(s->used, 0u) << "each free went to the slab";
      EXPECT_EQ(h->counters[cls].frees, cap + 1);
    }
    EndThreadHeap(h);
  });
}

// A thread that keeps allocating and freeing more blocks than a bin holds
// (batches) grows the bin by a batch per cycle, up to 128 KiB of blocks or
// HAKMEM_TCACHE_MAX; a drain puts it back to its base bound.
TEST(FastCacheSlowPaths, BinGrowsForBatchesLargerThanItsBound) {
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    const unsigned cls = hak_size_class_of(1024); // a bound of 32, a batch of 16
    const unsigned i = BinOf(cls);
    hak_tcache_bin *bins = MyBins();
    const uint32_t base = bins->cap[i];
    const uint32_t grown = std::min<uint32_t>((128u << 10) / 1024u, hak_options_current.tcache_max);
    std::vector<void *> blocks(200);
    auto cycle = [&] {
      for (void *&p : blocks) {
        p = Alloc(h, cls);
        ASSERT_NE(p, nullptr);
      }
      for (void *p : blocks)
        Free(h, p);
    };
    cycle();
    if (!BinsOpen()) {
      EXPECT_EQ(bins->cap[i], 0u);
      EndThreadHeap(h);
      return;
    }
    ASSERT_EQ(base, 32u);
    ASSERT_EQ(grown, 128u) << "HAKMEM_TCACHE_MAX is below 128 in this test's environment";
    // Each cycle misses (the bin cannot hold 200) and then overflows: one
    // batch more per cycle, until the bound.
    EXPECT_EQ(bins->cap[i], base + hak_size_class_table[cls].batch);
    uint32_t last = bins->cap[i];
    for (int k = 0; k < 20; ++k) {
      cycle();
      EXPECT_GE(bins->cap[i], last);
      EXPECT_LE(bins->cap[i], grown);
      last = bins->cap[i];
    }
    EXPECT_EQ(bins->cap[i], grown);
    // What the grown bin holds now serves a batch that size with no slab
    // work at all: no refill, no flush.
    const uint32_t held = hak_tcache_bin_count(bins, i);
    EXPECT_GT(held, base);
    const uint64_t refills = h->counters[cls].refills;
    const uint16_t used = SlabOf(blocks[0])->used;
    std::vector<void *> fits(held);
    for (void *&p : fits)
      p = Alloc(h, cls);
    for (void *p : fits)
      Free(h, p);
    EXPECT_EQ(h->counters[cls].refills, refills);
    EXPECT_EQ(hak_tcache_bin_count(bins, i), held);
    EXPECT_EQ(SlabOf(blocks[0])->used, used);
    // A drain empties it and restores the base bound.
    hak_tcache_drain(h, bins);
    EXPECT_EQ(bins->cap[i], base);
    EXPECT_EQ(hak_tcache_bin_room(bins, i), base);
    EXPECT_EQ(hak_tcache_bin_count(bins, i), 0u);
    // Frees alone (no miss since the last overflow) never grow a bin.
    std::vector<void *> more(3 * base);
    for (void *&p : more)
      p = Alloc(h, cls);
    hak_tcache_drain(h, bins);
    for (void *p : more)
      Free(h, p);
    EXPECT_EQ(bins->cap[i], base);
    // HAKMEM_TCACHE_MAX bounds the growth too.
    hak_tcache_drain(h, bins);
    const uint32_t saved = hak_options_current.tcache_max;
    hak_options_current.tcache_max = 40;
    hak_tcache_set_caps(bins, true);
    for (int k = 0; k < 10; ++k)
      cycle();
    EXPECT_EQ(bins->cap[i], 40u);
    hak_tcache_drain(h, bins);
    hak_options_current.tcache_max = saved;
    hak_tcache_set_caps(bins, true);
    EndThreadHeap(h);
  });
}

// The bins of a thread grow by 128 KiB in all: a class that starts cycling
// batches takes the growth of the others, whose extra blocks go back.
TEST(FastCacheSlowPaths, BinsShareOneGrowthBudget) {
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    hak_tcache_bin *bins = MyBins();
    if (!BinsOpen() || hak_options_current.tcache_max < 256) {
      EndThreadHeap(h);
      return;
    }
    auto cycles = [&](unsigned cls, int times) {
      std::vector<void *> blocks(300);
      for (int k = 0; k < times; ++k) {
        for (void *&p : blocks) {
          p = Alloc(h, cls);
          ASSERT_NE(p, nullptr);
        }
        for (void *p : blocks)
          Free(h, p);
      }
    };
    const unsigned big = hak_size_class_of(1024), mid = hak_size_class_of(512);
    const unsigned bi = BinOf(big), mi = BinOf(mid);
    const uint32_t big_base = bins->cap[bi], mid_base = bins->cap[mi];
    cycles(big, 20);
    ASSERT_EQ(bins->cap[bi], 128u);
    EXPECT_EQ(bins->grown_bytes, (128u - big_base) * 1024u);
    // The slabs of the blocks the 1 KiB bin holds, and their blocks out.
    std::set<hak_slab *> slabs;
    for (const void *q = *hak_tcache_bin_head(bins, bi); q != nullptr;
         q = hak_integrity_link_get(q))
      slabs.insert(SlabOf(q));
    auto used = [&] {
      uint32_t n = 0;
      for (hak_slab *s : slabs)
        n += s->used;
      return n;
    };
    const uint32_t held_before = hak_tcache_bin_count(bins, bi), used_before = used();
    cycles(mid, 20);
    EXPECT_EQ(bins->cap[bi], big_base) << "the 1 KiB bin gave its growth up";
    EXPECT_LE(hak_tcache_bin_count(bins, bi), big_base);
    EXPECT_GT(bins->cap[mi], mid_base);
    EXPECT_LE(bins->grown_bytes, 128u << 10);
    EXPECT_EQ(bins->grown_bytes, (bins->cap[mi] - mid_base) * 512u);
    EXPECT_EQ(used(), used_before - (held_before - hak_tcache_bin_count(bins, bi)))
        << "the blocks beyond the base bound went back to their slabs";
    EXPECT_GT(held_before, big_base);
    EndThreadHeap(h);
  });
}

// A flush gives back runs of blocks from several slabs, local and foreign,
// each to its own slab, and leaves the rest of the bin linked as it was.
TEST(FastCacheSlowPaths, FlushSplicesEachSlabsRun) {
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    hak_heap *other = NewHeap();
    const unsigned cls = hak_size_class_of(1024);
    const unsigned i = BinOf(cls);
    hak_tcache_bin *bins = MyBins();
    if (!BinsOpen()) {
      EndThreadHeap(h);
      return;
    }
    const uint32_t cap = bins->cap[i], batch = hak_size_class_table[cls].batch;
    // Blocks of two of this heap's slabs and one foreign slab, interleaved.
    std::vector<void *> mine;
    while (mine.size() < 80) { // more than a 64 KiB slab of 1 KiB blocks
      void *p = Alloc(h, cls);
      ASSERT_NE(p, nullptr);
      mine.push_back(p);
    }
    void *list = nullptr;
    ASSERT_EQ(hak_slab_take(other, cls, 4, &list), 4u);
    std::vector<void *> theirs;
    for (void *q = list; q != nullptr; q = hak_integrity_link_get(q))
      theirs.push_back(q);
    for (void *q : theirs)
      hak_integrity_mark_clear(q);
    hak_tcache_drain(h, bins);
    hak_slab *a = SlabOf(mine.front()), *b = SlabOf(mine.back()), *c = SlabOf(theirs[0]);
    ASSERT_NE(a, b);
    const uint16_t a_used = a->used, b_used = b->used;
    // Fill the bin: the batch on top (flushed first) mixes all three slabs.
    std::vector<void *> order;
    for (uint32_t k = 0; k + batch < cap; ++k)
      order.push_back(mine[10 + k]);
    for (uint32_t k = 0; k < batch; ++k) {
      if (k % 4 == 3)
        order.push_back(theirs[k / 4]);
      else if (k % 2 == 0)
        order.push_back(mine[k / 2]);
      else
        order.push_back(mine[79 - k / 2]);
    }
    ASSERT_EQ(order.size(), cap);
    for (void *p : order)
      hak_tcache_free_slow(h, p, SlabOf(p), cls);
    ASSERT_EQ(hak_tcache_bin_room(bins, i), 0u);
    uint16_t to_a = 0, to_b = 0;
    for (size_t k = cap - batch; k < cap; ++k) {
      to_a += SlabOf(order[k]) == a;
      to_b += SlabOf(order[k]) == b;
    }
    void *extra = mine[9];
    hak_tcache_free_slow(h, extra, SlabOf(extra), cls); // overflows: one batch goes back
    EXPECT_EQ(hak_tcache_bin_count(bins, i), cap - batch + 1);
    EXPECT_EQ(a->used, a_used - to_a);
    EXPECT_EQ(b->used, b_used - to_b);
    const void *remote = reinterpret_cast<const void *>(c->remote.load() & ~HAK_REMOTE_ABANDONED);
    EXPECT_EQ(ChainLen(remote), theirs.size());
    for (size_t k = cap - batch; k < cap; ++k) {
      void *p = order[k];
      hak_slab *s = SlabOf(p);
      EXPECT_TRUE(s == c ? OnChain(remote, p) : OnChain(s->free, p)) << k;
      EXPECT_FALSE(OnChain(*hak_tcache_bin_head(bins, i), p)) << k;
    }
    EXPECT_EQ(ChainLen(*hak_tcache_bin_head(bins, i)), cap - batch + 1);
    for (size_t k = 0; k < cap - batch; ++k)
      EXPECT_TRUE(OnChain(*hak_tcache_bin_head(bins, i), order[k])) << k;
    EndThreadHeap(h);
    hak_slab_abandon_all(other);
  });
}

// A thread with no heap (exiting) frees remotely into the block's slab.
TEST(FastCacheSlowPaths, FreeSlowWithoutAHeapPushesRemotely) {
  hak_heap *h = nullptr;
  void *p = nullptr;
  hakmem_box_test::Worker owner;
  owner.Run([&] {
    h = ThreadHeap();
    p = hak_tcache_alloc_slow(h, hak_size_class_of(512), UINT32_MAX);
  });
  ASSERT_NE(p, nullptr);
  hak_slab *s = SlabOf(p);
  RunInThread([&] { hak_tcache_free_slow(nullptr, p, s, s->class_idx); });
  const uintptr_t remote = s->remote.load() & ~HAK_REMOTE_ABANDONED;
  EXPECT_EQ(remote, reinterpret_cast<uintptr_t>(p));
  EXPECT_TRUE(hak_integrity_is_marked_free(p));
  owner.Run([&] { EndThreadHeap(h); });
}

// A drain empties every bin: blocks of the thread's own slabs go back on
// their free lists, others onto their owner's remote stack (counted as
// remote frees); the bins' counts stay.
TEST(FastCacheSlowPaths, DrainEmptiesEveryBin) {
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    hak_heap *other = NewHeap(); // another thread's, whose blocks this one frees
    const unsigned small = hak_size_class_of(64), big = hak_size_class_of(2048);
    std::vector<void *> mine;
    for (int k = 0; k < 5; ++k) {
      mine.push_back(Alloc(h, small));
      mine.push_back(Alloc(h, big));
    }
    void *list = nullptr;
    ASSERT_EQ(hak_slab_take(other, small, 3, &list), 3u);
    std::vector<void *> theirs;
    for (void *q = list; q != nullptr; q = hak_integrity_link_get(q))
      theirs.push_back(q);
    for (void *q : theirs)
      hak_integrity_mark_clear(q); // handed out
    hak_slab *their_slab = SlabOf(theirs[0]);

    const uint64_t remote_before = h->counters[small].remote_frees;
    for (void *p : mine)
      Free(h, p);
    for (void *q : theirs)
      Free(h, q);
    const Counts small_before = CountsOf(small), big_before = CountsOf(big);
    hak_tcache_drain(h, MyBins());
    for (unsigned i = 0; i < HAK_NUM_BINS; ++i) {
      EXPECT_EQ(hak_tcache_bin_count(MyBins(), i), 0u) << i;
      EXPECT_EQ(*hak_tcache_bin_head(MyBins(), i), nullptr) << i;
    }
    for (void *p : mine)
      EXPECT_EQ(SlabOf(p)->used, 0u) << "every block of the thread's slabs is back";
    const void *remote =
        reinterpret_cast<const void *>(their_slab->remote.load() & ~HAK_REMOTE_ABANDONED);
    EXPECT_EQ(ChainLen(remote), 3u);
    for (void *q : theirs)
      EXPECT_TRUE(OnChain(remote, q));
    EXPECT_EQ(h->counters[small].remote_frees - remote_before, 3u);
    if (BinsOpen()) {
      EXPECT_EQ(CountsOf(small).frees, small_before.frees);
      EXPECT_EQ(CountsOf(small).allocs, small_before.allocs);
      EXPECT_EQ(CountsOf(big).frees, big_before.frees);
      EXPECT_EQ(small_before.frees, 8u);
      EXPECT_EQ(big_before.frees, 5u);
    }
    EndThreadHeap(h);
    // The other heap collects its blocks and gives its slab up.
    hak_slab_abandon_all(other);
    EXPECT_EQ(HAK_SLAB_STATE(their_slab), HAK_SLAB_FREE);
  });
}

// A reset zeroes the counts (the thread's totals were merged elsewhere) and
// keeps each bin's room.
TEST(FastCacheCounts, ResetZeroesTheCountsAndKeepsTheRoom) {
  RunInThread([] {
    hak_heap *h = ThreadHeap();
    const unsigned cls = hak_size_class_of(96);
    const unsigned i = BinOf(cls);
    std::vector<void *> blocks;
    for (int k = 0; k < 6; ++k)
      blocks.push_back(Alloc(h, cls));
    for (void *p : blocks)
      Free(h, p);
    const uint32_t room = hak_tcache_bin_room(MyBins(), i);
    const Counts before = CountsOf(cls);
    if (BinsOpen()) {
      EXPECT_EQ(before.frees, 6u);
    }
    hak_tcache_reset_counts(MyBins());
    const Counts after = CountsOf(cls);
    EXPECT_EQ(after.allocs, 0u);
    EXPECT_EQ(after.frees, 0u);
    EXPECT_EQ(hak_tcache_bin_room(MyBins(), i), room);
    blocks.clear();
    for (int k = 0; k < 2; ++k)
      blocks.push_back(Alloc(h, cls));
    if (BinsOpen()) {
      EXPECT_EQ(CountsOf(cls).allocs, 2u) << "pops count afresh";
    }
    for (void *p : blocks)
      Free(h, p);
    EndThreadHeap(h);
  });
}

} // namespace
