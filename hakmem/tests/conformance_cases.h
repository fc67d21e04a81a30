// glibc-conformance checks for a malloc family, written once and run against
// two sets of entry points: the hak_* API (api_conformance_test.cc) and the
// standard names exported by the override library
// (override_conformance_test.cc). A test file includes this header, defines an
// AllocApi and instantiates the ConformanceTest suite with it.
//
// The expected behaviour is glibc 2.36's, with two deliberate exceptions that
// hakmem.h documents: aligned_alloc rejects an alignment that is not a power
// of two with EINVAL (as glibc does since 2.38), and pvalloc(0) hands out one
// whole page.
#ifndef HAKMEM_TESTS_CONFORMANCE_CASES_H_
#define HAKMEM_TESTS_CONFORMANCE_CASES_H_

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/tests/test_util.h"

namespace hakmem_test {

// One malloc family under test.
struct AllocApi {
  const char *name;
  void *(*malloc_fn)(size_t);
  void (*free_fn)(void *);
  void *(*calloc_fn)(size_t, size_t);
  void *(*realloc_fn)(void *, size_t);
  void *(*reallocarray_fn)(void *, size_t, size_t);
  int (*posix_memalign_fn)(void **, size_t, size_t);
  void *(*aligned_alloc_fn)(size_t, size_t);
  void *(*memalign_fn)(size_t, size_t);
  void *(*valloc_fn)(size_t);
  void *(*pvalloc_fn)(size_t);
  size_t (*usable_size_fn)(const void *);
};

inline void PrintTo(const AllocApi &api, std::ostream *os) { *os << api.name; }

inline std::string ApiName(const ::testing::TestParamInfo<AllocApi> &info) {
  return info.param.name;
}

constexpr size_t kSizeMax = std::numeric_limits<size_t>::max();
constexpr size_t kPtrdiffMaxPlus1 = static_cast<size_t>(std::numeric_limits<ptrdiff_t>::max()) + 1;

inline size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

inline size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

inline size_t NextPowerOfTwo(size_t n) {
  size_t p = 1;
  while (p < n)
    p <<= 1;
  return p;
}

class ConformanceTest : public ::testing::TestWithParam<AllocApi> {
protected:
  const AllocApi &api() const { return GetParam(); }

  // Fills the whole usable size of p and checks it reads back, so a block
  // whose usable size is a lie (or overlaps another live block, once that
  // block is verified too) is caught.
  void FillUsable(void *p, uint64_t seed) { FillPattern(p, api().usable_size_fn(p), seed); }
  void ExpectUsableIntact(void *p, uint64_t seed, const std::string &what) {
    size_t n = api().usable_size_fn(p);
    size_t bad = FindPatternMismatch(p, n, seed);
    EXPECT_EQ(bad, kNotFound) << what << ": block " << p << " usable " << n << " corrupt at offset "
                              << bad;
  }

  // Checks a fresh block of `size` bytes: non-NULL, owned by hakmem, usable
  // size covers the request, and every usable byte can be written and read.
  void CheckFreshBlock(void *p, size_t size, size_t alignment, const std::string &what) {
    ASSERT_NE(p, nullptr) << what;
    EXPECT_TRUE(hak_owns(p)) << what << ": hak_owns false for " << p;
    size_t usable = api().usable_size_fn(p);
    EXPECT_GE(usable, size) << what;
    EXPECT_TRUE(IsAligned(p, alignment)) << what << ": " << p << " not aligned to " << alignment;
    if (size >= 16) {
      EXPECT_TRUE(IsAligned(p, 16)) << what << ": " << p << " not 16-aligned";
    }
    uint64_t seed = SeedFor(p, size);
    FillPattern(p, usable, seed);
    size_t bad = FindPatternMismatch(p, usable, seed);
    EXPECT_EQ(bad, kNotFound) << what << ": readback mismatch at " << bad;
  }

