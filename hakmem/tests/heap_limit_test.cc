// The heap limit (hak_set_heap_limit, HAKMEM_HEAP_LIMIT_MB/_MODE) through the
// public API, and the statistics that explain RSS. Hard mode: threads racing
// at the limit get NULL with ENOMEM, never pass it, keep usable blocks, and
// can allocate again after freeing; every allocation call fails as documented.
// Soft mode: idle memory goes back before the mapped bytes pass the limit.
//
// The tests read os_mapped_peak, which only grows: they run in this order in
// one process, each choosing its limit at or above the peak left before it.
#include <errno.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/tests/test_util.h"

namespace {

using hakmem_test::FillPattern;
using hakmem_test::FindPatternMismatch;
using hakmem_test::kKiB;
using hakmem_test::kMiB;
using hakmem_test::kNotFound;
using hakmem_test::SeedFor;
using hakmem_test::StatsNow;

struct Block {
  void *p;
  size_t n;
};

class HeapLimit : public ::testing::Test {
protected:
  void TearDown() override { EXPECT_EQ(hak_set_heap_limit(0, HAK_HEAP_LIMIT_SOFT), 0); }
};

// First, while the peak is still what initialisation left.
TEST_F(HeapLimit, HardThreadsRacingNeverPassItAndRecover) {
  const hak_stats s0 = StatsNow();
  const uint64_t limit = s0.os_mapped_bytes + 64 * kMiB;
  ASSERT_LT(s0.os_mapped_peak, limit) << "run first, in a fresh process";
  ASSERT_EQ(hak_set_heap_limit(limit, HAK_HEAP_LIMIT_HARD), 0);
  EXPECT_EQ(StatsNow().heap_limit_bytes, limit);

  constexpr int kThreads = 8;
  const size_t kSizes[] = {48, 1000, 20 * kKiB, 300 * kKiB, 1536 * kKiB};
  std::vector<std::vector<Block>> got(kThreads);
  std::vector<int> stopped_by_enomem(kThreads, 0);
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      for (int i = 0; i < 1000000; ++i) {
        const size_t n = kSizes[(i + t) % 5];
        errno = 0;
        void *p = hak_malloc(n);
        if (p == nullptr) {
          stopped_by_enomem[t] = errno == ENOMEM;
          return;
        }
        FillPattern(p, n, SeedFor(p, n));
        got[t].push_back({p, n});
      }
    });
  for (auto &t : ts)
    t.join();

  const hak_stats s1 = StatsNow();
  EXPECT_LE(s1.os_mapped_peak, limit) << "the mapped bytes never passed the hard limit";
  EXPECT_GT(s1.limit_refusals, s0.limit_refusals);
  size_t blocks = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(stopped_by_enomem[t], 1) << "thread " << t << " ended with NULL and ENOMEM";
    for (const Block &b : got[t]) {
      ASSERT_EQ(FindPatternMismatch(b.p, b.n, SeedFor(b.p, b.n)), kNotFound);
      ++blocks;
    }
  }
  EXPECT_GT(blocks, 16u);
  for (auto &v : got)
    for (const Block &b : v)
      hak_free(b.p);

  // Freed memory is idle now: a bigger block than any before still fits,
  // since the idle memory goes back first.
  void *big = hak_malloc(16 * kMiB);
  ASSERT_NE(big, nullptr);
  FillPattern(big, 16 * kMiB, 7);
  EXPECT_EQ(FindPatternMismatch(big, 16 * kMiB, 7), kNotFound);
  hak_free(big);
  EXPECT_LE(StatsNow().os_mapped_peak, limit);
}

