// Unit test of the profiler's sampling arithmetic: ln and 1 - exp(-y)
// against the C++ library's, the generator's seeding and determinism, the
// intervals' range and mean, and the weights.
#include "hakmem/core/prof_sample.h"

#include <cmath>
#include <cstdint>
#include <set>

#include "gtest/gtest.h"

namespace {

TEST(ProfSample, LnMatchesTheLibrary) {
  for (double x : {1e-300, 1e-17, 1.1102230246251565e-16, 0.001, 0.25, 0.5, 0.70710678, 0.9999, 1.0,
                   1.0001, 1.41421356, 2.0, 3.0, 10.0, 12345.678, 1e300}) {
    double want = std::log(x);
    EXPECT_NEAR(hak_prof_sample_ln(x), want, 1e-14 * std::fmax(1.0, std::fabs(want))) << x;
  }
}

TEST(ProfSample, OneMinusExpNegMatchesTheLibrary) {
  for (double y :
       {0.0, 1e-12, 1e-6, 0.01, 0.3, 0.4999, 0.5, 0.69, 1.0, 2.5, 7.0, 20.0, 39.9, 40.1, 1000.0}) {
    double want = -std::expm1(-y);
    EXPECT_NEAR(hak_prof_sample_one_minus_exp_neg(y), want, 1e-14 * want + 1e-300) << y;
  }
}

TEST(ProfSample, TheGeneratorSeedsItselfAndIsDeterministic) {
  uint64_t a = 0;
  uint64_t first = hak_prof_sample_random(&a);
  EXPECT_NE(a, 0u);
  EXPECT_EQ(first, a);
  uint64_t b = 42, c = 42;
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = hak_prof_sample_random(&b);
    EXPECT_EQ(x, hak_prof_sample_random(&c));
    seen.insert(x);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(hak_prof_sample_mix(0), 0u);
  EXPECT_NE(hak_prof_sample_mix(1), hak_prof_sample_mix(2));
}

TEST(ProfSample, IntervalsAreExponentialWithTheRateAsMean) {
  const double rate = 1000;
  uint64_t rng = 7;
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; i++) {
    int64_t v = hak_prof_sample_interval(&rng, rate);
    ASSERT_GE(v, 1);
    sum += static_cast<double>(v);
  }
  EXPECT_NEAR(sum / n, rate, rate * 0.02);
  EXPECT_EQ(hak_prof_sample_interval(&rng, 1e-9), 1) << "at least 1";
  EXPECT_EQ(hak_prof_sample_interval(&rng, 1e300), static_cast<int64_t>(1e15)) << "at most 1e15";
}

TEST(ProfSample, WeightIsTheInverseOfTheSamplingProbability) {
  EXPECT_NEAR(hak_prof_sample_weight(4096, 4096), 1.0 / (1.0 - std::exp(-1.0)), 1e-12);
  EXPECT_NEAR(hak_prof_sample_weight(1, 1 << 20), double{1 << 20} + 0.5, 1e-3);
  EXPECT_EQ(hak_prof_sample_weight(uint64_t{1} << 40, 4096), 1.0);
  EXPECT_EQ(hak_prof_sample_weight(0, 4096), 1.0) << "p = 0 counts one";
}

} // namespace
