// The public entry points: size dispatch (slab classes or large mappings) and
// the one fast path of each call.
#include "hakmem.h"
#include "integrity.h"

#include <errno.h>
#include <string.h>

#include "api.h"
#include "fastpath.h"
#include "foreign.h"
#include "guarded.h"
#include "large.h"
#include "maintenance.h"
#include "profile.h"
#include "purge.h"
#include "sampler.h"
#include "segmap.h"
#include "size_class.h"
#include "slab.h"
#include "superslab.h"
#include "thread_heap.h"
#include "tcache.h"

// ---- class allocation -------------------------------------------------------

// The calling thread's heap for a slow path, created (and hakmem initialised)
// on its first one; NULL when no memory can be had.
static hak_heap *slow_heap(void) {
  hak_heap *h = hak_tls.heap;
  if (hak_likely(h != NULL))
    return h;
  hak_maintenance_init();
  return hak_thread_heap_get();
}

// The same for a free: a thread whose first call is free gets its heap now,
// but one whose heap is being torn down frees without one.
static hak_heap *free_heap(void) {
  hak_heap *h = hak_tls.heap;
  if (hak_likely(h != NULL) || hak_tls.exiting)
    return h;
  return slow_heap();
}

// ---- heap profile -----------------------------------------------------------

// The segment map's kind of p's region; NONE past the end of a large
// mapping, whose last region may hold another program's memory.
static inline uint8_t region_of(const void *p) {
  uint8_t kind = hak_segmap_kind(p);
  if (hak_unlikely(kind == HAK_REGION_LARGE || kind == HAK_REGION_LARGE_TAIL) &&
      !hak_large_maps(p, kind))
    return HAK_REGION_NONE;
  return kind;
}

// The profiler's callback for a slab whose count of sampled blocks changed.
static void slab_prof_changed(void *slab, const void *p, int event) {
  if (event == HAK_PROF_SLAB_CLEAR)
    hak_superslab_prof_clear(slab);
  else
    hak_superslab_prof_add(slab, p, event == HAK_PROF_SLAB_FIRST);
}

// Records p, a sampled block of size bytes, with the caller's stack.
static void __attribute__((noinline)) prof_record(void *p, size_t size) {
  char mark = 0;
  uint8_t kind = hak_segmap_kind(p);
  if (kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM) {
    hak_slab *s = hak_superslab_slab_of(p, kind);
    hak_profile_record(p, size, &mark, &s->prof_live, slab_prof_changed, s);
  } else {
    hak_profile_record(p, size, &mark, NULL, NULL, NULL);
  }
}

// A free of a block in a slab with sampled blocks (whose class map entry
// sent it here), or of a large block.
static void __attribute__((noinline)) prof_free(void *p, hak_slab *s) {
  if (s != NULL)
    hak_profile_free(p, &s->prof_live, slab_prof_changed, s);
  else
    hak_profile_free(p, NULL, NULL, NULL);
}

static void *malloc_large(size_t size, size_t align, bool zero);

#if !HAKMEM_FASTCACHE
static void *__attribute__((noinline)) slab_alloc_slow(unsigned cls) {
  hak_heap *h = slow_heap();
  if (h == NULL)
    return NULL;
  hak_purge_poll(); // before the heap changes: starting the thread allocates
  if (hak_slab_refill(h, cls, hak_size_class_table[cls].batch) != 0)
    return NULL;
  hak_slab *s = h->cls[cls].active;
  void *b = s->free;
  s->free = hak_integrity_link_next(b);
  HAK_SLAB_SET_USED(s, s->used + 1);
  hak_integrity_block_take(b, HAK_VET_SLOW_TAKE);
  HAK_COUNT(h->counters[cls].allocs, 1);
  HAK_COUNT(h->counters[cls].slow_allocs, 1);
  HAK_COUNT(h->counters[cls].refills, 1);
  return b;
}

