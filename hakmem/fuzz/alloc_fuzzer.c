// libFuzzer target for hakmem's hak_* API.
//
// The input is a program of allocation operations on 64 slots. Every block
// hakmem hands out is filled with a pattern derived from its slot and a
// generation number, and the pattern is checked before the block is freed or
// reallocated, so a block handed out twice, a free list that corrupts live
// memory or a realloc that loses data shows up as a mismatch. Each input
// ends by freeing every block it still holds, and then checks hakmem's own
// counters (every allocation was freed).
//
// hakmem is linked as a library next to the system malloc (ASan's, under
// libFuzzer), so only the calls made here exercise it.
//
// Program encoding: a sequence of operations, each an opcode byte followed
// by its arguments; reading past the end yields zero bytes, and the program
// stops when the input is used up. Sizes pick a range first (tiny, small,
// medium, class boundaries, large), then a value in it; see read_size().
// Live bytes are capped (LIVE_CAP) so that no input can exhaust memory; an
// allocation that would pass the cap is skipped.
//
// Failures print "alloc_fuzzer: FAIL ..." with the operation number and
// abort(), which libFuzzer reports as a crash and saves the input.
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "hakmem/bench/bench_util.h"

#define NSLOTS 64
#define LIVE_CAP ((size_t)64 << 20)  // most bytes held at once
#define MAX_SIZE ((size_t)16 << 20)  // largest single request
#define FULL_FILL ((size_t)64 << 10) // blocks up to this are filled whole
#define STRIPE 64                    // larger ones: 64 bytes of every 4 KiB page, and the tail
#define PAGE 4096

typedef struct {
  unsigned char *p;
  size_t size;  // bytes requested
  size_t align; // alignment asked for (0: none beyond malloc's)
  uint64_t gen; // generation the pattern was written with
} slot;

typedef struct {
  const uint8_t *data;
  size_t len, pos;
} reader;

static slot g_slots[NSLOTS];
static size_t g_live;    // sum of the sizes of the held blocks
static uint64_t g_gen;   // per-input generation counter
static unsigned g_opno;  // operation number, for failure reports
static const char *g_op; // its name

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "alloc_fuzzer: FAIL at operation %u (%s): ", g_opno, g_op ? g_op : "-");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

// ---- input -----------------------------------------------------------------

static int more(const reader *r) { return r->pos < r->len; }

static uint8_t u8(reader *r) { return r->pos < r->len ? r->data[r->pos++] : 0; }

static uint32_t u16(reader *r) {
  uint32_t lo = u8(r);
  return lo | (uint32_t)u8(r) << 8;
}

static uint32_t u24(reader *r) {
  uint32_t lo = u16(r);
  return lo | (uint32_t)u8(r) << 16;
}

// Sizes where hakmem changes behaviour: size-class edges, the small/medium
// SuperSlab kinds, the slab/large split (128 KiB, less the debug trailer),
// and 2 MiB multiples of the large mappings.
static const size_t k_edges[] = {
    0,
    1,
    8,
    16,
    17,
    64,
    128,
    129,
    160,
    256,
    512,
    1024,
    1025,
    2048,
    4096,
    8192,
    8193,
    10240,
    16384,
    65536,
    131072 - 8,
    131072,
    131072 + 1,
    (2u << 20) - 64,
    2u << 20,
    (2u << 20) + 1,
    (4u << 20) - 64,
    4u << 20,
};

static size_t read_size(reader *r) {
  uint8_t sel = u8(r);
  size_t n;
  switch (sel & 7) {
  case 0:
    n = u8(r) % 129;
    break; // tiny
  case 1:
    n = u16(r) % 1025;
    break; // table-lookup classes
  case 2:
    n = u16(r) % 8193;
    break; // small SuperSlabs
  case 3:
    n = 8192 + u24(r) % (131072 - 8192 + 1);
    break;  // medium SuperSlabs
  case 4: { // an edge, give or take 16
    size_t e = k_edges[u8(r) % (sizeof k_edges / sizeof k_edges[0])];
    int delta = (int)(sel >> 3) - 16;
    n = (delta < 0 && (size_t)-delta > e) ? 0 : e + (size_t)(ptrdiff_t)delta;
    break;
  }
  case 5:
    n = 131072 + u24(r) % (4u << 20);
    break; // large
  case 6:
    n = (size_t)u8(r) << 16;
    break; // up to 16 MiB, 64 KiB steps
  default:
    n = u8(r) % 17;
    break; // very small, zero included
  }
  return n > MAX_SIZE ? MAX_SIZE : n;
}

