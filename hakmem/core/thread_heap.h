// Per-thread state: its creation on a thread's first allocation, and its
// teardown at thread exit (caches flushed, slabs handed back or abandoned,
// counters merged into the process totals).
#ifndef HAKMEM_THREAD_HEAP_H
#define HAKMEM_THREAD_HEAP_H

#include <stdbool.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// The calling thread's heap, created on first use (after hak_maintenance_init); NULL only
// when memory for it cannot be had.
hak_heap *hak_thread_heap_get(void) HAK_INTERNAL;

// Trims the slabs of live heaps idle for half the decay time (every heap when
// force); returns when the next one is due (0: none waits). Heaps whose lock
// is busy are skipped. Only inside a purge pass (the purge lock held): the
// registry lock is held throughout, and a nested pass would take it again.
uint64_t hak_thread_heap_trim_idle(bool force) HAK_INTERNAL;

// Tears down the calling thread's heap now (also run at thread exit).
void hak_thread_heap_exit(void) HAK_INTERNAL;

// Retires stashed heaps (see HAKMEM_HEAP_STASH) idle for the decay time, or
// all of them when force; returns when the next one is due (0: none left).
uint64_t hak_thread_heap_stash_expire(bool force) HAK_INTERNAL;

// Sums the counters of live heaps, exited ones and orphan frees.
void hak_thread_heap_collect_counters(hak_class_counters merged[HAK_NUM_CLASSES],
                                      uint64_t fast_allocs[HAK_NUM_CLASSES],
                                      uint64_t fast_frees[HAK_NUM_CLASSES]) HAK_INTERNAL;

// The same from a context that must not wait, a signal handler: the
// registry lock is only tried, for up to wait_ms, and never when this thread
// holds it. Without it only exited threads' counters and orphan frees are
// summed, and false is returned.
bool hak_thread_heap_collect_counters_try(hak_class_counters merged[HAK_NUM_CLASSES],
                                          uint64_t fast_allocs[HAK_NUM_CLASSES],
                                          uint64_t fast_frees[HAK_NUM_CLASSES],
                                          uint32_t wait_ms) HAK_INTERNAL;

// The blocks of each class held in live threads' fast-cache bins (a snapshot:
// the owners keep running). from_signal: the registry lock only tried, as
// above; false, with every count 0, when it could not be had.
bool hak_thread_heap_collect_bins(uint64_t held[HAK_NUM_CLASSES], bool from_signal,
                                  uint32_t wait_ms) HAK_INTERNAL;

// For tests: takes (hold) or releases the registry lock on this thread, as a
// thread inside hak_thread_heap_get or a statistics read holds it.
void hak_thread_heap_registry_hold(bool hold) HAK_INTERNAL;

void hak_thread_heap_fork_prepare(void) HAK_INTERNAL;
void hak_thread_heap_fork_parent(void) HAK_INTERNAL;
void hak_thread_heap_fork_child(void) HAK_INTERNAL;

// Creates the thread-exit key through which a thread's exit reaches
// hak_thread_heap_exit; 0 on success. Once, before the first hak_thread_heap_get.
int hak_thread_heap_registry_init(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_THREAD_HEAP_H
