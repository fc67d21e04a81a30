// The profiler's sampling arithmetic: a per-thread random generator, the
// exponential intervals between samples and the weight of a sample, with the
// two functions of libm it needs written here.
#ifndef HAKMEM_PROF_SAMPLE_H
#define HAKMEM_PROF_SAMPLE_H

#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// murmur3's 64-bit finaliser: seeds the generator, and the profiler's tables
// hash with it.
static inline uint64_t hak_prof_sample_mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// The next number of the xorshift generator *rng (0: seeded first, from its
// address, the time and the pid).
uint64_t hak_prof_sample_random(uint64_t *rng) HAK_INTERNAL;

// ln(x) for a normal x > 0.
double hak_prof_sample_ln(double x) HAK_INTERNAL;
// 1 - exp(-y) for y >= 0, without cancellation for small y.
double hak_prof_sample_one_minus_exp_neg(double y) HAK_INTERNAL;

// The next sampling interval in bytes: exponential with mean rate, in
// [1, 1e15].
int64_t hak_prof_sample_interval(uint64_t *rng, double rate) HAK_INTERNAL;

// A block of size bytes is sampled with probability 1 - exp(-size / rate):
// each sample stands for the inverse of that many allocations.
double hak_prof_sample_weight(uint64_t size, double rate) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PROF_SAMPLE_H
