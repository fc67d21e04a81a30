// The per-thread fast cache: for each class a bounded stack of free blocks.
// A hit is a pop on malloc and a push on free; misses refill from, and
// overflows flush to, the slab layer in batches.
#ifndef HAKMEM_TINY_FASTCACHE_H
#define HAKMEM_TINY_FASTCACHE_H

#include "link.h"
#include "types.h"

// Miss path of malloc for class cls: refills the bin and returns a block, or
// NULL with ENOMEM.
void *hak_tcache_alloc_slow(unsigned cls) HAK_INTERNAL;
// Overflow path of free for block p of class cls in slab s.
void hak_tcache_free_slow(void *p, hak_slab *s, unsigned cls) HAK_INTERNAL;
// Returns every cached block of bins (a thread's array) to its slab.
void hak_tcache_drain(hak_heap *h, hak_tcache_bin *bins) HAK_INTERNAL;
// Sets every bin's bound from the options (0 for a thread without a heap).
void hak_tcache_set_caps(hak_tcache_bin *bins, bool enabled) HAK_INTERNAL;

#if HAKMEM_FASTCACHE
static inline void *hak_tcache_pop(unsigned cls) {
  hak_tcache_bin *bin = &hak_tls.bins[cls];
  void *b = bin->head;
  if (hak_likely(b != NULL)) {
    bin->head = hak_link_get(b);
    bin->count--;
    HAK_COUNT(bin->allocs, 1);
  }
  return b;
}

void hak_tcache_double_free(void *p) HAK_INTERNAL __attribute__((noreturn, cold));

static inline bool hak_tcache_push(void *p, unsigned cls) {
  hak_tcache_bin *bin = &hak_tls.bins[cls];
  if (hak_unlikely(bin->count >= bin->cap))
    return false;
  // The cheap double-free check every build keeps: freeing the block that
  // was freed last.
  if (hak_unlikely(p == bin->head))
    hak_tcache_double_free(p);
  hak_link_set(p, bin->head);
  bin->head = p;
  bin->count++;
  HAK_COUNT(bin->frees, 1);
  return true;
}
#endif

#endif // HAKMEM_TINY_FASTCACHE_H
