// The sampled heap profiler (HAKMEM_PROF=1): about one allocation per
// HAKMEM_PROF_SAMPLE bytes (picked by the sampler box), with its stack; the
// live samples in a table of hakmem's own memory; a pprof profile written at
// exit, on HAKMEM_PROF_SIGNAL and by hak_prof_dump. See docs/PROFILING.md.
#ifndef HAKMEM_PROFILE_H
#define HAKMEM_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Deepest stack kept per sample.
#define HAK_PROF_DEPTH 64

// True once hak_profile_init has found HAKMEM_PROF=1 and mapped its tables.
extern bool hak_profile_enabled HAK_INTERNAL;

// Reads the options (hak_options_current must be loaded), maps the tables, warms the
// unwinder up and installs the signal handler. Called once, from hak_maintenance_init.
void hak_profile_init(void) HAK_INTERNAL;

// Records the sampled block p of size bytes with the caller's stack. When
// live is not NULL (p is in a slab), *live counts the slab's sampled blocks
// and, under the profiler's lock, slab_changed(arg, p, event) is called:
// HAK_PROF_SLAB_FIRST when the count becomes non-zero (the caller then sends
// every free of the slab down its slow path), HAK_PROF_SLAB_ADD for later
// ones, HAK_PROF_SLAB_CLEAR (p NULL) when it drops back to 0. NULL: a large
// block, whose frees are slow anyway.
enum { HAK_PROF_SLAB_CLEAR = 0, HAK_PROF_SLAB_ADD = 1, HAK_PROF_SLAB_FIRST = 2 };
typedef void hak_profile_slab_fn(void *arg, const void *p, int event);
// mark is the address of a local variable of the caller: the frames up to
// the one holding it (whose stack lies below the mark) are hakmem's and are
// left out, as are those up to the outermost registered entry point.
void hak_profile_record(void *p, size_t size, const void *mark, uint16_t *live,
                        hak_profile_slab_fn *slab_changed, void *arg) HAK_INTERNAL;

// Forgets p if it is a sampled block; *live (if not NULL) is decremented and
// slab_changed(arg, NULL, HAK_PROF_SLAB_CLEAR) called when it drops to 0. Call for every free of a
// block whose slab has a non-zero count, and of every large block.
void hak_profile_free(const void *p, uint16_t *live, hak_profile_slab_fn *slab_changed,
                      void *arg) HAK_INTERNAL;

// The addresses of the allocation entry points: frames from the leaf up to
// the outermost of them are hakmem's own and left out of the stacks.
void hak_profile_add_entries(const void *const *fns, unsigned n) HAK_INTERNAL;

// Writes the profile the signal asked for, if it did. Called on slow paths.
void hak_profile_poll(void) HAK_INTERNAL;

// Fork: the table's lock, held across fork().
void hak_profile_fork_prepare(void) HAK_INTERNAL;
void hak_profile_fork_parent(void) HAK_INTERNAL;
void hak_profile_fork_child(void) HAK_INTERNAL;

// For tests: the number of live samples and of distinct stacks.
size_t hak_profile_live_count(void) HAK_INTERNAL;
size_t hak_profile_stack_count(void) HAK_INTERNAL;
// For tests: the depth of stack i (in order of first sight), and its frame j.
unsigned hak_profile_stack_depth(size_t i) HAK_INTERNAL;
uintptr_t hak_profile_stack_frame(size_t i, unsigned j) HAK_INTERNAL;
// For tests: the weight (estimated allocations per sample) of a block of
// size bytes at the current rate.
double hak_profile_weight(uint64_t size) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PROFILE_H
