/*
 * idle_rss.c - how fast an allocator gives memory back once a program has
 * freed everything and gone idle.
 *
 * Written for this repository.  See hakmem/bench/README.md ("idle_rss").
 *
 *   idle_rss [--threads N] [--mib M] [--idle-ms T] [--seed X] [--own] [--exit]
 *            [--trace]
 *
 * 1. RSS at start (/proc/self/statm).
 * 2. N worker threads together allocate about M MiB and write every byte:
 *    three quarters in blocks of 16 B..64 KiB (log-uniform), a quarter in
 *    blocks of 1..8 MiB.
 * 3. Each worker frees half of its own blocks and half of its neighbour's
 *    (cross-thread frees; --own: all of its own), in random order.  The
 *    workers then stay alive, blocked on a condition variable, as the
 *    threads of a pool would (--exit: they exit and are joined instead).
 * 4. The main thread samples RSS every 25 ms for T ms (1500) without calling
 *    the allocator, then makes one malloc(64)/free call and samples again.
 *
 * Output: RSS at start, peak (VmHWM), right after the frees, at 0/250/500/
 * 1000 ms of idle and at the end, the first idle time at which RSS is within
 * max(10% of start, 4 MiB) of the start, and RSS after the next malloc/free.
 * The last line is always
 *   Idle RSS = N KiB after T ms; back within bound after B ms
 * with B "never" when it did not get there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/bench/bench_util.h"

#define SAMPLE_MS 25
#define MAX_SAMPLES 4096
#define SMALL_MIN 16u
#define SMALL_MAX (64u << 10)
#define BIG_MIN (1u << 20)
#define BIG_MAX (8u << 20)

struct block {
  void *p;
  size_t size;
};

struct worker {
  pthread_t thread;
  unsigned index;
  bench_rng rng;
  struct block *blocks;
  size_t n;
  size_t cap;
};

static unsigned g_threads = 2;
static uint64_t g_mib = 200;
static unsigned g_idle_ms = 1500;
static uint64_t g_seed = 42;
static int g_trace;
static int g_own;  /* --own: every thread frees only its own blocks */
static int g_exit; /* --exit: workers exit (and are joined) before the idle phase */
static struct worker *g_workers;
static pthread_barrier_t g_phase;
static pthread_mutex_t g_park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_park_cv = PTHREAD_COND_INITIALIZER;
static int g_release;

static _Noreturn void die(const char *msg) {
  fprintf(stderr, "idle_rss: %s\n", msg);
  exit(1);
}

static void push(struct worker *w, void *p, size_t size) {
  if (w->n == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 4096;
    w->blocks = realloc(w->blocks, w->cap * sizeof *w->blocks);
    if (w->blocks == NULL)
      die("out of memory for the block list");
  }
  w->blocks[w->n++] = (struct block){p, size};
}

static void free_half(struct worker *w, size_t from, bench_rng *rng) {
  /* Shuffle the half, then free it: a random order across size classes. */
  size_t n = w->n / 2;
  struct block *b = w->blocks + (from ? n : 0);
  size_t cnt = from ? w->n - n : n;
  for (size_t i = cnt; i > 1; i--) {
    size_t j = (size_t)bench_rng_below(rng, i);
    struct block t = b[i - 1];
    b[i - 1] = b[j];
    b[j] = t;
  }
  for (size_t i = 0; i < cnt; i++)
    free(b[i].p);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint64_t budget = (g_mib << 20) / g_threads;
  uint64_t big_budget = budget / 4, small_budget = budget - big_budget;
  bench_size_dist small;
  bench_size_dist_init(&small, SMALL_MIN, SMALL_MAX);
  for (uint64_t got = 0; got < small_budget;) {
    size_t s = bench_size_draw(&small, &w->rng);
    void *p = malloc(s);
    if (p == NULL)
      die("malloc returned NULL");
    memset(p, (int)(s & 0xff), s);
    push(w, p, s);
    got += s;
  }
  for (uint64_t got = 0; got < big_budget;) {
    size_t s = (size_t)bench_rng_range(&w->rng, BIG_MIN, BIG_MAX);
    void *p = malloc(s);
    if (p == NULL)
      die("malloc returned NULL");
    memset(p, 1, s);
    push(w, p, s);
    got += s;
  }
  /* Mix large blocks in among the small ones before the halves are cut. */
  for (size_t i = w->n; i > 1; i--) {
    size_t j = (size_t)bench_rng_below(&w->rng, i);
    struct block t = w->blocks[i - 1];
    w->blocks[i - 1] = w->blocks[j];
    w->blocks[j] = t;
  }
  pthread_barrier_wait(&g_phase); /* all allocated: main reads the peak */
  pthread_barrier_wait(&g_phase);
  free_half(w, 0, &w->rng);
  free_half(g_own ? w : &g_workers[(w->index + 1) % g_threads], 1, &w->rng);
  pthread_barrier_wait(&g_phase); /* every block freed */
  if (w->index == 0) {
    for (unsigned i = 0; i < g_threads; i++) {
      free(g_workers[i].blocks);
      g_workers[i].blocks = NULL;
    }
  }
  pthread_barrier_wait(&g_phase); /* block lists freed too: idle starts */
  if (g_exit)
    return NULL;
  pthread_mutex_lock(&g_park_mu);
  while (!g_release)
    pthread_cond_wait(&g_park_cv, &g_park_mu);
  pthread_mutex_unlock(&g_park_mu);
  return NULL;
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
    fprintf(stderr, "idle_rss: %s: '%s' is not in %" PRIu64 "..%" PRIu64 "\n", opt, s, lo, hi);
    exit(2);
  }
  return v;
}