// 1 .. 4 MiB, powers of two.
static size_t read_align(reader *r) { return (size_t)1 << (u8(r) % 23); }

// ---- patterns ----------------------------------------------------------------

// Every block's pattern is bench_util.h's, seeded by its slot and generation
// (so a block handed out twice shows up in one of the two slots).
static uint64_t seed_of(unsigned s, uint64_t gen) {
  return bench_mix64((uint64_t)(s + 1) << 40 ^ gen);
}

// Blocks up to FULL_FILL carry the pattern whole; larger ones in the first
// STRIPE bytes of every page and the last STRIPE bytes.
static const bench_coverage k_cover = {
    .full = FULL_FILL, .edge = STRIPE, .stride = PAGE, .stripe = STRIPE};

// Checks the first `limit` bytes of the pattern of a block of `size` bytes
// (now at p, maybe moved there by realloc) written for slot s.
static void check_pattern(const unsigned char *p, size_t size, size_t limit, uint64_t seed,
                          unsigned s) {
  size_t bad = bench_check_block(p, size, limit, seed, &k_cover);
  if (bad != BENCH_NO_MISMATCH)
    fail("slot %u block %p: byte %zu is 0x%02x, expected 0x%02x (live data corrupted)", s,
         (const void *)p, bad, p[bad], bench_pattern_byte(seed, bad));
}

static void fill_slot(unsigned s) {
  slot *b = &g_slots[s];
  b->gen = ++g_gen;
  bench_fill_block(b->p, b->size, seed_of(s, b->gen), &k_cover);
}

// Checks the first `limit` bytes of slot s's pattern.
static void check_slot_prefix(unsigned s, size_t limit) {
  slot *b = &g_slots[s];
  check_pattern(b->p, b->size, limit, seed_of(s, b->gen), s);
}

static void check_slot(unsigned s) { check_slot_prefix(s, g_slots[s].size); }

static void check_zero_range(const unsigned char *p, size_t from, size_t to) {
  size_t bad = bench_find_nonzero(p, from, to);
  if (bad != BENCH_NO_MISMATCH)
    fail("calloc block %p: byte %zu is 0x%02x, not 0", (const void *)p, bad, p[bad]);
}

static void check_zero(const unsigned char *p, size_t size) {
  // The whole block up to 1 MiB; beyond that the start and end of every
  // page (a page that was not zeroed is wrong everywhere).
  size_t whole = size < ((size_t)1 << 20) ? size : ((size_t)1 << 20);
  check_zero_range(p, 0, whole);
  for (size_t off = whole; off < size; off += PAGE) {
    size_t end = off + PAGE < size ? off + PAGE : size;
    if (end - off <= 2 * STRIPE) {
      check_zero_range(p, off, end);
    } else {
      check_zero_range(p, off, off + STRIPE);
      check_zero_range(p, end - STRIPE, end);
    }
  }
}

// ---- bookkeeping -------------------------------------------------------------

static int overlaps(const unsigned char *p, size_t n, unsigned except) {
  size_t len = n ? n : 1;
  for (unsigned s = 0; s < NSLOTS; s++) {
    const slot *b = &g_slots[s];
    if (s == except || b->p == NULL)
      continue;
    size_t blen = b->size ? b->size : 1;
    if (p < b->p + blen && b->p < p + len)
      return (int)s;
  }
  return -1;
}

// Checks a block just handed out for `size` bytes at `align`, and stores it
// in slot s (which must be empty).
static void adopt(unsigned s, void *ptr, size_t size, size_t align) {
  unsigned char *p = ptr;
  if (p == NULL)
    fail("NULL for %zu bytes (align %zu), errno %d", size, align, errno);
  if ((uintptr_t)p % 16 != 0)
    fail("block %p for %zu bytes is not 16-byte aligned", ptr, size);
  if (align > 1 && (uintptr_t)p % align != 0)
    fail("block %p for %zu bytes is not aligned to %zu", ptr, size, align);
  if (!hak_owns(p))
    fail("hak_owns(%p) is 0 for a block hakmem just returned", ptr);
  size_t usable = hak_usable_size(p);
  if (usable < size)
    fail("hak_usable_size(%p) = %zu < %zu requested", ptr, usable, size);
  int other = overlaps(p, size, s);
  if (other >= 0)
    fail("block %p (%zu bytes) overlaps the live block of slot %d (%p, %zu bytes)", ptr, size,
         other, (void *)g_slots[other].p, g_slots[other].size);
  g_slots[s].p = p;
  g_slots[s].size = size;
  g_slots[s].align = align;
  g_live += size;
}

