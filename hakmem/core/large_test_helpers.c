// C shim for large_test.cc: large-block headers, in-place resizing and the
// counters that track large mappings.
#include "large.h"
#include "options.h"
#include "page_arena.h"
#include "segment_map.h"
#include "stats.h"
#include "thread_heap.h"

void lg_init(void) { hak_init(); }
unsigned lg_kind(const void *p) { return hak_segmap_kind(p); }
void *lg_of(const void *p) {
  uint8_t kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_LARGE && kind != HAK_REGION_LARGE_TAIL)
    return NULL;
  return hak_large_of(p, kind);
}
// hak_large_of with a region kind given by the caller.
void *lg_of_kind(const void *p, unsigned kind) { return hak_large_of(p, (uint8_t)kind); }
size_t lg_map_size(const void *hdr) { return ((const hak_large *)hdr)->map_size; }
size_t lg_offset(const void *hdr) { return ((const hak_large *)hdr)->offset; }
size_t lg_usable(const void *hdr) { return ((const hak_large *)hdr)->usable; }
size_t lg_touched(const void *hdr) { return ((const hak_large *)hdr)->touched; }
void *lg_ptr(void *hdr) { return hak_large_ptr(hdr); }
int lg_resize(void *hdr, void *p, size_t size) { return hak_large_resize(hdr, p, size); }
void *lg_alloc(size_t size, size_t align, int zero) {
  return hak_large_alloc(size, align, zero != 0);
}
void lg_free(void *hdr) { hak_large_free(hdr); }

uint64_t lg_allocs(void) { return atomic_load(&hak_gstats.large_allocs); }
uint64_t lg_frees(void) { return atomic_load(&hak_gstats.large_frees); }
uint64_t lg_live_bytes(void) { return atomic_load(&hak_gstats.large_live_bytes); }
uint64_t lg_mapped(void) { return atomic_load(&hak_gstats.mapped); }
uint64_t lg_cached(void) { return atomic_load(&hak_gstats.cached); }
void lg_drop_cache(void) { hak_arena_decay(true); }
uint32_t lg_decay_ms(void) { return hak_opts.decay_ms; }
void lg_set_decay_ms(uint32_t ms) { hak_opts.decay_ms = ms; }

unsigned lg_region_large(void) { return HAK_REGION_LARGE; }
unsigned lg_region_tail(void) { return HAK_REGION_LARGE_TAIL; }
unsigned lg_region_none(void) { return HAK_REGION_NONE; }
size_t lg_header_size(void) { return HAK_LARGE_HEADER_SIZE; }

// Hands a region the test mapped itself to the page arena's cache, as if a
// block had just been freed there, so the next large block of that size
// lands at a known address.
void lg_donate(void *base, size_t size) {
  hak_arena_account((int64_t)size);
  hak_arena_free(base, size);
}
