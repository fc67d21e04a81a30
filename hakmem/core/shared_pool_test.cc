// Unit test of the shared pool: slab slots handed out to many threads at once
// (never one slot to two holders), SuperSlabs returned when their slots are,
// and abandoned slabs swept and adopted. The test stands in for the slab
// layer above the pool: it builds heap structs itself, "carves" blocks by
// setting a slab's counts, and frees remotely by pushing onto a slab's remote
// stack as slab.c does.
#include "hakmem/core/shared_pool.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/options.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/stats.h"
#include "hakmem/core/superslab.h"

namespace {

using hakmem_box_test::Rng;
using hakmem_box_test::RunInThread;
using hakmem_box_test::StartLine;

// A heap as the registry would make one: only its address matters here.
std::unique_ptr<hak_heap> NewHeap() { return std::unique_ptr<hak_heap>(new hak_heap{}); }

uint64_t SuperSlabs() { return hak_stats_global.superslabs.load(); }
uint64_t GSlabs(unsigned cls) { return hak_stats_global.slabs[cls].load(); }
uint64_t Abandoned() { return hak_stats_global.abandoned.load(); }
uint64_t Adopted() { return hak_stats_global.adopted.load(); }
size_t Span(const hak_slab *s) { return size_t{s->capacity} * s->block_size; }

// Gives an empty slab back as the slab layer does: the owner goes first.
void Release(hak_slab *s) {
  s->owner.store(nullptr);
  hak_shared_pool_release(s);
}

// Hands out the next n blocks of s, as carving does.
std::vector<void *> Carve(hak_slab *s, unsigned n) {
  std::vector<void *> out;
  for (unsigned i = 0; i < n && s->carved < s->capacity; ++i) {
    out.push_back(s->start + size_t{s->carved} * s->block_size);
    s->carved++;
    s->used++;
  }
  return out;
}

// A free by a thread that does not own b's slab (hak_slab_free_remote): b
// gets the free mark and goes on the slab's remote stack; a push into an
// abandoned slab asks the pool for a sweep.
void RemoteFree(void *b) {
  hak_slab *s = hak_superslab_slab_of(b, hak_segmap_kind(b));
  hak_integrity_mark_free(b);
  uintptr_t old = s->remote.load(std::memory_order_relaxed);
  uintptr_t next;
  do {
    hak_integrity_link_set(b, reinterpret_cast<void *>(old & ~HAK_REMOTE_ABANDONED));
    next = reinterpret_cast<uintptr_t>(b) | (old & HAK_REMOTE_ABANDONED);
  } while (!s->remote.compare_exchange_weak(old, next, std::memory_order_release,
                                            std::memory_order_relaxed));
  if (old & HAK_REMOTE_ABANDONED)
    hak_shared_pool_note_abandoned_free();
}

// What an owner does with the remote frees of its slab (collect_remote).
void Collect(hak_slab *s) {
  uintptr_t v = s->remote.exchange(0, std::memory_order_acquire);
  hak_superslab_splice_remote(s, v & ~HAK_REMOTE_ABANDONED);
}

std::set<void *> FreeList(const hak_slab *s) {
  std::set<void *> out;
  for (void *b = s->free; b != nullptr; b = hak_integrity_link_next(b))
    out.insert(b);
  return out;
}

class SharedPool : public ::testing::Test {
protected:
  void SetUp() override {
    // What hak_maintenance_init does for the boxes below the pool.
    static std::once_flag once;
    std::call_once(once, [] {
      hak_options_load();
      hak_integrity_link_init();
      hak_segmap_class_init();
    });
    // What hak_trim does to the pool: nothing abandoned is left over.
    hak_shared_pool_sweep_abandoned(true);
  }
};

struct Stamp {
  uint64_t thread;
  uint64_t serial;
};

void WriteStamp(hak_slab *s, const Stamp &st) {
  std::memcpy(s->start, &st, sizeof st);
  std::memcpy(s->start + Span(s) - sizeof st, &st, sizeof st);
}

bool StampIntact(hak_slab *s, const Stamp &st) {
  Stamp head, tail;
  std::memcpy(&head, s->start, sizeof head);
  std::memcpy(&tail, s->start + Span(s) - sizeof tail, sizeof tail);
  return head.thread == st.thread && head.serial == st.serial && tail.thread == st.thread &&
         tail.serial == st.serial;
}

// Many threads acquire and release slab slots of small and medium classes at
// once. Each holder stamps its slab's memory and checks the stamp before
// giving the slab back, and a registry of held slabs catches any slot handed
// to two holders at the same time.
TEST_F(SharedPool, ConcurrentAcquireReleaseNeverSharesASlot) {
  ASSERT_EQ(Abandoned(), 0u) << "adoptable slabs would make this test's slabs non-empty";
  const unsigned classes[] = {hak_size_class_of(48),    hak_size_class_of(700),
                              hak_size_class_of(4000),  hak_size_class_of(8192),
                              hak_size_class_of(12000), hak_size_class_of(40000),
                              hak_size_class_of(131072)};
  const uint64_t ss_base = SuperSlabs();
  std::vector<uint64_t> slab_base;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c)
    slab_base.push_back(GSlabs(c));

