// C shim for size_class_test.cc: the size-class box's inline functions and
// tables, exposed as plain functions that C++ can call.
#include "size_class.h"

unsigned sc_num_classes(void) { return HAK_NUM_CLASSES; }
size_t sc_medium_max(void) { return HAK_MEDIUM_MAX; }
size_t sc_small_max(void) { return HAK_SMALL_MAX; }
size_t sc_page_size(void) { return HAK_PAGE_SIZE; }
unsigned sc_class_of(size_t size) { return hak_size_class(size); }
size_t sc_class_size(unsigned cls) { return hak_class_size(cls); }
unsigned sc_class_aligned(size_t size, size_t align) { return hak_size_class_aligned(size, align); }
unsigned sc_region_kind(unsigned cls) { return hak_classes[cls].region_kind; }
unsigned sc_region_small(void) { return HAK_REGION_SS_SMALL; }
unsigned sc_region_medium(void) { return HAK_REGION_SS_MEDIUM; }
unsigned sc_cache_cap(unsigned cls) { return hak_classes[cls].cache_cap; }
unsigned sc_batch(unsigned cls) { return hak_classes[cls].batch; }
