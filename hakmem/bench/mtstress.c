/*
 * mtstress.c - multi-threaded malloc stress benchmark for hakmem.
 *
 * Written for this repository.  See hakmem/bench/README.md ("mtstress") for
 * the command line, the workloads and how operations are counted.
 *
 *   mtstress --mode MODE [--threads N] [--seconds S] [--seed X]
 *            [--max-size BYTES] [--live N]
 *
 * Every mode calls the standard malloc family only, so the same source
 * measures hakmem (linked in) or any allocator injected with LD_PRELOAD.
 * Every block is filled with a pattern derived from its address, its size and
 * a per-block seed, and the pattern is verified before the block is freed
 * (and, for realloc, after every resize).  A mismatch or a NULL from the
 * allocator is reported on stderr and the program exits 1.
 *
 * The last line of output is always
 *   Throughput = N operations per second
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/bench/bench_util.h"

#define MAX_THREADS 1024u
#define MAX_SECONDS 86400.0
#define MAX_LIVE (1u << 24)
#define MAX_BLOCK ((uint64_t)1 << 30)

/* Blocks up to this size are filled completely. */
#define FULL_FILL_MAX 256u
/* Larger blocks: this many bytes at each end, plus one word per stride. */
#define EDGE_BYTES 64u
#define PAGE_STRIDE 4096u
#define LARGE_STRIDE 65536u

/* Check the stop flag at least every this many operations. */
#define STOP_CHECK_EVERY 64u

/* prodcons: ring slots per producer/consumer pair (a power of two). */
#define RING_CAP 1024u

/* xthread-mixed: the low mark is this fraction of --live (the high mark). */
#define XT_LOW_DIVISOR 4u
/* xthread-mixed: blocks taken from the inbound ring per step at most. */
#define XT_DRAIN_MAX 32u
/*
 * Which blocks a thread lets go are handed to the next thread: those whose
 * step's random word has one of these bits set.  Bits 0 and 1 decide between
 * malloc and free, so these are independent of that.  xthread-mixed: bit 2,
 * half of them; medium-xthread: bits 2..4, 7 in 8.
 */
#define XT_HANDOFF_HALF 0x4u
#define MX_HANDOFF_SEVEN_EIGHTHS 0x1cu

/* batch-lifo, batch-fifo: batch sizes, cycled in this order. */
static const unsigned BATCH_SIZES[] = {25, 100, 400, 1600};
#define BATCH_COUNT (sizeof BATCH_SIZES / sizeof BATCH_SIZES[0])
#define BATCH_MAX 1600u

/* workingset: 1 block in this many comes from the tail above SMALL_MAX. */
#define WS_TAIL_ONE_IN 8u
#define WS_SMALL_MAX 128u

/* oversubscribed: threads per online CPU. */
#define OVERSUB_PER_CPU 16u

/* threadchurn: survivors, and blocks per short-lived thread. */
#define SURVIVORS 2u
#define TC_MIN_BLOCKS 64u
#define TC_MAX_BLOCKS 256u

/* calloc-swap: sizes 8..512 B, except 1 draw in 100 of 513..50000 B and 1 in
 * 10000 of 2..8 MiB (the tier is drawn out of CS_SIZE_DRAW). */
#define CS_SMALL_MAX 512u
#define CS_MID_MAX 50000u
#define CS_BIG_MIN ((size_t)2 << 20)
#define CS_BIG_MAX ((size_t)8 << 20)
#define CS_SIZE_DRAW 10000u
#define CS_MID_IN_DRAW 100u
#define CS_BIG_IN_DRAW 1u
/* calloc-swap: shared slots (default and most), callocs per thread per round. */
#define CS_SLOTS 4096u
#define CS_MAX_SLOTS 65536u
#define CS_OPS_PER_ROUND 10000u

#define CACHELINE 64

static const char *g_prog = "mtstress";
static const char *g_mode_name = "?";
static atomic_int g_stop;

/* ------------------------------------------------------------------ */
/* Errors. */

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  va_start(ap, fmt);
  fprintf(stderr, "%s: error: mode %s: ", g_prog, g_mode_name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    die("malloc(%zu) returned NULL", n);
  return p;
}

/* Bookkeeping structures are cache-line aligned so that threads' counters
 * do not share lines. */
static void *xalloc_lines(size_t n) {
  size_t rounded = (n + CACHELINE - 1) / CACHELINE * CACHELINE;
  void *p = aligned_alloc(CACHELINE, rounded);
  if (p == NULL)
    die("aligned_alloc(%d, %zu) returned NULL", CACHELINE, rounded);
  memset(p, 0, rounded);
  return p;
}

/* ------------------------------------------------------------------ */
/*
 * Block contents: the pattern of bench_util.h, seeded from the block's
 * address, size and a random seed.  Which bytes are written ("covered"):
 *   size <= 256:  all of them;
 *   larger:       the first 64 and the last 64 bytes, and the 8-byte word
 *                 at every multiple of the stride (4 KiB; 64 KiB in mode
 *                 large) between those two ranges.
 */

static inline bench_coverage coverage(size_t stride) {
  bench_coverage how = {.full = FULL_FILL_MAX, .edge = EDGE_BYTES, .stride = stride, .stripe = 8};
  return how;
}

/* Fills block p (size bytes) with the pattern for (addr, size, seed). */
static inline void fill_block(void *p, uintptr_t addr, size_t size, uint64_t seed, size_t stride) {
  bench_coverage how = coverage(stride);
  bench_fill_block(p, size, bench_pattern_seed((const void *)addr, size, seed), &how);
}

/*
 * Checks that block p holds the pattern written for (addr, size, seed).
 * addr is normally p itself; after a realloc it is the old address and size
 * the old size, so the check covers the preserved prefix.  `what` names the
 * situation for the error message.
 */
static void check_block(const void *p, uintptr_t addr, size_t size, uint64_t seed, size_t stride,
                        const char *what) {
  bench_coverage how = coverage(stride);
  uint64_t pseed = bench_pattern_seed((const void *)addr, size, seed);
  size_t bad = bench_check_block(p, size, size, pseed, &how);
  if (bad != BENCH_NO_MISMATCH)
    die("heap corruption %s: block %p (size %zu, written at %p): byte %zu is "
        "0x%02x, expected 0x%02x",
        what, p, size, (void *)addr, bad, ((const unsigned char *)p)[bad],
        bench_pattern_byte(pseed, bad));
}

/* ------------------------------------------------------------------ */
/* Configuration. */

enum mode {
  M_CHURN,
  M_CHURN_LARGE,
  M_PRODCONS,
  M_THREADCHURN,
  M_REALLOC,
  M_LARGE,
  M_XTHREAD_MIXED,
  M_HUGE,
  M_OVERSUBSCRIBED,
  M_BATCH_LIFO,
  M_BATCH_FIFO,
  M_WORKINGSET,
  M_ONEWAY64,
  M_MEDIUM_XTHREAD,
  M_CALLOC_SWAP,
};

struct mode_info {
  const char *name;
  size_t min_size;   /* smallest block (realloc: starting size) */
  size_t max_size;   /* default largest (realloc: final size) */
  unsigned live;     /* default --live; 0: --live not accepted */
  unsigned min_live; /* smallest --live accepted */
  unsigned max_live; /* largest --live accepted */
  size_t stride;     /* verification stride for blocks > 256 B */
  unsigned min_threads;
  unsigned max_threads;
  int fixed_size; /* --max-size not accepted (the sizes are the mode's own) */
};