static void release(unsigned s) {
  slot *b = &g_slots[s];
  if (b->p == NULL)
    return;
  check_slot(s);
  size_t usable = hak_usable_size(b->p);
  if (usable < b->size)
    fail("hak_usable_size(%p) = %zu < %zu before free", (void *)b->p, usable, b->size);
  hak_free(b->p);
  g_live -= b->size;
  b->p = NULL;
  b->size = 0;
}

// Room for n more bytes under LIVE_CAP (after slot s's block is released).
static int fits(size_t n, unsigned s) {
  size_t held = g_live - (g_slots[s].p ? g_slots[s].size : 0);
  return n <= LIVE_CAP - held;
}

// ---- operations ----------------------------------------------------------------

static void op_malloc(unsigned s, size_t n) {
  if (!fits(n, s))
    return;
  release(s);
  adopt(s, hak_malloc(n), n, 0);
  fill_slot(s);
}

static void op_calloc(unsigned s, size_t count, size_t each) {
  size_t n = count * each; // both small enough (see caller) not to overflow
  if (!fits(n, s))
    return;
  release(s);
  void *p = hak_calloc(count, each);
  adopt(s, p, n, 0);
  check_zero(p, n);
  fill_slot(s);
}

static void op_realloc(unsigned s, size_t n) {
  slot *b = &g_slots[s];
  if (b->p == NULL) { // realloc(NULL, n) is malloc(n)
    if (!fits(n, s))
      return;
    adopt(s, hak_realloc(NULL, n), n, 0);
    fill_slot(s);
    return;
  }
  check_slot(s);
  if (n == 0) { // frees, returns NULL
    errno = 0;
    void *q = hak_realloc(b->p, 0);
    if (q != NULL)
      fail("realloc(%p, 0) returned %p, not NULL", (void *)b->p, q);
    g_live -= b->size;
    b->p = NULL;
    b->size = 0;
    return;
  }
  if (!fits(n, s))
    return;
  size_t old = b->size;
  unsigned char *q = hak_realloc(b->p, n);
  if (q == NULL)
    fail("realloc(%p, %zu) returned NULL, errno %d", (void *)b->p, n, errno);
  // The old contents up to the smaller size come along.
  size_t keep = old < n ? old : n;
  check_pattern(q, old, keep, seed_of(s, b->gen), s);
  g_live -= old;
  b->p = NULL;
  b->size = 0;
  adopt(s, q, n, 0);
  fill_slot(s);
}

static void op_aligned(unsigned s, size_t align, size_t n, int posix) {
  if (!fits(n + align, s))
    return;
  release(s);
  void *p = NULL;
  if (posix) {
    if (align < sizeof(void *))
      align = sizeof(void *);
    int rc = hak_posix_memalign(&p, align, n);
    if (rc != 0)
      fail("posix_memalign(%zu, %zu) returned %d", align, n, rc);
  } else {
    p = hak_aligned_alloc(align, n);
  }
  adopt(s, p, n, align);
  fill_slot(s);
}

static void op_memalign(unsigned s, size_t align, size_t n, int kind) {
  size_t want = align;
  if (kind == 0 && (align & (align - 1)) != 0) { // memalign rounds up
    want = 1;
    while (want < align)
      want <<= 1;
  }
  if (kind == 1)
    want = PAGE;   // valloc
  if (kind == 2) { // pvalloc: rounded up to whole pages
    want = PAGE;
    n = n == 0 ? PAGE : (n + PAGE - 1) & ~(size_t)(PAGE - 1);
  }
  if (!fits(n + want, s))
    return;
  release(s);
  void *p = kind == 0 ? hak_memalign(align, n) : kind == 1 ? hak_valloc(n) : hak_pvalloc(n);
  adopt(s, p, n, want);
  fill_slot(s);
}

