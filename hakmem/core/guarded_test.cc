// Unit test of the guarded pool: placement against the guard pages, the
// reports of overflow, underflow, use after free and double free (each
// matched whole, both stacks naming this file's functions), quarantine,
// exhaustion, threads and fork. Every eligible allocation of the box is
// guarded here (HAKMEM_GUARD_SAMPLE=1); the box is called directly.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/core/box_test_util.h"
#include "hakmem/core/guarded.h"
#include "hakmem/core/options.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/stats.h"

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer keeps SIGSEGV for itself unless told to let the program
// install its own handler, which the guarded pool's is.
extern "C" const char *__asan_default_options() { return "allow_user_segv_handler=1"; }
#endif

// The functions the reports' stacks must name: not inlined, not tail calls,
// C names (so the symbol table holds them as written).
extern "C" {
__attribute__((noinline)) void *guarded_test_allocate(size_t size, size_t align) {
  void *p = hak_guarded_alloc(size, align, false);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void guarded_test_free(void *p) {
  hak_guarded_free(p, "free()");
  __asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) void guarded_test_write(void *p, ptrdiff_t offset) {
  static_cast<volatile char *>(p)[offset] = 1;
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) char guarded_test_read(const void *p, ptrdiff_t offset) {
  char c = static_cast<const volatile char *>(p)[offset];
  __asm__ volatile("" ::: "memory");
  return c;
}
}

namespace {

void StartPool() {
  hak_options_load();
  hak_options_current.guard_sample = 1;
  hak_guarded_init();
}

class Guarded : public ::testing::Test {
protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    StartPool();
    ASSERT_TRUE(hak_guarded_on);
    hak_guarded_set_placement(HAK_GUARDED_PLACE_END);
  }
  void TearDown() override { hak_guarded_set_placement(HAK_GUARDED_PLACE_RANDOM); }
};

// Whether the byte at a can be read, without touching it: a pipe's write
// copies from the buffer and fails with EFAULT where it cannot.
bool Readable(uintptr_t a) {
  int fds[2];
  if (pipe(fds) != 0)
    return false;
  bool ok = write(fds[1], reinterpret_cast<const void *>(a), 1) == 1;
  close(fds[0]);
  close(fds[1]);
  return ok;
}

uintptr_t PageUp(uintptr_t a) { return (a + HAK_PAGE_SIZE - 1) & ~(HAK_PAGE_SIZE - 1); }

// The default action of sig as a death test's exit predicate (the sanitizers'
// runtimes take a repeated fault themselves: see crash_test.cc).
std::function<bool(int)> KilledBy(int sig) {
  return [sig](int status) {
#if defined(__SANITIZE_THREAD__)
    if (WIFEXITED(status) && WEXITSTATUS(status) == 66)
      return true;
#endif
#if defined(__SANITIZE_ADDRESS__)
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
      return true;
#endif
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
  };
}

// A stack in a report whose first frame is fn (of this test binary).
std::string StackOf(const std::string &title, const std::string &fn) {
  return "  " + title + " by thread [0-9]+:\n    #0 0x[0-9a-f]+ in " + fn +
         " \\([^\n]*\\+0x[0-9a-f]+\\)\n(    #[0-9]+ [^\n]*\n)*";
}

const char kHex[] = "0x[0-9a-f]+";

// The end of a report: the end of the output, except under the sanitizers,
// whose runtimes report the repeated fault after it.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
const char kEnd[] = "";
#else
const char kEnd[] = "$";
#endif

// ---- placement -------------------------------------------------------------

TEST_F(Guarded, EndTouchesTheGuardPage) {
  for (size_t align = 16; align <= HAK_PAGE_SIZE; align *= 2) {
    for (size_t size : {size_t{0}, size_t{1}, size_t{16}, size_t{100}, size_t{4096}, size_t{5000},
                        size_t{HAK_GUARDED_MAX_SIZE}}) {
      SCOPED_TRACE(testing::Message() << "size " << size << " align " << align);
      auto p = reinterpret_cast<uintptr_t>(guarded_test_allocate(size, align));
      ASSERT_NE(p, 0u);
      EXPECT_EQ(hak_segmap_kind(reinterpret_cast<void *>(p)), HAK_REGION_GUARDED);
      EXPECT_EQ(p % align, 0u);
      size_t bytes = size != 0 ? size : 1;
      // The block's end is within the alignment of its page's end, and the
      // next page is the guard.
      EXPECT_LT(PageUp(p + bytes) - (p + bytes), align);
      EXPECT_TRUE(Readable(p));
      EXPECT_TRUE(Readable(p + bytes - 1));
      EXPECT_FALSE(Readable(PageUp(p + bytes)));
      EXPECT_TRUE(hak_guarded_owns_live(reinterpret_cast<void *>(p)));
      EXPECT_EQ(hak_guarded_usable_size(reinterpret_cast<void *>(p), "malloc_usable_size()"), size);
      for (size_t i = 0; i < size; i++)
        ASSERT_EQ(reinterpret_cast<const char *>(p)[i], 0) << "fresh blocks read as zero";
      memset(reinterpret_cast<void *>(p), 0x5a, size);
      guarded_test_free(reinterpret_cast<void *>(p));
      EXPECT_FALSE(hak_guarded_owns_live(reinterpret_cast<void *>(p)));
      EXPECT_FALSE(Readable(p)) << "a freed block's pages are PROT_NONE";
    }
  }
}

TEST_F(Guarded, UnderflowShareStartsAtThePage) {
  hak_guarded_set_placement(HAK_GUARDED_PLACE_START);
  for (size_t align = 16; align <= HAK_PAGE_SIZE; align *= 2) {
    for (size_t size : {size_t{1}, size_t{48}, size_t{4097}, size_t{HAK_GUARDED_MAX_SIZE}}) {
      auto p = reinterpret_cast<uintptr_t>(guarded_test_allocate(size, align));
      ASSERT_NE(p, 0u);
      EXPECT_EQ(p % HAK_PAGE_SIZE, 0u);
      EXPECT_TRUE(Readable(p + size - 1));
      EXPECT_FALSE(Readable(p - 1)) << "the page before the block is the guard";
      guarded_test_free(reinterpret_cast<void *>(p));
    }
  }
}

TEST_F(Guarded, RandomPlacementUsesBothEnds) {
  hak_guarded_set_placement(HAK_GUARDED_PLACE_RANDOM);
  int starts = 0, ends = 0;
  for (int i = 0; i < 400; i++) {
    auto p = reinterpret_cast<uintptr_t>(guarded_test_allocate(64, 16));
    ASSERT_NE(p, 0u);
    if (p % HAK_PAGE_SIZE == 0)
      starts++;
    else if (PageUp(p + 64) == p + 64)
      ends++;
    guarded_test_free(reinterpret_cast<void *>(p));
  }
  EXPECT_GT(starts, 40);
  EXPECT_GT(ends, 200);
  EXPECT_EQ(starts + ends, 400);
}

TEST_F(Guarded, Ineligible) {
  EXPECT_EQ(guarded_test_allocate(HAK_GUARDED_MAX_SIZE + 1, 16), nullptr);
  EXPECT_EQ(guarded_test_allocate(64, 2 * HAK_PAGE_SIZE), nullptr);
}

// ---- quarantine, exhaustion, statistics ---------------------------------------

TEST_F(Guarded, FreedSlotWaitsOldestReusedFirst) {
  // Fill every slot, free them in order: the next allocations reuse the
  // oldest freed first.
  std::vector<void *> blocks;
  for (void *p; (p = guarded_test_allocate(32, 16)) != nullptr;)
    blocks.push_back(p);
  ASSERT_GE(blocks.size(), 2u);
  for (void *p : blocks)
    guarded_test_free(p);
  EXPECT_EQ(hak_guarded_quarantined_slots(), blocks.size());
  void *again = guarded_test_allocate(32, 16);
  EXPECT_EQ(again, blocks[0]);
  EXPECT_FALSE(Readable(reinterpret_cast<uintptr_t>(blocks[1])));
  guarded_test_free(again);
}

TEST_F(Guarded, ExhaustedPoolFallsBackAndCounts) {
  uint64_t allocs0 = hak_stats_global.guarded_allocs.load();
  uint64_t fallbacks0 = hak_stats_global.guarded_fallbacks.load();
  uint64_t in_use0 = hak_stats_global.guarded_in_use.load();
  unsigned live0 = hak_guarded_live_slots();
  std::vector<void *> blocks;
  for (unsigned i = 0; i < HAK_GUARDED_SLOTS; i++) {
    void *p = guarded_test_allocate(100, 16);
    if (p == nullptr)
      break;
    blocks.push_back(p);
  }
  EXPECT_EQ(blocks.size(), HAK_GUARDED_SLOTS - live0);
  EXPECT_EQ(hak_stats_global.guarded_in_use.load(), in_use0 + blocks.size());
  EXPECT_EQ(guarded_test_allocate(100, 16), nullptr);
  EXPECT_EQ(guarded_test_allocate(1, 16), nullptr);
  EXPECT_EQ(hak_stats_global.guarded_fallbacks.load(), fallbacks0 + 2);
  EXPECT_EQ(hak_stats_global.guarded_allocs.load(), allocs0 + blocks.size());
  for (void *p : blocks)
    guarded_test_free(p);
  EXPECT_EQ(hak_stats_global.guarded_in_use.load(), in_use0);
  void *p = guarded_test_allocate(100, 16);
  EXPECT_NE(p, nullptr) << "a quarantined slot is reused once none is empty";
  guarded_test_free(p);
}

// ---- reports -----------------------------------------------------------------

TEST_F(Guarded, OverflowByOneByte) {
  EXPECT_EXIT(
      {
        void *p = guarded_test_allocate(64, 16);
        guarded_test_write(p, 64);
      },
      KilledBy(SIGSEGV),
      std::string("^hakmem: guarded: heap-buffer-overflow at ") + kHex + ": block " + kHex +
          " of 64 bytes, offset 64 \\((write|access)\\)\n" +
          StackOf("allocated", "guarded_test_allocate") + kEnd);
}

TEST_F(Guarded, UnderflowByOneByte) {
  hak_guarded_set_placement(HAK_GUARDED_PLACE_START);
  EXPECT_EXIT(
      {
        void *p = guarded_test_allocate(200, 16);
        guarded_test_read(p, -1);
      },
      KilledBy(SIGSEGV),
      std::string("^hakmem: guarded: heap-buffer-underflow at ") + kHex + ": block " + kHex +
          " of 200 bytes, offset -1 \\((read|access)\\)\n" +
          StackOf("allocated", "guarded_test_allocate") + kEnd);
}

TEST_F(Guarded, ReadAfterFree) {
  EXPECT_EXIT(
      {
        void *p = guarded_test_allocate(1000, 16);
        guarded_test_free(p);
        guarded_test_read(p, 500);
      },
      KilledBy(SIGSEGV),
      std::string("^hakmem: guarded: use-after-free (read|access) at ") + kHex + ": block " + kHex +
          " of 1000 bytes, offset 500\n" + StackOf("allocated", "guarded_test_allocate") +
          StackOf("freed", "guarded_test_free") + kEnd);
}

TEST_F(Guarded, WriteAfterFree) {
  EXPECT_EXIT(
      {
        void *p = guarded_test_allocate(4096, 64);
        guarded_test_free(p);
        guarded_test_write(p, 0);
      },
      KilledBy(SIGSEGV),
      std::string("^hakmem: guarded: use-after-free (write|access) at ") + kHex + ": block " +
          kHex + " of 4096 bytes, offset 0\n" + StackOf("allocated", "guarded_test_allocate") +
          StackOf("freed", "guarded_test_free") + kEnd);
}

TEST_F(Guarded, DoubleFree) {
  EXPECT_EXIT(
      {
        void *p = guarded_test_allocate(24, 16);
        guarded_test_free(p);
        guarded_test_free(p);
      },
      KilledBy(SIGABRT),
      std::string("^hakmem: guarded: double free at ") + kHex + ": block " + kHex +
          " of 24 bytes, offset 0 \\(free\\(\\)\\)\n" +
          StackOf("allocated", "guarded_test_allocate") + StackOf("freed", "guarded_test_free") +
          StackOf("freed again", "guarded_test_free") + kEnd);
}

// An overflow into the bytes between a block's end and its page's end (a size
// not a multiple of the alignment) faults nowhere: the free finds it.
TEST_F(Guarded, OverflowIntoSlackFoundAtFree) {
  EXPECT_EXIT(
      {
        void *p = guarded_test_allocate(13, 16);
        guarded_test_write(p, 13);
        guarded_test_free(p);
      },
      KilledBy(SIGABRT),
      std::string("^hakmem: guarded: heap-buffer-overflow at ") + kHex + ": block " + kHex +
          " of 13 bytes, offset 13 \\(found by free\\(\\)\\)\n" +
          StackOf("allocated", "guarded_test_allocate") + StackOf("freed", "guarded_test_free") +
          kEnd);
}

TEST_F(Guarded, InteriorPointerIsInvalid) {
  EXPECT_DEATH(
      {
        char *p = static_cast<char *>(guarded_test_allocate(64, 16));
        hak_guarded_free(p + 16, "free()");
      },
      std::string("^hakmem: free\\(\\): invalid pointer ") + kHex +
          " \\(not a block hakmem handed out\\)\n$");
}

TEST_F(Guarded, UsableSizeOfFreedBlock) {
  EXPECT_DEATH(
      {
        void *p = guarded_test_allocate(64, 16);
        guarded_test_free(p);
        hak_guarded_usable_size(p, "malloc_usable_size()");
      },
      std::string("^hakmem: guarded: use-after-free at ") + kHex + ": block " + kHex +
          " of 64 bytes, offset 0 \\(malloc_usable_size\\(\\)\\)\n");
}

// A fault outside the pool is not the pool's: it goes on to the handler
// installed before (here the default action), with no report.
TEST_F(Guarded, FaultOutsideThePoolGoesOn) {
  EXPECT_EXIT(
      {
        static char page[HAK_PAGE_SIZE] __attribute__((aligned(4096)));
        mprotect(page, sizeof page, PROT_NONE);
        guarded_test_write(page, 0);
      },
      KilledBy(SIGSEGV),
#if defined(__SANITIZE_ADDRESS__)
      "AddressSanitizer" // its handler was there before the pool's
#elif defined(__SANITIZE_THREAD__)
      "^ThreadSanitizer:DEADLYSIGNAL" // its runtime takes the fault the pool passed on
#else
      "^$"
#endif
  );
}

// ---- threads and fork ----------------------------------------------------------

TEST_F(Guarded, ThreadsRace) {
  hak_guarded_set_placement(HAK_GUARDED_PLACE_RANDOM);
  uint64_t in_use0 = hak_stats_global.guarded_in_use.load();
  std::atomic<uint64_t> got{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([t, &got] {
      std::vector<std::pair<unsigned char *, size_t>> mine;
      uint64_t rng = static_cast<uint64_t>(t) * 7919 + 1;
      for (int i = 0; i < 3000; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = (rng >> 33) % 3000;
        auto *p = static_cast<unsigned char *>(guarded_test_allocate(size, 16));
        if (p != nullptr) {
          memset(p, t + 1, size);
          mine.emplace_back(p, size);
          got.fetch_add(1, std::memory_order_relaxed);
        }
        if (mine.size() > 20 || (p == nullptr && !mine.empty())) {
          auto [q, n] = mine.front();
          mine.erase(mine.begin());
          for (size_t k = 0; k < n; k++)
            ASSERT_EQ(q[k], t + 1);
          guarded_test_free(q);
        }
      }
      for (auto [q, n] : mine)
        guarded_test_free(q);
    });
  }
  for (auto &th : threads)
    th.join();
  EXPECT_GT(got.load(), 1000u);
  EXPECT_EQ(hak_stats_global.guarded_in_use.load(), in_use0);
}

TEST_F(Guarded, ForkChildAllocatesAndFrees) {
  static std::once_flag once;
  std::call_once(once, [] {
    pthread_atfork(hak_guarded_fork_prepare, hak_guarded_fork_parent, hak_guarded_fork_child);
  });
  hak_guarded_set_placement(HAK_GUARDED_PLACE_RANDOM);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      void *p = guarded_test_allocate(128, 16);
      if (p != nullptr)
        guarded_test_free(p);
    }
  });
  void *kept = guarded_test_allocate(256, 16);
  ASSERT_NE(kept, nullptr);
  for (int i = 0; i < 50; i++) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(10); // a lock left held would hang the child: the alarm kills it
      for (int k = 0; k < 20; k++) {
        void *p = guarded_test_allocate(100, 16);
        if (p == nullptr)
          _exit(2);
        memset(p, 1, 100);
        guarded_test_free(p);
      }
      guarded_test_free(kept); // the parent's block, inherited
      _exit(hak_guarded_owns_live(kept) ? 3 : 0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child " << i << " status " << status;
    ASSERT_EQ(WEXITSTATUS(status), 0) << "child " << i;
  }
  stop.store(true);
  churn.join();
  EXPECT_TRUE(hak_guarded_owns_live(kept));
  guarded_test_free(kept);
}

} // namespace