static const struct mode_info MODES[] = {
    [M_CHURN] = {"churn", 8, 16384, 1000, 1, MAX_LIVE, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_CHURN_LARGE] = {"churn-large", 8, 1u << 20, 1000, 1, MAX_LIVE, PAGE_STRIDE, 1, MAX_THREADS,
                       0},
    [M_PRODCONS] = {"prodcons", 8, 4096, 0, 0, 0, PAGE_STRIDE, 2, MAX_THREADS, 0},
    [M_THREADCHURN] = {"threadchurn", 8, 1024, 0, 0, 0, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_REALLOC] = {"realloc", 16, 65536, 16, 1, MAX_LIVE, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_LARGE] = {"large", 1u << 20, 32u << 20, 1, 1, MAX_LIVE, LARGE_STRIDE, 1, MAX_THREADS, 0},
    /* --live is the high mark; the low mark is a quarter of it. */
    [M_XTHREAD_MIXED] = {"xthread-mixed", 8, 16384, 2048, XT_LOW_DIVISOR, MAX_LIVE, PAGE_STRIDE, 2,
                         MAX_THREADS, 0},
    /* Every page written: the stride is the page size. */
    [M_HUGE] = {"huge", 4u << 20, 32u << 20, 2, 1, 2, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_OVERSUBSCRIBED] = {"oversubscribed", 8, 16384, 1000, 1, MAX_LIVE, PAGE_STRIDE, 1,
                          MAX_THREADS, 0},
    [M_BATCH_LIFO] = {"batch-lifo", 16, 1024, 0, 0, 0, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_BATCH_FIFO] = {"batch-fifo", 16, 1024, 0, 0, 0, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_WORKINGSET] = {"workingset", 16, 4096, 32768, 1, MAX_LIVE, PAGE_STRIDE, 1, MAX_THREADS, 0},
    [M_ONEWAY64] = {"oneway64", 64, 64, 0, 0, 0, PAGE_STRIDE, 2, 2, 1},
    /* xthread-mixed's shape with 2 threads and 7 in 8 blocks freed remotely. */
    [M_MEDIUM_XTHREAD] = {"medium-xthread", 8, 16384, 2048, XT_LOW_DIVISOR, MAX_LIVE, PAGE_STRIDE,
                          2, 2, 0},
    /* --live is the number of slots shared by all threads. */
    [M_CALLOC_SWAP] = {"calloc-swap", 8, CS_BIG_MAX, CS_SLOTS, 1, CS_MAX_SLOTS, PAGE_STRIDE, 1,
                       MAX_THREADS, 1},
};
#define NUM_MODES (sizeof MODES / sizeof MODES[0])

struct config {
  enum mode mode;
  unsigned threads;
  double seconds;
  uint64_t seed;
  size_t max_size;
  unsigned live;
  bench_size_dist dist;
  /* workingset: sizes above WS_SMALL_MAX, drawn one time in WS_TAIL_ONE_IN. */
  bench_size_dist tail;
  int has_tail;
  /* calloc-swap: dist is the 8..512 B body; these are its rarer tiers. */
  bench_size_dist mid;
  bench_size_dist big;
};

static struct config g_cfg;

/* A block size for the mode: workingset mixes a small body with a rare tail. */
static inline size_t draw_size(const struct config *c, bench_rng *rng) {
  if (c->has_tail && bench_rng_below(rng, WS_TAIL_ONE_IN) == 0)
    return bench_size_draw(&c->tail, rng);
  return bench_size_draw(&c->dist, rng);
}

/* ------------------------------------------------------------------ */
/* Slot workers: churn, churn-large, large, huge, oversubscribed, workingset
 * and realloc; batch-lifo and batch-fifo share their driver. */

struct slot {
  void *ptr;
  size_t size;
  uint64_t seed;
};

struct worker {
  alignas(CACHELINE) unsigned index;
  pthread_t thread;
  bench_rng rng;
  uint64_t ops;
  struct slot *slots;
  void **batch; /* batch-lifo, batch-fifo: BATCH_MAX entries */
  pthread_barrier_t *start;
};

static void slot_fill_new(struct slot *s, size_t size, bench_rng *rng, size_t stride) {
  void *p = malloc(size);
  if (p == NULL)
    die("malloc(%zu) returned NULL", size);
  s->ptr = p;
  s->size = size;
  s->seed = bench_rng_next(rng);
  fill_block(p, (uintptr_t)p, size, s->seed, stride);
}

static void slot_check(const struct slot *s, size_t stride) {
  check_block(s->ptr, (uintptr_t)s->ptr, s->size, s->seed, stride, "before free");
}

static void *churn_worker(void *arg) {
  struct worker *w = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const unsigned live = c->live;
  bench_rng rng = w->rng;

  for (unsigned i = 0; i < live; i++)
    slot_fill_new(&w->slots[i], draw_size(c, &rng), &rng, stride);
  pthread_barrier_wait(w->start);

  /* Large blocks take long enough to check the flag every time. */
  const uint64_t check_mask = c->mode == M_LARGE || c->mode == M_HUGE ? 0 : STOP_CHECK_EVERY - 1;
  uint64_t ops = 0;
  for (;;) {
    if ((ops & check_mask) == 0 && atomic_load_explicit(&g_stop, memory_order_relaxed))
      break;
    struct slot *s = &w->slots[live == 1 ? 0 : bench_rng_below(&rng, live)];
    slot_check(s, stride);
    free(s->ptr);
    slot_fill_new(s, draw_size(c, &rng), &rng, stride);
    ops++;
  }
  w->ops = ops;
  w->rng = rng;
  return NULL;
}

/* realloc: each slot holds a block that grows by x1.5 from min to max. */
static void *realloc_worker(void *arg) {
  struct worker *w = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const size_t start = MODES[c->mode].min_size;
  const size_t final = c->max_size;
  const unsigned live = c->live;
  bench_rng rng = w->rng;

  for (unsigned i = 0; i < live; i++)
    slot_fill_new(&w->slots[i], start, &rng, stride);
  pthread_barrier_wait(w->start);

  uint64_t ops = 0;
  for (;;) {
    if ((ops & (STOP_CHECK_EVERY - 1)) == 0 && atomic_load_explicit(&g_stop, memory_order_relaxed))
      break;
    struct slot *s = &w->slots[live == 1 ? 0 : bench_rng_below(&rng, live)];
    if (s->size >= final) {
      /* Fully grown: verify, free, start again (not counted). */
      slot_check(s, stride);
      free(s->ptr);
      slot_fill_new(s, start, &rng, stride);
      continue;
    }
    size_t grown = s->size + s->size / 2;
    if (grown > final)
      grown = final;
    /* The old address only feeds the pattern; it is not dereferenced. */
    uintptr_t old_addr = (uintptr_t)s->ptr;
    void *q = realloc(s->ptr, grown);
    if (q == NULL)
      die("realloc(%p, %zu) returned NULL", s->ptr, grown);
    check_block(q, old_addr, s->size, s->seed, stride, "in the prefix preserved by realloc");
    s->ptr = q;
    s->size = grown;
    s->seed = bench_rng_next(&rng);
    fill_block(q, (uintptr_t)q, grown, s->seed, stride);
    ops++;
  }
  w->ops = ops;
  w->rng = rng;
  return NULL;
}

/* batch-lifo, batch-fifo: B mallocs of one size, then B frees; B cycles
 * through BATCH_SIZES. */
