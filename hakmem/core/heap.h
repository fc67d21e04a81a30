// One thread heap as lower boxes see it: its lock, and the notes that tell
// the purge thread when the heap has gone idle or got remote frees. The
// registry of heaps, their creation and teardown are thread_heap's.
#ifndef HAKMEM_HEAP_H
#define HAKMEM_HEAP_H

#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

static inline hak_heap *hak_heap_current(void) { return hak_tls.heap; }

// The heap lock: its owner takes it around slab-layer work on slow paths, the
// purge thread to trim the heap while the owner is idle. Uncontended but for
// a trim, so a spin with a yield is enough.
void hak_heap_lock_wait(hak_heap *h) HAK_INTERNAL;
static inline bool hak_heap_trylock(hak_heap *h) {
  return atomic_load_explicit(&h->lock, memory_order_relaxed) == 0 &&
         atomic_exchange_explicit(&h->lock, 1, memory_order_acquire) == 0;
}
static inline void hak_heap_lock(hak_heap *h) {
  if (hak_likely(atomic_exchange_explicit(&h->lock, 1, memory_order_acquire) == 0))
    return;
  hak_heap_lock_wait(h);
}
static inline void hak_heap_unlock(hak_heap *h) {
  atomic_store_explicit(&h->lock, 0, memory_order_release);
}

// How long a live heap goes without a slow path before it is trimmed.
uint64_t hak_heap_idle_ms(void) HAK_INTERNAL;

// Notes, on an owner's slow path that moved blocks between its bins and its
// slabs, that the heap is busy; once it has been idle for hak_heap_idle_ms
// the purge thread trims it.
void hak_heap_note_slow(hak_heap *h) HAK_INTERNAL;

// Called after pushing remote frees into a slab that owner (read before the
// push; heap structs are never unmapped) owned: a heap trimmed while idle
// asks for another trim, which collects them.
void hak_heap_note_remote(hak_heap *owner) HAK_INTERNAL;

// Counts a free made by a thread that has no heap (during its teardown), and
// reads the count of a class.
void hak_heap_orphan_free(unsigned cls) HAK_INTERNAL;
uint64_t hak_heap_orphan_frees(unsigned cls) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_HEAP_H
