// Unit test of maintenance, the top box: initialisation (options loaded
// once, from the environment of the process), the purge pass it registers,
// malloc_trim's work, and fork. Memory is allocated through the slab path
// (the fast cache's paths and the thread's heap), as malloc does.
//
// Cases that need hak_maintenance_init to be the process's first run in a fresh process:
// this binary re-executed (a threadsafe-style death test), with HAKMEM_*
// variables set before; such a child reports a failed check on stderr and
// exits non-zero.
#include "hakmem/core/maintenance.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"
#include "hakmem/core/page_arena.h"
#include "hakmem/core/purge.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/stats.h"
#include "hakmem/core/superslab.h"
#include "hakmem/core/thread_heap.h"
#include "hakmem/core/tcache.h"

namespace {

using hakmem_box_test::RunInThread;

class ThreadsafeDeathTests : public ::testing::Environment {
public:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};
::testing::Environment *const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ThreadsafeDeathTests);

#define CHILD_CHECK(cond)                                                                          \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

// Runs fn (returning 0 on success) in a fresh process.
#define EXPECT_OK_IN_FRESH_PROCESS(fn) EXPECT_EXIT(_exit(fn()), ::testing::ExitedWithCode(0), "")

hak_slab *SlabOf(const void *p) {
  const unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return nullptr;
  return hak_superslab_slab_of(p, kind);
}

// malloc and free of a slab block as the API does them: initialisation and
// the thread's heap first, then a bin's hit or the fast cache's slow path.
void *Alloc(size_t size) {
  hak_maintenance_init();
  const unsigned cls = hak_size_class_of(size);
  hak_heap *h = hak_thread_heap_get();
  void *b = nullptr;
#if HAKMEM_FASTCACHE
  b = hak_tcache_pop(HAK_BIN_SLOT(hak_tcache_bin_of_class(cls)));
#endif
  return b != nullptr ? b : hak_tcache_alloc_slow(h, cls, UINT32_MAX);
}

void Free(void *p) {
  hak_slab *s = SlabOf(p);
  const unsigned cls = s->class_idx;
#if HAKMEM_FASTCACHE
  if (hak_tcache_push(HAK_BIN_SLOT(hak_tcache_bin_of_class(cls)), p))
    return;
#endif
  hak_tcache_free_slow(hak_thread_heap_get(), p, s, cls);
}

uint64_t Stat(const std::atomic<uint64_t> &c) { return c.load(); }

// Allocates n blocks of size on a thread of its own, frees them there, and
// lets the thread exit.
void ThreadAllocatesFreesAndExits(size_t size, size_t n) {
  RunInThread([=] {
    std::vector<void *> blocks;
    for (size_t i = 0; i < n; ++i) {
      void *p = Alloc(size);
      if (p == nullptr)
        break;
      std::memset(p, 0x5a, size);
      blocks.push_back(p);
    }
    for (void *p : blocks)
      Free(p);
  });
}

// ---- initialisation ---------------------------------------------------------

int InitLoadsOptionsOnce() {
  CHILD_CHECK(hak_options_current.decay_ms == 0); // nothing loaded before the first init
  CHILD_CHECK(hak_integrity_free_key == 0);
  hak_maintenance_init();
  CHILD_CHECK(hak_options_current.decay_ms == 1234);
  CHILD_CHECK(hak_options_current.heap_stash == 3);
  CHILD_CHECK(hak_options_current.tcache_max == 17);
  CHILD_CHECK(hak_options_current.check_level == HAK_CHECK_OFF);
  CHILD_CHECK(hak_integrity_level == (HAKMEM_HARDENED ? HAK_CHECK_CHEAP : HAK_CHECK_OFF));
  CHILD_CHECK(hak_integrity_free_key != 0); // the checks' key is drawn
  const uintptr_t key = hak_integrity_free_key;
  // A thread's heap can be had (the thread-exit key exists); its bins follow
  // HAKMEM_TCACHE_MAX.
  hak_heap *h = hak_thread_heap_get();
  CHILD_CHECK(h != nullptr);
  const unsigned bin = hak_tcache_bin_of_class(hak_size_class_of(64));
  CHILD_CHECK(hak_tls.bins->cap[bin] == (HAKMEM_FASTCACHE ? 17u : 0u));
  // Again: nothing is loaded or drawn anew.
  hak_options_current.decay_ms = 99;
  hak_maintenance_init();
  hak_maintenance_init();
  CHILD_CHECK(hak_options_current.decay_ms == 99);
  CHILD_CHECK(hak_integrity_free_key == key);
  CHILD_CHECK(hak_thread_heap_get() == h);
  return 0;
}

