/*
 * larson.c - a Larson-style server workload benchmark for hakmem.
 *
 * Written for this repository from the published description of the
 * benchmark (P. Larson and M. Krishnan, "Memory allocation for long-running
 * server applications", ISMM 1998).  See hakmem/bench/README.md.
 *
 * Usage: larson <seconds> <min-size> <max-size> <chunks-per-thread>
 *               <rounds> <seed> <threads>
 *
 * Model: the main thread builds one array ("lane") of <chunks> slots per
 * worker and fills every slot with a block of random size in [min, max].
 * Then one worker per lane repeatedly replaces a random slot's block
 * (verify tag, free, malloc a new random size, write tag).  One replacement
 * (one free + one malloc) counts as ONE operation.  After rounds * chunks
 * replacements a worker hands its lane (blocks, RNG state and counters) to a
 * freshly created thread and exits, so blocks are freed by a thread other
 * than the one that allocated them and thread creation/teardown is part of
 * the workload.  The successor joins its predecessor, and the main thread
 * joins the last thread of each chain, so no thread is ever leaked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hakmem/bench/bench_util.h"

/* Check the stop flag at least this often (in replacements). */
#define STOP_CHECK_INTERVAL 256u

#define MAX_THREADS 1024ull
#define MAX_SECONDS 86400ull
#define MAX_BLOCK_SIZE (1ull << 30)
#define MAX_CHUNKS (1ull << 26)
#define MAX_ROUNDS (1ull << 40)

struct slot {
  void *ptr;
  size_t size;
  uint64_t gen;
};

struct lane {
  /* Immutable after setup. */
  unsigned index;
  size_t chunks;
  size_t min_size;
  size_t max_size;
  uint64_t ops_per_generation; /* rounds * chunks */

  /* Owned by whichever thread currently runs the lane; handed over through
   * pthread_create (happens-before the successor's start) and read by the
   * main thread only after it has joined the chain's last thread. */
  struct slot *slots;
  bench_rng rng;
  uint64_t next_gen;
  uint64_t ops;
  uint64_t spawns;
  pthread_t predecessor;
  int has_predecessor;

  /* Shared with the main thread, protected by mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t current; /* the thread currently running (or last to run) */
  int finished;
};

static atomic_int g_stop;

static const char *g_prog = "larson";

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s <seconds> <min-size> <max-size> <chunks-per-thread> "
          "<rounds> <seed> <threads>\n"
          "  seconds 1..%llu, 1 <= min-size <= max-size <= %llu, "
          "chunks 1..%llu, rounds 1..%llu,\n"
          "  seed 0..2^64-1, threads 1..%llu.  "
          "With no arguments runs: 3 8 1000 5000 100 4141 2\n",
          g_prog, MAX_SECONDS, MAX_BLOCK_SIZE, MAX_CHUNKS, MAX_ROUNDS, MAX_THREADS);
}

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: error: ", g_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stdout);
  exit(1);
}

static inline size_t random_size(struct lane *ln) {
  return (size_t)bench_rng_range(&ln->rng, ln->min_size, ln->max_size);
}

/* ------------------------------------------------------------------ */
/* Block tags: the first and the last 8 bytes of every block (all of a block
 * of up to 16 bytes) carry a pattern tied to the block's address, size, lane,
 * slot and generation. */

static const bench_coverage TAG_COVERAGE = {.full = 16, .edge = 8, .stride = SIZE_MAX, .stripe = 0};

static inline uint64_t tag_seed(const struct lane *ln, size_t i) {
  const struct slot *s = &ln->slots[i];
  uint64_t salt =
      ((uint64_t)ln->index << 40) ^ ((uint64_t)i << 8) ^ (s->gen * 0x9e3779b97f4a7c15ull);
  return bench_pattern_seed(s->ptr, s->size, salt);
}

static void write_tag(const struct lane *ln, size_t i) {
  const struct slot *s = &ln->slots[i];
  bench_fill_block(s->ptr, s->size, tag_seed(ln, i), &TAG_COVERAGE);
}