// A block of class cls with no sampler: a pop from the thread's active slab
// of the class. HAKMEM_CHECK=full sends every call down the slow path.
static inline void *take_class(unsigned cls) {
  hak_heap *h = hak_tls.heap;
  if (hak_likely(h != NULL && !HAK_CHECK_IS_FULL)) {
    hak_slab *s = h->cls[cls].active;
    void *b = s->free;
    if (hak_likely(b != NULL)) {
      s->free = hak_integrity_link_next(b);
      HAK_SLAB_SET_USED(s, s->used + 1);
      hak_integrity_block_take(b, HAK_VET_SLAB_TAKE);
      HAK_COUNT(h->counters[cls].allocs, 1);
      return b;
    }
  }
  return slab_alloc_slow(cls);
}
#endif

// Slab block b of class cls handed out for n bytes (NULL: none to be had).
static inline void *handed_out(void *b, unsigned cls, size_t n) {
  if (b != NULL)
    hak_integrity_alloced(b, hak_size_class_table[cls].size, n);
  return b;
}

// An allocation of class cls (for n bytes aligned to align) that the sampler
// picked. A guarded one is served by the pool unless the request does not
// fit a slot or every slot is live; with the fast cache, limit is the bound
// of the bin's refill (see hak_tcache_alloc_slow).
static void *__attribute__((noinline))
alloc_sampled(unsigned events, uint32_t limit, unsigned cls, size_t n, size_t align) {
  void *b = NULL;
  if (events & HAK_SAMPLE_GUARD) {
    b = hak_guarded_alloc(n, align, false);
#if HAKMEM_FASTCACHE
    if (b != NULL)
      hak_tcache_arm_empty(cls); // no free refills it before the next miss
#endif
  }
  bool guarded = b != NULL;
  if (b == NULL) {
#if HAKMEM_FASTCACHE
    b = hak_tcache_alloc_slow(slow_heap(), cls, limit);
#else
    (void)limit;
    b = take_class(cls);
#endif
  }
  if ((events & HAK_SAMPLE_PROF) && b != NULL)
    prof_record(b, hak_size_class_table[cls].size);
  return guarded ? b : handed_out(b, cls, n);
}

#if HAKMEM_FASTCACHE
// A miss of the bin of class cls: the sampler counts the allocations the bin
// made since the last one.
static void *__attribute__((noinline)) alloc_miss(unsigned cls, size_t n, size_t align) {
  hak_heap *h = slow_heap();
  uint32_t limit = UINT32_MAX;
  if (hak_unlikely(hak_sampler_on) && h != NULL) {
    if (hak_profile_enabled)
      hak_profile_poll();
    unsigned events = hak_tcache_sample_miss(cls, &limit);
    if (hak_unlikely(events != 0))
      return alloc_sampled(events, limit, cls, n, align);
  }
  return handed_out(hak_tcache_alloc_slow(h, cls, limit), cls, n);
}
#endif

// A block for a request of n bytes aligned to align, of class cls (debug
// builds add the trailer): with the fast cache, a pop from the thread's bin;
// without it, a pop from the thread's active slab of the class, each counted
// by the sampler when it is on. HAKMEM_CHECK=full sends every call down the
// slow path (bins have no room; see set_caps).
static inline void *alloc_small(size_t n, unsigned cls, size_t align) {
#if HAKMEM_FASTCACHE
  void *b = hak_tcache_pop(HAK_BIN_SLOT(hak_tcache_bin_of_class(cls)));
  if (hak_unlikely(b == NULL))
    return alloc_miss(cls, n, align);
#else
  if (hak_unlikely(hak_sampler_on)) {
    unsigned events = hak_sampler_count(hak_size_class_table[cls].size, HAK_SAMPLE_ALL);
    if (hak_unlikely(events != 0))
      return alloc_sampled(events, UINT32_MAX, cls, n, align);
  }
  void *b = take_class(cls);
#endif
  return handed_out(b, cls, n);
}

