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

/*
 * A pattern seed tied to where a block lives and how big it is, so that a
 * block handed out twice, or overlapping another, shows up as a mismatch.
 */
static inline uint64_t bench_pattern_seed(const void *addr, size_t size, uint64_t salt) {
  return bench_mix64((uint64_t)(uintptr_t)addr ^ bench_mix64((uint64_t)size) ^ (salt << 1));
}

/*
 * Byte i of a block filled with `seed` is byte i % 8 (little-endian) of word
 * i / 8: a prefix of a filled block is the pattern of the shorter block, so
 * realloc's preserved prefix checks with the same seed.
 */
static inline uint64_t bench_pattern_word(uint64_t seed, size_t k) {
  return bench_mix64(seed ^ ((uint64_t)k * 0xd6e8feb86659fd93ull));
}

static inline uint8_t bench_pattern_byte(uint64_t seed, size_t i) {
  return (uint8_t)(bench_pattern_word(seed, i >> 3) >> ((i & 7) * 8));
}

/* Writes the pattern into bytes [from, to) of block p. */
void bench_fill(void *p, size_t from, size_t to, uint64_t seed);

/* Offset of the first byte in [from, to) that differs, or BENCH_NO_MISMATCH. */
size_t bench_check(const void *p, size_t from, size_t to, uint64_t seed);

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
void bench_fill_block(void *p, size_t size, uint64_t seed, const bench_coverage *how);

/*
 * Checks the covered bytes of a block filled for `size` bytes, looking only
 * below `limit` (realloc's preserved prefix); returns the first bad offset or
 * BENCH_NO_MISMATCH.
 */
size_t bench_check_block(const void *p, size_t size, size_t limit, uint64_t seed,
                         const bench_coverage *how);

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
