// Maintenance, at the top of the boxes: process initialisation, the purge
// pass, malloc_trim's work and fork. It calls down into every box that holds
// memory or a lock; no box below calls up into it (the purge thread reaches
// the pass through the hook registered here at initialisation).
#ifndef HAKMEM_MAINTENANCE_H
#define HAKMEM_MAINTENANCE_H

#include <stdbool.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// One-time process initialisation: options, checks, the class map, the crash
// and statistics handlers, the guarded pool, the thread-exit key, the purge
// pass, and the fork handlers. Cheap once done; the API calls it before a
// thread's first heap.
void hak_maintenance_init(void) HAK_INTERNAL;

// Returns all the memory it can to the OS now (malloc_trim): this thread's
// bins, idle heaps, stashed heaps, abandoned slabs, cached regions. True when
// some memory went back.
bool hak_maintenance_trim(void) HAK_INTERNAL;

// The purge pass (registered with the purge box): trims idle heaps, retires
// stashed ones, decays the arena and the pool's free slots. Returns when the
// next thing falls due, 0 when nothing waits.
uint64_t hak_maintenance_pass(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_MAINTENANCE_H