static void usage(FILE *out) {
  fprintf(out, "usage: idle_rss [--threads N] [--mib M] [--idle-ms T] [--seed X] [--own] [--exit]\n"
               "                [--trace]\n"
               "Allocates about M MiB (200) in N threads (2), frees it all, then samples\n"
               "RSS while idle for T ms (1500) and after one more malloc/free.  Threads free\n"
               "half their neighbour's blocks (--own: only their own) and stay parked\n"
               "while idle (--exit: they exit first).\n");
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"threads", required_argument, NULL, 't'},
      {"mib", required_argument, NULL, 'm'},
      {"idle-ms", required_argument, NULL, 'i'},
      {"seed", required_argument, NULL, 'r'},
      {"trace", no_argument, NULL, 'T'},
      {"own", no_argument, NULL, 'o'},
      {"exit", no_argument, NULL, 'x'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int ch;
  while ((ch = getopt_long(argc, argv, "t:m:i:r:Toxh", longopts, NULL)) != -1) {
    switch (ch) {
    case 't':
      g_threads = (unsigned)parse_u64("--threads", optarg, 1, 64);
      break;
    case 'm':
      g_mib = parse_u64("--mib", optarg, 1, 1u << 16);
      break;
    case 'i':
      g_idle_ms = (unsigned)parse_u64("--idle-ms", optarg, SAMPLE_MS,
                                      (uint64_t)SAMPLE_MS * (MAX_SAMPLES - 1));
      break;
    case 'r':
      g_seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
      break;
    case 'T':
      g_trace = 1;
      break;
    case 'o':
      g_own = 1;
      break;
    case 'x':
      g_exit = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 2;
  }
  printf("threads: %u, about %" PRIu64 " MiB: 3/4 in blocks of %u B..%u KiB, 1/4 in %u..%u MiB\n",
         g_threads, g_mib, SMALL_MIN, SMALL_MAX >> 10, BIG_MIN >> 20, BIG_MAX >> 20);
  fflush(stdout);

  uint64_t start = bench_rss_bytes();
  static uint64_t samples[MAX_SAMPLES];
  static double at[MAX_SAMPLES];
  g_workers = calloc(g_threads, sizeof *g_workers);
  if (g_workers == NULL)
    die("out of memory");
  pthread_barrier_init(&g_phase, NULL, g_threads + 1);
  for (unsigned i = 0; i < g_threads; i++) {
    g_workers[i].index = i;
    bench_rng_init(&g_workers[i].rng, bench_stream_seed(g_seed, i));
    if (pthread_create(&g_workers[i].thread, NULL, worker_main, &g_workers[i]) != 0)
      die("pthread_create failed");
  }
  pthread_barrier_wait(&g_phase);
  uint64_t full = bench_rss_bytes();
  pthread_barrier_wait(&g_phase);
  pthread_barrier_wait(&g_phase);
  pthread_barrier_wait(&g_phase);
  if (g_exit)
    for (unsigned i = 0; i < g_threads; i++)
      pthread_join(g_workers[i].thread, NULL);

  /* Idle: no allocator call until the sampling ends. */
  uint64_t t0 = bench_now_ns();
  unsigned n = g_idle_ms / SAMPLE_MS + 1;
  for (unsigned i = 0; i < n; i++) {
    bench_sleep_until_ns(t0 + (uint64_t)i * SAMPLE_MS * 1000000u);
    at[i] = (double)(bench_now_ns() - t0) * 1e-6;
    samples[i] = bench_rss_bytes();
  }
  void *probe = malloc(64);
  free(probe);
  uint64_t after_call = bench_rss_bytes();
  uint64_t peak = bench_peak_rss_bytes();

  pthread_mutex_lock(&g_park_mu);
  g_release = 1;
  pthread_cond_broadcast(&g_park_cv);
  pthread_mutex_unlock(&g_park_mu);
  for (unsigned i = 0; i < g_threads && !g_exit; i++)
    pthread_join(g_workers[i].thread, NULL);
  free(g_workers);

  uint64_t slack = start / 10 > ((uint64_t)4 << 20) ? start / 10 : (uint64_t)4 << 20;
  int back = -1;
  for (unsigned i = 0; i < n && back < 0; i++)
    if (samples[i] <= start + slack)
      back = (int)i;
  if (g_trace)
    for (unsigned i = 0; i < n; i++)
      printf("  %7.1f ms  %8.1f MiB\n", at[i], mib(samples[i]));
  printf("RSS at start: %.1f MiB\n", mib(start));
  printf("RSS with everything allocated: %.1f MiB (peak %.1f MiB)\n", mib(full), mib(peak));
  printf("RSS after freeing everything: %.1f MiB\n", mib(samples[0]));
  for (unsigned ms = 250; ms <= 1000; ms *= 2)
    if (ms / SAMPLE_MS < n)
      printf("RSS after %u ms idle: %.1f MiB\n", ms, mib(samples[ms / SAMPLE_MS]));
  printf("RSS after %u ms idle: %.1f MiB\n", (n - 1) * SAMPLE_MS, mib(samples[n - 1]));
  printf("RSS after the next malloc/free: %.1f MiB\n", mib(after_call));
  char when[32];
  if (back < 0)
    snprintf(when, sizeof when, "never");
  else
    snprintf(when, sizeof when, "%.0f ms", at[back]);
  printf("back within %.1f MiB of the start: %s\n", mib(slack), when);
  printf("Idle RSS = %" PRIu64 " KiB after %u ms; back within bound after %s\n",
         samples[n - 1] >> 10, (n - 1) * SAMPLE_MS, when);
  return 0;
}