  int64_t LiveNow() const { return LiveBlocks(StatsNow()); }
};

// ---- malloc / free -------------------------------------------------------

TEST_P(ConformanceTest, MallocZeroReturnsDistinctFreeablePointers) {
  void *a = api().malloc_fn(0);
  void *b = api().malloc_fn(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_TRUE(hak_owns(a));
  EXPECT_TRUE(hak_owns(b));
  // Whatever usable size it reports must be writable.
  CheckFreshBlock(a, 0, 1, "malloc(0) a");
  CheckFreshBlock(b, 0, 1, "malloc(0) b");
  api().free_fn(a);
  api().free_fn(b);

  std::set<void *> seen;
  std::vector<void *> blocks;
  for (int i = 0; i < 1000; ++i) {
    void *p = api().malloc_fn(0);
    ASSERT_NE(p, nullptr) << "malloc(0) #" << i;
    EXPECT_TRUE(seen.insert(p).second) << "malloc(0) #" << i << " repeated " << p;
    blocks.push_back(p);
  }
  for (void *p : blocks)
    api().free_fn(p);
}

TEST_P(ConformanceTest, FreeNullIsANoOp) {
  int64_t live_before = LiveNow();
  for (int i = 0; i < 100; ++i)
    api().free_fn(nullptr);
  EXPECT_EQ(LiveNow(), live_before);
  void *p = api().malloc_fn(32);
  CheckFreshBlock(p, 32, 16, "malloc after free(NULL)");
  api().free_fn(p);
}

TEST_P(ConformanceTest, MallocOfImpossibleSizesFailsWithEnomem) {
  const size_t sizes[] = {kSizeMax,         kSizeMax - 1,    kSizeMax - 4096, kSizeMax / 2,
                          kPtrdiffMaxPlus1, size_t{1} << 47, size_t{1} << 62};
  for (size_t n : sizes) {
    errno = 0;
    void *p = api().malloc_fn(n);
    EXPECT_EQ(p, nullptr) << "malloc(" << n << ")";
    EXPECT_EQ(errno, ENOMEM) << "malloc(" << n << ")";
    if (p != nullptr)
      api().free_fn(p);
  }
  // Out-of-memory is an ordinary result: the allocator keeps working.
  void *p = api().malloc_fn(100);
  CheckFreshBlock(p, 100, 16, "malloc after ENOMEM");
  api().free_fn(p);
}

TEST_P(ConformanceTest, EveryAllocationFunctionFailsCleanlyOnHugeSizes) {
  errno = 0;
  EXPECT_EQ(api().calloc_fn(1, kSizeMax), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "calloc(1, SIZE_MAX)";
  errno = 0;
  EXPECT_EQ(api().aligned_alloc_fn(64, kSizeMax), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "aligned_alloc(64, SIZE_MAX)";
  errno = 0;
  EXPECT_EQ(api().aligned_alloc_fn(size_t{1} << 22, kSizeMax - 100), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "aligned_alloc(4 MiB, SIZE_MAX - 100)";
  errno = 0;
  EXPECT_EQ(api().memalign_fn(4096, kSizeMax - 4096), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "memalign(4096, SIZE_MAX - 4096)";
  errno = 0;
  EXPECT_EQ(api().valloc_fn(kSizeMax), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "valloc(SIZE_MAX)";
  errno = 0;
  EXPECT_EQ(api().pvalloc_fn(kSizeMax), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "pvalloc(SIZE_MAX)";
  errno = 0;
  EXPECT_EQ(api().pvalloc_fn(kSizeMax - 100), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "pvalloc(SIZE_MAX - 100): page rounding overflows";

  void *const kSentinel = reinterpret_cast<void *>(uintptr_t{0x5a5a5a50});
  void *out = kSentinel;
  EXPECT_EQ(api().posix_memalign_fn(&out, 64, kSizeMax), ENOMEM);
  EXPECT_EQ(out, kSentinel) << "posix_memalign touched *out on ENOMEM";
  out = kSentinel;
  EXPECT_EQ(api().posix_memalign_fn(&out, size_t{1} << 20, kSizeMax - 1000), ENOMEM);
  EXPECT_EQ(out, kSentinel) << "posix_memalign touched *out on ENOMEM";

  void *p = api().malloc_fn(1000);
  CheckFreshBlock(p, 1000, 16, "malloc after failed huge requests");
  api().free_fn(p);
}

// ---- calloc --------------------------------------------------------------

TEST_P(ConformanceTest, CallocReturnsZeroedMemory) {
  const size_t sizes[] = {1,     15,     16,   17,       100,      1000,      4096,         10000,
                          65536, 100000, kMiB, kMiB + 1, 3 * kMiB, 16 * kMiB, 64 * kMiB + 3};
  for (size_t n : sizes) {
    void *p = api().calloc_fn(1, n);
    ASSERT_NE(p, nullptr) << "calloc(1, " << n << ")";
    EXPECT_TRUE(hak_owns(p));
    EXPECT_GE(api().usable_size_fn(p), n);
    EXPECT_EQ(FindNonZero(p, n), kNotFound) << "calloc(1, " << n << ")";
    api().free_fn(p);

    // Same byte count as count x size.
    size_t count = n / 8 + 1;
    p = api().calloc_fn(count, 8);
    ASSERT_NE(p, nullptr) << "calloc(" << count << ", 8)";
    EXPECT_EQ(FindNonZero(p, count * 8), kNotFound) << "calloc(" << count << ", 8)";
    api().free_fn(p);
  }
}

TEST_P(ConformanceTest, CallocOfZeroElementsReturnsDistinctPointers) {
  void *a = api().calloc_fn(0, 16);
  void *b = api().calloc_fn(16, 0);
  void *c = api().calloc_fn(0, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(a, c);
  api().free_fn(a);
  api().free_fn(b);
  api().free_fn(c);
}

TEST_P(ConformanceTest, CallocZeroesReusedDirtyMemory) {
  const size_t sizes[] = {1,    8,    16,    24,    48,    64,     100,  256,         1000,
                          2048, 4096, 10000, 32768, 65536, 100000, kMiB, 3 * kMiB + 5};
  for (size_t n : sizes) {
    const int rounds = n <= 100000 ? 200 : 20;
    for (int r = 0; r < rounds; ++r) {
      void *dirty = api().malloc_fn(n);
      ASSERT_NE(dirty, nullptr);
      std::memset(dirty, 0xAA, api().usable_size_fn(dirty));
      api().free_fn(dirty);
      void *p = api().calloc_fn(1, n);
      ASSERT_NE(p, nullptr) << "calloc(1, " << n << ") round " << r;
      size_t bad = FindNonZero(p, n);
      ASSERT_EQ(bad, kNotFound) << "calloc(1, " << n << ") round " << r
                                << " returned a dirty byte at offset " << bad;
      std::memset(p, 0xAA, api().usable_size_fn(p));
      api().free_fn(p);
    }
    // A batch: dirty many blocks of the class, free them all, then calloc
    // the same number; the recycled blocks must all come back zeroed.
    const int batch = n <= 100000 ? 64 : 4;
    std::vector<void *> blocks;
    for (int i = 0; i < batch; ++i) {
      void *p = api().malloc_fn(n);
      ASSERT_NE(p, nullptr);
      std::memset(p, 0xAA, api().usable_size_fn(p));
      blocks.push_back(p);
    }
    for (void *p : blocks)
      api().free_fn(p);
    blocks.clear();
    for (int i = 0; i < batch; ++i) {
      void *p = api().calloc_fn(n, 1);
      ASSERT_NE(p, nullptr);
      size_t bad = FindNonZero(p, n);
      EXPECT_EQ(bad, kNotFound) << "calloc(" << n << ", 1) batch #" << i << " dirty at offset "
                                << bad;
      blocks.push_back(p);
    }
    for (void *p : blocks)
      api().free_fn(p);
  }
}

TEST_P(ConformanceTest, CallocOverflowFailsWithEnomem) {
  const size_t pairs[][2] = {
      {kSizeMax / 2 + 1, 2}, {2, kSizeMax / 2 + 1}, {size_t{1} << 32, size_t{1} << 32},
      {kSizeMax, kSizeMax},  {kSizeMax, 2},         {(kSizeMax / 16) + 1, 16},
  };
  for (const auto &pr : pairs) {
    errno = 0;
    void *p = api().calloc_fn(pr[0], pr[1]);
    EXPECT_EQ(p, nullptr) << "calloc(" << pr[0] << ", " << pr[1] << ")";
    EXPECT_EQ(errno, ENOMEM) << "calloc(" << pr[0] << ", " << pr[1] << ")";
    if (p != nullptr)
      api().free_fn(p);
  }
}

// ---- realloc / reallocarray ---------------------------------------------

TEST_P(ConformanceTest, ReallocOfNullActsAsMalloc) {
  const size_t sizes[] = {0, 1, 16, 100, 5000, 70000, kMiB, 3 * kMiB};
  for (size_t n : sizes) {
    int64_t live_before = LiveNow();
    void *p = api().realloc_fn(nullptr, n);
    EXPECT_EQ(LiveNow(), live_before + 1) << "realloc(NULL, " << n << ")";
    CheckFreshBlock(p, n, 1, "realloc(NULL, " + std::to_string(n) + ")");
    api().free_fn(p);
  }
}

TEST_P(ConformanceTest, ReallocToZeroFreesAndReturnsNull) {
  // glibc (REALLOC_ZERO_BYTES_FREES): realloc(p, 0) frees p, returns NULL.
  const size_t sizes[] = {0, 1, 16, 100, 4096, 70000, kMiB, 5 * kMiB};
  for (size_t n : sizes) {
    void *p = api().malloc_fn(n);
    ASSERT_NE(p, nullptr);
    int64_t live_before = LiveNow();
    void *q = api().realloc_fn(p, 0);
    int64_t live_after = LiveNow();
    EXPECT_EQ(q, nullptr) << "realloc(malloc(" << n << "), 0)";
    EXPECT_EQ(live_after, live_before - 1)
        << "realloc(malloc(" << n << "), 0) did not free the block";
    if (q != nullptr)
      api().free_fn(q);
  }
}

TEST_P(ConformanceTest, ReallocOfImpossibleSizeKeepsTheBlock) {
  const size_t sizes[] = {24, 5000, 2 * kMiB};
  for (size_t n : sizes) {
    void *p = api().malloc_fn(n);
    ASSERT_NE(p, nullptr);
    size_t usable = api().usable_size_fn(p);
    FillPattern(p, n, 77);
    for (size_t big : {kSizeMax, kPtrdiffMaxPlus1, size_t{1} << 47}) {
      errno = 0;
      void *q = api().realloc_fn(p, big);
      EXPECT_EQ(q, nullptr) << "realloc(p, " << big << ")";
      EXPECT_EQ(errno, ENOMEM) << "realloc(p, " << big << ")";
    }
    EXPECT_EQ(api().usable_size_fn(p), usable);
    EXPECT_EQ(FindPatternMismatch(p, n, 77), kNotFound);
    api().free_fn(p);
  }
}

TEST_P(ConformanceTest, ReallocarrayOverflowFailsAndKeepsTheBlock) {
  void *p = api().malloc_fn(64);
  ASSERT_NE(p, nullptr);
  size_t usable = api().usable_size_fn(p);
  FillPattern(p, 64, 1234);
  const size_t pairs[][2] = {
      {kSizeMax / 4, 8},
      {8, kSizeMax / 4},
      {size_t{1} << 33, size_t{1} << 33},
      {kSizeMax, kSizeMax},
  };
  for (const auto &pr : pairs) {
    errno = 0;
    void *q = api().reallocarray_fn(p, pr[0], pr[1]);
    EXPECT_EQ(q, nullptr) << "reallocarray(p, " << pr[0] << ", " << pr[1] << ")";
    EXPECT_EQ(errno, ENOMEM);
    if (q != nullptr)
      p = q;
  }
  EXPECT_EQ(api().usable_size_fn(p), usable);
  EXPECT_EQ(FindPatternMismatch(p, 64, 1234), kNotFound)
      << "the original block changed after a failed reallocarray";
  api().free_fn(p);

  errno = 0;
  EXPECT_EQ(api().reallocarray_fn(nullptr, kSizeMax / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM) << "reallocarray(NULL, overflow)";
}

TEST_P(ConformanceTest, ReallocarrayResizesLikeRealloc) {
  void *p = api().reallocarray_fn(nullptr, 10, 10);
  ASSERT_NE(p, nullptr) << "reallocarray(NULL, 10, 10)";
  EXPECT_TRUE(hak_owns(p));
  EXPECT_GE(api().usable_size_fn(p), 100u);
  FillPattern(p, 100, 9);
  p = api().reallocarray_fn(p, 1000, 40);
  ASSERT_NE(p, nullptr) << "reallocarray(p, 1000, 40)";
  EXPECT_GE(api().usable_size_fn(p), 40000u);
  EXPECT_EQ(FindPatternMismatch(p, 100, 9), kNotFound) << "grow to 40000";
  FillPattern(p, 40000, 10);
  p = api().reallocarray_fn(p, 3, 10);
  ASSERT_NE(p, nullptr) << "reallocarray(p, 3, 10)";
  EXPECT_GE(api().usable_size_fn(p), 30u);
  EXPECT_EQ(FindPatternMismatch(p, 30, 10), kNotFound) << "shrink to 30";
  p = api().reallocarray_fn(p, 300000, 8);
  ASSERT_NE(p, nullptr) << "reallocarray(p, 300000, 8)";
  EXPECT_GE(api().usable_size_fn(p), 2400000u);
  EXPECT_EQ(FindPatternMismatch(p, 30, 10), kNotFound) << "grow to 2400000";
  api().free_fn(p);
}

// Sizes at and around every size-class boundary hakmem reports, every power
// of two up to 8 MiB, and some large sizes.
inline std::vector<size_t> BoundarySizes() {
  std::set<size_t> s;
  hak_stats st = StatsNow();
  for (uint32_t c = 0; c < st.num_classes && c < HAK_STATS_MAX_CLASSES; ++c) {
    size_t b = st.classes[c].block_size;
    if (b == 0)
      continue;
    s.insert(b - 1);
    s.insert(b);
    s.insert(b + 1);
  }
  for (int k = 0; k <= 23; ++k) {
    size_t b = size_t{1} << k;
    s.insert(b - 1);
    s.insert(b);
    s.insert(b + 1);
    s.insert(b + b / 2);
  }
  for (size_t b : {12 * kMiB, 16 * kMiB + 5, 33 * kMiB})
    s.insert(b);
  return std::vector<size_t>(s.begin(), s.end());
}

TEST_P(ConformanceTest, ReallocKeepsContentsAcrossEverySizeClass) {
  std::vector<size_t> sizes = BoundarySizes();
  ASSERT_GT(sizes.size(), 50u);
  std::vector<size_t> walk(sizes);                       // up ...
  walk.insert(walk.end(), sizes.rbegin(), sizes.rend()); // ... and back down
  void *p = api().malloc_fn(walk[0]);
  ASSERT_NE(p, nullptr);
  size_t old_size = walk[0];
  uint64_t seed = 1;
  FillPattern(p, old_size, seed);
  for (size_t step = 1; step < walk.size(); ++step) {
    size_t n = walk[step];
    void *q = api().realloc_fn(p, n);
    if (n == 0) {
      EXPECT_EQ(q, nullptr) << "realloc(p, 0)";
      p = api().malloc_fn(0);
      ASSERT_NE(p, nullptr);
      old_size = 0;
      continue;
    }
    ASSERT_NE(q, nullptr) << "realloc(" << old_size << " -> " << n << ")";
    EXPECT_TRUE(hak_owns(q));
    ASSERT_GE(api().usable_size_fn(q), n) << "realloc(" << old_size << " -> " << n << ")";
    if (n >= 16) {
      EXPECT_TRUE(IsAligned(q, 16)) << "realloc to " << n << " = " << q;
    }
    size_t keep = std::min(old_size, n);
    size_t bad = FindPatternMismatch(q, keep, seed);
    ASSERT_EQ(bad, kNotFound) << "realloc(" << old_size << " -> " << n
                              << ") lost the contents at offset " << bad;
    ++seed;
    FillPattern(q, n, seed);
    p = q;
    old_size = n;
  }
  api().free_fn(p);
}

TEST_P(ConformanceTest, ReallocRandomResizesKeepContents) {
  std::seed_seq seq{20240611};
  absl::BitGen gen(seq);
  void *p = nullptr;
  size_t old_size = 0;
  uint64_t seed = 500;
  for (int i = 0; i < 1500; ++i) {
    int bits = absl::Uniform<int>(absl::IntervalClosed, gen, 0, 20);
    size_t n = absl::Uniform<size_t>(absl::IntervalClosed, gen, 1, size_t{1} << bits);
    void *q = api().realloc_fn(p, n);
    ASSERT_NE(q, nullptr) << "realloc(" << old_size << " -> " << n << ")";
    ASSERT_GE(api().usable_size_fn(q), n);
    if (p != nullptr) {
      size_t keep = std::min(old_size, n);
      size_t bad = FindPatternMismatch(q, keep, seed);
      ASSERT_EQ(bad, kNotFound) << "step " << i << ": realloc(" << old_size << " -> " << n
                                << ") lost contents at " << bad;
    }
    ++seed;
    FillPattern(q, n, seed);
    p = q;
    old_size = n;
  }
  api().free_fn(p);
}

// ---- aligned allocation --------------------------------------------------

TEST_P(ConformanceTest, AlignedAllocRejectsNonPowerOfTwoAlignment) {
  const size_t bad[] = {0, 3, 5, 6, 12, 24, 48, 100, 4095, 4097, kMiB + 16, kSizeMax};
  for (size_t a : bad) {
    errno = 0;
    void *p = api().aligned_alloc_fn(a, 64);
    EXPECT_EQ(p, nullptr) << "aligned_alloc(" << a << ", 64)";
    EXPECT_EQ(errno, EINVAL) << "aligned_alloc(" << a << ", 64)";
    if (p != nullptr)
      api().free_fn(p);
  }
}

TEST_P(ConformanceTest, PosixMemalignRejectsBadAlignmentAndLeavesOut) {
  // Valid: a power of two that is a multiple of sizeof(void*).
  const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 40, 100, 4095, kMiB + 8, kSizeMax};
  void *const kSentinel = reinterpret_cast<void *>(uintptr_t{0x1234560});
  for (size_t a : bad) {
    void *out = kSentinel;
    int rc = api().posix_memalign_fn(&out, a, 64);
    EXPECT_EQ(rc, EINVAL) << "posix_memalign(" << a << ", 64)";
    EXPECT_EQ(out, kSentinel) << "posix_memalign(" << a << ") touched *out";
    if (rc == 0)
      api().free_fn(out);
  }
}

TEST_P(ConformanceTest, AlignedFunctionsHonourEveryAlignment) {
  for (size_t align = 8; align <= (size_t{1} << 22); align <<= 1) {
    std::set<size_t> size_set = {0,
                                 1,
                                 8,
                                 15,
                                 16,
                                 17,
                                 100,
                                 align - 1,
                                 align,
                                 align + 1,
                                 2 * align + 8,
                                 4096,
                                 4097,
                                 65536,
                                 100000,
                                 kMiB,
                                 kMiB + 3,
                                 4 * kMiB};
    struct Live {
      void *p;
      uint64_t seed;
      std::string what;
    };
    std::vector<Live> live;
    for (size_t n : size_set) {
      if (n > 4 * kMiB)
        continue;
      for (int fn = 0; fn < 3; ++fn) {
        void *p = nullptr;
        std::string what;
        if (fn == 0) {
          int rc = api().posix_memalign_fn(&p, align, n);
          what = "posix_memalign(" + std::to_string(align) + ", " + std::to_string(n) + ")";
          ASSERT_EQ(rc, 0) << what;
        } else if (fn == 1) {
          p = api().aligned_alloc_fn(align, n);
          what = "aligned_alloc(" + std::to_string(align) + ", " + std::to_string(n) + ")";
        } else {
          p = api().memalign_fn(align, n);
          what = "memalign(" + std::to_string(align) + ", " + std::to_string(n) + ")";
        }
        CheckFreshBlock(p, n, align, what);
        if (::testing::Test::HasFatalFailure())
          return;
        uint64_t seed = SeedFor(p, n, 3);
        FillUsable(p, seed);
        live.push_back({p, seed, what});
      }
    }
    // All blocks were live together: none may have overwritten another.
    for (const Live &l : live) {
      ExpectUsableIntact(l.p, l.seed, l.what);
      api().free_fn(l.p);
    }
  }
}

TEST_P(ConformanceTest, MemalignRoundsUpNonPowerOfTwoAlignment) {
  const size_t aligns[] = {0, 1, 2, 3, 5, 9, 24, 48, 100, 1000, 3000, 5000, 100000};
  for (size_t a : aligns) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{10000}}) {
      void *p = api().memalign_fn(a, n);
      size_t want = NextPowerOfTwo(a == 0 ? 1 : a);
      CheckFreshBlock(p, n, want, "memalign(" + std::to_string(a) + ", " + std::to_string(n) + ")");
      api().free_fn(p);
    }
  }
}

TEST_P(ConformanceTest, VallocIsPageAligned) {
  const size_t page = PageSize();
  const size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 100000, 3 * kMiB};
  for (size_t n : sizes) {
    void *p = api().valloc_fn(n);
    CheckFreshBlock(p, n, page, "valloc(" + std::to_string(n) + ")");
    api().free_fn(p);
  }
}

TEST_P(ConformanceTest, PvallocRoundsUpToWholePages) {
  const size_t page = PageSize();
  const size_t sizes[] = {0, 1, page - 1, page, page + 1, 10000, kMiB + 1};
  for (size_t n : sizes) {
    void *p = api().pvalloc_fn(n);
    size_t want = n == 0 ? page : RoundUp(n, page);
    CheckFreshBlock(p, want, page, "pvalloc(" + std::to_string(n) + ")");
    api().free_fn(p);
  }
}

// ---- usable size ---------------------------------------------------------

TEST_P(ConformanceTest, UsableSizeOfNullIsZero) { EXPECT_EQ(api().usable_size_fn(nullptr), 0u); }

// Every size 0..4096, then a stride up to 70000; all blocks of a range are
// live together so a block that overlaps its neighbour is caught.
TEST_P(ConformanceTest, UsableSizeCoversEverySmallRequest) {
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 4096; ++n)
    sizes.push_back(n);
  for (size_t n = 4097; n <= 70000; n += 61)
    sizes.push_back(n);
  sizes.push_back(70000);
  std::vector<void *> blocks(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    size_t n = sizes[i];
    void *p = api().malloc_fn(n);
    ASSERT_NE(p, nullptr) << "malloc(" << n << ")";
    EXPECT_TRUE(hak_owns(p)) << "malloc(" << n << ")";
    size_t usable = api().usable_size_fn(p);
    ASSERT_GE(usable, n) << "malloc(" << n << ")";
    if (n >= 16) {
      ASSERT_TRUE(IsAligned(p, 16)) << "malloc(" << n << ") = " << p;
    }
    FillPattern(p, usable, SeedFor(p, n));
    blocks[i] = p;
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    void *p = blocks[i];
    size_t usable = api().usable_size_fn(p);
    size_t bad = FindPatternMismatch(p, usable, SeedFor(p, sizes[i]));
    EXPECT_EQ(bad, kNotFound) << "malloc(" << sizes[i] << ") = " << p << " usable " << usable
                              << " overwritten at offset " << bad;
  }
  for (void *p : blocks)
    api().free_fn(p);
}

TEST_P(ConformanceTest, UsableSizeCoversLargeRequests) {
  std::vector<size_t> sizes;
  for (int k = 16; k <= 26; ++k) {
    size_t b = size_t{1} << k;
    sizes.push_back(b - 1);
    sizes.push_back(b);
    sizes.push_back(b + 1);
    if (k < 26)
      sizes.push_back(b + b / 2 + 7);
  }
  for (size_t n : sizes) {
    void *p = api().malloc_fn(n);
    CheckFreshBlock(p, n, 16, "malloc(" + std::to_string(n) + ")");
    api().free_fn(p);
  }
}

TEST_P(ConformanceTest, BlocksOf16BytesOrMoreAre16Aligned) {
  std::seed_seq seq{16};
  absl::BitGen gen(seq);
  std::vector<void *> blocks;
  for (int i = 0; i < 3000; ++i) {
    int bits = absl::Uniform<int>(absl::IntervalClosed, gen, 4, 20);
    size_t n = absl::Uniform<size_t>(absl::IntervalClosed, gen, 16, size_t{1} << bits);
    void *p = i % 3 == 0   ? api().calloc_fn(1, n)
              : i % 3 == 1 ? api().malloc_fn(n)
                           : api().realloc_fn(nullptr, n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(IsAligned(p, 16)) << "size " << n << " at " << p;
    blocks.push_back(p);
  }
  for (void *p : blocks)
    api().free_fn(p);
}

// ---- ownership -----------------------------------------------------------

TEST_P(ConformanceTest, HakOwnsEveryBlockItHandsOut) {
  std::vector<void *> blocks;
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{64}, size_t{5000}, size_t{70000}, 2 * kMiB, 9 * kMiB}) {
    blocks.push_back(api().malloc_fn(n));
    blocks.push_back(api().calloc_fn(1, n));
    blocks.push_back(api().realloc_fn(nullptr, n));
    blocks.push_back(api().reallocarray_fn(nullptr, 1, n));
    blocks.push_back(api().aligned_alloc_fn(256, n));
    blocks.push_back(api().memalign_fn(4096, n));
    blocks.push_back(api().valloc_fn(n));
    blocks.push_back(api().pvalloc_fn(n));
    void *p = nullptr;
    EXPECT_EQ(api().posix_memalign_fn(&p, 64, n), 0);
    blocks.push_back(p);
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    ASSERT_NE(blocks[i], nullptr) << "block #" << i;
    EXPECT_TRUE(hak_owns(blocks[i])) << "block #" << i << " at " << blocks[i];
  }
  for (void *p : blocks)
    api().free_fn(p);

  EXPECT_FALSE(hak_owns(nullptr));
  int on_stack = 0;
  EXPECT_FALSE(hak_owns(&on_stack)) << "a stack address";
  static int in_data = 0;
  EXPECT_FALSE(hak_owns(&in_data)) << "a static variable";
}

// hak_owns answers for live blocks: not for an interior pointer, and not once
// the block is freed, though its memory stays hakmem's.
TEST_P(ConformanceTest, OwnsIsTrueForLiveBlocksOnly) {
  for (size_t n : {size_t{16}, size_t{100}, size_t{5000}, size_t{70000}, 3 * kMiB}) {
    char *p = static_cast<char *>(api().malloc_fn(n));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(hak_owns(p)) << n;
    EXPECT_FALSE(hak_owns(p + 16)) << "interior pointer of a " << n << "-byte block";
    char *keep = static_cast<char *>(api().malloc_fn(n)); // keeps a slab's region mapped
    api().free_fn(p);
    EXPECT_FALSE(hak_owns(p)) << "freed " << n << "-byte block";
    EXPECT_TRUE(hak_owns(keep));
    api().free_fn(keep);
  }
}

} // namespace hakmem_test

#endif // HAKMEM_TESTS_CONFORMANCE_CASES_H_