static void check_tag(const struct lane *ln, size_t i) {
  const struct slot *s = &ln->slots[i];
  size_t bad = bench_check_block(s->ptr, s->size, s->size, tag_seed(ln, i), &TAG_COVERAGE);
  if (bad != BENCH_NO_MISMATCH)
    die("heap corruption: lane %u slot %zu (block %p, size %zu, gen %" PRIu64
        "): byte %zu is 0x%02x, expected 0x%02x",
        ln->index, i, s->ptr, s->size, s->gen, bad, ((const unsigned char *)s->ptr)[bad],
        bench_pattern_byte(tag_seed(ln, i), bad));
}

static void fill_slot(struct lane *ln, size_t i) {
  struct slot *s = &ln->slots[i];
  size_t sz = random_size(ln);
  void *p = malloc(sz);
  if (p == NULL)
    die("malloc(%zu) returned NULL (lane %u slot %zu)", sz, ln->index, i);
  s->ptr = p;
  s->size = sz;
  s->gen = ln->next_gen++;
  write_tag(ln, i);
}

/* ------------------------------------------------------------------ */
/* Workers. */

static void *worker(void *arg);

static void mark_finished(struct lane *ln) {
  pthread_mutex_lock(&ln->mu);
  ln->finished = 1;
  pthread_cond_signal(&ln->cv);
  pthread_mutex_unlock(&ln->mu);
}

