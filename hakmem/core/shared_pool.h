// The shared pool: SuperSlabs and their slab slots, shared by every thread and
// class. A heap acquires a slab in stages (adopt an abandoned slab of the
// class, else a free slot, else a new SuperSlab) and gives empty slabs back.
#ifndef HAKMEM_SHARED_POOL_H
#define HAKMEM_SHARED_POOL_H

#include "types.h"

HAK_EXTERN_C_BEGIN

// A slab of class cls owned by heap, ready to allocate from (its remote frees
// collected). NULL with ENOMEM when memory is exhausted.
hak_slab *hak_shared_pool_acquire(unsigned cls, hak_heap *heap) HAK_INTERNAL;
// Gives back an empty slab (no blocks out, no owner).
void hak_shared_pool_release(hak_slab *s) HAK_INTERNAL;
// Parks a slab of an exiting thread for adoption; releases it if it is empty.
void hak_shared_pool_abandon(hak_slab *s) HAK_INTERNAL;
// Releases abandoned slabs whose blocks have all been freed since.
void hak_shared_pool_sweep_abandoned(bool force) HAK_INTERNAL;
// Gives back the pages of free slots in SuperSlabs that still hold other
// slabs, once no slot has been released for the decay time (at once when
// force). Returns when to look again (0: nothing dirty left).
uint64_t hak_shared_pool_purge_slots(bool force) HAK_INTERNAL;

// Set by a remote free into an abandoned slab: there may be one to sweep.
extern HAK_ATOMIC(int) hak_shared_pool_sweep_wanted HAK_INTERNAL;
// Called after a remote free into an abandoned slab (the caller holds no
// lock): asks for a sweep, and sweeps now unless one ran in the last few ms,
// so that slabs emptied by the threads that outlive their owners go back.
void hak_shared_pool_note_abandoned_free(void) HAK_INTERNAL;

void hak_shared_pool_lock_all(void) HAK_INTERNAL;
void hak_shared_pool_unlock_all(void) HAK_INTERNAL;
void hak_shared_pool_reset_locks(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_SHARED_POOL_H
