// The guarded pool through the ordinary malloc/free names, every eligible
// allocation guarded (HAKMEM_GUARD_SAMPLE=1 in the test's environment): the
// sampler sends each allocation of up to 16 KiB to the pool, free and
// realloc find guarded blocks by their region, and a bad access faults with
// a report naming the block and the stacks that allocated and freed it
// (this file's functions). Also: every entry point's contract holds for
// guarded blocks, the pool exhausted falls back to ordinary blocks
// (counted), threads racing, and fork.
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/core/guarded.h"
#include "hakmem/core/segmap.h"
#include "hakmem/tests/reliability/reliability_util.h"

// The functions the reports' stacks must name: C names, not inlined.
extern "C" {
__attribute__((noinline)) void *sample_test_malloc(size_t size) {
  void *p = malloc(size);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void sample_test_free(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  free(p);
  __asm__ volatile("" ::: "memory"); // not a tail call: this frame is in the stack
}

__attribute__((noinline)) void sample_test_write(void *p, ptrdiff_t offset) {
  static_cast<volatile char *>(p)[offset] = 1;
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) char sample_test_read(const void *p, ptrdiff_t offset) {
  char c = static_cast<const volatile char *>(p)[offset];
  __asm__ volatile("" ::: "memory");
  return c;
}
}

namespace {

using hakmem_reliability::Launder;

bool Guarded(const void *p) { return hak_segmap_kind(p) == HAK_REGION_GUARDED; }

class GuardedSample : public ::testing::Test {
protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    // The blocks of the death tests are placed against the page after them.
    hak_guarded_set_placement(HAK_GUARDED_PLACE_END);
  }
  void TearDown() override { hak_guarded_set_placement(HAK_GUARDED_PLACE_RANDOM); }
};

std::function<bool(int)> KilledBy(int sig) {
  return [sig](int status) { return WIFSIGNALED(status) && WTERMSIG(status) == sig; };
}

// A stack whose first frame is fn, of this binary.
std::string StackOf(const std::string &title, const std::string &fn) {
  return "  " + title + " by thread [0-9]+:\n    #0 0x[0-9a-f]+ in " + fn +
         " \\([^\n]*\\+0x[0-9a-f]+\\)\n(    #[0-9]+ [^\n]*\n)*";
}

const std::string kHex = "0x[0-9a-f]+";

TEST_F(GuardedSample, EveryEligibleAllocationIsGuarded) {
  hak_stats before, after;
  hak_stats_get(&before);
  void *small = sample_test_malloc(24);
  void *page = sample_test_malloc(4096);
  void *most = sample_test_malloc(HAK_GUARDED_MAX_SIZE);
  void *large = sample_test_malloc(HAK_GUARDED_MAX_SIZE + 1);
  EXPECT_TRUE(Guarded(small));
  EXPECT_TRUE(Guarded(page));
  EXPECT_TRUE(Guarded(most));
  EXPECT_FALSE(Guarded(large)) << "larger than a slot";
  hak_stats_get(&after);
  EXPECT_GE(after.guarded_allocs - before.guarded_allocs, 3u);
  // (The test's own allocations are guarded too: the pool's totals move
  // with them, so each block is asked about itself.)
  for (void *p : {small, page, most})
    EXPECT_TRUE(hak_owns(p)) << p;
  for (void *p : {small, page, most, large})
    sample_test_free(p);
  for (void *p : {small, page, most})
    EXPECT_FALSE(hak_owns(p)) << "freed: " << p;
}

// calloc, realloc, the aligned allocators and malloc_usable_size keep their
// contracts for guarded blocks.
TEST_F(GuardedSample, EntryPointsKeepTheirContracts) {
  auto *z = static_cast<unsigned char *>(calloc(100, 7));
  ASSERT_TRUE(Guarded(z));
  for (size_t i = 0; i < 700; i++)
    ASSERT_EQ(z[i], 0) << i;
  EXPECT_EQ(malloc_usable_size(z), 700u) << "the size asked for";
  memset(z, 0x5a, 700);
  auto *r = static_cast<unsigned char *>(realloc(z, 3000));
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(Guarded(r));
  for (size_t i = 0; i < 700; i++)
    ASSERT_EQ(r[i], 0x5a) << i;
  r = static_cast<unsigned char *>(realloc(r, 10));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r[9], 0x5a);
  free(r);
  for (size_t align : {size_t{32}, size_t{64}, size_t{256}, size_t{4096}}) {
    void *a = nullptr;
    ASSERT_EQ(posix_memalign(&a, align, 100), 0);
    EXPECT_TRUE(Guarded(a)) << align;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % align, 0u) << align;
    free(a);
    void *b = aligned_alloc(align, align * 2);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % align, 0u) << align;
    free(b);
  }
  void *zero = malloc(0);
  ASSERT_NE(zero, nullptr);
  void *zero2 = malloc(0);
  EXPECT_NE(zero, zero2) << "each malloc(0) a block of its own";
  free(zero);
  free(zero2);
  EXPECT_TRUE(hak_owns(Launder(sample_test_malloc(40))) != 0);
}