// The entry points whose frames (and those below them) are hakmem's own,
// with the out-of-line parts of malloc's paths: a tail call from an entry
// point leaves no frame for it, only theirs.
__attribute__((constructor)) static void prof_register_entries(void) {
  const void *const fns[] = {
    (const void *)hak_malloc,
    (const void *)hak_fastpath_malloc_miss,
    (const void *)hak_calloc,
    (const void *)hak_realloc,
    (const void *)hak_reallocarray,
    (const void *)hak_aligned_alloc,
    (const void *)hak_posix_memalign,
    (const void *)hak_memalign,
    (const void *)hak_valloc,
    (const void *)hak_pvalloc,
    (const void *)hak_free,
    (const void *)hak_fastpath_free_miss,
    (const void *)alloc_sampled,
    (const void *)malloc_large,
#if HAKMEM_FASTCACHE
    (const void *)alloc_miss,
#endif
#if HAK_WIDE_PATTERNS
    (const void *)hak_fastpath_malloc_wide,
    (const void *)hak_fastpath_free_wide,
#endif
  };
  hak_profile_add_entries(fns, sizeof fns / sizeof fns[0]);
}

// Largest request served from slabs.
#define SMALL_LIMIT (HAK_MEDIUM_MAX - HAK_TRAILER)

// Kept out of line so that the small-size path needs no stack frame.
static void *__attribute__((noinline)) malloc_large(size_t size, size_t align, bool zero) {
  hak_maintenance_init();
  void *p = hak_large_alloc(size, align, zero);
  if (hak_profile_enabled && p != NULL) {
    hak_profile_poll();
    if (hak_sampler_count(size, HAK_SAMPLE_PROF) != 0)
      prof_record(p, size);
  }
  return p;
}

void *hak_fastpath_malloc_miss(size_t size) {
  if (hak_likely(size <= SMALL_LIMIT))
    return alloc_small(size, hak_size_class_of(size + HAK_TRAILER), 0);
  return malloc_large(size, 0, false);
}

void *hak_malloc(size_t size) { return hak_fastpath_malloc(size); }

// ---- free -------------------------------------------------------------------

// The slab of p, once p is proven the start of a live block of it: every
// build checks this on every path but the inlined hit of free, which proves
// the same in its own way. Reports misuse by what and aborts.
// vet_live proves all but the guard, which free() checks as it poisons.
static inline hak_slab *vet_live(const char *what, const void *p, uint8_t kind) {
  hak_slab *s = hak_superslab_slab_of(p, kind);
  if (hak_unlikely(!hak_superslab_is_block(s, p)))
    hak_integrity_report_invalid(what, p);
  if (hak_unlikely(hak_integrity_is_marked_free(p) || hak_superslab_block_purged(s, p)))
    hak_integrity_report_freed(what, p);
  return s;
}
static hak_slab *vet_block(const char *what, const void *p, uint8_t kind) {
  hak_slab *s = vet_live(what, p, kind);
  hak_integrity_guard_check(what, p, s->block_size);
  return s;
}

// Large blocks, guarded blocks and pointers in no hakmem region.
static void __attribute__((noinline)) free_other(void *p, uint8_t kind) {
  if (p == NULL)
    return;
  if (kind == HAK_REGION_LARGE || kind == HAK_REGION_LARGE_TAIL) {
    hak_large *hdr = hak_large_of(p, kind);
    if (hdr == NULL)
      hak_integrity_report_invalid("free()", p);
    if (hak_profile_enabled)
      prof_free(p, NULL);
    hak_large_free(hdr);
    return;
  }
  if (kind == HAK_REGION_GUARDED) {
    if (hak_profile_enabled)
      prof_free(p, NULL);
    hak_guarded_free(p, "free()");
    return;
  }
  hak_foreign_free(p);
}

#if !HAKMEM_FASTCACHE
static void __attribute__((noinline)) slab_free_slow(void *p, hak_slab *s) {
  hak_slab_free_any(free_heap(), s, p);
}
#endif

// A vetted slab block back to the thread's bin, or to its slab.
static inline void free_slab_block(void *p, hak_slab *s) {
#if HAKMEM_FASTCACHE
  unsigned cls = s->class_idx;
  // An inlined hit path has tried the bin already.
  if (!HAK_INLINE_FAST_PATHS &&
      hak_likely(hak_tcache_push(HAK_BIN_SLOT(hak_tcache_bin_of_class(cls)), p)))
    return;
  hak_tcache_free_slow(free_heap(), p, s, cls);
#else
  hak_integrity_mark_free(p);
  hak_heap *h = hak_tls.heap;
  if (hak_likely(h != NULL && atomic_load_explicit(&s->owner, memory_order_relaxed) == h)) {
    HAK_COUNT(h->counters[s->class_idx].frees, 1);
    hak_slab_free_local(h, s, p);
    return;
  }
  slab_free_slow(p, s);
#endif
}