// Requests that must fail, leaving every held block intact.
static void op_impossible(reader *r) {
  uint8_t what = u8(r);
  size_t k = u16(r);
  size_t huge = (what & 0x10) ? SIZE_MAX - k : (size_t)PTRDIFF_MAX + 1 + k;
  void *p = NULL;
  int rc;
  errno = 0;
  switch (what % 7) {
  case 0:
    g_op = "malloc(huge)";
    p = hak_malloc(huge);
    if (p != NULL || errno != ENOMEM)
      fail("malloc(%zu) gave %p, errno %d", huge, p, errno);
    break;
  case 1: { // count * size overflows
    g_op = "calloc(overflow)";
    size_t count = ((size_t)1 << 32) + k, each = ((size_t)1 << 32) + (what >> 4);
    p = hak_calloc(count, each);
    if (p != NULL || errno != ENOMEM)
      fail("calloc(%zu, %zu) gave %p, errno %d", count, each, p, errno);
    break;
  }
  case 2: { // not a power of two
    g_op = "aligned_alloc(bad alignment)";
    size_t align = (size_t)3 << (k % 20);
    p = hak_aligned_alloc(align, 64);
    if (p != NULL || errno != EINVAL)
      fail("aligned_alloc(%zu, 64) gave %p, errno %d", align, p, errno);
    break;
  }
  case 3: { // not a power of two, or below sizeof(void *): EINVAL, *out untouched
    g_op = "posix_memalign(bad alignment)";
    size_t align = (what & 0x20) ? (size_t)(1 + k % 7) : (size_t)24 << (k % 16);
    void *out = (void *)&g_slots;
    rc = hak_posix_memalign(&out, align, 64);
    if (rc != EINVAL || out != (void *)&g_slots)
      fail("posix_memalign(%zu, 64) returned %d and changed *out to %p", align, rc, out);
    break;
  }
  case 4: { // impossible size
    g_op = "posix_memalign(huge)";
    void *out = (void *)&g_slots;
    rc = hak_posix_memalign(&out, 64, huge);
    if (rc != ENOMEM || out != (void *)&g_slots)
      fail("posix_memalign(64, %zu) returned %d, *out %p", huge, rc, out);
    break;
  }
  case 5: { // realloc to an impossible size: NULL, ENOMEM, old block kept
    g_op = "realloc(huge)";
    unsigned s = (unsigned)(k % NSLOTS);
    if (g_slots[s].p == NULL)
      break;
    p = hak_realloc(g_slots[s].p, huge);
    if (p != NULL || errno != ENOMEM)
      fail("realloc(%p, %zu) gave %p, errno %d", (void *)g_slots[s].p, huge, p, errno);
    check_slot(s);
    break;
  }
  default: { // reallocarray overflow
    g_op = "reallocarray(overflow)";
    unsigned s = (unsigned)(k % NSLOTS);
    if (g_slots[s].p == NULL)
      break;
    p = hak_reallocarray(g_slots[s].p, SIZE_MAX / 2, 3);
    if (p != NULL || errno != ENOMEM)
      fail("reallocarray overflow gave %p, errno %d", p, errno);
    check_slot(s);
    break;
  }
  }
}

// ---- other threads ---------------------------------------------------------------
// A short-lived thread either frees some of the blocks (remote frees into
// this thread's slabs) or allocates blocks and exits, leaving its slabs
// abandoned; this thread frees those later (frees into abandoned slabs,
// sweeping and adoption).

typedef struct {
  int alloc; // 1: allocate into the slots, 0: free them
  unsigned slots[8];
  size_t sizes[8];
  unsigned count;
  void *out[8];
} thread_job;

static void *thread_main(void *arg) {
  thread_job *job = arg;
  for (unsigned i = 0; i < job->count; i++) {
    if (job->alloc) {
      job->out[i] = hak_malloc(job->sizes[i]);
    } else {
      hak_free(g_slots[job->slots[i]].p);
    }
  }
  return NULL;
}

static void op_thread(reader *r) {
  uint8_t head = u8(r);
  thread_job job;
  memset(&job, 0, sizeof job);
  job.alloc = head & 1;
  unsigned want = 1 + (head >> 1) % 8;
  for (unsigned i = 0; i < want; i++) {
    unsigned s = u8(r) % NSLOTS;
    int dup = 0;
    for (unsigned j = 0; j < job.count; j++)
      dup |= job.slots[j] == s;
    if (dup)
      continue;
    if (job.alloc) {
      size_t n = read_size(r);
      if (!fits(n, s))
        continue;
      release(s);
      job.slots[job.count] = s;
      job.sizes[job.count++] = n;
      g_live += n; // reserved now, so the next sizes see it
      g_slots[s].size = n;
    } else if (g_slots[s].p != NULL) {
      check_slot(s);
      job.slots[job.count++] = s;
    }
  }
  if (job.count == 0)
    return;
  pthread_t t;
  if (pthread_create(&t, NULL, thread_main, &job) != 0) {
    // No thread: do the same work here.
    thread_main(&job);
  } else {
    pthread_join(t, NULL);
  }
  for (unsigned i = 0; i < job.count; i++) {
    unsigned s = job.slots[i];
    slot *b = &g_slots[s];
    if (job.alloc) {
      size_t n = job.sizes[i];
      g_live -= n;
      b->size = 0;
      adopt(s, job.out[i], n, 0);
      fill_slot(s);
    } else {
      g_live -= b->size;
      b->p = NULL;
      b->size = 0;
    }
  }
}