static void *batch_worker(void *arg) {
  struct worker *w = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const int lifo = c->mode == M_BATCH_LIFO;
  void **b = w->batch;
  bench_rng rng = w->rng;

  pthread_barrier_wait(w->start);
  uint64_t ops = 0;
  for (unsigned k = 0; !atomic_load_explicit(&g_stop, memory_order_relaxed); k++) {
    const unsigned n = BATCH_SIZES[k % BATCH_COUNT];
    const size_t size = bench_size_draw(&c->dist, &rng);
    /* One seed per batch: the pattern also depends on each block's address. */
    const uint64_t seed = bench_rng_next(&rng);
    for (unsigned i = 0; i < n; i++) {
      void *p = malloc(size);
      if (p == NULL)
        die("malloc(%zu) returned NULL", size);
      fill_block(p, (uintptr_t)p, size, seed, stride);
      b[i] = p;
    }
    for (unsigned j = 0; j < n; j++) {
      void *p = b[lifo ? n - 1 - j : j];
      check_block(p, (uintptr_t)p, size, seed, stride, "before free");
      free(p);
    }
    ops += n;
  }
  w->ops = ops;
  w->rng = rng;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* prodcons: producer -> bounded SPSC ring -> consumer. */

struct msg {
  void *ptr;
  size_t size;
  uint64_t seed;
};

struct ring {
  /* Consumer's line. */
  alignas(CACHELINE) atomic_size_t head;
  size_t tail_seen;
  uint64_t consumed;
  /* Producer's line. */
  alignas(CACHELINE) atomic_size_t tail;
  size_t head_seen;
  atomic_int producer_done;
  uint64_t produced;
  bench_rng rng;
  pthread_barrier_t *start;
  alignas(CACHELINE) struct msg buf[RING_CAP];
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Called while waiting; spins a little, then gives the CPU away. */
static inline void backoff(unsigned *spins) {
  if (++*spins < 64) {
    cpu_relax();
  } else {
    sched_yield();
    *spins = 0;
  }
}

static void *producer(void *arg) {
  struct ring *r = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  bench_rng rng = r->rng;
  uint64_t produced = 0;
  size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  size_t head_seen = r->head_seen;

  pthread_barrier_wait(r->start);
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    struct msg m;
    m.size = bench_size_draw(&c->dist, &rng);
    m.ptr = malloc(m.size);
    if (m.ptr == NULL)
      die("malloc(%zu) returned NULL", m.size);
    m.seed = bench_rng_next(&rng);
    fill_block(m.ptr, (uintptr_t)m.ptr, m.size, m.seed, stride);

    unsigned spins = 0;
    int queued = 1;
    while (tail - head_seen == RING_CAP) {
      head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
      if (tail - head_seen < RING_CAP)
        break;
      if (atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        queued = 0;
        break;
      }
      backoff(&spins);
    }
    if (!queued) {
      /* Stopped while the ring was full: the block never left this
       * thread; check and free it here (not counted). */
      check_block(m.ptr, (uintptr_t)m.ptr, m.size, m.seed, stride, "before free");
      free(m.ptr);
      break;
    }
    r->buf[tail & (RING_CAP - 1)] = m;
    tail++;
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    produced++;
  }
  r->head_seen = head_seen;
  r->produced = produced;
  r->rng = rng;
  atomic_store_explicit(&r->producer_done, 1, memory_order_release);
  return NULL;
}

static void *consumer(void *arg) {
  struct ring *r = arg;
  const size_t stride = MODES[g_cfg.mode].stride;
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  size_t tail_seen = r->tail_seen;
  uint64_t consumed = 0;

  pthread_barrier_wait(r->start);
  for (;;) {
    if (head == tail_seen) {
      unsigned spins = 0;
      for (;;) {
        tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head != tail_seen)
          break;
        if (atomic_load_explicit(&r->producer_done, memory_order_acquire)) {
          /* The producer's last store to tail happened before
           * done: one more look decides. */
          tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
          if (head == tail_seen)
            goto out;
          break;
        }
        backoff(&spins);
      }
    }
    struct msg m = r->buf[head & (RING_CAP - 1)];
    head++;
    atomic_store_explicit(&r->head, head, memory_order_release);
    check_block(m.ptr, (uintptr_t)m.ptr, m.size, m.seed, stride,
                "in a block received from the producer");
    free(m.ptr);
    consumed++;
  }
out:
  r->tail_seen = tail_seen;
  r->consumed = consumed;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* threadchurn: a spawner creates short-lived threads that hand blocks to
 * long-lived survivors. */

struct batch {
  struct batch *next;
  size_t count;
  struct msg blocks[];
};

struct survivor {
  alignas(CACHELINE) pthread_mutex_t mu;
  pthread_cond_t cv;
  struct batch *queue; /* protected by mu */
  int closing;         /* protected by mu: no more batches will come */
  uint64_t freed;      /* written by the survivor, read after join */
  uint64_t batches;
  pthread_t thread;
  pthread_barrier_t *start;
};

struct ephemeral {
  alignas(CACHELINE) pthread_t thread;
  int running;
  uint64_t seed;
  unsigned survivor;
  uint64_t freed_self; /* read by the spawner after join */
  uint64_t handed;
};

struct spawner {
  pthread_t thread;
  struct survivor *survivors;
  struct ephemeral *slots; /* g_cfg.threads of them */
  bench_rng rng;
  uint64_t created;
  uint64_t freed_self;
  uint64_t handed;
  pthread_barrier_t *start;
};

static struct survivor *g_survivors;

static void *ephemeral_main(void *arg) {
  struct ephemeral *e = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  bench_rng rng;
  bench_rng_init(&rng, e->seed);
  size_t n = TC_MIN_BLOCKS + (size_t)bench_rng_below(&rng, TC_MAX_BLOCKS - TC_MIN_BLOCKS + 1);
  size_t keep = n / 2;
  struct msg local[TC_MAX_BLOCKS];

  for (size_t i = 0; i < n; i++) {
    struct msg *m = &local[i];
    m->size = bench_size_draw(&c->dist, &rng);
    m->ptr = malloc(m->size);
    if (m->ptr == NULL)
      die("malloc(%zu) returned NULL", m->size);
    m->seed = bench_rng_next(&rng);
    fill_block(m->ptr, (uintptr_t)m->ptr, m->size, m->seed, stride);
  }

  /* The batch is allocated here and freed by the survivor too. */
  struct batch *b = xmalloc(sizeof *b + keep * sizeof b->blocks[0]);
  b->next = NULL;
  b->count = 0;
  uint64_t freed = 0;
  /* Free every other block (fragmenting this thread's slabs); hand the
   * rest over. */
  for (size_t i = 0; i < n; i++) {
    struct msg *m = &local[i];
    if ((i & 1) == 0 && b->count < keep) {
      b->blocks[b->count++] = *m;
    } else {
      check_block(m->ptr, (uintptr_t)m->ptr, m->size, m->seed, stride,
                  "before free in a short-lived thread");
      free(m->ptr);
      freed++;
    }
  }

  struct survivor *sv = &g_survivors[e->survivor];
  pthread_mutex_lock(&sv->mu);
  b->next = sv->queue;
  sv->queue = b;
  pthread_cond_signal(&sv->cv);
  pthread_mutex_unlock(&sv->mu);

  e->freed_self = freed;
  e->handed = keep;
  return NULL;
}

static void reap(struct spawner *sp, struct ephemeral *e) {
  int rc = pthread_join(e->thread, NULL);
  if (rc != 0)
    die("pthread_join (short-lived thread) failed: %s", strerror(rc));
  e->running = 0;
  sp->freed_self += e->freed_self;
  sp->handed += e->handed;
}

static void *spawner_main(void *arg) {
  struct spawner *sp = arg;
  const unsigned nslots = g_cfg.threads;
  unsigned next = 0;

  pthread_barrier_wait(sp->start);
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    struct ephemeral *e = &sp->slots[next];
    if (e->running)
      reap(sp, e);
    e->seed = bench_rng_next(&sp->rng);
    e->survivor = (unsigned)(sp->created % SURVIVORS);
    e->freed_self = 0;
    e->handed = 0;
    int rc = pthread_create(&e->thread, NULL, ephemeral_main, e);
    if (rc != 0)
      die("pthread_create (short-lived thread) failed: %s", strerror(rc));
    e->running = 1;
    sp->created++;
    next = (next + 1) % nslots;
  }
  for (unsigned i = 0; i < nslots; i++)
    if (sp->slots[i].running)
      reap(sp, &sp->slots[i]);
  return NULL;
}