  constexpr int kThreads = 8;
  constexpr int kCycles = 20000;
  constexpr size_t kMaxHeld = 6;
  std::mutex mu;
  std::unordered_map<hak_slab *, uint64_t> holders; // slab -> thread
  std::atomic<int> errors{0};
  StartLine start(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<hak_heap> heap = NewHeap();
      auto rng = Rng(static_cast<uint64_t>(t));
      std::vector<std::pair<hak_slab *, Stamp>> held;
      start.ArriveAndWait();
      auto release_one = [&](size_t i) {
        auto [s, st] = held[i];
        held[i] = held.back();
        held.pop_back();
        if (!StampIntact(s, st))
          errors++;
        {
          std::lock_guard<std::mutex> lock(mu);
          auto it = holders.find(s);
          if (it == holders.end() || it->second != st.thread)
            errors++;
          if (it != holders.end())
            holders.erase(it);
        }
        Release(s);
      };
      for (int i = 0; i < kCycles; ++i) {
        const bool acquire =
            held.empty() || (held.size() < kMaxHeld && std::bernoulli_distribution(0.5)(rng));
        if (!acquire) {
          release_one(std::uniform_int_distribution<size_t>(0, held.size() - 1)(rng));
          continue;
        }
        const unsigned cls =
            classes[std::uniform_int_distribution<size_t>(0, std::size(classes) - 1)(rng)];
        hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
        if (s == nullptr) {
          errors++;
          continue;
        }
        if (s->class_idx != cls || s->used != 0 || s->owner.load() != heap.get() ||
            s->state != HAK_SLAB_ACTIVE) {
          errors++;
        }
        const Stamp st{static_cast<uint64_t>(t) + 1, static_cast<uint64_t>(i)};
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!holders.emplace(s, st.thread).second)
            errors++; // held by someone else
        }
        WriteStamp(s, st);
        held.emplace_back(s, st);
      }
      while (!held.empty())
        release_one(held.size() - 1);
    });
  }
  for (auto &th : threads)
    th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(holders.empty());
  EXPECT_EQ(SuperSlabs(), ss_base) << "every SuperSlab emptied by the test is returned";
  for (unsigned c = 0; c < HAK_NUM_CLASSES; ++c)
    EXPECT_EQ(GSlabs(c), slab_base[c]) << c;
}