// Every allocation call fails as documented at a hard limit, leaves its
// inputs alone, and works again once the limit is lifted.
TEST_F(HeapLimit, HardFailuresAreTheDocumentedOnes) {
  hak_trim(0);
  void *small = hak_malloc(100);
  ASSERT_NE(small, nullptr);
  FillPattern(small, 100, 3);
  ASSERT_EQ(hak_set_heap_limit(StatsNow().os_mapped_bytes, HAK_HEAP_LIMIT_HARD), 0);
  errno = 0;
  EXPECT_EQ(hak_malloc(4 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_calloc(1, 4 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_realloc(small, 4 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(FindPatternMismatch(small, 100, 3), kNotFound) << "realloc kept the block";
  errno = 0;
  EXPECT_EQ(hak_aligned_alloc(4 * kMiB, 4 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void *out = &out;
  EXPECT_EQ(hak_posix_memalign(&out, 64, 4 * kMiB), ENOMEM);
  EXPECT_EQ(out, &out) << "*out untouched on error";

  ASSERT_EQ(hak_set_heap_limit(0, HAK_HEAP_LIMIT_HARD), 0);
  void *a = hak_malloc(4 * kMiB);
  void *c = hak_calloc(1, 4 * kMiB);
  void *r = hak_realloc(small, 4 * kMiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(c, nullptr);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(FindPatternMismatch(r, 100, 3), kNotFound);
  hak_free(a);
  hak_free(c);
  hak_free(r);
}

TEST_F(HeapLimit, SetRefusesABadMode) {
  errno = 0;
  EXPECT_EQ(hak_set_heap_limit(64 * kMiB, 2), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(hak_set_heap_limit(64 * kMiB, -1), -1);
  EXPECT_EQ(StatsNow().heap_limit_bytes, 0u) << "a refused call changes nothing";
}

// Soft mode: cached mappings of one size that another size cannot reuse go
// back before the new mappings would pass the limit; then live memory past
// the limit is still served.
TEST_F(HeapLimit, SoftGivesIdleMemoryBackBeforePassingIt) {
  hak_trim(0);
  const hak_stats s0 = StatsNow();
  const uint64_t room = 96 * kMiB;
  const uint64_t limit = std::max(s0.os_mapped_peak, s0.os_mapped_bytes + room);
  ASSERT_EQ(hak_set_heap_limit(limit, HAK_HEAP_LIMIT_SOFT), 0);

  // 6 MiB mappings, 12 of them (72 MiB), freed: they stay cached (the
  // arena keeps up to 256 MiB for an hour here). They are touched sparsely
  // (a page in 16), so the arena will not move their pages into a larger
  // mapping either (see page_arena.c): nothing can reuse them.
  const size_t six = 6 * kMiB - 64; // a 6 MiB mapping with the header
  std::vector<void *> v;
  for (int i = 0; i < 12; ++i) {
    v.push_back(hak_malloc(six));
    ASSERT_NE(v.back(), nullptr);
    for (size_t off = 0; off < six; off += 64 * kKiB)
      static_cast<unsigned char *>(v.back())[off] = static_cast<unsigned char>(i);
  }
  for (void *p : v)
    hak_free(p);
  v.clear();
  const hak_stats s1 = StatsNow();
  EXPECT_GE(s1.cached_bytes, 72 * kMiB);

  // 10 MiB mappings cannot reuse them: 8 of them (80 MiB) would take the
  // mapped bytes to about 152 MiB over the start without a give-back.
  const size_t ten = 10 * kMiB - 64;
  for (int i = 0; i < 8; ++i) {
    v.push_back(hak_malloc(ten));
    ASSERT_NE(v.back(), nullptr);
    FillPattern(v.back(), ten, i);
  }
  const hak_stats s2 = StatsNow();
  EXPECT_LE(s2.os_mapped_peak, limit) << "idle memory went back before the limit was passed";
  EXPECT_GT(s2.limit_givebacks, s1.limit_givebacks);
  EXPECT_LT(s2.cached_bytes, s1.cached_bytes);
  EXPECT_GE(s2.released_munmap_bytes - s1.released_munmap_bytes, 60 * kMiB);
  EXPECT_EQ(s2.limit_refusals, s1.limit_refusals);

  // Live memory past the limit: soft mode still serves it.
  for (int i = 0; i < 4; ++i) {
    v.push_back(hak_malloc(ten));
    ASSERT_NE(v.back(), nullptr) << "soft mode never refuses";
  }
  EXPECT_GT(StatsNow().os_mapped_bytes, limit);
  for (size_t i = 0; i < 8; ++i)
    EXPECT_EQ(FindPatternMismatch(v[i], ten, i), kNotFound);
  for (void *p : v)
    hak_free(p);
}

// The RSS figures move as the memory does: a touched large block raises the
// resident bytes; freed and trimmed, its mapping goes back by munmap.
TEST_F(HeapLimit, StatisticsExplainRss) {
  hak_trim(0);
  const hak_stats s0 = StatsNow();
  EXPECT_GT(s0.resident_bytes, 0u);
  EXPECT_GE(s0.os_mapped_bytes, s0.mapped_bytes) << "metadata is mapped too";
  const size_t n = 32 * kMiB;
  void *p = hak_malloc(n);
  ASSERT_NE(p, nullptr);
  FillPattern(p, n, 9);
  const hak_stats s1 = StatsNow();
  EXPECT_GE(s1.os_mapped_bytes, s0.os_mapped_bytes + n);
  EXPECT_GE(s1.resident_bytes, s0.resident_bytes + n - 2 * kMiB);
  hak_free(p);
  EXPECT_EQ(hak_trim(0), 1);
  const hak_stats s2 = StatsNow();
  EXPECT_GE(s2.released_munmap_bytes, s1.released_munmap_bytes + n);
  EXPECT_LE(s2.os_mapped_bytes + n, s1.os_mapped_bytes);
  EXPECT_LE(s2.resident_bytes + n - 2 * kMiB, s1.resident_bytes);
}

} // namespace
