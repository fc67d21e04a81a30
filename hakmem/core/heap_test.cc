// Unit test of the heap box: the heap lock between two threads, the idle and
// remote notes that ask the purge box for a deadline, and the count of frees
// made by threads without a heap. Heaps are structs the test builds (the
// registry that makes real ones is thread_heap's).
#include "hakmem/core/heap.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"
#include "hakmem/core/purge.h"

namespace {

std::unique_ptr<hak_heap> NewHeap() { return std::unique_ptr<hak_heap>(new hak_heap{}); }

class HeapTest : public ::testing::Test {
protected:
  void SetUp() override {
    static std::once_flag once;
    std::call_once(once, [] {
      hak_options_load();
      hak_options_current.purge_thread = 0; // deadlines are read, never acted on
    });
    hak_options_current.decay_ms = 10000;
    // No pass is registered: a run just clears the deadline.
    hak_purge_try_run();
    ASSERT_EQ(hak_purge_due(), 0u);
  }
};

TEST_F(HeapTest, TrylockFailsWhileHeld) {
  auto h = NewHeap();
  EXPECT_TRUE(hak_heap_trylock(h.get()));
  EXPECT_FALSE(hak_heap_trylock(h.get()));
  std::thread([&] { EXPECT_FALSE(hak_heap_trylock(h.get())); }).join();
  hak_heap_unlock(h.get());
  std::thread([&] {
    EXPECT_TRUE(hak_heap_trylock(h.get()));
    hak_heap_unlock(h.get());
  }).join();
  EXPECT_TRUE(hak_heap_trylock(h.get()));
  hak_heap_unlock(h.get());
}

// The owner's lock waits for a trim that holds the heap on another thread.
TEST_F(HeapTest, LockWaitsForTheHolder) {
  auto h = NewHeap();
  hak_heap_lock(h.get());
  std::atomic<bool> got{false};
  std::thread other([&] {
    hak_heap_lock(h.get()); // spins, then yields
    got = true;
    hak_heap_unlock(h.get());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(got.load());
  hak_heap_unlock(h.get());
  other.join();
  EXPECT_TRUE(got.load());
}

// Two threads increment a plain counter under the lock: none is lost.
TEST_F(HeapTest, LockExcludes) {
  auto h = NewHeap();
  constexpr int kRounds = 100000;
  uint64_t counter = 0;
  auto work = [&] {
    for (int i = 0; i < kRounds; ++i) {
      if (i % 2 == 0) {
        hak_heap_lock(h.get());
      } else {
        while (!hak_heap_trylock(h.get())) {
        }
      }
      counter++;
      hak_heap_unlock(h.get());
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(counter, 2u * kRounds);
}

TEST_F(HeapTest, IdleTimeIsHalfTheDecayTime) {
  hak_options_current.decay_ms = 300;
  EXPECT_EQ(hak_heap_idle_ms(), 150u);
}

// A slow path notes the time and asks for a trim once the heap has been idle
// for hak_heap_idle_ms; a trimmed heap is busy again.
TEST_F(HeapTest, NoteSlowSetsLastSlowAndAsksForADeadline) {
  auto h = NewHeap();
  h->idle_trimmed = 1;
  const uint64_t before = hak_os_now_ms();
  hak_heap_note_slow(h.get());
  const uint64_t after = hak_os_now_ms();
  const uint64_t last = h->last_slow_ms.load();
  EXPECT_GE(last, before);
  EXPECT_LE(last, after);
  EXPECT_EQ(h->idle_trimmed.load(), 0);
  EXPECT_EQ(hak_purge_due(), last + hak_heap_idle_ms());
  // An earlier deadline that waits already is kept.
  hak_purge_try_run();
  hak_purge_wanted(before + 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(25)); // past a coarse clock tick
  hak_heap_note_slow(h.get());
  EXPECT_GT(h->last_slow_ms.load(), last);
  EXPECT_EQ(hak_purge_due(), before + 1);
}

// A remote free into a heap that a trim left idle asks for another trim, once;
// without the fast cache heaps are never trimmed, so nothing happens.
TEST_F(HeapTest, NoteRemoteRearmsATrimmedHeap) {
  auto h = NewHeap();
  hak_heap_note_remote(h.get()); // not trimmed: nothing to do
  EXPECT_EQ(h->retrim.load(), 0);
  EXPECT_EQ(hak_purge_due(), 0u);
  hak_heap_note_remote(nullptr); // a slab nobody owns

  h->idle_trimmed = 1;
  const uint64_t before = hak_os_now_ms();
  hak_heap_note_remote(h.get());
  const uint64_t after = hak_os_now_ms();
  if (HAKMEM_FASTCACHE) {
    EXPECT_EQ(h->retrim.load(), 1);
    EXPECT_EQ(h->idle_trimmed.load(), 0);
    EXPECT_GE(hak_purge_due(), before + hak_heap_idle_ms());
    EXPECT_LE(hak_purge_due(), after + hak_heap_idle_ms());
    // The next remote free finds the heap re-armed already.
    h->retrim = 0;
    hak_heap_note_remote(h.get());
    EXPECT_EQ(h->retrim.load(), 0);
  } else {
    EXPECT_EQ(h->retrim.load(), 0);
    EXPECT_EQ(h->idle_trimmed.load(), 1);
    EXPECT_EQ(hak_purge_due(), 0u);
  }
}

// Frees by threads without a heap are counted per class, from any thread.
TEST_F(HeapTest, OrphanFreesAreCounted) {
  const uint64_t before3 = hak_heap_orphan_frees(3), before4 = hak_heap_orphan_frees(4);
  std::thread a([] {
    for (int i = 0; i < 1000; ++i)
      hak_heap_orphan_free(3);
  });
  std::thread b([] {
    for (int i = 0; i < 1000; ++i)
      hak_heap_orphan_free(3);
  });
  a.join();
  b.join();
  hak_heap_orphan_free(4);
  EXPECT_EQ(hak_heap_orphan_frees(3), before3 + 2000);
  EXPECT_EQ(hak_heap_orphan_frees(4), before4 + 1);
}

// The current heap is the thread's own.
TEST_F(HeapTest, CurrentHeapIsPerThread) {
  auto h = NewHeap();
  hak_heap *saved = hak_tls.heap;
  hak_tls.heap = h.get();
  EXPECT_EQ(hak_heap_current(), h.get());
  std::thread([] { EXPECT_EQ(hak_heap_current(), nullptr); }).join();
  hak_tls.heap = saved;
}

} // namespace