static void *survivor_main(void *arg) {
  struct survivor *sv = arg;
  const size_t stride = MODES[g_cfg.mode].stride;
  uint64_t freed = 0, batches = 0;

  pthread_barrier_wait(sv->start);
  pthread_mutex_lock(&sv->mu);
  for (;;) {
    while (sv->queue == NULL && !sv->closing)
      pthread_cond_wait(&sv->cv, &sv->mu);
    struct batch *b = sv->queue;
    sv->queue = NULL;
    if (b == NULL) /* closing and nothing left */
      break;
    pthread_mutex_unlock(&sv->mu);
    while (b != NULL) {
      struct batch *next = b->next;
      for (size_t i = 0; i < b->count; i++) {
        const struct msg *m = &b->blocks[i];
        check_block(m->ptr, (uintptr_t)m->ptr, m->size, m->seed, stride,
                    "in a block handed over by a short-lived thread");
        free(m->ptr);
        freed++;
      }
      free(b);
      batches++;
      b = next;
    }
    pthread_mutex_lock(&sv->mu);
  }
  pthread_mutex_unlock(&sv->mu);
  sv->freed = freed;
  sv->batches = batches;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* xthread-mixed, medium-xthread: each thread's live set oscillates between a
 * low and a high mark; half (medium-xthread: 7 in 8) of the blocks it lets
 * go are freed by its neighbour, which receives them through a per-pair SPSC
 * ring (thread i -> thread i+1). */

/* Non-blocking push for the ring's only producer; 0 when full. */
static int ring_try_push(struct ring *r, const struct msg *m) {
  size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  if (tail - r->head_seen == RING_CAP) {
    r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail - r->head_seen == RING_CAP)
      return 0;
  }
  r->buf[tail & (RING_CAP - 1)] = *m;
  atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
  return 1;
}

/* Non-blocking pop for the ring's only consumer; 0 when empty. */
static int ring_try_pop(struct ring *r, struct msg *m) {
  size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (head == r->tail_seen) {
    r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head == r->tail_seen)
      return 0;
  }
  *m = r->buf[head & (RING_CAP - 1)];
  atomic_store_explicit(&r->head, head + 1, memory_order_release);
  return 1;
}

struct xworker {
  alignas(CACHELINE) unsigned index;
  pthread_t thread;
  bench_rng rng;
  struct slot *slots; /* own live blocks, [0, count) */
  unsigned count;
  struct ring *in;       /* from the previous thread */
  struct ring *out;      /* to the next thread */
  uint64_t handoff_mask; /* XT_HANDOFF_HALF or MX_HANDOFF_SEVEN_EIGHTHS */
  uint64_t freed_own, freed_remote, handed, kept, cycles;
  pthread_barrier_t *start;
};

/* Checks and frees up to max blocks waiting in the inbound ring. */
static unsigned xt_drain(struct xworker *w, unsigned max, size_t stride) {
  struct msg m;
  unsigned n = 0;
  while (n < max && ring_try_pop(w->in, &m)) {
    check_block(m.ptr, (uintptr_t)m.ptr, m.size, m.seed, stride,
                "in a block received from another thread");
    free(m.ptr);
    n++;
  }
  w->freed_remote += n;
  return n;
}

/*
 * Pushes m to the next thread, waiting while its ring is full; 0 if the run
 * stops first.  A waiting thread drains its own inbound ring, so threads
 * waiting on one another around the cycle cannot deadlock.
 */
static int xt_hand_over(struct xworker *w, const struct msg *m, size_t stride) {
  unsigned spins = 0;
  while (!ring_try_push(w->out, m)) {
    if (xt_drain(w, RING_CAP, stride) > 0)
      continue;
    if (atomic_load_explicit(&g_stop, memory_order_relaxed))
      return 0;
    backoff(&spins);
  }
  return 1;
}

