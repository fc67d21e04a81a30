// C shim for stats_test.cc: the counters behind hak_stats_get.
#include "size_class.h"
#include "stats.h"
#include "thread_heap.h"

void st_init(void) { hak_init(); }
unsigned st_class_of(size_t size) { return hak_size_class(size); }
size_t st_class_size(unsigned cls) { return hak_classes[cls].size; }
unsigned st_num_classes(void) { return HAK_NUM_CLASSES; }
uint64_t st_lock_acquires(void) { return atomic_load(&hak_gstats.mutex_acquires); }