// Slots of one SuperSlab are handed out once each; releasing them all
// returns the SuperSlab.
TEST_F(SharedPool, MediumSuperSlabFillsAndEmpties) {
  const unsigned cls = hak_size_class_of(131072);
  const uint64_t ss_base = SuperSlabs();
  std::unique_ptr<hak_heap> heap = NewHeap();
  std::vector<hak_slab *> held;
  std::set<hak_slab *> distinct;
  for (int i = 0; i < 12; ++i) { // three medium SuperSlabs' worth
    hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
    ASSERT_NE(s, nullptr);
    EXPECT_TRUE(distinct.insert(s).second);
    held.push_back(s);
  }
  EXPECT_GE(SuperSlabs(), ss_base + 3);
  EXPECT_LE(SuperSlabs(), ss_base + 3 + 1);
  for (hak_slab *s : held) {
    Release(s);
    EXPECT_EQ(s->state, HAK_SLAB_FREE);
  }
  EXPECT_EQ(SuperSlabs(), ss_base);
}

// The slabs the pool hands out for each size follow the SuperSlab layout
// (moved here from superslab_test, where it went through hak_malloc).
TEST_F(SharedPool, SlabsFollowTheSuperSlabLayout) {
  std::unique_ptr<hak_heap> heap = NewHeap();
  for (size_t size : {size_t{16}, size_t{200}, size_t{5000}, size_t{20000}, size_t{130000}}) {
    SCOPED_TRACE(size);
    hak_slab *s = hak_shared_pool_acquire(hak_size_class_of(size), heap.get());
    ASSERT_NE(s, nullptr);
    void *p = Carve(s, 1).at(0);
    hak_superslab *ss = hak_superslab_of(p);
    EXPECT_EQ(ss->magic, HAK_SS_MAGIC ^ reinterpret_cast<uintptr_t>(ss));
    const unsigned kind = ss->kind;
    EXPECT_EQ(hak_segmap_kind(p), kind);
    EXPECT_EQ(kind, size <= HAK_SMALL_MAX ? HAK_REGION_SS_SMALL : HAK_REGION_SS_MEDIUM);
    EXPECT_EQ(hak_superslab_slab_of(p, kind), s);
    EXPECT_TRUE(hak_superslab_is_block(s, p));
    EXPECT_FALSE(hak_superslab_is_block(s, static_cast<uint8_t *>(p) + 8));
    EXPECT_GE(s->block_size, size);
    s->used = 0;
    Release(s);
  }
}

// A thread exits with blocks out: its slabs are abandoned. Another thread
// frees the blocks (remote frees into abandoned slabs); a forced sweep (what
// hak_trim runs) releases them and every count returns to where it was.
TEST_F(SharedPool, AbandonedSlabsAreSweptWhenForced) {
  const unsigned cls = hak_size_class_of(500);
  const uint64_t slabs_base = GSlabs(cls);
  const uint64_t abandoned_base = Abandoned();
  const uint64_t ss_base = SuperSlabs();

  std::vector<void *> blocks;
  std::set<hak_slab *> slabs;
  RunInThread([&] {
    std::unique_ptr<hak_heap> heap = NewHeap();
    for (int i = 0; i < 3; ++i) {
      hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
      ASSERT_NE(s, nullptr);
      slabs.insert(s);
      for (void *p : Carve(s, 100)) {
        std::memset(p, 0x5a, 500);
        blocks.push_back(p);
      }
    }
    for (hak_slab *s : slabs)
      hak_shared_pool_abandon(s); // what the thread's exit does with slabs in use
  });
  ASSERT_EQ(slabs.size(), 3u);
  EXPECT_EQ(Abandoned(), abandoned_base + slabs.size());
  EXPECT_EQ(GSlabs(cls), slabs_base + slabs.size());
  for (hak_slab *s : slabs) {
    EXPECT_EQ(s->state, HAK_SLAB_ABANDONED);
    EXPECT_EQ(s->owner.load(), nullptr);
    EXPECT_EQ(s->remote.load(), HAK_REMOTE_ABANDONED);
    EXPECT_EQ(s->used, 100u);
  }

  // The blocks survived their thread.
  for (void *p : blocks) {
    ASSERT_EQ(static_cast<unsigned char *>(p)[0], 0x5a);
    ASSERT_EQ(static_cast<unsigned char *>(p)[499], 0x5a);
  }

  RunInThread([&] {
    for (void *p : blocks)
      RemoteFree(p);
  });
  // Remote frees into abandoned slabs sweep at once, at most once per clock
  // tick, so some slabs may already be back; the forced sweep finishes.
  EXPECT_LE(GSlabs(cls), slabs_base + slabs.size());

  hak_shared_pool_sweep_abandoned(true);
  EXPECT_EQ(GSlabs(cls), slabs_base);
  EXPECT_EQ(Abandoned(), abandoned_base);
  EXPECT_EQ(SuperSlabs(), ss_base);
  // (The slabs' SuperSlabs may be unmapped now: their metadata is not read.)
}

