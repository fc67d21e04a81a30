/*
 * bench_util.h - helpers shared by hakmem's benchmarks, fuzzer and tests:
 * a seeded random stream, size distributions, block fill patterns that
 * detect corruption, monotonic time and resident set size.
 *
 * Nothing here calls malloc: benchmarks that measure an allocator, and
 * samplers that must not disturb it, can call every function.  The header
 * compiles as C11 and as C++17.
 */
#ifndef HAKMEM_BENCH_BENCH_UTIL_H_
#define HAKMEM_BENCH_BENCH_UTIL_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- random numbers ------------------------------------------------------ */

/* The splitmix64 finaliser: a bijective 64-bit mixer. */
static inline uint64_t bench_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A splitmix64 stream; every seed, zero included, gives a good stream. */
typedef struct bench_rng {
  uint64_t state;
} bench_rng;

static inline void bench_rng_init(bench_rng *r, uint64_t seed) { r->state = seed; }

static inline uint64_t bench_rng_next(bench_rng *r) {
  r->state += 0x9e3779b97f4a7c15ull;
  return bench_mix64(r->state);
}

/* Uniform in [0, n), n >= 1, by multiply-high (the bias is negligible here). */
static inline uint64_t bench_rng_below(bench_rng *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)bench_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi], lo <= hi. */
static inline uint64_t bench_rng_range(bench_rng *r, uint64_t lo, uint64_t hi) {
  return lo + bench_rng_below(r, hi - lo + 1);
}

/* Seed of stream `index` (a thread, a lane) derived from one user seed. */
uint64_t bench_stream_seed(uint64_t seed, uint64_t index);

/*
 * Log-uniform sizes in [lo, hi]: every power-of-two octave in the range is
 * equally likely and sizes are uniform within an octave (the piecewise-linear
 * form of a log-uniform distribution, with no libm call).
 */
typedef struct bench_size_dist {
  double x0, span;
  size_t lo, hi;
} bench_size_dist;

void bench_size_dist_init(bench_size_dist *d, size_t lo, size_t hi);

static inline size_t bench_size_draw(const bench_size_dist *d, bench_rng *r) {
  double u = (double)(bench_rng_next(r) >> 11) * 0x1p-53;
  double x = d->x0 + u * d->span;
  int k = (int)x;
  size_t s = (size_t)((1.0 + (x - (double)k)) * (double)((uint64_t)1 << k));
  return s < d->lo ? d->lo : s > d->hi ? d->hi : s;
}

/* ---- fill patterns ------------------------------------------------------- */

/* What the check functions return when every byte matched. */
#define BENCH_NO_MISMATCH SIZE_MAX

/* The fill and check loops run over megabytes per fuzzer input: libFuzzer's
 * comparison tracing there would cost most of the time and steer nothing. */
#if defined(__clang__)
#define BENCH_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define BENCH_NO_COVERAGE
#endif

/*
 * A pattern seed tied to where a block lives and how big it is, so that a
 * block handed out twice, or overlapping another, shows up as a mismatch.
 */
static inline uint64_t bench_pattern_seed(const void *addr, size_t size, uint64_t salt) {
  return bench_mix64(salt ^ ((uint64_t)(uintptr_t)addr * 0x9e3779b97f4a7c15ull) ^
                     ((uint64_t)size * 0xd1b54a32d192ed03ull));
}

/*
 * Byte i of a block filled with `seed` is byte i % 8 (little-endian) of word
 * i / 8, and word k is seed ^ k * (an odd constant): one multiply a word, so
 * the pattern costs little next to the allocator; every word differs. A
 * prefix of a filled block is the pattern of the shorter block, so realloc's
 * preserved prefix checks with the same seed.
 */
static inline uint64_t bench_pattern_word(uint64_t seed, size_t k) {
  return seed ^ ((uint64_t)k * 0x9e3779b97f4a7c15ull);
}

static inline uint8_t bench_pattern_byte(uint64_t seed, size_t i) {
  return (uint8_t)(bench_pattern_word(seed, i >> 3) >> ((i & 7) * 8));
}

/* The 8 pattern bytes that start at byte i, as a little-endian word. */
static inline uint64_t bench_pattern_at(uint64_t seed, size_t i) {
  unsigned r = (unsigned)(i & 7) * 8;
  uint64_t lo = bench_pattern_word(seed, i >> 3);
  return r == 0 ? lo : (lo >> r) | (bench_pattern_word(seed, (i >> 3) + 1) << (64 - r));
}

/*
 * Writes the pattern into bytes [from, to) of block p: 8 bytes at a time,
 * the first and the last store overlapping the aligned ones when the range
 * is not aligned (no byte loops: Larson tags two unaligned words per block).
 */
