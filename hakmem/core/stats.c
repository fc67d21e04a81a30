#include "stats.h"

hak_global_stats hak_stats_global;

void hak_stats_gauge(_Atomic uint64_t *gauge, _Atomic uint64_t *peak, int64_t delta) {
  uint64_t now =
      atomic_fetch_add_explicit(gauge, (uint64_t)delta, memory_order_relaxed) + (uint64_t)delta;
  uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
  while (now > p && !atomic_compare_exchange_weak_explicit(peak, &p, now, memory_order_relaxed,
                                                           memory_order_relaxed)) {
  }
}

void hak_stats_mutex_lock(pthread_mutex_t *m) {
  hak_stats_add(&hak_stats_global.mutex_acquires, 1);
  if (pthread_mutex_trylock(m) == 0)
    return;
  hak_stats_add(&hak_stats_global.mutex_contended, 1);
  pthread_mutex_lock(m);
}