// Without a forced sweep, the next slab acquisition (any class) runs it.
TEST_F(SharedPool, AbandonedSlabsAreSweptByNextAcquire) {
  const unsigned cls = hak_size_class_of(440);
  const uint64_t slabs_base = GSlabs(cls);
  const uint64_t abandoned_base = Abandoned();
  std::vector<void *> blocks;
  RunInThread([&] {
    std::unique_ptr<hak_heap> heap = NewHeap();
    std::vector<hak_slab *> mine;
    for (int i = 0; i < 2; ++i) {
      hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
      ASSERT_NE(s, nullptr);
      mine.push_back(s);
      for (void *p : Carve(s, 100))
        blocks.push_back(p);
    }
    for (hak_slab *s : mine)
      hak_shared_pool_abandon(s);
  });
  EXPECT_EQ(Abandoned(), abandoned_base + 2);
  RunInThread([&] {
    for (void *p : blocks)
      RemoteFree(p);
  });
  RunInThread([&] {
    std::unique_ptr<hak_heap> heap = NewHeap();
    hak_slab *s =
        hak_shared_pool_acquire(hak_size_class_of(6000), heap.get()); // no one abandoned it
    ASSERT_NE(s, nullptr);
    Release(s);
  });
  EXPECT_EQ(hak_shared_pool_sweep_wanted.load(), 0);
  EXPECT_EQ(GSlabs(cls), slabs_base);
  EXPECT_EQ(Abandoned(), abandoned_base);
}

// A heap acquiring the class of an abandoned slab adopts it, with the remote
// frees that came meanwhile.
TEST_F(SharedPool, AdoptionByAnotherHeap) {
  const unsigned cls = hak_size_class_of(600);
  const uint64_t slabs_base = GSlabs(cls);
  const uint64_t abandoned_base = Abandoned();
  const uint64_t adopted_base = Adopted();

  std::vector<void *> left; // blocks the exited thread leaves behind
  hak_slab *slab = nullptr;
  RunInThread([&] {
    std::unique_ptr<hak_heap> heap = NewHeap();
    slab = hak_shared_pool_acquire(cls, heap.get());
    ASSERT_NE(slab, nullptr);
    left = Carve(slab, 10);
    hak_shared_pool_abandon(slab);
  });
  ASSERT_NE(slab, nullptr);
  for (void *p : left)
    ASSERT_EQ(hak_superslab_slab_of(p, hak_segmap_kind(p)), slab);
  ASSERT_EQ(slab->state, HAK_SLAB_ABANDONED);
  EXPECT_EQ(Abandoned(), abandoned_base + 1);
  EXPECT_EQ(slab->used, 10u);

  // Two blocks come back remotely while the slab is abandoned.
  RunInThread([&] {
    RemoteFree(left[8]);
    RemoteFree(left[9]);
  });

  RunInThread([&] {
    std::unique_ptr<hak_heap> heap = NewHeap();
    hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
    ASSERT_EQ(s, slab) << "the abandoned slab was adopted";
    EXPECT_EQ(Adopted(), adopted_base + 1);
    EXPECT_EQ(Abandoned(), abandoned_base);
    EXPECT_EQ(s->owner.load(), heap.get());
    EXPECT_EQ(s->state, HAK_SLAB_ACTIVE);
    EXPECT_EQ(s->remote.load() & HAK_REMOTE_ABANDONED, 0u);
    EXPECT_EQ(GSlabs(cls), slabs_base + 1) << "no new slab";
    // The pending remote frees were taken over: 8 left, 2 on the free list.
    EXPECT_EQ(s->used, 8u);
    EXPECT_EQ(FreeList(s), (std::set<void *>{left[8], left[9]}));
    s->used = 0; // the new owner frees the rest locally
    Release(s);
  });
  EXPECT_EQ(GSlabs(cls), slabs_base);
  EXPECT_EQ(Abandoned(), abandoned_base);
}

