// C shim for thread_heap_test.cc: the calling thread's heap and the slab that
// holds a block.
#include "segment_map.h"
#include "stats.h"
#include "superslab.h"
#include "thread_heap.h"

void *th_heap(void) { return hak_heap_get(); }
void *th_slab_of(const void *p) {
  unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return NULL;
  return hak_slab_of(p, kind);
}
void *th_owner(const void *s) { return atomic_load(&((hak_slab *)s)->owner); }
unsigned th_state(const void *s) { return HAK_SLAB_STATE((const hak_slab *)s); }
unsigned th_state_abandoned(void) { return HAK_SLAB_ABANDONED; }
uint64_t th_superslabs_total(void) { return atomic_load(&hak_gstats.superslabs_total); }
unsigned th_state_free(void) { return HAK_SLAB_FREE; }