static void *xthread_worker(void *arg) {
  struct xworker *w = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const unsigned high = c->live, low = c->live / XT_LOW_DIVISOR;
  bench_rng rng = w->rng;
  int growing = 1;

  pthread_barrier_wait(w->start);
  for (uint64_t step = 0;; step++) {
    if ((step & (STOP_CHECK_EVERY - 1)) == 0 && atomic_load_explicit(&g_stop, memory_order_relaxed))
      break;
    xt_drain(w, XT_DRAIN_MAX, stride);
    /* Mostly allocate while growing, mostly release while shrinking. */
    uint64_t r = bench_rng_next(&rng);
    int alloc = growing ? (r & 3) != 0 : (r & 3) == 0;
    if (w->count == 0)
      alloc = 1;
    else if (w->count >= high)
      alloc = 0;
    if (alloc) {
      slot_fill_new(&w->slots[w->count++], bench_size_draw(&c->dist, &rng), &rng, stride);
    } else {
      unsigned i = (unsigned)bench_rng_below(&rng, w->count);
      struct slot s = w->slots[i];
      w->slots[i] = w->slots[--w->count];
      struct msg m = {s.ptr, s.size, s.seed};
      /* The hand-off bits of r pick who frees it. */
      const int to_next = (r & w->handoff_mask) != 0;
      int handed = to_next && xt_hand_over(w, &m, stride);
      if (handed) {
        w->handed++;
      } else {
        /* Kept, or the run stopped while the neighbour's ring was full. */
        slot_check(&s, stride);
        free(s.ptr);
        w->freed_own++;
        if (to_next)
          w->kept++;
      }
    }
    if (growing && w->count >= high) {
      growing = 0;
    } else if (!growing && w->count <= low) {
      growing = 1;
      w->cycles++;
    }
  }
  /* Nothing more goes out; take in what the previous thread still sends. */
  atomic_store_explicit(&w->out->producer_done, 1, memory_order_release);
  unsigned spins = 0;
  for (;;) {
    if (xt_drain(w, RING_CAP, stride) > 0) {
      spins = 0;
      continue;
    }
    if (atomic_load_explicit(&w->in->producer_done, memory_order_acquire)) {
      /* Done was stored after the last push: one more drain empties it. */
      xt_drain(w, RING_CAP, stride);
      break;
    }
    backoff(&spins);
  }
  w->rng = rng;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* calloc-swap: every round the main thread starts N threads; each callocs
 * blocks, swaps each into a random slot of an array shared by all threads
 * with an atomic exchange, and checks and frees the block it takes out,
 * mostly allocated by another thread (often of an earlier round). */

/* What a slot holds: the exchange hands over the block's size and seed too. */
struct cs_rec {
  void *ptr; /* NULL: no block (an empty slot, or a thread's spare) */
  size_t size;
  uint64_t seed;
  uint64_t owner; /* serial of the thread that calloc'd it */
};

struct cs_worker {
  alignas(CACHELINE) pthread_t thread;
  uint64_t serial;      /* 1, 2, ... over every thread of the run */
  struct cs_rec *spare; /* the empty record this worker slot holds */
  uint64_t ops, freed_own, freed_remote, mid, big;
};

static _Atomic(struct cs_rec *) *g_cs_slots;
/* Written before the round's threads are created. */
static uint64_t g_cs_deadline_ns;

/* k of calloc(n / k, k); 1 gives calloc(n, 1). */
static const size_t CS_ELEM_SIZES[] = {1, 2, 4, 8, 12, 16, 24, 48};
#define CS_ELEM_COUNT (sizeof CS_ELEM_SIZES / sizeof CS_ELEM_SIZES[0])

/* Checks that a block fresh from calloc is zero wherever fill_block writes. */
static void check_zeroed(const void *p, size_t nmemb, size_t elsize, size_t stride) {
  const size_t size = nmemb * elsize;
  const bench_coverage how = coverage(stride);
  size_t bad;
  if (size <= how.full || size <= 2 * how.edge) {
    bad = bench_find_nonzero(p, 0, size);
  } else {
    const size_t tail = size - how.edge;
    bad = bench_find_nonzero(p, 0, how.edge);
    for (size_t o = how.stride; bad == BENCH_NO_MISMATCH && o < tail; o += how.stride)
      bad = bench_find_nonzero(p, o, o + how.stripe < tail ? o + how.stripe : tail);
    if (bad == BENCH_NO_MISMATCH)
      bad = bench_find_nonzero(p, tail, size);
  }
  if (bad != BENCH_NO_MISMATCH)
    die("heap corruption in a calloc'd block: calloc(%zu, %zu) returned %p, whose byte %zu is "
        "0x%02x, expected 0x00 (calloc must return zeroed memory)",
        nmemb, elsize, p, bad, ((const unsigned char *)p)[bad]);
}

/* A size from the tiers; counts the rare ones. */
static size_t cs_draw_size(const struct config *c, bench_rng *rng, struct cs_worker *w) {
  uint64_t tier = bench_rng_below(rng, CS_SIZE_DRAW);
  if (tier < CS_BIG_IN_DRAW) {
    w->big++;
    return bench_size_draw(&c->big, rng);
  }
  if (tier < CS_BIG_IN_DRAW + CS_MID_IN_DRAW) {
    w->mid++;
    return bench_size_draw(&c->mid, rng);
  }
  return bench_size_draw(&c->dist, rng);
}

static void *cs_worker_main(void *arg) {
  struct cs_worker *w = arg;
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const unsigned nslots = c->live;
  const uint64_t deadline = g_cs_deadline_ns;
  struct cs_rec *spare = w->spare;
  bench_rng rng;
  bench_rng_init(&rng, bench_stream_seed(c->seed, w->serial));

  uint64_t ops = 0;
  for (; ops < CS_OPS_PER_ROUND; ops++) {
    /* The main thread is joining, not timing: each worker watches the clock. */
    if ((ops & (STOP_CHECK_EVERY - 1)) == 0 && bench_now_ns() >= deadline)
      break;
    const size_t n = cs_draw_size(c, &rng, w);
    const uint64_t r = bench_rng_next(&rng);
    size_t nmemb = 1, elsize = n;
    if ((r & 3) != 0) {
      /* 3 in 4: n / k elements of k bytes (n rounded down), either order. */
      size_t k = CS_ELEM_SIZES[(r >> 2) % CS_ELEM_COUNT];
      if (k > n)
        k = 1;
      nmemb = (r & 0x100) != 0 ? k : n / k;
      elsize = (r & 0x100) != 0 ? n / k : k;
    }
    void *p = calloc(nmemb, elsize);
    if (p == NULL)
      die("calloc(%zu, %zu) returned NULL", nmemb, elsize);
    check_zeroed(p, nmemb, elsize, stride);
    spare->ptr = p;
    spare->size = nmemb * elsize;
    spare->seed = bench_rng_next(&rng);
    spare->owner = w->serial;
    fill_block(p, (uintptr_t)p, spare->size, spare->seed, stride);

    /* Release publishes the record and block; acquire sees the taken ones. */
    struct cs_rec *out = atomic_exchange_explicit(&g_cs_slots[bench_rng_below(&rng, nslots)], spare,
                                                  memory_order_acq_rel);
    if (out->ptr != NULL) {
      check_block(out->ptr, (uintptr_t)out->ptr, out->size, out->seed, stride,
                  "before free (taken out of the shared array)");
      free(out->ptr);
      if (out->owner == w->serial)
        w->freed_own++;
      else
        w->freed_remote++;
      out->ptr = NULL;
    }
    spare = out;
  }
  w->spare = spare;
  w->ops = ops;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Timing. */

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg, const char *what) {
  int rc = pthread_create(t, NULL, fn, arg);
  if (rc != 0)
    die("pthread_create (%s) failed: %s", what, strerror(rc));
}

static void join_thread(pthread_t t, const char *what) {
  int rc = pthread_join(t, NULL);
  if (rc != 0)
    die("pthread_join (%s) failed: %s", what, strerror(rc));
}

/* Releases the workers, sleeps the run time, stops and joins them (through
 * join_all); returns the elapsed seconds from release to the last join. */
static double timed_run(pthread_barrier_t *start, void (*join_all)(void *), void *ctx) {
  pthread_barrier_wait(start);
  uint64_t t0 = bench_now_ns();
  bench_sleep_until_ns(t0 + (uint64_t)(g_cfg.seconds * 1e9));
  atomic_store(&g_stop, 1);
  join_all(ctx);
  double elapsed = (double)(bench_now_ns() - t0) * 1e-9;
  return elapsed > 0 ? elapsed : 1e-9;
}

/* ------------------------------------------------------------------ */
/* Mode drivers.  Each returns the operation count and prints its own
 * details; main prints the elapsed time and throughput. */

struct slot_run {
  struct worker *workers;
  unsigned n;
};

static void join_workers(void *ctx) {
  struct slot_run *r = ctx;
  for (unsigned i = 0; i < r->n; i++)
    join_thread(r->workers[i].thread, "worker");
}

static uint64_t run_slots(double *elapsed) {
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  struct worker *ws = xalloc_lines(c->threads * sizeof *ws);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, c->threads + 1);

  for (unsigned i = 0; i < c->threads; i++) {
    struct worker *w = &ws[i];
    w->index = i;
    bench_rng_init(&w->rng, bench_stream_seed(c->seed, i));
    void *(*fn)(void *) = churn_worker;
    if (c->mode == M_REALLOC)
      fn = realloc_worker;
    if (c->mode == M_BATCH_LIFO || c->mode == M_BATCH_FIFO) {
      fn = batch_worker;
      w->batch = xmalloc(BATCH_MAX * sizeof *w->batch);
    } else {
      w->slots = xmalloc(c->live * sizeof *w->slots);
    }
    w->start = &start;
    start_thread(&w->thread, fn, w, "worker");
  }
  struct slot_run run = {ws, c->threads};
  *elapsed = timed_run(&start, join_workers, &run);

  uint64_t ops = 0, lo = UINT64_MAX, hi = 0;
  for (unsigned i = 0; i < c->threads; i++) {
    struct worker *w = &ws[i];
    ops += w->ops;
    lo = w->ops < lo ? w->ops : lo;
    hi = w->ops > hi ? w->ops : hi;
    /* Clean-up (untimed): the main thread checks and frees what the
     * workers left. */
    for (unsigned j = 0; w->slots != NULL && j < c->live; j++) {
      slot_check(&w->slots[j], stride);
      free(w->slots[j].ptr);
    }
    free(w->slots);
    free(w->batch);
  }
  pthread_barrier_destroy(&start);
  free(ws);
  printf("per-thread operations: min %" PRIu64 ", max %" PRIu64 "\n", lo, hi);
  return ops;
}

struct pc_run {
  struct ring **rings;
  pthread_t *threads; /* producer, consumer per pair */
  unsigned pairs;
};

static void join_pairs(void *ctx) {
  struct pc_run *r = ctx;
  for (unsigned i = 0; i < r->pairs; i++) {
    join_thread(r->threads[2 * i], "producer");
    join_thread(r->threads[2 * i + 1], "consumer");
  }
}

static uint64_t run_prodcons(double *elapsed) {
  const struct config *c = &g_cfg;
  unsigned pairs = c->threads / 2;
  struct ring **rings = xmalloc(pairs * sizeof *rings);
  pthread_t *threads = xmalloc(2 * pairs * sizeof *threads);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, c->threads + 1);

  for (unsigned i = 0; i < pairs; i++) {
    struct ring *r = xalloc_lines(sizeof *r);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->producer_done, 0);
    bench_rng_init(&r->rng, bench_stream_seed(c->seed, i));
    r->start = &start;
    rings[i] = r;
    start_thread(&threads[2 * i], producer, r, "producer");
    start_thread(&threads[2 * i + 1], consumer, r, "consumer");
  }
  struct pc_run run = {rings, threads, pairs};
  *elapsed = timed_run(&start, join_pairs, &run);

  uint64_t consumed = 0;
  for (unsigned i = 0; i < pairs; i++) {
    consumed += rings[i]->consumed;
    if (rings[i]->produced != rings[i]->consumed)
      die("pair %u: %" PRIu64 " blocks produced but %" PRIu64 " consumed", i, rings[i]->produced,
          rings[i]->consumed);
    free(rings[i]);
  }
  pthread_barrier_destroy(&start);
  free(threads);
  free(rings);
  printf("pairs: %u, ring capacity: %u blocks; blocks passed: %" PRIu64 "\n", pairs, RING_CAP,
         consumed);
  return consumed;
}

