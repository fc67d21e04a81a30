// Mapped regions (starting on a 2 MiB boundary, sized in pages) for
// SuperSlabs and large blocks, with a bounded cache of idle ones. Idle regions go back to the OS
// once they have been idle for HAKMEM_DECAY_MS, or at once when the cache is
// over its bound.
#ifndef HAKMEM_PAGE_ARENA_H
#define HAKMEM_PAGE_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Idle mappings the arena keeps at most (besides its byte bound): enough that
// a program churning a few hundred large blocks reuses mappings instead of
// mapping afresh (mtstress churn-large: 1.7M ops/s with 64, 2.7M with 128).
#define HAK_ARENA_SLOTS 128

// Returns a region of exactly size bytes (a multiple of 2 MiB: a SuperSlab;
// a bigger idle region is cut to fit, its tail kept if dense); *mapped gets its size and *zeroed
// tells whether it is freshly mapped. NULL with ENOMEM when the OS refuses.
void *hak_page_arena_alloc(size_t size, size_t *mapped, bool *zeroed) HAK_INTERNAL;
// A region of at least size bytes (a multiple of the page; at most a quarter
// larger: a bigger idle region is cut to fit, its tail from the next 2 MiB
// boundary kept if dense) for a caller that will touch only the first want
// bytes (a multiple of the page size): among idle regions of the chosen size it takes
// the one whose resident extent fits want best; if that extent is more than
// three times want, pages past twice want are given back. *touched gets the
// extent that may hold nonzero bytes (0: fresh); the region reads as zeros
// beyond it.
void *hak_page_arena_alloc_extent(size_t size, size_t want, size_t *mapped,
                                  size_t *touched) HAK_INTERNAL;
// Takes back a region obtained from hak_page_arena_alloc, every page maybe dirty.
void hak_page_arena_free(void *base, size_t size) HAK_INTERNAL;
// The same when only the first touched bytes may have been written.
void hak_page_arena_free_extent(void *base, size_t size, size_t touched) HAK_INTERNAL;
// Takes back an empty SuperSlab: only a few idle ones are kept, so that a
// heap that frees everything leaves little resident memory behind.
void hak_page_arena_free_superslab(void *base) HAK_INTERNAL;
// Returns idle regions older than the decay time (all of them when force).
void hak_page_arena_decay(bool force) HAK_INTERNAL;
// The same; returns when the oldest region left expires (0: none left).
uint64_t hak_page_arena_decay_next(bool force) HAK_INTERNAL;
// Cheap enough for every slow path: purges what is due (idle regions, free
// slots of SuperSlabs) at most every few milliseconds, and starts the purge
// thread when memory waits. Call only where a nested malloc/free from this
// thread is harmless (pthread_create allocates) and no hakmem lock is held.
void hak_page_arena_tick(void) HAK_INTERNAL;
// The tick without starting the purge thread, for slow paths that are in the
// middle of changing a heap's or the pool's state.
void hak_page_arena_tick_nostart(void) HAK_INTERNAL;
// Accounts for a mapping that a caller obtained or resized itself.
void hak_page_arena_account(int64_t delta) HAK_INTERNAL;

void hak_page_arena_lock_all(void) HAK_INTERNAL;
void hak_page_arena_unlock_all(void) HAK_INTERNAL;
void hak_page_arena_reset_locks(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PAGE_ARENA_H
