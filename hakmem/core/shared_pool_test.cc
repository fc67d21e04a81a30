// Unit test of the shared pool: slab slots handed out to many threads at once
// (never one slot to two holders), SuperSlabs returned when their slots are,
// and the slabs of exited threads abandoned, swept and adopted.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
void *sp_heap(void);
void *sp_acquire(unsigned cls, void *heap);
void sp_release(void *s);
void *sp_slab_of(const void *p);
void *sp_start(const void *s);
size_t sp_span(const void *s);
unsigned sp_used(const void *s);
unsigned sp_state(const void *s);
unsigned sp_class(const void *s);
void *sp_owner(const void *s);
uintptr_t sp_remote_word(const void *s);
uint64_t sp_superslabs(void);
uint64_t sp_gslabs(unsigned cls);
uint64_t sp_abandoned(void);
uint64_t sp_adopted(void);
int sp_sweep_wanted(void);
unsigned sp_class_of(size_t size);
unsigned sp_num_classes(void);
unsigned sp_state_active(void);
unsigned sp_state_abandoned(void);
unsigned sp_state_free(void);
uintptr_t sp_abandoned_mark(void);
}

namespace {

// The heap stash is off here (see NoHeapStash).
::testing::Environment *const kNoHeapStash =
    ::testing::AddGlobalTestEnvironment(new hakmem_box_test::NoHeapStash);

using hakmem_box_test::Rng;
using hakmem_box_test::RunInThread;
using hakmem_box_test::StartLine;
using hakmem_box_test::Worker;

struct Stamp {
  uint64_t thread;
  uint64_t serial;
};

void WriteStamp(void *s, const Stamp &st) {
  auto *start = static_cast<unsigned char *>(sp_start(s));
  std::memcpy(start, &st, sizeof st);
  std::memcpy(start + sp_span(s) - sizeof st, &st, sizeof st);
}

bool StampIntact(void *s, const Stamp &st) {
  auto *start = static_cast<unsigned char *>(sp_start(s));
  Stamp head, tail;
  std::memcpy(&head, start, sizeof head);
  std::memcpy(&tail, start + sp_span(s) - sizeof tail, sizeof tail);
  return head.thread == st.thread && head.serial == st.serial && tail.thread == st.thread &&
         tail.serial == st.serial;
}

// Many threads acquire and release slab slots of small and medium classes at
// once. Each holder stamps its slab's memory and checks the stamp before
// giving the slab back, and a registry of held slabs catches any slot handed
// to two holders at the same time.
TEST(SharedPool, ConcurrentAcquireReleaseNeverSharesASlot) {
  hak_trim(0);
  ASSERT_EQ(sp_abandoned(), 0u) << "adoptable slabs would make this test's slabs non-empty";
  const unsigned classes[] = {sp_class_of(48),    sp_class_of(700),   sp_class_of(4000),
                              sp_class_of(8192),  sp_class_of(12000), sp_class_of(40000),
                              sp_class_of(131072)};
  const uint64_t ss_base = sp_superslabs();
  std::vector<uint64_t> slab_base;
  for (unsigned c = 0; c < sp_num_classes(); ++c)
    slab_base.push_back(sp_gslabs(c));

  constexpr int kThreads = 8;
  constexpr int kCycles = 20000;
  constexpr size_t kMaxHeld = 6;
  std::mutex mu;
  std::unordered_map<void *, uint64_t> holders; // slab -> thread
  std::atomic<int> errors{0};
  StartLine start(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      void *heap = sp_heap();
      auto rng = Rng(static_cast<uint64_t>(t));
      std::vector<std::pair<void *, Stamp>> held;
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
        sp_release(s);
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
        void *s = sp_acquire(cls, heap);
        if (s == nullptr) {
          errors++;
          continue;
        }
        if (sp_class(s) != cls || sp_used(s) != 0 || sp_owner(s) != heap ||
            sp_state(s) != sp_state_active()) {
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
  EXPECT_EQ(sp_superslabs(), ss_base) << "every SuperSlab emptied by the test is returned";
  for (unsigned c = 0; c < sp_num_classes(); ++c)
    EXPECT_EQ(sp_gslabs(c), slab_base[c]) << c;
}

// Slots of one SuperSlab are handed out once each; releasing them all
// returns the SuperSlab.
TEST(SharedPool, MediumSuperSlabFillsAndEmpties) {
  hak_trim(0);
  const unsigned cls = sp_class_of(131072);
  const uint64_t ss_base = sp_superslabs();
  RunInThread([&] {
    void *heap = sp_heap();
    std::vector<void *> held;
    std::set<void *> distinct;
    for (int i = 0; i < 12; ++i) { // three medium SuperSlabs' worth
      void *s = sp_acquire(cls, heap);
      ASSERT_NE(s, nullptr);
      EXPECT_TRUE(distinct.insert(s).second);
      held.push_back(s);
    }
    EXPECT_GE(sp_superslabs(), ss_base + 3);
    EXPECT_LE(sp_superslabs(), ss_base + 3 + 1);
    for (void *s : held) {
      sp_release(s);
      EXPECT_EQ(sp_state(s), sp_state_free());
    }
    EXPECT_EQ(sp_superslabs(), ss_base);
  });
}

// A thread exits with blocks out: its slabs are abandoned. Another thread
// frees the blocks (remote frees into abandoned slabs); hak_trim sweeps them
// and every count returns to where it was.
TEST(SharedPool, AbandonedSlabsAreSweptByTrim) {
  // Sizes here stay below their class size: debug builds add a trailer.
  constexpr size_t kSize = 500;
  constexpr int kBlocks = 300; // about three slabs
  const unsigned cls = sp_class_of(kSize);
  hak_trim(0);
  const uint64_t slabs_base = sp_gslabs(cls);
  const uint64_t abandoned_base = sp_abandoned();
  const uint64_t ss_base = sp_superslabs();

  std::vector<void *> blocks;
  RunInThread([&] {
    for (int i = 0; i < kBlocks; ++i) {
      void *p = hak_malloc(kSize);
      ASSERT_NE(p, nullptr);
      std::memset(p, 0x5a, kSize);
      blocks.push_back(p);
    }
  });
  ASSERT_EQ(blocks.size(), static_cast<size_t>(kBlocks));
  std::set<void *> slabs;
  for (void *p : blocks)
    slabs.insert(sp_slab_of(p));
  EXPECT_GE(slabs.size(), 3u);
  EXPECT_EQ(sp_abandoned(), abandoned_base + slabs.size());
  EXPECT_EQ(sp_gslabs(cls), slabs_base + slabs.size());
  for (void *s : slabs) {
    EXPECT_EQ(sp_state(s), sp_state_abandoned());
    EXPECT_EQ(sp_owner(s), nullptr);
    EXPECT_EQ(sp_remote_word(s), sp_abandoned_mark());
  }

  // The blocks survived their thread.
  for (void *p : blocks) {
    ASSERT_EQ(static_cast<unsigned char *>(p)[0], 0x5a);
    ASSERT_EQ(static_cast<unsigned char *>(p)[kSize - 1], 0x5a);
  }

  RunInThread([&] {
    for (void *p : blocks)
      hak_free(p);
  });
  // Remote frees into abandoned slabs sweep at once, at most once per clock
  // tick, so some slabs may already be back; hak_trim finishes the job.
  EXPECT_LE(sp_gslabs(cls), slabs_base + slabs.size());

  hak_trim(0);
  EXPECT_EQ(sp_gslabs(cls), slabs_base);
  EXPECT_EQ(sp_abandoned(), abandoned_base);
  EXPECT_EQ(sp_superslabs(), ss_base);
  // (The slabs' SuperSlabs may be unmapped now: their metadata is not read.)
}

// Without hak_trim, the next slab acquisition (any class) runs the sweep.
TEST(SharedPool, AbandonedSlabsAreSweptByNextAcquire) {
  constexpr size_t kSize = 440;
  const unsigned cls = sp_class_of(kSize);
  hak_trim(0);
  const uint64_t slabs_base = sp_gslabs(cls);
  const uint64_t abandoned_base = sp_abandoned();
  std::vector<void *> blocks;
  RunInThread([&] {
    for (int i = 0; i < 200; ++i)
      blocks.push_back(hak_malloc(kSize));
  });
  EXPECT_GT(sp_abandoned(), abandoned_base);
  RunInThread([&] {
    for (void *p : blocks)
      hak_free(p);
  });
  RunInThread([&] {
    void *p = hak_malloc(6000); // a class no heap holds a slab of yet
    hak_free(p);
  });
  EXPECT_EQ(sp_gslabs(cls), slabs_base);
  EXPECT_EQ(sp_abandoned(), abandoned_base);
}

// A thread allocating the class of an abandoned slab adopts it: its blocks
// come from that slab, and it frees the exited thread's blocks locally.
TEST(SharedPool, AdoptionByAnotherThread) {
  constexpr size_t kSize = 600; // one class with or without the debug trailer
  const unsigned cls = sp_class_of(kSize);
  hak_trim(0);
  const uint64_t slabs_base = sp_gslabs(cls);
  const uint64_t abandoned_base = sp_abandoned();
  const uint64_t adopted_base = sp_adopted();

  std::vector<void *> left; // blocks the exited thread leaves behind
  RunInThread([&] {
    for (int i = 0; i < 10; ++i)
      left.push_back(hak_malloc(kSize));
  });
  void *slab = sp_slab_of(left[0]);
  for (void *p : left)
    ASSERT_EQ(sp_slab_of(p), slab);
  ASSERT_EQ(sp_state(slab), sp_state_abandoned());
  EXPECT_EQ(sp_abandoned(), abandoned_base + 1);
  EXPECT_EQ(sp_used(slab), 10u) << "cached blocks went back to the slab at exit";

  // Two blocks come back remotely while the slab is abandoned.
  RunInThread([&] {
    hak_free(left[8]);
    hak_free(left[9]);
  });
  left.resize(8);

  RunInThread([&] {
    void *p = hak_malloc(kSize);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(sp_slab_of(p), slab) << "the abandoned slab was adopted";
    EXPECT_EQ(sp_adopted(), adopted_base + 1);
    EXPECT_EQ(sp_abandoned(), abandoned_base);
    EXPECT_EQ(sp_owner(slab), sp_heap());
    EXPECT_EQ(sp_state(slab), sp_state_active());
    EXPECT_EQ(sp_remote_word(slab) & sp_abandoned_mark(), 0u);
    EXPECT_EQ(sp_gslabs(cls), slabs_base + 1) << "no new slab";
    // The pending remote frees were taken over: 8 left + 1 new (+ cached).
    hak_thread_flush();
    EXPECT_EQ(sp_used(slab), 9u);
    for (void *q : left)
      hak_free(q);
    hak_free(p);
    hak_thread_flush();
    EXPECT_EQ(sp_used(slab), 0u);
  });
  EXPECT_EQ(sp_gslabs(cls), slabs_base);
  EXPECT_EQ(sp_abandoned(), abandoned_base);
}

// Threads exit with live blocks while others free them and others allocate
// the same class (adopting): every block is freed exactly once, and at the
// end nothing of the class is left.
TEST(SharedPool, AbandonFreeAndAdoptConcurrently) {
  constexpr size_t kSize = 300;
  const unsigned cls = sp_class_of(kSize);
  hak_trim(0);
  const uint64_t slabs_base = sp_gslabs(cls);
  const uint64_t abandoned_base = sp_abandoned();

  std::mutex mu;
  std::vector<void *> handoff; // blocks whose allocating thread exits
  std::atomic<bool> producers_done{false};
  std::vector<std::thread> producers, consumers;
  for (int t = 0; t < 3; ++t) {
    producers.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        // Each round runs on a thread of its own, which exits holding blocks.
        std::thread inner([&, t, round] {
          std::vector<void *> mine;
          for (int i = 0; i < 150; ++i) {
            void *p = hak_malloc(kSize);
            if (p == nullptr)
              continue;
            std::memset(p, static_cast<int>(t * 20 + round), 8);
            mine.push_back(p);
          }
          std::lock_guard<std::mutex> lock(mu);
          handoff.insert(handoff.end(), mine.begin(), mine.end());
        });
        inner.join();
      }
    });
  }
  std::atomic<size_t> freed{0};
  for (int t = 0; t < 2; ++t) {
    consumers.emplace_back([&, t] {
      auto rng = Rng(100 + static_cast<uint64_t>(t));
      std::vector<void *> own;
      for (;;) {
        std::vector<void *> batch;
        {
          std::lock_guard<std::mutex> lock(mu);
          batch.swap(handoff);
        }
        if (batch.empty() && producers_done.load())
          break;
        for (void *p : batch) {
          hak_free(p);
          freed++;
          // Allocate the same class now and then, adopting abandoned slabs.
          if (std::bernoulli_distribution(0.3)(rng))
            own.push_back(hak_malloc(kSize));
          if (own.size() > 64) {
            for (void *q : own)
              hak_free(q);
            own.clear();
          }
        }
        if (batch.empty())
          std::this_thread::yield();
      }
      for (void *q : own)
        hak_free(q);
    });
  }
  for (auto &th : producers)
    th.join();
  producers_done = true;
  for (auto &th : consumers)
    th.join();
  EXPECT_EQ(freed.load(), size_t{3 * 20 * 150});
  hak_trim(0);
  EXPECT_EQ(sp_gslabs(cls), slabs_base);
  EXPECT_EQ(sp_abandoned(), abandoned_base);
}

} // namespace
