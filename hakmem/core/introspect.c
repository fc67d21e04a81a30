// glibc's introspection calls from hakmem's statistics, and the statistics
// report on a signal. Nothing here allocates: figures come from one
// hak_stats snapshot on the stack, text is formatted with hak_log_format into
// stack buffers. The one exception is malloc_info, which writes to a stream
// the caller hands us (see there).
#define _GNU_SOURCE
#include "introspect.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "stats.h"
#include "maintenance.h"

// ---- mallinfo2 / mallinfo ----------------------------------------------------

static uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

// Free blocks of class c: the blocks its slabs hold less those handed out.
// The counters are a snapshot taken while threads run, so the difference is
// floored at 0.
static uint64_t free_blocks(const hak_class_stats *k) {
  return sub0(k->capacity, sub0(k->allocs, k->frees));
}

void hak_introspect_mallinfo2_of(const hak_stats *s, struct mallinfo2 *m) {
  memset(m, 0, sizeof *m);
  uint64_t used = 0;
  for (unsigned c = 0; c < s->num_classes; c++) {
    const hak_class_stats *k = &s->classes[c];
    used += sub0(k->allocs, k->frees) * k->block_size;
    uint64_t nfree = free_blocks(k);
    if (k->block_size <= HAK_INTROSPECT_FAST_MAX) {
      m->smblks += nfree;
      m->fsmblks += nfree * k->block_size;
    } else {
      m->ordblks += nfree;
    }
  }
  m->arena = s->superslabs * HAK_SS_SIZE;
  m->uordblks = used;
  m->fordblks = sub0(m->arena, used);
  m->hblks = sub0(s->large_allocs, s->large_frees);
  m->hblkhd = s->large_live_bytes;
  m->usmblks = 0; // unused, as in glibc
  m->keepcost = s->cached_bytes;
}

static int clamp_int(size_t v) { return v > (size_t)INT_MAX ? INT_MAX : (int)v; }

void hak_introspect_mallinfo_clamp(const struct mallinfo2 *in, struct mallinfo *out) {
  out->arena = clamp_int(in->arena);
  out->ordblks = clamp_int(in->ordblks);
  out->smblks = clamp_int(in->smblks);
  out->hblks = clamp_int(in->hblks);
  out->hblkhd = clamp_int(in->hblkhd);
  out->usmblks = clamp_int(in->usmblks);
  out->fsmblks = clamp_int(in->fsmblks);
  out->uordblks = clamp_int(in->uordblks);
  out->fordblks = clamp_int(in->fordblks);
  out->keepcost = clamp_int(in->keepcost);
}

struct mallinfo2 hak_mallinfo2(void) {
  hak_stats s;
  hak_stats_get(&s);
  struct mallinfo2 m;
  hak_introspect_mallinfo2_of(&s, &m);
  return m;
}

struct mallinfo hak_mallinfo(void) {
  struct mallinfo2 m2 = hak_mallinfo2();
  struct mallinfo m;
  hak_introspect_mallinfo_clamp(&m2, &m);
  return m;
}

// ---- malloc_stats ------------------------------------------------------------

void hak_malloc_stats(void) {
  hak_stats s;
  hak_stats_get(&s);
  struct mallinfo2 m;
  hak_introspect_mallinfo2_of(&s, &m);
  char buf[512];
  // glibc's shape: one arena (hakmem's per-thread heaps are summed), then the
  // totals including the large blocks' mappings.
  size_t n = hak_log_format(
      buf, sizeof buf,
      "Arena 0:\n"
      "system bytes     = %10llu\n"
      "in use bytes     = %10llu\n"
      "Total (incl. mmap):\n"
      "system bytes     = %10llu\n"
      "in use bytes     = %10llu\n"
      "max mmap regions = %10llu\n"
      "max mmap bytes   = %10llu\n",
      (unsigned long long)m.arena, (unsigned long long)m.uordblks,
      (unsigned long long)s.mapped_bytes, (unsigned long long)(m.uordblks + m.hblkhd),
      (unsigned long long)(s.mapped_peak / HAK_SS_SIZE), (unsigned long long)s.mapped_peak);
  hak_log_write_all(2, buf, n);
}

// ---- malloc_info -------------------------------------------------------------

// The XML is formatted into a stack buffer with hak_log_format and handed to the
// caller's stream with fwrite, never fprintf. fwrite may allocate (a stream's
// buffer on first use, or an open_memstream growing): that is a plain call of
// malloc, made while hakmem holds no lock of its own (the snapshot was taken
// before), so it cannot deadlock or see hakmem half-updated; fprintf would
// add its own work buffers and locale handling for nothing.
static void file_sink(void *ctx, const char *s, size_t n) { fwrite(s, 1, n, (FILE *)ctx); }