struct xt_run {
  struct xworker *ws;
  unsigned n;
};

static void join_xworkers(void *ctx) {
  struct xt_run *r = ctx;
  for (unsigned i = 0; i < r->n; i++)
    join_thread(r->ws[i].thread, "worker");
}

static uint64_t run_xthread(double *elapsed) {
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const unsigned n = c->threads;
  struct xworker *ws = xalloc_lines(n * sizeof *ws);
  struct ring **rings = xmalloc(n * sizeof *rings);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, n + 1);

  for (unsigned i = 0; i < n; i++) {
    struct ring *r = xalloc_lines(sizeof *r);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->producer_done, 0);
    rings[i] = r;
  }
  for (unsigned i = 0; i < n; i++) {
    struct xworker *w = &ws[i];
    w->index = i;
    bench_rng_init(&w->rng, bench_stream_seed(c->seed, i));
    w->slots = xmalloc(c->live * sizeof *w->slots);
    w->out = rings[i];
    w->in = rings[(i + n - 1) % n];
    w->handoff_mask = c->mode == M_MEDIUM_XTHREAD ? MX_HANDOFF_SEVEN_EIGHTHS : XT_HANDOFF_HALF;
    w->start = &start;
    start_thread(&w->thread, xthread_worker, w, "worker");
  }
  struct xt_run run = {ws, n};
  *elapsed = timed_run(&start, join_xworkers, &run);

  uint64_t own = 0, remote = 0, handed = 0, kept = 0, cycles = 0;
  for (unsigned i = 0; i < n; i++) {
    struct xworker *w = &ws[i];
    own += w->freed_own;
    remote += w->freed_remote;
    handed += w->handed;
    kept += w->kept;
    cycles += w->cycles;
    /* Clean-up (untimed): what is still live in the slots. */
    for (unsigned j = 0; j < w->count; j++) {
      slot_check(&w->slots[j], stride);
      free(w->slots[j].ptr);
    }
    free(w->slots);
    free(rings[i]);
  }
  if (handed != remote)
    die("%" PRIu64 " blocks handed to another thread but %" PRIu64 " freed there", handed, remote);
  pthread_barrier_destroy(&start);
  free(rings);
  free(ws);
  printf("live set per thread oscillates between %u and %u blocks; %" PRIu64
         " grow-and-shrink cycles in all\n",
         c->live / XT_LOW_DIVISOR, c->live, cycles);
  printf("blocks freed by another thread: %" PRIu64 " (%.1f%%), by their own thread: %" PRIu64
         " (%" PRIu64 " of them because the run stopped while the neighbour's ring was full)\n",
         remote, own + remote ? 100.0 * (double)remote / (double)(own + remote) : 0.0, own, kept);
  return own + remote;
}

struct tc_run {
  struct spawner *sp;
  struct survivor *sv;
};

static void join_threadchurn(void *ctx) {
  struct tc_run *r = ctx;
  join_thread(r->sp->thread, "spawner");
  for (unsigned i = 0; i < SURVIVORS; i++) {
    struct survivor *sv = &r->sv[i];
    pthread_mutex_lock(&sv->mu);
    sv->closing = 1;
    pthread_cond_signal(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
    join_thread(sv->thread, "survivor");
  }
}

static uint64_t run_threadchurn(double *elapsed) {
  const struct config *c = &g_cfg;
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, SURVIVORS + 2);

  struct survivor *sv = xalloc_lines(SURVIVORS * sizeof *sv);
  g_survivors = sv;
  for (unsigned i = 0; i < SURVIVORS; i++) {
    pthread_mutex_init(&sv[i].mu, NULL);
    pthread_cond_init(&sv[i].cv, NULL);
    sv[i].start = &start;
    start_thread(&sv[i].thread, survivor_main, &sv[i], "survivor");
  }
  struct spawner *sp = xalloc_lines(sizeof *sp);
  sp->survivors = sv;
  sp->slots = xalloc_lines(c->threads * sizeof *sp->slots);
  bench_rng_init(&sp->rng, bench_stream_seed(c->seed, 0));
  sp->start = &start;
  start_thread(&sp->thread, spawner_main, sp, "spawner");

  struct tc_run run = {sp, sv};
  *elapsed = timed_run(&start, join_threadchurn, &run);

  uint64_t by_survivors = 0;
  for (unsigned i = 0; i < SURVIVORS; i++) {
    by_survivors += sv[i].freed;
    pthread_cond_destroy(&sv[i].cv);
    pthread_mutex_destroy(&sv[i].mu);
  }
  if (by_survivors != sp->handed)
    die("%" PRIu64 " blocks handed to survivors but %" PRIu64 " freed by them", sp->handed,
        by_survivors);
  uint64_t ops = sp->freed_self + by_survivors;
  printf("threads created: %" PRIu64 " (%.0f per second; up to %u at a time, "
         "plus %u survivors and the spawner)\n",
         sp->created, (double)sp->created / *elapsed, c->threads, SURVIVORS);
  printf("blocks freed by their own thread: %" PRIu64 ", by a survivor: %" PRIu64 "\n",
         sp->freed_self, by_survivors);
  pthread_barrier_destroy(&start);
  free(sp->slots);
  free(sp);
  free(sv);
  g_survivors = NULL;
  return ops;
}

/* calloc-swap's driver: the main thread runs the rounds itself (no barrier:
 * the clock includes creating and joining every round's threads). */
static uint64_t run_calloc_swap(double *elapsed) {
  const struct config *c = &g_cfg;
  const size_t stride = MODES[c->mode].stride;
  const unsigned n = c->threads, nslots = c->live;
  /* One record per slot and one spare per worker: exchanges only move them. */
  struct cs_rec *recs = xalloc_lines((size_t)(nslots + n) * sizeof *recs);
  g_cs_slots = xalloc_lines(nslots * sizeof *g_cs_slots);
  for (unsigned i = 0; i < nslots; i++)
    atomic_init(&g_cs_slots[i], &recs[i]);
  struct cs_worker *ws = xalloc_lines(n * sizeof *ws);
  for (unsigned j = 0; j < n; j++)
    ws[j].spare = &recs[nslots + j];

  uint64_t rounds = 0, serial = 0, ops = 0, own = 0, remote = 0, mid = 0, big = 0;
  const uint64_t t0 = bench_now_ns();
  g_cs_deadline_ns = t0 + (uint64_t)(c->seconds * 1e9);
  while (bench_now_ns() < g_cs_deadline_ns) {
    for (unsigned j = 0; j < n; j++) {
      struct cs_worker *w = &ws[j];
      w->serial = ++serial;
      w->ops = w->freed_own = w->freed_remote = w->mid = w->big = 0;
      start_thread(&w->thread, cs_worker_main, w, "worker");
    }
    for (unsigned j = 0; j < n; j++)
      join_thread(ws[j].thread, "worker");
    for (unsigned j = 0; j < n; j++) {
      ops += ws[j].ops;
      own += ws[j].freed_own;
      remote += ws[j].freed_remote;
      mid += ws[j].mid;
      big += ws[j].big;
    }
    rounds++;
  }
  double secs = (double)(bench_now_ns() - t0) * 1e-9;
  *elapsed = secs > 0 ? secs : 1e-9;

  /* Clean-up (untimed): the main thread checks and frees what the array holds. */
  uint64_t left = 0;
  for (unsigned i = 0; i < nslots; i++) {
    struct cs_rec *r = atomic_load_explicit(&g_cs_slots[i], memory_order_relaxed);
    if (r->ptr == NULL)
      continue;
    check_block(r->ptr, (uintptr_t)r->ptr, r->size, r->seed, stride,
                "at the end (left in the shared array)");
    free(r->ptr);
    left++;
  }
  if (own + remote + left != ops)
    die("%" PRIu64 " blocks calloc'd but %" PRIu64 " freed in the run and %" PRIu64
        " left in the array",
        ops, own + remote, left);
  printf("rounds: %" PRIu64
         ", each of %u new threads doing up to %u callocs; threads created: %" PRIu64 "\n",
         rounds, n, CS_OPS_PER_ROUND, serial);
  printf("blocks freed by another thread: %" PRIu64 " (%.1f%%), by their own thread: %" PRIu64
         "; left in the array at the end: %" PRIu64 " (freed by the main thread, untimed)\n",
         remote, own + remote ? 100.0 * (double)remote / (double)(own + remote) : 0.0, own, left);
  printf("sizes drawn from the %u..%u B tier: %" PRIu64 ", from the %zu..%zu MiB tier: %" PRIu64
         "\n",
         CS_SMALL_MAX + 1, CS_MID_MAX, mid, CS_BIG_MIN >> 20, CS_BIG_MAX >> 20, big);
  free(ws);
  free(g_cs_slots);
  g_cs_slots = NULL;
  free(recs);
  return ops;
}

