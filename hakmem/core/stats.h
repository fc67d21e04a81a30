// Process-wide counters. Hot per-class counters live in each thread (its
// fast-cache bins and heap) and are merged here when the thread exits, so
// nothing is lost; the rest are updated on slow paths only.
#ifndef HAKMEM_STATS_H
#define HAKMEM_STATS_H

#include <stdint.h>

#include "types.h"

typedef struct hak_global_stats {
  _Atomic uint64_t superslabs, superslabs_peak, superslabs_total;
  _Atomic uint64_t mapped, mapped_peak, cached, purged;
  _Atomic uint64_t large_allocs, large_frees, large_live_bytes;
  _Atomic uint64_t abandoned, adopted;
  _Atomic uint64_t threads_live, threads_exited, heaps_reused, slabs_trimmed;
  _Atomic uint64_t lock_acquires, lock_contended;
  _Atomic uint64_t slabs[HAK_NUM_CLASSES];
} hak_global_stats;

extern hak_global_stats hak_gstats HAK_INTERNAL;

static inline void hak_stat_add(_Atomic uint64_t *c, int64_t delta) {
  atomic_fetch_add_explicit(c, (uint64_t)delta, memory_order_relaxed);
}

// Adds delta to a gauge and raises its peak when passed.
void hak_stat_gauge(_Atomic uint64_t *gauge, _Atomic uint64_t *peak, int64_t delta) HAK_INTERNAL;

// Takes a pthread mutex, counting acquisitions and contention.
void hak_lock(pthread_mutex_t *m) HAK_INTERNAL;

#endif // HAKMEM_STATS_H
