// Tests of the benchmark helpers (bench_util.h), compiled as C++ to prove
// the header is usable from GoogleTest.
#include "hakmem/bench/bench_util.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(BenchRng, SameSeedSameStream) {
  bench_rng a, b, c;
  bench_rng_init(&a, 42);
  bench_rng_init(&b, 42);
  bench_rng_init(&c, 43);
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    uint64_t x = bench_rng_next(&a);
    EXPECT_EQ(x, bench_rng_next(&b));
    differ += x != bench_rng_next(&c);
  }
  EXPECT_GT(differ, 95);
}

TEST(BenchRng, BelowAndRangeStayInBounds) {
  bench_rng r;
  bench_rng_init(&r, 0);
  std::vector<int> seen(10);
  for (int i = 0; i < 10000; ++i) {
    uint64_t v = bench_rng_below(&r, 10);
    ASSERT_LT(v, 10u);
    seen[v]++;
    uint64_t w = bench_rng_range(&r, 5, 7);
    ASSERT_GE(w, 5u);
    ASSERT_LE(w, 7u);
  }
  for (int n : seen)
    EXPECT_GT(n, 800); // roughly uniform: 1000 expected each
}

TEST(BenchRng, StreamSeedsDiffer) {
  EXPECT_NE(bench_stream_seed(1, 0), bench_stream_seed(1, 1));
  EXPECT_NE(bench_stream_seed(1, 0), bench_stream_seed(2, 0));
}

TEST(BenchSizeDist, EveryOctaveAboutEquallyLikely) {
  bench_size_dist d;
  bench_size_dist_init(&d, 16, 1023);
  bench_rng r;
  bench_rng_init(&r, 7);
  int octave[10] = {};
  for (int i = 0; i < 60000; ++i) {
    size_t s = bench_size_draw(&d, &r);
    ASSERT_GE(s, 16u);
    ASSERT_LE(s, 1023u);
    octave[63 - __builtin_clzll(s)]++;
  }
  for (int k = 4; k <= 9; ++k)
    EXPECT_NEAR(octave[k], 10000, 1000) << "octave 2^" << k;
}

TEST(BenchPattern, FillThenCheckAndFindCorruption) {
  std::vector<unsigned char> buf(1000);
  for (size_t n : {0u, 1u, 7u, 8u, 9u, 100u, 1000u}) {
    bench_fill(buf.data(), 0, n, 99);
    EXPECT_EQ(bench_check(buf.data(), 0, n, 99), BENCH_NO_MISMATCH) << n;
    if (n > 0) {
      EXPECT_EQ(bench_check(buf.data(), 0, n, 98), 0u) << "another seed must not match";
      buf[n / 2] ^= 1;
      EXPECT_EQ(bench_check(buf.data(), 0, n, 99), n / 2);
    }
  }
}

TEST(BenchPattern, PrefixAndUnalignedRanges) {
  std::vector<unsigned char> a(300), b(300);
  bench_fill(a.data(), 0, 300, 5);
  bench_fill(b.data(), 3, 211, 5);
  EXPECT_EQ(std::memcmp(a.data() + 3, b.data() + 3, 208), 0);
  EXPECT_EQ(bench_check(a.data(), 0, 123, 5), BENCH_NO_MISMATCH);
}

TEST(BenchPattern, EveryRangeMatchesTheWholePattern) {
  std::vector<unsigned char> whole(64), part(64);
  bench_fill(whole.data(), 0, 64, 21);
  for (size_t from = 0; from < 20; ++from) {
    for (size_t to = from; to <= 40; ++to) {
      std::fill(part.begin(), part.end(), 0xcc);
      bench_fill(part.data(), from, to, 21);
      ASSERT_EQ(std::memcmp(part.data() + from, whole.data() + from, to - from), 0)
          << from << ".." << to;
      if (from > 0) {
        ASSERT_EQ(part[from - 1], 0xcc) << "wrote before the range";
      }
      ASSERT_EQ(part[to], 0xcc) << "wrote past the range";
      ASSERT_EQ(bench_check(part.data(), from, to, 21), BENCH_NO_MISMATCH);
      for (size_t bad = from; bad < to; ++bad) {
        part[bad] ^= 0x10;
        ASSERT_EQ(bench_check(part.data(), from, to, 21), bad) << from << ".." << to;
        part[bad] ^= 0x10;
      }
    }
  }
}

TEST(BenchPattern, SeedDependsOnAddressAndSize) {
  int x[2];
  EXPECT_NE(bench_pattern_seed(&x[0], 8, 0), bench_pattern_seed(&x[1], 8, 0));
  EXPECT_NE(bench_pattern_seed(&x[0], 8, 0), bench_pattern_seed(&x[0], 16, 0));
  EXPECT_NE(bench_pattern_seed(&x[0], 8, 0), bench_pattern_seed(&x[0], 8, 1));
}

TEST(BenchPattern, SparseCoverage) {
  const bench_coverage how = {256, 64, 4096, 8};
  std::vector<unsigned char> buf(3 * 4096 + 100, 0xee);
  size_t n = buf.size();
  bench_fill_block(buf.data(), n, 11, &how);
  EXPECT_EQ(bench_check_block(buf.data(), n, n, 11, &how), BENCH_NO_MISMATCH);
  EXPECT_EQ(buf[100], 0xee) << "between stripes: not written";
  buf[4096 + 3] ^= 0xff;
  EXPECT_EQ(bench_check_block(buf.data(), n, n, 11, &how), 4096u + 3);
  EXPECT_EQ(bench_check_block(buf.data(), n, 4096, 11, &how), BENCH_NO_MISMATCH) << "limit";
  buf[n - 1] ^= 0xff;
  EXPECT_EQ(bench_check_block(buf.data(), n, n, 11, &how), 4096u + 3);
}

TEST(BenchPattern, FindNonZero) {
  std::vector<unsigned char> buf(100);
  EXPECT_EQ(bench_find_nonzero(buf.data(), 0, 100), BENCH_NO_MISMATCH);
  buf[77] = 1;
  EXPECT_EQ(bench_find_nonzero(buf.data(), 3, 100), 77u);
  EXPECT_EQ(bench_find_nonzero(buf.data(), 3, 77), BENCH_NO_MISMATCH);
}

TEST(BenchTime, MonotonicAndSleeps) {
  uint64_t t0 = bench_now_ns();
  bench_sleep_until_ns(t0 + 2000000);
  uint64_t t1 = bench_now_ns();
  EXPECT_GE(t1, t0 + 2000000);
}

TEST(BenchMemory, RssGrowsWithTouchedMemory) {
  uint64_t vm = 0, rss = 0;
  ASSERT_EQ(bench_statm(&vm, &rss), 1);
  EXPECT_GT(rss, 0u);
  EXPECT_GE(vm, rss);
  const size_t n = 64 << 20;
  std::vector<unsigned char> big(n, 1);
  EXPECT_GE(bench_rss_bytes(), rss + n / 2);
  EXPECT_GE(bench_peak_rss_bytes(), bench_rss_bytes() / 2);
  EXPECT_GE(bench_peak_rss_bytes(), uint64_t{n});
}

} // namespace