static void *worker(void *arg) {
  struct lane *ln = arg;

  /* Reap the thread that handed this lane over (it exits right after
   * creating us). */
  if (ln->has_predecessor) {
    int rc = pthread_join(ln->predecessor, NULL);
    if (rc != 0)
      die("pthread_join(predecessor) failed: %s", strerror(rc));
    ln->has_predecessor = 0;
  }

  uint64_t done = 0;
  const uint64_t target = ln->ops_per_generation;
  const size_t chunks = ln->chunks;
  int stopped = 0;

  while (done < target) {
    if ((done % STOP_CHECK_INTERVAL) == 0 && atomic_load_explicit(&g_stop, memory_order_relaxed)) {
      stopped = 1;
      break;
    }
    size_t i = (size_t)bench_rng_below(&ln->rng, chunks);
    check_tag(ln, i);
    free(ln->slots[i].ptr);
    fill_slot(ln, i);
    done++;
  }
  ln->ops += done;

  if (!stopped && !atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    /* Hand the lane to a new thread.  Record ourselves so the successor
     * can join us; publish the successor so the main thread can join
     * the chain's final thread. */
    pthread_t next;
    ln->predecessor = pthread_self();
    ln->has_predecessor = 1;
    ln->spawns++;
    pthread_mutex_lock(&ln->mu);
    int rc = pthread_create(&next, NULL, worker, ln);
    if (rc != 0) {
      pthread_mutex_unlock(&ln->mu);
      die("pthread_create (handoff, lane %u) failed: %s", ln->index, strerror(rc));
    }
    ln->current = next;
    pthread_mutex_unlock(&ln->mu);
    /* Touch nothing in *ln after this point: it belongs to `next`. */
    return NULL;
  }

  mark_finished(ln);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Argument parsing. */

static int parse_u64(const char *s, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out) {
  if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
    return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9')
      return -1;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0')
    return -1;
  if (v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/*
 * What was measured: the build mode comes from //hakmem:copts.bzl's
 * HAKMEM_DEFINES (BUILD passes them here too), the optimisation level from
 * the compiler (fastbuild's -O1 is flagged by BUILD, since __OPTIMIZE__
 * cannot tell -O1 from -O2).  A checked build runs hakmem's assertions on
 * every call, so its throughput says nothing about hakmem's speed.
 */
#if defined(LARSON_OPT_O1)
#define LARSON_OPT "-O1"
#elif defined(__OPTIMIZE__)
#define LARSON_OPT "-O2"
#else
#define LARSON_OPT "-O0"
#endif
#if defined(LARSON_LINKS_HAKMEM)
#define LARSON_ALLOCATOR "hakmem, linked in"
#else
#define LARSON_ALLOCATOR "the system malloc, or what LD_PRELOAD puts in its place"
#endif
#if defined(HAKMEM_BUILD_RELEASE) && HAKMEM_BUILD_RELEASE
#define LARSON_RELEASE 1
#define LARSON_BUILD "release (" LARSON_OPT ", NDEBUG)"
#elif defined(HAKMEM_DEBUG) && !defined(__OPTIMIZE__)
#define LARSON_RELEASE 0
#define LARSON_BUILD "debug (HAKMEM_DEBUG=1, checks full, " LARSON_OPT ")"
#elif defined(HAKMEM_DEBUG)
#define LARSON_RELEASE 0
#define LARSON_BUILD "checked (HAKMEM_DEBUG=1, checks full, " LARSON_OPT ")"
#else
#define LARSON_RELEASE 0
#define LARSON_BUILD "unknown (built without hakmem's build defines, " LARSON_OPT ")"
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#undef LARSON_RELEASE
#define LARSON_RELEASE 0 /* a sanitizer slows every access down */
#define LARSON_SANITIZER " with a sanitizer"
#else
#define LARSON_SANITIZER ""
#endif

static void print_build(void) {
  if (LARSON_RELEASE)
    printf("build: " LARSON_BUILD LARSON_SANITIZER "; allocator: " LARSON_ALLOCATOR "\n");
  else
    printf("build: " LARSON_BUILD LARSON_SANITIZER " - not a performance figure; use "
           "--config=release; allocator: " LARSON_ALLOCATOR "\n");
}

int main(int argc, char **argv) {
  static const char *const defaults[7] = {"3", "8", "1000", "5000", "100", "4141", "2"};
  const char *const *args;

  if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
    const char *slash = strrchr(argv[0], '/');
    g_prog = slash ? slash + 1 : argv[0];
  }

  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc == 1) {
    args = defaults;
    printf("No arguments given; using defaults: %s %s %s %s %s %s %s\n", defaults[0], defaults[1],
           defaults[2], defaults[3], defaults[4], defaults[5], defaults[6]);
  } else if (argc == 8) {
    args = (const char *const *)(argv + 1);
  } else {
    fprintf(stderr, "%s: expected 7 arguments, got %d\n", g_prog, argc - 1);
    usage(stderr);
    return 2;
  }

  unsigned long long seconds, min_size, max_size, chunks, rounds, seed, nthreads;
  static const char *const names[7] = {"seconds", "min-size", "max-size", "chunks-per-thread",
                                       "rounds",  "seed",     "threads"};
  const unsigned long long lo[7] = {1, 1, 1, 1, 1, 0, 1};
  const unsigned long long hi[7] = {MAX_SECONDS, MAX_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_CHUNKS,
                                    MAX_ROUNDS,  ULLONG_MAX,     MAX_THREADS};
  unsigned long long *dst[7] = {&seconds, &min_size, &max_size, &chunks, &rounds, &seed, &nthreads};
  for (int k = 0; k < 7; k++) {
    if (parse_u64(args[k], lo[k], hi[k], dst[k]) != 0) {
      fprintf(stderr, "%s: invalid %s '%s' (allowed %llu..%llu)\n", g_prog, names[k], args[k],
              lo[k], hi[k]);
      usage(stderr);
      return 2;
    }
  }
  if (min_size > max_size) {
    fprintf(stderr, "%s: min-size (%llu) is larger than max-size (%llu)\n", g_prog, min_size,
            max_size);
    usage(stderr);
    return 2;
  }

  /* Bookkeeping, allocated through the allocator under test. */
  struct lane *lanes = calloc((size_t)nthreads, sizeof *lanes);
  if (lanes == NULL)
    die("out of memory allocating %llu lanes", nthreads);

  for (unsigned t = 0; t < nthreads; t++) {
    struct lane *ln = &lanes[t];
    ln->index = t;
    ln->chunks = (size_t)chunks;
    ln->min_size = (size_t)min_size;
    ln->max_size = (size_t)max_size;
    ln->ops_per_generation = (uint64_t)rounds * (uint64_t)chunks;
    bench_rng_init(&ln->rng, bench_stream_seed((uint64_t)seed, t));
    ln->next_gen = 1;
    pthread_mutex_init(&ln->mu, NULL);
    pthread_cond_init(&ln->cv, NULL);
    ln->slots = malloc((size_t)chunks * sizeof *ln->slots);
    if (ln->slots == NULL)
      die("out of memory allocating %llu slots", chunks);
  }

  /* Warm-up: the main thread allocates every initial block. */
  for (unsigned t = 0; t < nthreads; t++)
    for (size_t i = 0; i < (size_t)chunks; i++)
      fill_slot(&lanes[t], i);

  print_build();
  printf("threads: %llu\n", nthreads);
  printf("block sizes: %llu..%llu bytes\n", min_size, max_size);
  printf("chunks per thread: %llu, rounds: %llu (%llu replacements per thread "
         "before handoff)\n",
         chunks, rounds, (unsigned long long)lanes[0].ops_per_generation);
  printf("seed: %llu, duration: %llu s\n", seed, seconds);
  fflush(stdout);

  atomic_store(&g_stop, 0);
  uint64_t t0 = bench_now_ns();
  for (unsigned t = 0; t < nthreads; t++) {
    struct lane *ln = &lanes[t];
    pthread_mutex_lock(&ln->mu);
    int rc = pthread_create(&ln->current, NULL, worker, ln);
    pthread_mutex_unlock(&ln->mu);
    if (rc != 0)
      die("pthread_create (worker %u) failed: %s", t, strerror(rc));
  }

  bench_sleep_until_ns(t0 + (uint64_t)seconds * BENCH_NS_PER_SEC);
  atomic_store(&g_stop, 1);

  for (unsigned t = 0; t < nthreads; t++) {
    struct lane *ln = &lanes[t];
    pthread_mutex_lock(&ln->mu);
    while (!ln->finished)
      pthread_cond_wait(&ln->cv, &ln->mu);
    pthread_t last = ln->current;
    pthread_mutex_unlock(&ln->mu);
    int rc = pthread_join(last, NULL);
    if (rc != 0)
      die("pthread_join (lane %u) failed: %s", t, strerror(rc));
  }
  double elapsed = (double)(bench_now_ns() - t0) * 1e-9;

  uint64_t total_ops = 0, total_spawns = 0;
  for (unsigned t = 0; t < nthreads; t++) {
    total_ops += lanes[t].ops;
    total_spawns += lanes[t].spawns;
  }

  /* Verify and release everything that is left. */
  for (unsigned t = 0; t < nthreads; t++) {
    struct lane *ln = &lanes[t];
    for (size_t i = 0; i < (size_t)chunks; i++) {
      check_tag(ln, i);
      free(ln->slots[i].ptr);
    }
    free(ln->slots);
    pthread_cond_destroy(&ln->cv);
    pthread_mutex_destroy(&ln->mu);
  }
  free(lanes);

  if (elapsed <= 0.0)
    elapsed = 1e-9;
  printf("elapsed: %.6f s\n", elapsed);
  printf("total operations: %" PRIu64 " (1 operation = 1 free + 1 malloc)\n", total_ops);
  printf("thread creations: %" PRIu64 " (%llu initial + %" PRIu64 " handoffs)\n",
         (uint64_t)nthreads + total_spawns, nthreads, total_spawns);
  printf("Throughput = %" PRIu64 " operations per second\n",
         (uint64_t)((double)total_ops / elapsed + 0.5));
  if (!LARSON_RELEASE) /* said again beside the figure, where people look */
    printf("(" LARSON_BUILD LARSON_SANITIZER " build: not a performance figure; "
           "bazel run --config=release //hakmem/bench:larson)\n");
  return 0;
}
