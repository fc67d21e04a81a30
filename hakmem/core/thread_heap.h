// Per-thread state: its creation on a thread's first allocation, and its
// teardown at thread exit (caches flushed, slabs handed back or abandoned,
// counters merged into the process totals).
#ifndef HAKMEM_THREAD_HEAP_H
#define HAKMEM_THREAD_HEAP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "types.h"

// The calling thread's heap, created on first use; NULL only when memory for
// it cannot be had.
hak_heap *hak_heap_get(void) HAK_INTERNAL;
static inline hak_heap *hak_heap_current(void) { return hak_tls.heap; }

// The heap lock: its owner takes it around slab-layer work on slow paths, the
// purge thread to trim the heap while the owner is idle. Uncontended but for
// a trim, so a spin with a yield is enough.
void hak_heap_lock_wait(hak_heap *h) HAK_INTERNAL;
static inline void hak_heap_lock(hak_heap *h) {
  if (hak_likely(atomic_exchange_explicit(&h->lock, 1, memory_order_acquire) == 0))
    return;
  hak_heap_lock_wait(h);
}
static inline bool hak_heap_trylock(hak_heap *h) {
  return atomic_load_explicit(&h->lock, memory_order_relaxed) == 0 &&
         atomic_exchange_explicit(&h->lock, 1, memory_order_acquire) == 0;
}
static inline void hak_heap_unlock(hak_heap *h) {
  atomic_store_explicit(&h->lock, 0, memory_order_release);
}

// Notes, on an owner's slow path that moved blocks between its bins and its
// slabs, that the heap is busy; once it has been idle for the decay time the
// purge thread trims it.
void hak_heap_note_slow(hak_heap *h) HAK_INTERNAL;

// Called after pushing remote frees into a slab that owner (read before the
// push; heap structs are never unmapped) owned: a heap trimmed while idle
// asks for another trim, which collects them.
void hak_heap_note_remote(hak_heap *owner) HAK_INTERNAL;

// Trims the slabs of live heaps idle for half the decay time (every heap when
// force); returns when the next one is due (0: none waits). Heaps whose lock
// is busy are skipped. Only inside a purge pass (the purge lock held): the
// registry lock is held throughout, and a nested pass would take it again.
uint64_t hak_heap_trim_idle(bool force) HAK_INTERNAL;

// Tears down the calling thread's heap now (also run at thread exit).
void hak_heap_thread_exit(void) HAK_INTERNAL;

// Retires stashed heaps (see HAKMEM_HEAP_STASH) idle for the decay time, or
// all of them when force; returns when the next one is due (0: none left).
uint64_t hak_heap_stash_expire(bool force) HAK_INTERNAL;

// Counts a free made by a thread that has no heap (during its teardown).
void hak_heap_orphan_free(unsigned cls) HAK_INTERNAL;

// Sums the counters of live heaps, exited ones and orphan frees.
void hak_heap_collect_counters(hak_class_counters merged[HAK_NUM_CLASSES],
                               uint64_t fast_allocs[HAK_NUM_CLASSES],
                               uint64_t fast_frees[HAK_NUM_CLASSES]) HAK_INTERNAL;

// The same from a context that must not wait, a signal handler: the
// registry lock is only tried, for up to wait_ms, and never when this thread
// holds it. Without it only exited threads' counters and orphan frees are
// summed, and false is returned.
bool hak_heap_collect_counters_try(hak_class_counters merged[HAK_NUM_CLASSES],
                                   uint64_t fast_allocs[HAK_NUM_CLASSES],
                                   uint64_t fast_frees[HAK_NUM_CLASSES],
                                   uint32_t wait_ms) HAK_INTERNAL;

// For tests: takes (hold) or releases the registry lock on this thread, as a
// thread inside hak_heap_get or a statistics read holds it.
void hak_heap_registry_hold(bool hold) HAK_INTERNAL;

void hak_heap_fork_prepare(void) HAK_INTERNAL;
void hak_heap_fork_parent(void) HAK_INTERNAL;
void hak_heap_fork_child(void) HAK_INTERNAL;

// One-time process initialisation: options, thread-exit key, fork handlers.
void hak_init(void) HAK_INTERNAL;

#endif // HAKMEM_THREAD_HEAP_H