// Threads exit with blocks out while others free them remotely and others
// acquire the same class (adopting): every block is freed exactly once, and at
// the end nothing of the class is left.
TEST_F(SharedPool, AbandonFreeAndAdoptConcurrently) {
  const unsigned cls = hak_size_class_of(300);
  const uint64_t slabs_base = GSlabs(cls);
  const uint64_t abandoned_base = Abandoned();

  std::mutex mu;
  std::vector<void *> handoff; // blocks whose slabs' heap is gone
  std::atomic<bool> producers_done{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> producers, consumers;
  for (int t = 0; t < 3; ++t) {
    producers.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        // Each round is a heap of its own, gone with blocks out.
        std::unique_ptr<hak_heap> heap = NewHeap();
        std::vector<void *> mine;
        std::vector<hak_slab *> slabs;
        while (mine.size() < 150) {
          hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
          if (s == nullptr) {
            errors++;
            break;
          }
          if (s->owner.load() != heap.get() || s->state != HAK_SLAB_ACTIVE)
            errors++;
          slabs.push_back(s);
          // An adopted slab's free blocks stay on its free list: carve anew.
          for (void *p : Carve(s, static_cast<unsigned>(150 - mine.size()))) {
            std::memset(p, t * 20 + round, 8);
            mine.push_back(p);
          }
        }
        for (hak_slab *s : slabs)
          hak_shared_pool_abandon(s);
        std::lock_guard<std::mutex> lock(mu);
        handoff.insert(handoff.end(), mine.begin(), mine.end());
      }
    });
  }
  std::atomic<size_t> freed{0};
  std::mutex owned_mu;
  std::vector<hak_slab *> owned; // adopted by consumers, handed back at the end
  for (int t = 0; t < 2; ++t) {
    consumers.emplace_back([&, t] {
      std::unique_ptr<hak_heap> heap = NewHeap();
      auto rng = Rng(100 + static_cast<uint64_t>(t));
      for (;;) {
        std::vector<void *> batch;
        {
          std::lock_guard<std::mutex> lock(mu);
          batch.swap(handoff);
        }
        if (batch.empty() && producers_done.load())
          break;
        for (void *p : batch) {
          RemoteFree(p);
          freed++;
          // Acquire the same class now and then, adopting abandoned slabs.
          if (!std::bernoulli_distribution(0.3)(rng))
            continue;
          hak_slab *s = hak_shared_pool_acquire(cls, heap.get());
          if (s == nullptr || s->owner.load() != heap.get() || s->state != HAK_SLAB_ACTIVE) {
            errors++;
            continue;
          }
          Collect(s);
          if (s->used == 0) {
            Release(s);
            continue;
          }
          std::lock_guard<std::mutex> lock(owned_mu);
          owned.push_back(s);
        }
        if (batch.empty())
          std::this_thread::yield();
      }
    });
  }
  for (auto &th : producers)
    th.join();
  producers_done = true;
  for (auto &th : consumers)
    th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(freed.load(), size_t{3 * 20 * 150});
  // Every block is free now: the adopted slabs' owners (gone) would have
  // collected the last remote frees and given the slabs back.
  for (hak_slab *s : owned) {
    Collect(s);
    EXPECT_EQ(s->used, 0u);
    Release(s);
  }
  hak_shared_pool_sweep_abandoned(true);
  EXPECT_EQ(GSlabs(cls), slabs_base);
  EXPECT_EQ(Abandoned(), abandoned_base);
}

} // namespace