/* ------------------------------------------------------------------ */
/* Command line. */

/* oversubscribed's default: OVERSUB_PER_CPU threads per online CPU. */
static unsigned oversubscribed_threads(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1)
    cpus = 1;
  unsigned long n = (unsigned long)cpus * OVERSUB_PER_CPU;
  return n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s --mode MODE [--threads N] [--seconds S] [--seed X]\n"
          "                [--max-size BYTES] [--live N]\n"
          "\n"
          "Multi-threaded malloc stress benchmark.  Every block is verified before\n"
          "it is freed.  The last output line is 'Throughput = N operations per "
          "second'.\n"
          "\n"
          "modes (1 operation = 1 malloc + 1 free unless noted):\n"
          "  churn        each thread replaces random blocks among --live (1000);\n"
          "               sizes log-uniform 8 B..16 KiB\n"
          "  churn-large  the same with sizes 8 B..1 MiB\n"
          "  prodcons     producer/consumer pairs (N even); blocks 8 B..4 KiB go\n"
          "               through a lock-free ring and are freed by the consumer\n"
          "  threadchurn  a spawner runs up to N short-lived threads at a time, each\n"
          "               allocating 64..256 blocks of 8 B..1 KiB, freeing half and\n"
          "               handing half to one of 2 survivor threads\n"
          "  realloc      each thread grows --live (16) blocks from 16 B to 64 KiB\n"
          "               by x1.5 reallocs; 1 operation = 1 realloc\n"
          "  large        each thread replaces --live (1) blocks of 1..32 MiB\n"
          "  xthread-mixed  each thread (N >= 2) grows its blocks (8 B..16 KiB) to\n"
          "               --live (2048), shrinks them to a quarter of that, and so on;\n"
          "               half of the blocks it lets go are freed by the next thread\n"
          "               (a lock-free ring per pair); 1 operation = 1 free\n"
          "  huge         each thread replaces --live (2; 1 or 2) blocks of 4..32 MiB,\n"
          "               writing every page\n"
          "  oversubscribed  churn with %u threads per online CPU by default (%u here)\n"
          "  batch-lifo   each thread mallocs a batch of B blocks of one size\n"
          "               (16 B..1 KiB), then frees them newest first; B cycles\n"
          "               through 25, 100, 400, 1600\n"
          "  batch-fifo   the same, freeing them oldest first\n"
          "  workingset   each thread replaces random blocks among --live (32768);\n"
          "               7 in 8 are 16..128 B, 1 in 8 129 B..4 KiB\n"
          "  oneway64     2 threads: one mallocs 64 B blocks and passes them\n"
          "               through a lock-free ring, the other frees them\n"
          "  medium-xthread  xthread-mixed with 2 threads only, where 7 in 8 of the\n"
          "               blocks a thread lets go are freed by the other thread\n"
          "  calloc-swap  rounds of N new threads, each doing %u callocs (8..512 B;\n"
          "               1 in %u up to %u B, 1 in %u 2..8 MiB), checked zero, each\n"
          "               swapped into a random one of --live (%u) slots shared by\n"
          "               all threads; the block taken out is checked and freed;\n"
          "               1 operation = 1 calloc + 1 swap (+ 1 free)\n"
          "\n"
          "options:\n"
          "  -m, --mode MODE        one of the modes above (required)\n"
          "  -t, --threads N        threads (1..%u, default 2); prodcons: an even\n"
          "                         number; threadchurn: short-lived threads at a time;\n"
          "                         xthread-mixed: at least 2; oneway64,\n"
          "                         medium-xthread: 2 only; calloc-swap: per round\n"
          "  -s, --seconds S        run time, may be fractional (default 3)\n"
          "  -r, --seed X           PRNG seed, 0..2^64-1 (default 42)\n"
          "  -M, --max-size BYTES   largest block (realloc: final size); default per mode;\n"
          "                         not oneway64, calloc-swap\n"
          "  -l, --live N           blocks per thread (churn, churn-large, realloc,\n"
          "                         large, oversubscribed, workingset: 1..%u;\n"
          "                         huge: 1..2; xthread-mixed, medium-xthread: the\n"
          "                         high mark, %u..%u; calloc-swap: the shared\n"
          "                         slots, 1..%u)\n"
          "  -h, --help             print this help and exit\n",
          g_prog, OVERSUB_PER_CPU, oversubscribed_threads(), CS_OPS_PER_ROUND,
          CS_SIZE_DRAW / CS_MID_IN_DRAW, CS_MID_MAX, CS_SIZE_DRAW / CS_BIG_IN_DRAW, CS_SLOTS,
          MAX_THREADS, MAX_LIVE, XT_LOW_DIVISOR, MAX_LIVE, CS_MAX_SLOTS);
}

static _Noreturn void bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void bad_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", g_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  usage(stderr);
  exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  const char *p = s;
  if (*p == '\0')
    bad_usage("%s: empty value", opt);
  for (; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      bad_usage("%s: '%s' is not a decimal integer", opt, s);
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      bad_usage("%s: '%s' is too large", opt, s);
    v = v * 10 + d;
  }
  if (v < lo || v > hi)
    bad_usage("%s: %s is out of range %" PRIu64 "..%" PRIu64, opt, s, lo, hi);
  return v;
}

static double parse_seconds(const char *s) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (*s == '\0' || end == s || *end != '\0' || errno != 0 || !(v >= 0.001) || v > MAX_SECONDS)
    bad_usage("--seconds: '%s' is not a number of seconds in 0.001..%.0f", s, MAX_SECONDS);
  return v;
}

