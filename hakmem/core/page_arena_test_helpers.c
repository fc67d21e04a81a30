// C shim for page_arena_test.cc: the page arena's functions, the options that
// steer it, and the counters it keeps.
#include "options.h"
#include "os.h"
#include "page_arena.h"
#include "stats.h"
#include "thread_heap.h"

void pa_init(void) {
  hak_init();
  // The test steers decay through ticks and changes options while it runs:
  // no purge thread may decay (or read the options) behind its back.
  hak_opts.purge_thread = 0;
}
void *pa_alloc(size_t size, size_t *mapped, int *zeroed) {
  bool z = false;
  void *p = hak_arena_alloc(size, mapped, &z);
  *zeroed = z;
  return p;
}
void *pa_alloc_extent(size_t size, size_t want, size_t *mapped, size_t *touched) {
  return hak_arena_alloc_extent(size, want, mapped, touched);
}
void pa_free(void *base, size_t size) { hak_arena_free(base, size); }
void pa_free_extent(void *base, size_t size, size_t touched) {
  hak_arena_free_extent(base, size, touched);
}
void pa_free_superslab(void *base) { hak_arena_free_superslab(base); }
void pa_decay(int force) { hak_arena_decay(force != 0); }
void pa_tick(void) { hak_arena_tick(); }
uint64_t pa_now_ms(void) { return hak_os_now_ms(); }

uint64_t pa_mapped(void) { return atomic_load(&hak_gstats.mapped); }
uint64_t pa_mapped_peak(void) { return atomic_load(&hak_gstats.mapped_peak); }
uint64_t pa_cached(void) { return atomic_load(&hak_gstats.cached); }
uint64_t pa_purged(void) { return atomic_load(&hak_gstats.purged); }

uint32_t pa_decay_ms(void) { return hak_opts.decay_ms; }
void pa_set_decay_ms(uint32_t ms) { hak_opts.decay_ms = ms; }
size_t pa_cache_bytes(void) { return hak_opts.arena_cache_bytes; }
void pa_set_cache_bytes(size_t bytes) { hak_opts.arena_cache_bytes = bytes; }

unsigned pa_slots(void) { return HAK_ARENA_SLOTS; }
