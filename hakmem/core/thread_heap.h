// Per-thread state: its creation on a thread's first allocation, and its
// teardown at thread exit (caches flushed, slabs handed back or abandoned,
// counters merged into the process totals).
#ifndef HAKMEM_THREAD_HEAP_H
#define HAKMEM_THREAD_HEAP_H

#include <stdbool.h>

#include "types.h"

// The calling thread's heap, created on first use; NULL only when memory for
// it cannot be had.
hak_heap *hak_heap_get(void) HAK_INTERNAL;
static inline hak_heap *hak_heap_current(void) { return hak_tls.heap; }

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

void hak_heap_fork_prepare(void) HAK_INTERNAL;
void hak_heap_fork_parent(void) HAK_INTERNAL;
void hak_heap_fork_child(void) HAK_INTERNAL;

// One-time process initialisation: options, thread-exit key, fork handlers.
void hak_init(void) HAK_INTERNAL;

#endif // HAKMEM_THREAD_HEAP_H
