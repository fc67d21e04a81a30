// C shim for shared_pool_test.cc: slab acquisition and release, abandonment
// counters and slab metadata, through plain functions.
#include "segment_map.h"
#include "shared_pool.h"
#include "size_class.h"
#include "stats.h"
#include "superslab.h"
#include "thread_heap.h"

void *sp_heap(void) { return hak_heap_get(); }
void *sp_acquire(unsigned cls, void *heap) { return hak_pool_acquire(cls, heap); }
void sp_release(void *s) {
  // The slab layer clears the owner before handing a slab back.
  atomic_store(&((hak_slab *)s)->owner, NULL);
  hak_pool_release(s);
}

void *sp_slab_of(const void *p) {
  unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return NULL;
  return hak_slab_of(p, kind);
}
void *sp_start(const void *s) { return ((const hak_slab *)s)->start; }
size_t sp_span(const void *s) {
  const hak_slab *sl = s;
  return (size_t)sl->capacity * sl->block_size;
}
unsigned sp_used(const void *s) { return ((const hak_slab *)s)->used; }
unsigned sp_state(const void *s) { return ((const hak_slab *)s)->state; }
unsigned sp_class(const void *s) { return ((const hak_slab *)s)->class_idx; }
void *sp_owner(const void *s) { return atomic_load(&((hak_slab *)s)->owner); }
uintptr_t sp_remote_word(const void *s) { return atomic_load(&((hak_slab *)s)->remote); }

uint64_t sp_superslabs(void) { return atomic_load(&hak_gstats.superslabs); }
uint64_t sp_gslabs(unsigned cls) { return atomic_load(&hak_gstats.slabs[cls]); }
uint64_t sp_abandoned(void) { return atomic_load(&hak_gstats.abandoned); }
uint64_t sp_adopted(void) { return atomic_load(&hak_gstats.adopted); }
int sp_sweep_wanted(void) { return atomic_load(&hak_pool_sweep_wanted); }

unsigned sp_class_of(size_t size) { return hak_size_class(size); }
unsigned sp_num_classes(void) { return HAK_NUM_CLASSES; }
unsigned sp_state_active(void) { return HAK_SLAB_ACTIVE; }
unsigned sp_state_abandoned(void) { return HAK_SLAB_ABANDONED; }
unsigned sp_state_free(void) { return HAK_SLAB_FREE; }
uintptr_t sp_abandoned_mark(void) { return HAK_REMOTE_ABANDONED; }