static void parse_args(int argc, char **argv) {
  static const struct option longopts[] = {
      {"mode", required_argument, NULL, 'm'},     {"threads", required_argument, NULL, 't'},
      {"seconds", required_argument, NULL, 's'},  {"seed", required_argument, NULL, 'r'},
      {"max-size", required_argument, NULL, 'M'}, {"live", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
  };
  const char *mode = NULL;
  int have_max = 0, have_live = 0, have_threads = 0;
  uint64_t threads = 2, max_size = 0, live = 0;
  struct config *c = &g_cfg;
  c->seconds = 3.0;
  c->seed = 42;

  int ch;
  while ((ch = getopt_long(argc, argv, "m:t:s:r:M:l:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'm':
      mode = optarg;
      break;
    case 't':
      threads = parse_u64("--threads", optarg, 1, MAX_THREADS);
      have_threads = 1;
      break;
    case 's':
      c->seconds = parse_seconds(optarg);
      break;
    case 'r':
      c->seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
      break;
    case 'M':
      max_size = parse_u64("--max-size", optarg, 1, MAX_BLOCK);
      have_max = 1;
      break;
    case 'l':
      live = parse_u64("--live", optarg, 1, MAX_LIVE);
      have_live = 1;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default: /* getopt_long has printed what was wrong */
      usage(stderr);
      exit(2);
    }
  }
  if (optind < argc)
    bad_usage("unexpected argument '%s'", argv[optind]);
  if (mode == NULL)
    bad_usage("--mode is required");

  size_t m;
  for (m = 0; m < NUM_MODES; m++)
    if (strcmp(mode, MODES[m].name) == 0)
      break;
  if (m == NUM_MODES)
    bad_usage("unknown mode '%s'", mode);
  const struct mode_info *mi = &MODES[m];
  c->mode = (enum mode)m;
  g_mode_name = mi->name;

  if (!have_threads && c->mode == M_OVERSUBSCRIBED)
    threads = oversubscribed_threads();
  if (c->mode == M_PRODCONS && (threads % 2) != 0)
    bad_usage("--mode prodcons needs an even number of threads (got %" PRIu64 ")", threads);
  if (threads < mi->min_threads || threads > mi->max_threads)
    bad_usage("--threads: mode %s needs %u..%u threads (got %" PRIu64 ")", mi->name,
              mi->min_threads, mi->max_threads, threads);
  c->threads = (unsigned)threads;

  if (have_max && mi->fixed_size && mi->min_size == mi->max_size)
    bad_usage("--max-size does not apply to mode %s (its blocks are %zu bytes)", mi->name,
              mi->min_size);
  if (have_max && mi->fixed_size)
    bad_usage("--max-size does not apply to mode %s (its sizes are its own, %zu..%zu bytes)",
              mi->name, mi->min_size, mi->max_size);
  if (have_max && max_size < mi->min_size)
    bad_usage("--max-size: mode %s needs at least %zu bytes", mi->name, mi->min_size);
  if (have_max && c->mode == M_REALLOC && max_size <= mi->min_size)
    bad_usage("--max-size: mode realloc grows blocks from %zu bytes; give a larger "
              "final size",
              mi->min_size);
  c->max_size = have_max ? (size_t)max_size : mi->max_size;

  if (have_live && mi->live == 0)
    bad_usage("--live does not apply to mode %s", mi->name);
  if (have_live && (live < mi->min_live || live > mi->max_live))
    bad_usage("--live: mode %s takes %u..%u (got %" PRIu64 ")", mi->name, mi->min_live,
              mi->max_live, live);
  c->live = have_live ? (unsigned)live : mi->live;

  if (c->mode == M_CALLOC_SWAP) {
    bench_size_dist_init(&c->dist, mi->min_size, CS_SMALL_MAX);
    bench_size_dist_init(&c->mid, CS_SMALL_MAX + 1, CS_MID_MAX);
    bench_size_dist_init(&c->big, CS_BIG_MIN, CS_BIG_MAX);
  } else if (c->mode == M_WORKINGSET && c->max_size > WS_SMALL_MAX) {
    bench_size_dist_init(&c->dist, mi->min_size, WS_SMALL_MAX);
    bench_size_dist_init(&c->tail, WS_SMALL_MAX + 1, c->max_size);
    c->has_tail = 1;
  } else {
    bench_size_dist_init(&c->dist, mi->min_size, c->max_size);
  }
}

int main(int argc, char **argv) {
  if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
    const char *slash = strrchr(argv[0], '/');
    g_prog = slash != NULL ? slash + 1 : argv[0];
  }
  parse_args(argc, argv);
  const struct config *c = &g_cfg;
  const struct mode_info *mi = &MODES[c->mode];

  printf("mode: %s, threads: %u, seconds: %g, seed: %" PRIu64 "\n", mi->name, c->threads,
         c->seconds, c->seed);
  switch (c->mode) {
  case M_REALLOC:
    printf("blocks per thread: %u, each grown x1.5 per realloc from %zu to %zu bytes\n", c->live,
           mi->min_size, c->max_size);
    break;
  case M_PRODCONS:
  case M_THREADCHURN:
  case M_ONEWAY64:
    printf("block sizes: %zu..%zu bytes, log-uniform\n", mi->min_size, c->max_size);
    break;
  case M_BATCH_LIFO:
  case M_BATCH_FIFO:
    printf("batches of 25, 100, 400, 1600 blocks in turn, each of one size (%zu..%zu bytes, "
           "log-uniform), freed %s\n",
           mi->min_size, c->max_size,
           c->mode == M_BATCH_LIFO ? "newest first (LIFO)" : "oldest first (FIFO)");
    break;
  case M_XTHREAD_MIXED:
  case M_MEDIUM_XTHREAD:
    printf("block sizes: %zu..%zu bytes, log-uniform; live blocks per thread: between %u and %u\n",
           mi->min_size, c->max_size, c->live / XT_LOW_DIVISOR, c->live);
    printf("blocks a thread lets go that the next thread frees: %s\n",
           c->mode == M_MEDIUM_XTHREAD ? "7 in 8" : "1 in 2");
    break;
  case M_WORKINGSET:
    if (c->has_tail)
      printf("block sizes: %u in %u log-uniform %zu..%u bytes, else %u..%zu bytes; "
             "slots per thread: %u\n",
             WS_TAIL_ONE_IN - 1, WS_TAIL_ONE_IN, mi->min_size, WS_SMALL_MAX, WS_SMALL_MAX + 1,
             c->max_size, c->live);
    else
      printf("block sizes: %zu..%zu bytes, log-uniform; slots per thread: %u\n", mi->min_size,
             c->max_size, c->live);
    break;
  case M_CALLOC_SWAP:
    printf("block sizes: log-uniform %zu..%u bytes, except 1 in %u %u..%u bytes and 1 in %u "
           "%zu..%zu MiB\n",
           mi->min_size, CS_SMALL_MAX, CS_SIZE_DRAW / CS_MID_IN_DRAW, CS_SMALL_MAX + 1, CS_MID_MAX,
           CS_SIZE_DRAW / CS_BIG_IN_DRAW, CS_BIG_MIN >> 20, CS_BIG_MAX >> 20);
    printf("per thread and round: %u callocs, 1 in 4 as calloc(1, n), the rest as n/k elements "
           "of k bytes (k = 1..48, either order); slots shared by all threads: %u\n",
           CS_OPS_PER_ROUND, c->live);
    break;
  default:
    printf("block sizes: %zu..%zu bytes, log-uniform; live blocks per thread: %u\n", mi->min_size,
           c->max_size, c->live);
    break;
  }
  printf("verified: whole block up to %u bytes, else first and last %u bytes and a "
         "word every %zu bytes\n",
         FULL_FILL_MAX, EDGE_BYTES, mi->stride);
  if (c->mode == M_CALLOC_SWAP)
    printf("verified zero after calloc: the same bytes\n");
  fflush(stdout);

  atomic_store(&g_stop, 0);
  double elapsed = 0;
  uint64_t ops;
  const char *unit;
  switch (c->mode) {
  case M_PRODCONS:
  case M_ONEWAY64:
    ops = run_prodcons(&elapsed);
    unit = "1 operation = 1 malloc in the producer + 1 free in the consumer";
    break;
  case M_XTHREAD_MIXED:
  case M_MEDIUM_XTHREAD:
    ops = run_xthread(&elapsed);
    unit = "1 operation = 1 free, by either thread, of a block malloc'd in the run";
    break;
  case M_THREADCHURN:
    ops = run_threadchurn(&elapsed);
    unit = "1 operation = 1 malloc + 1 free";
    break;
  case M_REALLOC:
    ops = run_slots(&elapsed);
    unit = "1 operation = 1 realloc";
    break;
  case M_CALLOC_SWAP:
    ops = run_calloc_swap(&elapsed);
    unit = "1 operation = 1 calloc + 1 swap into the shared array + 1 free of the block taken out "
           "(none while its slot was still empty)";
    break;
  default:
    ops = run_slots(&elapsed);
    unit = "1 operation = 1 free + 1 malloc";
    break;
  }
  printf("elapsed: %.6f s\n", elapsed);
  printf("total operations: %" PRIu64 " (%s)\n", ops, unit);
  printf("peak RSS: %" PRIu64 " KiB\n", bench_peak_rss_bytes() / 1024);
  printf("Throughput = %" PRIu64 " operations per second\n",
         (uint64_t)((double)ops / elapsed + 0.5));
  return 0;
}
