// C shim for introspect_test.cc: the options the test reads and switches at
// run time, the registry lock, and the mallinfo saturation on chosen values.
#include <malloc.h>

#include "hakmem/core/introspect.h"
#include "hakmem/core/options.h"
#include "hakmem/core/thread_heap.h"

int it_stats_signal(void) {
  hak_init();
  return hak_opts.stats_signal;
}

int it_stats_fd(void) {
  hak_init();
  return hak_opts.stats_fd;
}

// Sets the report format (1: JSON, 0: text); returns the previous one (1 for
// JSON).
int it_set_stats_json(int json) {
  hak_init();
  int old = hak_opts.stats == HAK_STATS_JSON;
  hak_opts.stats = json ? HAK_STATS_JSON : HAK_STATS_OFF;
  return old;
}

size_t it_arena_cache_bytes(void) {
  hak_init();
  return __atomic_load_n(&hak_opts.arena_cache_bytes, __ATOMIC_RELAXED);
}

void it_set_arena_cache_bytes(size_t bytes) {
  __atomic_store_n(&hak_opts.arena_cache_bytes, bytes, __ATOMIC_RELAXED);
}

int it_install(int sig) { return hak_stats_signal_install(sig); }

void it_hold_registry(int hold) { hak_heap_registry_hold(hold != 0); }

void it_clamp(const struct mallinfo2 *in, struct mallinfo *out) { hak_mallinfo_clamp(in, out); }
