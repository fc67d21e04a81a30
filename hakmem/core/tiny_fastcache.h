// The per-thread fast cache: for each class a bounded stack of free blocks.
// A hit is a pop on malloc and a push on free; misses refill from, and
// overflows flush to, the slab layer in batches.
#ifndef HAKMEM_TINY_FASTCACHE_H
#define HAKMEM_TINY_FASTCACHE_H

#include "link.h"
#include "types.h"

// Miss path of malloc for class cls (its bin is empty): refills the bin and
// returns a block, or NULL with ENOMEM.
void *hak_tcache_alloc_slow(unsigned cls) HAK_INTERNAL;
// Slow path of free for block p of class cls in slab s: the bin is full or
// off, or p is at its head (a double free).
void hak_tcache_free_slow(void *p, hak_slab *s, unsigned cls) HAK_INTERNAL;
// Fast allocations and frees of class cls made through bins.
void hak_tcache_counts(const hak_tcache_bin *bins, unsigned cls, uint64_t *allocs,
                       uint64_t *frees) HAK_INTERNAL;
// Zeroes those counts (the thread's totals have been merged).
void hak_tcache_reset_counts(hak_tcache_bin *bins) HAK_INTERNAL;
// Returns every cached block of bins (a thread's array, HAK_NUM_CLASSES + 1
// entries) to its slab.
void hak_tcache_drain(hak_heap *h, hak_tcache_bin *bins) HAK_INTERNAL;
// Sets every bin's bound from the options (0 for a thread without a heap).
void hak_tcache_set_caps(hak_tcache_bin *bins, bool enabled) HAK_INTERNAL;

// Accessors of a bin's packed word. The owner thread updates it; statistics
// read it from other threads, so under ThreadSanitizer the update is an
// atomic store.
static inline uint32_t hak_bin_room(const hak_tcache_bin *bin) {
  return (uint32_t)bin->word & HAK_BIN_ROOM_MASK;
}
static inline void hak_bin_add(hak_tcache_bin *bin, uint64_t delta) { HAK_COUNT(bin->word, delta); }
static inline uint64_t hak_bin_fast_allocs(const hak_tcache_bin *bin) {
  return __atomic_load_n(&bin->word, __ATOMIC_RELAXED) >> HAK_BIN_ROOM_BITS;
}
static inline uint32_t hak_bin_count(const hak_tcache_bin *bin) {
  return bin->cap - hak_bin_room(bin);
}
static inline hak_tcache_bin *hak_bin_of_class(unsigned cls) { return &hak_tls.bins[cls + 1]; }

#if HAKMEM_FASTCACHE
static inline void *hak_tcache_pop(hak_tcache_bin *bin) {
  void *b = bin->head;
  if (hak_likely(b != NULL)) {
    bin->head = hak_link_get(b);
    hak_bin_add(bin, HAK_BIN_POP);
  }
  return b;
}

void hak_tcache_double_free(void *p) HAK_INTERNAL __attribute__((noreturn, cold));

// The cheap double-free check every build keeps is p == bin->head: freeing
// the block that was freed last.
static inline bool hak_tcache_push(hak_tcache_bin *bin, void *p) {
  void *head = bin->head;
  if (hak_unlikely(hak_bin_room(bin) == 0 || p == head))
    return false;
  hak_link_set(p, head);
  bin->head = p;
  hak_bin_add(bin, (uint64_t)-1);
  HAK_COUNT(bin->frees, 1);
  return true;
}
#endif

#endif // HAKMEM_TINY_FASTCACHE_H