TEST_F(GuardedSample, OverflowByOneByte) {
  EXPECT_EXIT(
      {
        void *p = sample_test_malloc(64);
        sample_test_write(p, 64);
      },
      KilledBy(SIGSEGV),
      "^hakmem: guarded: heap-buffer-overflow at " + kHex + ": block " + kHex +
          " of 64 bytes, offset 64 \\(write\\)\n" + StackOf("allocated", "sample_test_malloc") +
          "$");
}

TEST_F(GuardedSample, UnderflowByOneByte) {
  hak_guarded_set_placement(HAK_GUARDED_PLACE_START);
  EXPECT_EXIT(
      {
        void *p = sample_test_malloc(48);
        sample_test_read(p, -1);
      },
      KilledBy(SIGSEGV),
      "^hakmem: guarded: heap-buffer-underflow at " + kHex + ": block " + kHex +
          " of 48 bytes, offset -1 \\(read\\)\n" + StackOf("allocated", "sample_test_malloc") +
          "$");
}

TEST_F(GuardedSample, ReadAfterFree) {
  EXPECT_EXIT(
      {
        void *p = sample_test_malloc(512);
        sample_test_free(p);
        sample_test_read(p, 100);
      },
      KilledBy(SIGSEGV),
      "^hakmem: guarded: use-after-free read at " + kHex + ": block " + kHex +
          " of 512 bytes, offset 100\n" + StackOf("allocated", "sample_test_malloc") +
          StackOf("freed", "sample_test_free") + "$");
}

TEST_F(GuardedSample, WriteIntoTheMiddleOfAFreedBlock) {
  EXPECT_EXIT(
      {
        void *p = sample_test_malloc(2000);
        sample_test_free(p);
        sample_test_write(p, 1000);
      },
      KilledBy(SIGSEGV),
      "^hakmem: guarded: use-after-free write at " + kHex + ": block " + kHex +
          " of 2000 bytes, offset 1000\n" + StackOf("allocated", "sample_test_malloc") +
          StackOf("freed", "sample_test_free") + "$");
}

TEST_F(GuardedSample, DoubleFree) {
  EXPECT_EXIT(
      {
        void *p = sample_test_malloc(32);
        sample_test_free(p);
        sample_test_free(p);
      },
      KilledBy(SIGABRT),
      "^hakmem: guarded: double free at " + kHex + ": block " + kHex +
          " of 32 bytes, offset 0 \\(free\\(\\)\\)\n" + StackOf("allocated", "sample_test_malloc") +
          StackOf("freed", "sample_test_free") + StackOf("freed again", "sample_test_free") + "$");
}

// More live blocks than slots: the rest are ordinary blocks, counted as
// fallbacks, and every one is usable and freed as usual.
TEST_F(GuardedSample, ExhaustedPoolFallsBackAndCounts) {
  hak_stats before, after;
  hak_stats_get(&before);
  std::vector<char *> blocks;
  for (unsigned i = 0; i < HAK_GUARDED_SLOTS + 100; i++) {
    auto *p = static_cast<char *>(sample_test_malloc(64));
    ASSERT_NE(p, nullptr);
    memset(p, static_cast<int>(i), 64);
    blocks.push_back(p);
  }
  hak_stats_get(&after);
  EXPECT_EQ(after.guarded_in_use, HAK_GUARDED_SLOTS);
  EXPECT_GE(after.guarded_fallbacks - before.guarded_fallbacks, 100u);
  unsigned unguarded = 0;
  for (unsigned i = 0; i < blocks.size(); i++) {
    ASSERT_EQ(blocks[i][63], static_cast<char>(i));
    unguarded += !Guarded(blocks[i]);
  }
  EXPECT_GE(unguarded, 100u);
  for (char *p : blocks)
    sample_test_free(p);
  hak_stats_get(&after);
  EXPECT_EQ(after.guarded_in_use, before.guarded_in_use);
}

// Threads allocating and freeing guarded blocks at once, some freed by
// another thread than their own: nothing lost, no false report.
TEST_F(GuardedSample, ThreadsRace) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<void *> handoff[kThreads] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([t, &handoff] {
      for (int i = 0; i < kRounds; i++) {
        auto *p = static_cast<unsigned char *>(malloc(16 + (i % 50) * 16));
        ASSERT_NE(p, nullptr);
        p[0] = static_cast<unsigned char>(t);
        void *old = handoff[(t + 1) % kThreads].exchange(p);
        if (old != nullptr)
          free(old);
      }
    });
  for (auto &th : threads)
    th.join();
  for (auto &h : handoff)
    free(h.exchange(nullptr));
  hak_stats s;
  hak_stats_get(&s);
  EXPECT_EQ(s.guarded_faults, 0u);
}

// A child of a program with guarded blocks live (and threads that allocate)
// can allocate and free guarded blocks, and its parent's blocks.
TEST_F(GuardedSample, Fork) {
  void *parents = malloc(100);
  ASSERT_TRUE(Guarded(parents));
  std::atomic<bool> stop{false};
  std::thread churn([&stop] {
    while (!stop.load())
      free(malloc(64));
  });
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 1000; i++) {
      void *p = malloc(64);
      if (p == nullptr || !Guarded(p))
        _exit(2);
      free(p);
    }
    free(parents);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  stop.store(true);
  churn.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  free(parents);
}

} // namespace