BENCH_NO_COVERAGE static inline void bench_fill(void *p, size_t from, size_t to, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  uint64_t w;
  if (to <= from)
    return;
  if (to - from < 8) {
    for (size_t i = from; i < to; i++)
      b[i] = bench_pattern_byte(seed, i);
    return;
  }
  w = bench_pattern_at(seed, from);
  memcpy(b + from, &w, 8);
  size_t i = (from + 8) & ~(size_t)7;
  for (; i + 8 <= to; i += 8) {
    w = bench_pattern_word(seed, i >> 3);
    memcpy(b + i, &w, 8);
  }
  if (i < to && to - 8 != from) {
    w = bench_pattern_at(seed, to - 8);
    memcpy(b + to - 8, &w, 8);
  }
}

/* Offset of the first byte in [from, to) that differs from the pattern
 * (the slow search, once a difference is known), or BENCH_NO_MISMATCH. */
size_t bench_first_bad_byte(const void *p, size_t from, size_t to, uint64_t seed);

/* Offset of the first byte in [from, to) that differs, or BENCH_NO_MISMATCH. */
BENCH_NO_COVERAGE static inline size_t bench_check(const void *p, size_t from, size_t to,
                                                   uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t got;
  if (to <= from)
    return BENCH_NO_MISMATCH;
  if (to - from < 8)
    return bench_first_bad_byte(p, from, to, seed);
  memcpy(&got, b + from, 8);
  if (got != bench_pattern_at(seed, from))
    return bench_first_bad_byte(p, from, from + 8, seed);
  size_t i = (from + 8) & ~(size_t)7;
  for (; i + 8 <= to; i += 8) {
    memcpy(&got, b + i, 8);
    if (got != bench_pattern_word(seed, i >> 3))
      return bench_first_bad_byte(p, i, i + 8, seed);
  }
  if (i < to && to - 8 != from) {
    memcpy(&got, b + to - 8, 8);
    if (got != bench_pattern_at(seed, to - 8))
      return bench_first_bad_byte(p, i, to, seed); /* [to - 8, i) checked already */
  }
  return BENCH_NO_MISMATCH;
}

/* Offset of the first non-zero byte in [from, to), or BENCH_NO_MISMATCH. */
size_t bench_find_nonzero(const void *p, size_t from, size_t to);

/*
 * Which bytes of a block carry the pattern, so that large blocks cost little:
 * all of them when size <= full; otherwise the first and the last `edge`
 * bytes, and `stripe` bytes at every multiple of `stride` in between.
 */
typedef struct bench_coverage {
  size_t full;
  size_t edge;
  size_t stride;
  size_t stripe;
} bench_coverage;

/* Fills the covered bytes of a block of `size` bytes. */
static inline void bench_fill_block(void *p, size_t size, uint64_t seed,
                                    const bench_coverage *how) {
  if (size <= how->full || size <= 2 * how->edge) {
    bench_fill(p, 0, size, seed);
    return;
  }
  size_t tail = size - how->edge;
  bench_fill(p, 0, how->edge, seed);
  if (how->stripe > 0)
    for (size_t o = how->stride; o < tail; o += how->stride)
      bench_fill(p, o, o + how->stripe < tail ? o + how->stripe : tail, seed);
  bench_fill(p, tail, size, seed);
}

/* bench_check over [from, to) clipped to limit. */
static inline size_t bench_check_clipped(const void *p, size_t from, size_t to, size_t limit,
                                         uint64_t seed) {
  if (to > limit)
    to = limit;
  return from < to ? bench_check(p, from, to, seed) : BENCH_NO_MISMATCH;
}

/*
 * Checks the covered bytes of a block filled for `size` bytes, looking only
 * below `limit` (realloc's preserved prefix); returns the first bad offset or
 * BENCH_NO_MISMATCH.
 */
static inline size_t bench_check_block(const void *p, size_t size, size_t limit, uint64_t seed,
                                       const bench_coverage *how) {
  if (limit > size)
    limit = size;
  if (size <= how->full || size <= 2 * how->edge)
    return bench_check(p, 0, limit, seed);
  size_t tail = size - how->edge;
  size_t bad = bench_check_clipped(p, 0, how->edge, limit, seed);
  if (how->stripe > 0)
    for (size_t o = how->stride; bad == BENCH_NO_MISMATCH && o < tail && o < limit;
         o += how->stride)
      bad = bench_check_clipped(p, o, o + how->stripe < tail ? o + how->stripe : tail, limit, seed);
  if (bad == BENCH_NO_MISMATCH)
    bad = bench_check_clipped(p, tail, size, limit, seed);
  return bad;
}

/* ---- time ---------------------------------------------------------------- */

#define BENCH_NS_PER_SEC 1000000000ull

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Sleeps until bench_now_ns() reaches t (retrying after signals). */
void bench_sleep_until_ns(uint64_t t);

/* ---- memory -------------------------------------------------------------- */

/*
 * Virtual size and resident size in bytes from /proc/self/statm (either
 * pointer may be NULL); 0 when it cannot be read.  Uses open/read only.
 */
int bench_statm(uint64_t *vm_bytes, uint64_t *rss_bytes);

/* Resident bytes now; 0 when unknown. */
uint64_t bench_rss_bytes(void);

/* Peak resident bytes (VmHWM of /proc/self/status); 0 when unknown. */
uint64_t bench_peak_rss_bytes(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HAKMEM_BENCH_BENCH_UTIL_H_ */