// The one general free: all of free where the build has no inlined hit
// path, else everything that path does not take (foreign pointers, large
// and medium blocks, free slab slots, full or closed bins, and whatever
// failed its checks: an interior pointer, a double free, which this names).
void hak_fastpath_free_miss(void *p) {
  uint8_t kind = region_of(p);
  if (hak_unlikely(kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)) {
    free_other(p, kind);
    return;
  }
  hak_slab *s = vet_live("free()", p, kind);
  hak_integrity_freed(p, s->block_size);
  if (hak_unlikely(hak_superslab_prof_maybe(s, p)))
    prof_free(p, s);
  free_slab_block(p, s);
}

#if HAK_WIDE_PATTERNS
__attribute__((target("avx2"))) void *hak_fastpath_malloc_wide(size_t size) {
  return hak_fastpath_malloc_hit(size);
}
__attribute__((target("avx2"))) void hak_fastpath_free_wide(void *p) { hak_fastpath_free_hit(p); }
#endif

#if HAK_INLINE_FAST_PATHS
void hak_fastpath_free_long(void *p, uintptr_t slot, uint32_t block_size) {
  hak_integrity_freed(p, block_size);
  hak_fastpath_push(p, slot, hak_integrity_free_key);
}

void hak_fastpath_free_full(void *p, uintptr_t slot) {
  hak_tls.bins[0].hot.r.e[slot].room += 1; // the hit path's subtract wrapped it
  hak_fastpath_free_miss(p);
}

void hak_free(void *p) { hak_fastpath_free(p); }
#else
void hak_free(void *p) { hak_fastpath_free_miss(p); }
#endif

// ---- sizes ------------------------------------------------------------------

size_t hak_usable_size(const void *p) {
  uint8_t kind = region_of(p);
  if (kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM) {
    hak_slab *s = vet_block("malloc_usable_size()", p, kind);
    return hak_integrity_guard_check("malloc_usable_size()", p, s->block_size);
  }
  if (kind == HAK_REGION_LARGE || kind == HAK_REGION_LARGE_TAIL) {
    hak_large *hdr = hak_large_of(p, kind);
    if (hdr == NULL)
      hak_integrity_report_invalid("malloc_usable_size()", p);
    return hdr->usable;
  }
  if (kind == HAK_REGION_GUARDED)
    return hak_guarded_usable_size(p, "malloc_usable_size()");
  return 0; // not hakmem's: the API says so with 0, as for NULL
}

// malloc_usable_size() as exported: a pointer that is not hakmem's must be
// glibc's, or it is reported.
size_t hak_api_malloc_usable_size(const void *p) {
  uint8_t kind = region_of(p);
  if (kind != HAK_REGION_NONE || p == NULL)
    return hak_usable_size(p);
  return hak_foreign_usable_size(p);
}

int hak_owns(const void *p) {
  uint8_t kind = region_of(p);
  if (kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM) {
    hak_slab *s = hak_superslab_slab_of(p, kind);
    // A block start of a slab in use, neither free (marked) nor in a page a
    // trim gave back: reading its second word is safe, the slab is mapped.
    return hak_superslab_is_block(s, p) && !hak_integrity_is_marked_free(p) &&
           !hak_superslab_block_purged(s, p);
  }
  if (kind == HAK_REGION_LARGE || kind == HAK_REGION_LARGE_TAIL)
    return hak_large_of(p, kind) != NULL;
  if (kind == HAK_REGION_GUARDED)
    return hak_guarded_owns_live(p);
  return 0;
}

// ---- calloc / realloc -------------------------------------------------------

void *hak_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (total > SMALL_LIMIT)
    return malloc_large(total, 0, true); // fresh maps skip the memset
  void *p = alloc_small(total, hak_size_class_of(total + HAK_TRAILER), 0);
  if (p != NULL)
    memset(p, 0, total);
  return p;
}