TEST(MaintenanceInit, LoadsTheOptionsOnceAndIsIdempotent) {
  setenv("HAKMEM_DECAY_MS", "1234", 1);
  setenv("HAKMEM_HEAP_STASH", "3", 1);
  setenv("HAKMEM_TCACHE_MAX", "17", 1);
  setenv("HAKMEM_CHECK", "off", 1);
  EXPECT_OK_IN_FRESH_PROCESS(InitLoadsOptionsOnce);
  unsetenv("HAKMEM_DECAY_MS");
  unsetenv("HAKMEM_HEAP_STASH");
  unsetenv("HAKMEM_TCACHE_MAX");
  unsetenv("HAKMEM_CHECK");
}

// ---- the purge pass ------------------------------------------------------------

// The pass hak_maintenance_init registers gives back what an exited thread freed: its
// SuperSlabs wait in the arena for the decay time, then go to the OS.
TEST(MaintenancePass, WhatAnExitedThreadFreedGoesBack) {
  hak_maintenance_init();
  const uint64_t purged = Stat(hak_stats_global.purged);
  const uint64_t superslabs = Stat(hak_stats_global.superslabs);
  ThreadAllocatesFreesAndExits(2048, 3000); // 6 MiB: a few SuperSlabs
  EXPECT_EQ(Stat(hak_stats_global.superslabs), superslabs) << "every slab went back at exit";
  EXPECT_GT(Stat(hak_stats_global.cached), 0u) << "its SuperSlabs wait in the arena";
  EXPECT_NE(hak_purge_due(), 0u);
  const uint64_t now = hak_os_now_ms();
  const uint64_t next = hak_maintenance_pass();
  EXPECT_GT(next, now) << "something waits: the pass says when it falls due";
  // The purge thread runs the registered pass once it is due; a tick (any
  // slow path) runs it too, should the thread be slow to start.
  for (int ms = 0; ms < 10000 && Stat(hak_stats_global.cached) > 0; ms += 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t due = hak_purge_due();
    if (due != 0 && hak_os_now_ms() >= due)
      hak_purge_try_run();
  }
  EXPECT_EQ(Stat(hak_stats_global.cached), 0u);
  EXPECT_GE(Stat(hak_stats_global.purged) - purged, 2 * HAK_SS_SIZE);
}

// ---- malloc_trim ------------------------------------------------------------------

int TrimGivesBackWhatIsCached() {
  hak_maintenance_init();
  CHILD_CHECK(!hak_options_current.purge_thread && hak_options_current.decay_ms == 3600000 &&
              hak_options_current.heap_stash == 2);
  const uint64_t superslabs = Stat(hak_stats_global.superslabs);
  // An exited thread's heap waits in the stash with its slabs...
  ThreadAllocatesFreesAndExits(2048, 3000);
  CHILD_CHECK(Stat(hak_stats_global.superslabs) > superslabs);
  // ...and a large region waits in the arena, touched.
  constexpr size_t kRegion = size_t{32} << 20;
  size_t mapped = 0;
  bool zeroed = false;
  void *r = hak_page_arena_alloc(kRegion, &mapped, &zeroed);
  CHILD_CHECK(r != nullptr);
  std::memset(r, 1, kRegion);
  hak_page_arena_free(r, mapped);
  CHILD_CHECK(Stat(hak_stats_global.cached) >= kRegion);
  const uint64_t purged = Stat(hak_stats_global.purged);
  CHILD_CHECK(hak_maintenance_trim());
  CHILD_CHECK(Stat(hak_stats_global.purged) - purged >= kRegion + 2 * HAK_SS_SIZE);
  CHILD_CHECK(Stat(hak_stats_global.cached) == 0);
  CHILD_CHECK(Stat(hak_stats_global.superslabs) == superslabs); // the stashed heap retired
  CHILD_CHECK(!hak_maintenance_trim());                         // nothing left to give back
  return 0;
}