int hak_malloc_info(int options, FILE *fp) {
  // glibc's manual: nonzero options are reserved (EINVAL); a stream is needed.
  if (options != 0 || fp == NULL) {
    errno = EINVAL;
    return -1;
  }
  hak_stats s;
  hak_stats_get(&s);
  struct mallinfo2 m;
  hak_introspect_mallinfo2_of(&s, &m);
  hak_text o = {.sink = file_sink, .ctx = fp, .len = 0};
  typedef unsigned long long ull;
  hak_log_text_add(&o, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
  uint64_t prev = 0;
  for (unsigned c = 0; c < s.num_classes; c++) {
    const hak_class_stats *k = &s.classes[c];
    uint64_t nfree = free_blocks(k);
    if (nfree > 0)
      hak_log_text_add(&o, "  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"/>\n",
                       (ull)(prev + 1), (ull)k->block_size, (ull)(nfree * k->block_size),
                       (ull)nfree);
    prev = k->block_size;
  }
  uint64_t rest_bytes = 0;
  for (unsigned c = 0; c < s.num_classes; c++)
    if (s.classes[c].block_size > HAK_INTROSPECT_FAST_MAX)
      rest_bytes += free_blocks(&s.classes[c]) * s.classes[c].block_size;
  uint64_t arena_peak = s.superslabs_peak * HAK_SS_SIZE;
  hak_log_text_add(&o, "</sizes>\n");
  hak_log_text_add(&o, "<total type=\"fast\" count=\"%llu\" size=\"%llu\"/>\n", (ull)m.smblks,
                   (ull)m.fsmblks);
  hak_log_text_add(&o, "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n", (ull)m.ordblks,
                   (ull)rest_bytes);
  hak_log_text_add(&o, "<system type=\"current\" size=\"%llu\"/>\n", (ull)m.arena);
  hak_log_text_add(&o, "<system type=\"max\" size=\"%llu\"/>\n", (ull)arena_peak);
  hak_log_text_add(&o, "<aspace type=\"total\" size=\"%llu\"/>\n", (ull)m.arena);
  hak_log_text_add(&o, "<aspace type=\"mprotect\" size=\"%llu\"/>\n", (ull)m.arena);
  hak_log_text_add(&o, "</heap>\n");
  hak_log_text_add(&o, "<total type=\"fast\" count=\"%llu\" size=\"%llu\"/>\n", (ull)m.smblks,
                   (ull)m.fsmblks);
  hak_log_text_add(&o, "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n", (ull)m.ordblks,
                   (ull)rest_bytes);
  hak_log_text_add(&o, "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n", (ull)m.hblks,
                   (ull)m.hblkhd);
  hak_log_text_add(&o, "<system type=\"current\" size=\"%llu\"/>\n", (ull)s.mapped_bytes);
  hak_log_text_add(&o, "<system type=\"max\" size=\"%llu\"/>\n", (ull)s.mapped_peak);
  hak_log_text_add(&o, "<aspace type=\"total\" size=\"%llu\"/>\n", (ull)s.mapped_bytes);
  hak_log_text_add(&o, "<aspace type=\"mprotect\" size=\"%llu\"/>\n", (ull)s.mapped_bytes);
  hak_log_text_add(&o, "</malloc>\n");
  hak_log_text_flush(&o);
  return 0;
}

// ---- mallopt -----------------------------------------------------------------

// Return values are glibc's (2.36, checked against it): 0 only for an
// M_MXFAST outside [0, 160]; 1 for everything else, parameters glibc does
// not know included. See README.md for what each parameter does in hakmem.
int hak_mallopt(int param, int value) {
  hak_maintenance_init(); // so that loading HAKMEM_* later cannot undo this
  switch (param) {
  case M_MXFAST:
    return value >= 0 && value <= HAK_INTROSPECT_MXFAST_MAX;
  case M_TRIM_THRESHOLD:
    // Idle memory kept beyond this goes back to the OS at once: the arena
    // cache bound. A negative value converts as glibc converts it, to a huge
    // size_t: no bound but the arena's slots.
    __atomic_store_n(&hak_options_current.arena_cache_bytes, (size_t)(long)value, __ATOMIC_RELAXED);
    return 1;
  default:
    // M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_TEST, M_ARENA_MAX,
    // M_PERTURB, M_CHECK_ACTION and the rest: accepted, no effect.
    return 1;
  }
}

// The public modes are the os box's, passed through unchanged.
_Static_assert(HAK_HEAP_LIMIT_SOFT == HAK_OS_LIMIT_SOFT && HAK_HEAP_LIMIT_HARD == HAK_OS_LIMIT_HARD,
               "heap limit modes");

int hak_set_heap_limit(size_t bytes, int mode) {
  hak_maintenance_init(); // so that loading HAKMEM_HEAP_LIMIT_* later cannot undo this
  return hak_os_set_limit(bytes, mode);
}

// Hidden aliases for the override layer (see api.h).
#define HAK_ALIAS(name)                                                                            \
  extern __typeof(hak_##name) hak_api_##name __attribute__((alias("hak_" #name)))
HAK_ALIAS(mallinfo2);
HAK_ALIAS(mallinfo);
HAK_ALIAS(malloc_stats);
HAK_ALIAS(malloc_info);
HAK_ALIAS(mallopt);
