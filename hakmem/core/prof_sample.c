#include "prof_sample.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t hak_prof_sample_random(uint64_t *rng) {
  uint64_t x = *rng;
  if (x == 0)
    x = hak_prof_sample_mix((uintptr_t)rng ^ (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32)) | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *rng = x;
  return x;
}

// The two functions of libm sampling needs, written here: linking libm costs
// every program hakmem is preloaded into about 300 KiB of resident pages.
#define PROF_LN2 0.69314718055994530942

// x = m 2^e with m in [sqrt(1/2), sqrt(2)), and ln(m) = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| < 0.172: 13 odd terms.
double hak_prof_sample_ln(double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int e = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730950488) {
    m *= 0.5;
    e++;
  }
  double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
  for (int k = 1; k <= 25; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2 * sum + e * PROF_LN2;
}

double hak_prof_sample_one_minus_exp_neg(double y) {
  if (y < 0.5) {
    double term = y, sum = 0; // y - y^2/2! + y^3/3! - ...
    for (int n = 1; n <= 20; n++) {
      sum += term;
      term *= -y / (n + 1);
    }
    return sum;
  }
  if (y > 40)
    return 1.0; // exp(-40) is below half an ulp of 1
  // exp(-y) = 2^-k exp(-r), y = k ln 2 + r, 0 <= r < ln 2.
  int k = (int)(y / PROF_LN2);
  double r = y - k * PROF_LN2, term = 1, e = 0;
  for (int n = 1; n <= 22; n++) {
    e += term;
    term *= -r / n;
  }
  uint64_t bits = (uint64_t)(1023 - k) << 52;
  double scale;
  memcpy(&scale, &bits, sizeof scale);
  return 1.0 - e * scale;
}

int64_t hak_prof_sample_interval(uint64_t *rng, double rate) {
  // u in (0, 1]: -ln(u) is exponential with mean 1.
  double u = (double)((hak_prof_sample_random(rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
  double bytes = -hak_prof_sample_ln(u) * rate;
  if (bytes < 1)
    return 1;
  if (bytes > 1e15)
    return (int64_t)1e15;
  return (int64_t)bytes;
}

double hak_prof_sample_weight(uint64_t size, double rate) {
  double p = hak_prof_sample_one_minus_exp_neg((double)size / rate);
  return p > 0 ? 1.0 / p : 1.0;
}