// malloc_trim gives back at once what would otherwise wait for the decay
// time: stashed heaps, cached regions. No purge thread, an hour's decay.
TEST(MaintenanceTrim, GivesBackWhatIsCachedAndSaysSo) {
  setenv("HAKMEM_DECAY_MS", "3600000", 1);
  setenv("HAKMEM_PURGE_THREAD", "0", 1);
  setenv("HAKMEM_HEAP_STASH", "2", 1);
  EXPECT_OK_IN_FRESH_PROCESS(TrimGivesBackWhatIsCached);
  unsetenv("HAKMEM_DECAY_MS");
  unsetenv("HAKMEM_PURGE_THREAD");
  unsetenv("HAKMEM_HEAP_STASH");
}

// ---- fork ------------------------------------------------------------------------

// In a fork child: keeps this thread's heap, allocates on this thread and
// on a new one, and trims.
int ChildAllocates(hak_heap *mine) {
  alarm(30); // a lock left held across fork() would hang the child
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // ThreadSanitizer cannot follow a new thread here (it reuses the id of a
  // parent's thread, which it still counts as live), and AddressSanitizer's
  // thread registry may be left locked by a parent's thread: no thread.
  hak_options_current.purge_thread = 0;
  constexpr bool kNewThread = false;
#else
  constexpr bool kNewThread = true;
#endif
  CHILD_CHECK(hak_thread_heap_get() == mine);
  CHILD_CHECK(mine->lock.load() == 0);
  std::vector<void *> blocks;
  for (int i = 0; i < 2000; ++i) {
    void *p = Alloc(i % 2 ? 100 : 3000);
    CHILD_CHECK(p != nullptr);
    std::memset(p, 0x33, 100);
    blocks.push_back(p);
  }
  if (kNewThread) {
    std::atomic<bool> ok{false};
    std::thread([&] {
      void *p = Alloc(5000);
      ok = p != nullptr;
      if (p != nullptr)
        Free(p);
    }).join();
    CHILD_CHECK(ok);
  }
  for (void *p : blocks)
    Free(p);
  hak_maintenance_trim();
  CHILD_CHECK(Alloc(64) != nullptr);
  return 0;
}

// A child of a multi-threaded parent, forked while other threads allocate,
// free, come and go, can allocate: every hakmem lock was held across fork().
TEST(MaintenanceFork, ChildOfAMultiThreadedParentCanAllocate) {
  void *mine = Alloc(64); // this thread's heap, the one the child keeps
  ASSERT_NE(mine, nullptr);
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int t = 0; t < 2; ++t) {
    churn.emplace_back([&stop, t] {
      std::vector<void *> held;
      while (!stop.load()) {
        // Threads that come and go take the registry's lock.
        std::thread([t] {
          for (int i = 0; i < 50; ++i)
            Free(Alloc(16 + 200 * t + i));
        }).join();
        for (int i = 0; i < 200; ++i)
          held.push_back(Alloc(t ? 1024 : 100));
        for (void *p : held)
          Free(p);
        held.clear();
      }
    });
  }
  for (int k = 0; k < 10; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
      _exit(ChildAllocates(hak_tls.heap));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "fork " << k << ": wait status " << status;
  }
  stop = true;
  for (std::thread &t : churn)
    t.join();
  Free(mine);
}

} // namespace
