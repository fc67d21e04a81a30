#include "hakmem.h"

#include "hakmem/core/slab.h" /* workspace-relative */
#include "log.h"
#include "size_class.h"
void *hak_malloc(size_t n) { hak_log_write("malloc"); return hak_slab_take(hak_size_class_of(n)); }
