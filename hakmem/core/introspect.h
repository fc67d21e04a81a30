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

// Blocks of classes up to this size count as glibc's "fast" blocks (smblks,
// fsmblks, malloc_info's type="fast"): glibc's default M_MXFAST on 64-bit.
#define HAK_INTROSPECT_FAST_MAX ((size_t)128)
// The largest M_MXFAST glibc accepts on 64-bit (80 * sizeof(size_t) / 4).
#define HAK_INTROSPECT_MXFAST_MAX 160

// The mallinfo2 figures of a statistics snapshot.
void hak_mallinfo2_of(const hak_stats *s, struct mallinfo2 *out) HAK_INTERNAL;
// mallinfo's int fields from mallinfo2's: each saturates at INT_MAX.
void hak_mallinfo_clamp(const struct mallinfo2 *in, struct mallinfo *out) HAK_INTERNAL;

// Makes sig write the statistics report (text, or JSON with HAKMEM_STATS=json)
// to HAKMEM_STATS_FD. A handler the program had installed is kept and called
// after the report. 0 on success (or if it is installed already), -1 if
// sigaction refuses.
int hak_stats_signal_install(int sig) HAK_INTERNAL;

#endif // HAKMEM_INTROSPECT_H
