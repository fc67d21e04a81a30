// Process-wide counters. Hot per-class counters live in each thread (its
// fast-cache bins and heap) and are merged here when the thread exits, so
// nothing is lost; the rest are updated on slow paths only.
#ifndef HAKMEM_STATS_H
#define HAKMEM_STATS_H

#include <stdint.h>

#include "hakmem.h"
#include "types.h"

typedef struct hak_global_stats {
  _Atomic uint64_t superslabs, superslabs_peak, superslabs_total;
  _Atomic uint64_t mapped, mapped_peak, cached, purged;
  _Atomic uint64_t large_allocs, large_frees, large_live_bytes;
  _Atomic uint64_t abandoned, adopted;
  _Atomic uint64_t threads_live, threads_exited, heaps_reused, slabs_trimmed;
  _Atomic uint64_t lock_acquires, lock_contended;
  _Atomic uint64_t slabs[HAK_NUM_CLASSES];
  _Atomic uint64_t slab_blocks[HAK_NUM_CLASSES]; // blocks the slabs of each class hold
} hak_global_stats;

extern hak_global_stats hak_gstats HAK_INTERNAL;

static inline void hak_stat_add(_Atomic uint64_t *c, int64_t delta) {
  atomic_fetch_add_explicit(c, (uint64_t)delta, memory_order_relaxed);
}

// Adds delta to a gauge and raises its peak when passed.
void hak_stat_gauge(_Atomic uint64_t *gauge, _Atomic uint64_t *peak, int64_t delta) HAK_INTERNAL;

// Takes a pthread mutex, counting acquisitions and contention.
void hak_lock(pthread_mutex_t *m) HAK_INTERNAL;

// hak_stats_get for any context, a signal handler included (from_signal):
// then the registry lock is only tried, for a bounded time and never when
// this thread holds it, and without it live threads' counters are left out.
// Returns false when they were left out.
bool hak_stats_collect(hak_stats *out, bool from_signal) HAK_INTERNAL;
// Writes the text (or, json, JSON) report to fd; from_signal as above. A
// report with live threads' counters left out says so.
void hak_stats_write(int fd, bool json, bool from_signal) HAK_INTERNAL;

#endif // HAKMEM_STATS_H
