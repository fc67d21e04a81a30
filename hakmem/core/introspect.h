// glibc's introspection calls (mallinfo2, mallinfo, malloc_stats,
// malloc_info, mallopt) answered from hakmem's statistics, and the
// statistics report on a signal (HAKMEM_STATS_SIGNAL). The figures each
// field reports are defined in README.md ("glibc's introspection calls").
#ifndef HAKMEM_INTROSPECT_H
#define HAKMEM_INTROSPECT_H

#include <malloc.h>
#include <stdbool.h>

#include "hakmem.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

// Blocks of classes up to this size count as glibc's "fast" blocks (smblks,
// fsmblks, malloc_info's type="fast"): glibc's default M_MXFAST on 64-bit.
#define HAK_INTROSPECT_FAST_MAX ((size_t)128)
// The largest M_MXFAST glibc accepts on 64-bit (80 * sizeof(size_t) / 4).
#define HAK_INTROSPECT_MXFAST_MAX 160

// The mallinfo2 figures of a statistics snapshot.
void hak_introspect_mallinfo2_of(const hak_stats *s, struct mallinfo2 *out) HAK_INTERNAL;
// mallinfo's int fields from mallinfo2's: each saturates at INT_MAX.
void hak_introspect_mallinfo_clamp(const struct mallinfo2 *in, struct mallinfo *out) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_INTROSPECT_H
