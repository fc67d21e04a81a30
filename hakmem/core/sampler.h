// Which allocations are sampled, for the two clients that take one now and
// then: the heap profiler (about one per HAKMEM_PROF_SAMPLE bytes) and the
// guarded pool (about one per HAKMEM_GUARD_SAMPLE allocations). Both count on
// slow paths only: a bin's miss counts the allocations its hit path made
// since the one before, and tells the bin how many blocks it may hand out
// before the next sampled one (see hak_tcache_alloc_slow), so the hit paths
// carry no countdown. The clients act on the events above the core (api.c).
#ifndef HAKMEM_SAMPLER_H
#define HAKMEM_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// The events of one allocation (a bit mask).
enum { HAK_SAMPLE_PROF = 1u, HAK_SAMPLE_GUARD = 2u, HAK_SAMPLE_ALL = 3u };

// True while either client samples (set once, at initialisation).
extern bool hak_sampler_on HAK_INTERNAL;

// Sets the clients' mean intervals: the profiler's in bytes, the guarded
// pool's in allocations; 0 turns that client off. Called once, from hak_maintenance_init,
// before any thread counts.
void hak_sampler_set(uint64_t prof_bytes, uint64_t guard_allocs) HAK_INTERNAL;

// A miss of bin bin, whose blocks are of size bytes, with allocs its hit
// path's allocation count (allocs less the count of the last miss: the fast
// allocations since). Counts them and this allocation, and returns this
// allocation's events; *limit is the most blocks the bin may hand out from
// now on, this one included, before the next event (UINT32_MAX: as many as
// it likes).
unsigned hak_sampler_miss(unsigned bin, uint64_t size, uint64_t allocs,
                          uint32_t *limit) HAK_INTERNAL;

// The calling thread's bins start counting from 0 again.
void hak_sampler_reset_bins(void) HAK_INTERNAL;

// One allocation of size bytes counted against the thread's own countdowns,
// for blocks no bin counts (large ones, and every block of a build without
// the fast cache); its events, of the clients in allow.
unsigned hak_sampler_count(uint64_t size, unsigned allow) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_SAMPLER_H
