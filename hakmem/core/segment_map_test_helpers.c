// C shim for segment_map_test.cc: the segment map's functions and geometry.
#include "segment_map.h"

unsigned sm_kind(const void *p) { return hak_segmap_kind(p); }
int sm_set(void *base, size_t size, unsigned first_kind, unsigned kind) {
  return hak_segmap_set(base, size, (uint8_t)first_kind, (uint8_t)kind);
}
void sm_clear(void *base, size_t size) { hak_segmap_clear(base, size); }
int sm_l1_present(size_t index) {
  return atomic_load_explicit(&hak_segmap_l1[index], memory_order_acquire) != NULL;
}
size_t sm_l1_size(void) { return HAK_SEGMAP_L1_SIZE; }
size_t sm_region_size(void) { return HAK_SS_SIZE; }
size_t sm_l1_span(void) { return (size_t)1 << (HAK_SS_SHIFT + HAK_SEGMAP_L2_BITS); }
unsigned sm_none(void) { return HAK_REGION_NONE; }
unsigned sm_small(void) { return HAK_REGION_SS_SMALL; }
unsigned sm_medium(void) { return HAK_REGION_SS_MEDIUM; }
unsigned sm_large(void) { return HAK_REGION_LARGE; }
unsigned sm_large_tail(void) { return HAK_REGION_LARGE_TAIL; }

// The class map.
#include "check.h"
#include "size_class.h"
#include "thread_heap.h"

// The map holds bin slots; the test speaks of bins (class + 1).
unsigned sm_cmap_bin(const void *p) { return hak_classmap_slot(p) / HAK_BIN_SLOT(1); }
void sm_cmap_set(const void *start, size_t size, unsigned bin) {
  hak_classmap_set(start, size, bin);
}
size_t sm_cmap_granule(void) { return (size_t)1 << HAK_CMAP_SHIFT; }
int sm_cmap_ready(void) {
  hak_init();
  return __atomic_load_n(&hak_classmap.mask, __ATOMIC_ACQUIRE) != 0;
}
unsigned sm_class_of(size_t size) { return hak_size_class(size + HAK_TRAILER); }
