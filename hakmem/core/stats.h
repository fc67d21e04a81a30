// Process-wide counters. Hot per-class counters live in each thread (its
// fast-cache bins and heap) and are merged here when the thread exits, so
// nothing is lost; the rest are updated on slow paths only.
#ifndef HAKMEM_STATS_H
#define HAKMEM_STATS_H

#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

typedef struct hak_global_stats {
  HAK_ATOMIC(uint64_t) superslabs, superslabs_peak, superslabs_total;
  HAK_ATOMIC(uint64_t) mapped, mapped_peak, cached, purged;
  HAK_ATOMIC(uint64_t) large_allocs, large_frees, large_live_bytes;
  HAK_ATOMIC(uint64_t) abandoned, adopted;
  HAK_ATOMIC(uint64_t) threads_live, threads_exited, heaps_reused, slabs_trimmed;
  HAK_ATOMIC(uint64_t) mutex_acquires, mutex_contended; // every hakmem mutex (hak_stats_mutex_lock)
  // The guarded pool (guarded.c): blocks it served, allocations it could not
  // take (every slot live), slots holding a live block, reports written.
  HAK_ATOMIC(uint64_t) guarded_allocs, guarded_fallbacks, guarded_in_use, guarded_faults;
  HAK_ATOMIC(uint64_t) slabs[HAK_NUM_CLASSES];
  HAK_ATOMIC(uint64_t) slab_blocks[HAK_NUM_CLASSES]; // blocks the slabs of each class hold
} hak_global_stats;

extern hak_global_stats hak_stats_global HAK_INTERNAL;

static inline void hak_stats_add(HAK_ATOMIC(uint64_t) * c, int64_t delta) {
  atomic_fetch_add_explicit(c, (uint64_t)delta, memory_order_relaxed);
}

// Adds delta to a gauge and raises its peak when passed.
void hak_stats_gauge(HAK_ATOMIC(uint64_t) * gauge, HAK_ATOMIC(uint64_t) * peak,
                     int64_t delta) HAK_INTERNAL;

// Takes a pthread mutex, counting acquisitions and contention.
void hak_stats_mutex_lock(pthread_mutex_t *m) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_STATS_H
