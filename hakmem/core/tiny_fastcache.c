#include "tiny_fastcache.h"
#include "link.h"

#include <errno.h>

#include "check.h"
#include "log.h"
#include "options.h"
#include "page_arena.h"
#include "size_class.h"
#include "slab.h"
#include "superslab.h"
#include "thread_heap.h"

void hak_tcache_double_free(void *p) { hak_report("free()", p, "double free of"); }

// A thread's first refill of a class asks for a page's worth of blocks, and
// each later one for twice as many, up to the class's batch: a class a thread
// barely uses costs it one page, not a batch.
static uint32_t first_refill(unsigned cls) {
  uint32_t n = (uint32_t)(HAK_PAGE_SIZE / hak_classes[cls].size);
  if (n > hak_classes[cls].batch)
    n = hak_classes[cls].batch;
  return n == 0 ? 1 : n;
}

void hak_tcache_set_caps(hak_tcache_bin *bins, bool enabled) {
  // Release builds run HAKMEM_CHECK=full on the slow paths, so the bins stay
  // empty and every call takes them.
  if (!HAKMEM_DEBUG && hak_check_full)
    enabled = false;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_tcache_bin *bin = &bins[c + 1];
    HAK_ASSERT(bin->head == NULL && hak_bin_count(bin) == 0); // set on empty bins only
    uint32_t cap = hak_classes[c].cache_cap;
    if (cap > hak_opts.tcache_max)
      cap = hak_opts.tcache_max;
    if (!enabled || !HAKMEM_FASTCACHE)
      cap = 0;
    hak_bin_add(bin, (uint64_t)cap - hak_bin_room(bin));
    bin->cap = cap;
    bin->refill = first_refill(c);
  }
}

void hak_tcache_counts(const hak_tcache_bin *bins, unsigned cls, uint64_t *allocs,
                       uint64_t *frees) {
  *allocs = hak_bin_fast_allocs(&bins[cls + 1]);
  *frees = __atomic_load_n(&bins[cls + 1].frees, __ATOMIC_RELAXED);
}

void hak_tcache_reset_counts(hak_tcache_bin *bins) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_tcache_bin *bin = &bins[c + 1];
    __atomic_store_n(&bin->word, (uint64_t)hak_bin_room(bin), __ATOMIC_RELAXED);
    __atomic_store_n(&bin->frees, 0, __ATOMIC_RELAXED);
  }
}

void *hak_tcache_alloc_slow(unsigned cls) {
  hak_heap *h = hak_heap_get();
  if (h == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  hak_tcache_bin *bin = hak_bin_of_class(cls);
  hak_arena_tick(); // slow paths are where idle memory gets returned
  uint32_t want = bin->refill;
  if (want > bin->cap)
    want = bin->cap;
  if (want == 0)
    want = 1;
  if (bin->refill < hak_classes[cls].batch)
    bin->refill =
        bin->refill * 2 < hak_classes[cls].batch ? bin->refill * 2 : hak_classes[cls].batch;
  void *list;
  hak_heap_lock(h);
  uint32_t got = hak_slab_take(h, cls, want, &list);
  hak_heap_unlock(h);
  hak_heap_note_slow(h);
  if (got == 0)
    return NULL;
  HAK_COUNT(h->counters[cls].allocs, 1);
  HAK_COUNT(h->counters[cls].slow_allocs, 1);
  HAK_COUNT(h->counters[cls].refills, 1);
  void *b = list;
  if (got > 1) {
    // The rest go under whatever the bin still holds; it is empty on a miss.
    HAK_ASSERT(got - 1 <= hak_bin_room(bin));
    void *rest = hak_link_get(b);
    void *tail = rest;
    for (void *next; (next = hak_link_get(tail)) != NULL;)
      tail = next;
    hak_link_set(tail, bin->head);
    bin->head = rest;
    hak_bin_add(bin, -(uint64_t)(got - 1));
  }
  return b;
}

// Frees a chain of blocks to their slabs, batching each run of blocks that
// share a foreign slab into one remote push.
static void release_chain(hak_heap *h, void *list, uint32_t n) {
  hak_slab *run_slab = NULL;
  void *run_first = NULL, *run_last = NULL;
  while (n-- > 0) {
    void *p = list;
    list = hak_link_get(p);
    hak_slab *s = hak_slab_of(p, hak_superslab_of(p)->kind);
    if (s != run_slab && run_slab != NULL) {
      hak_slab_free_remote(run_slab, run_first, run_last);
      run_slab = NULL;
    }
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == h) {
      hak_slab_free_local(h, s, p);
      continue;
    }
    HAK_COUNT(h->counters[s->class_idx].remote_frees, 1);
    if (run_slab == NULL) {
      run_slab = s;
      run_first = p;
    } else {
      hak_link_set(run_last, p);
    }
    run_last = p;
  }
  if (run_slab != NULL)
    hak_slab_free_remote(run_slab, run_first, run_last);
}

void hak_tcache_free_slow(void *p, hak_slab *s, unsigned cls) {
  if (!HAKMEM_DEBUG && hak_check_full)
    hak_check_free_block("free()", s, p);
  hak_heap *h = hak_tls.heap;
  hak_tcache_bin *bin = hak_bin_of_class(cls);
  if (p == bin->head && p != NULL)
    hak_tcache_double_free(p);
  if (h == NULL && !hak_tls.exiting) {
    h = hak_heap_get(); // a thread whose first call is free gets its heap now
  }
  if (h == NULL || bin->cap == 0) {
    if (h == NULL) {
      hak_slab_free_any(h, s, p);
      return;
    }
    hak_heap_lock(h);
    hak_slab_free_any(h, s, p);
    hak_heap_unlock(h);
    hak_heap_note_slow(h);
    return;
  }
  if (hak_bin_room(bin) == 0) {
    hak_arena_tick();
    // Full: hand back the top half, keeping the rest for the next mallocs.
    uint32_t n = hak_classes[cls].batch;
    uint32_t held = hak_bin_count(bin);
    if (n > held)
      n = held;
    void *list = bin->head;
    void *cut = list;
    for (uint32_t i = 1; i < n; i++)
      cut = hak_link_get(cut);
    bin->head = hak_link_get(cut);
    hak_link_set(cut, NULL);
    hak_bin_add(bin, n);
    hak_heap_lock(h);
    release_chain(h, list, n);
    hak_heap_unlock(h);
    hak_heap_note_slow(h);
  }
  hak_link_set(p, bin->head);
  bin->head = p;
  hak_bin_add(bin, (uint64_t)-1);
  HAK_COUNT(bin->frees, 1);
}

void hak_tcache_drain(hak_heap *h, hak_tcache_bin *bins) {
  hak_heap_lock(h);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_tcache_bin *bin = &bins[c + 1];
    uint32_t n = hak_bin_count(bin);
    if (n == 0)
      continue;
    void *list = bin->head;
    bin->head = NULL;
    hak_bin_add(bin, n);
    release_chain(h, list, n);
  }
  hak_heap_unlock(h);
  hak_heap_note_slow(h);
}