// ---- the program -------------------------------------------------------------------

static void check_counters(void) {
  static hak_stats st; // large: keep it off the stack
  hak_stats_get(&st);
  if (st.large_allocs != st.large_frees || st.large_live_bytes != 0)
    fail("after freeing everything: large allocs %llu, frees %llu, live bytes %llu",
         (unsigned long long)st.large_allocs, (unsigned long long)st.large_frees,
         (unsigned long long)st.large_live_bytes);
  for (unsigned c = 0; c < st.num_classes && c < HAK_STATS_MAX_CLASSES; c++) {
    if (st.classes[c].allocs != st.classes[c].frees)
      fail("after freeing everything: class %u (%llu bytes) allocs %llu != frees %llu", c,
           (unsigned long long)st.classes[c].block_size, (unsigned long long)st.classes[c].allocs,
           (unsigned long long)st.classes[c].frees);
  }
}

// Before hakmem reads its options: a small fast-cache bound, so that the 64
// slots overflow the per-class bins and the flush paths (local and remote)
// run often. An HAKMEM_TCACHE_MAX already in the environment wins.
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("HAKMEM_TCACHE_MAX", "16", 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader r = {data, size, 0};
  g_gen = 0;
  g_opno = 0;
  while (more(&r)) {
    uint8_t op = u8(&r);
    unsigned s = u8(&r) % NSLOTS;
    g_opno++;
    switch (op % 16) {
    case 0:
    case 1:
    case 2:
      g_op = "malloc";
      op_malloc(s, read_size(&r));
      break;
    case 3:
    case 4:
      g_op = "free";
      if (g_slots[s].p == NULL)
        hak_free(NULL);
      release(s);
      break;
    case 5:
    case 6:
      g_op = "realloc";
      op_realloc(s, read_size(&r));
      break;
    case 7: {
      g_op = "calloc";
      size_t count = u16(&r) % 4097, each = read_size(&r) % 65537;
      op_calloc(s, count, each);
      break;
    }
    case 8: {
      g_op = "aligned_alloc";
      size_t align = read_align(&r);
      op_aligned(s, align, read_size(&r), 0);
      break;
    }
    case 9: {
      g_op = "posix_memalign";
      size_t align = read_align(&r);
      op_aligned(s, align, read_size(&r), 1);
      break;
    }
    case 10: {
      uint8_t kind = u8(&r) % 3;
      g_op = kind == 0 ? "memalign" : kind == 1 ? "valloc" : "pvalloc";
      size_t align = (size_t)1 + u16(&r) % 8192; // any value: memalign rounds up
      op_memalign(s, align, read_size(&r), kind);
      break;
    }
    case 11:
      g_op = "check";
      if (g_slots[s].p != NULL)
        check_slot(s);
      break;
    case 12:
      g_op = "impossible";
      op_impossible(&r);
      break;
    case 13:
      g_op = "thread";
      op_thread(&r);
      break;
    case 14:
      g_op = (s & 1) ? "hak_trim" : "hak_thread_flush";
      if (s & 1)
        hak_trim(0);
      else
        hak_thread_flush();
      break;
    default: {
      g_op = "reallocarray";
      size_t count = 1 + u8(&r) % 64, each = read_size(&r) % 65537;
      slot *b = &g_slots[s];
      size_t n = count * each;
      if (b->p == NULL || n == 0 || !fits(n, s))
        break;
      size_t old = b->size;
      check_slot(s);
      unsigned char *q = hak_reallocarray(b->p, count, each);
      if (q == NULL)
        fail("reallocarray(%p, %zu, %zu) returned NULL", (void *)b->p, count, each);
      check_pattern(q, old, old < n ? old : n, seed_of(s, b->gen), s);
      g_live -= old;
      b->p = NULL;
      b->size = 0;
      adopt(s, q, n, 0);
      fill_slot(s);
      break;
    }
    }
  }
  g_op = "final free";
  for (unsigned s = 0; s < NSLOTS; s++)
    release(s);
  if (g_live != 0)
    fail("bookkeeping: %zu live bytes after freeing every slot", g_live);
  // Blocks still cached by this thread count as freed already; the check
  // holds whatever the cache holds.
  g_op = "final counters";
  check_counters();
  return 0;
}