void *hak_realloc(void *p, size_t size) {
  if (p == NULL)
    return hak_malloc(size);
  if (size == 0) {
    hak_free(p); // glibc frees and returns NULL
    return NULL;
  }
  uint8_t kind = region_of(p);
  size_t old;
  if (kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM) {
    hak_slab *s = vet_block("realloc()", p, kind);
    size_t room = s->block_size - HAK_TRAILER;
    old = hak_integrity_guard_check("realloc()", p, s->block_size);
    // Stay put unless the block would be more than half empty.
    if (size <= room && (size > s->block_size / 2 || s->block_size <= 64)) {
      hak_integrity_guard_arm(p, s->block_size, size);
      return p;
    }
  } else if (kind == HAK_REGION_LARGE || kind == HAK_REGION_LARGE_TAIL) {
    hak_large *hdr = hak_large_of(p, kind);
    if (hdr == NULL)
      hak_integrity_report_invalid("realloc()", p);
    old = hdr->usable;
    // A move keeps no sampled block's record: the profiler copies instead.
    void *q = size > SMALL_LIMIT ? hak_large_resize(hdr, p, size, !hak_profile_enabled) : NULL;
    if (q != NULL)
      return q;
  } else if (kind == HAK_REGION_GUARDED) {
    old = hak_guarded_usable_size(p, "realloc()"); // a guarded block always moves
  } else {
    return hak_foreign_realloc(p, size);
  }
  void *q = hak_malloc(size);
  if (q == NULL)
    return NULL; // the old block stays valid, as C requires
  memcpy(q, p, old < size ? old : size);
  hak_free(p);
  return q;
}

void *hak_reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_realloc(p, total);
}

// ---- aligned allocation -----------------------------------------------------

static inline bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// align is a power of two.
static void *aligned_impl(size_t align, size_t size) {
  if (align <= 16)
    return hak_malloc(size);
  if (size <= SMALL_LIMIT && align <= HAK_PAGE_SIZE) {
    unsigned cls = hak_size_class_aligned(size + HAK_TRAILER, align);
    if (cls < HAK_NUM_CLASSES)
      return alloc_small(size, cls, align);
  }
  return malloc_large(size, align, false);
}

void *hak_aligned_alloc(size_t align, size_t size) {
  if (!is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return aligned_impl(align, size);
}

int hak_posix_memalign(void **out, size_t align, size_t size) {
  if (!is_pow2(align) || align % sizeof(void *) != 0)
    return EINVAL;
  int saved = errno;
  void *p = aligned_impl(align, size);
  if (p == NULL) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

void *hak_memalign(size_t align, size_t size) {
  if (align <= 16)
    return hak_malloc(size);
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (!is_pow2(align))
    align = (size_t)1 << (64 - __builtin_clzll(align)); // glibc rounds up
  return aligned_impl(align, size);
}

void *hak_valloc(size_t size) { return aligned_impl(HAK_PAGE_SIZE, size); }

void *hak_pvalloc(size_t size) {
  if (size > SIZE_MAX - HAK_PAGE_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  size_t rounded = (size + HAK_PAGE_SIZE - 1) & ~(HAK_PAGE_SIZE - 1);
  return aligned_impl(HAK_PAGE_SIZE, rounded == 0 ? HAK_PAGE_SIZE : rounded);
}

// ---- maintenance ------------------------------------------------------------

void hak_thread_flush(void) {
#if HAKMEM_FASTCACHE
  hak_heap *h = hak_tls.heap;
  if (h != NULL)
    hak_tcache_drain(h, hak_tls.bins);
#endif
}

int hak_trim(size_t pad) {
  (void)pad;
  return hak_maintenance_trim();
}

#define HAK_ALIAS(name)                                                                            \
  extern __typeof(hak_##name) hak_api_##name __attribute__((alias("hak_" #name)))
HAK_ALIAS(malloc);
HAK_ALIAS(free);
HAK_ALIAS(calloc);
HAK_ALIAS(realloc);
HAK_ALIAS(reallocarray);
HAK_ALIAS(aligned_alloc);
HAK_ALIAS(posix_memalign);
HAK_ALIAS(memalign);
HAK_ALIAS(valloc);
HAK_ALIAS(pvalloc);
HAK_ALIAS(usable_size);
HAK_ALIAS(trim);
