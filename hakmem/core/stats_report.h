// The statistics report: the process-wide counters and every heap's, summed
// into hak_stats (hak_stats_get), written as text or JSON at exit
// (HAKMEM_STATS) and on a signal (HAKMEM_STATS_SIGNAL), headed by what the
// library was built as (hak_build_info_get).
#ifndef HAKMEM_STATS_REPORT_H
#define HAKMEM_STATS_REPORT_H

#include <stdbool.h>

#include "hakmem.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

// hak_stats_get for any context, a signal handler included (from_signal):
// then the registry lock is only tried, for a bounded time and never when
// this thread holds it, and without it live threads' counters are left out.
// Returns false when they were left out.
bool hak_stats_report_collect(hak_stats *out, bool from_signal) HAK_INTERNAL;
// The memory census (hak_memory_get) against the counters of s, a snapshot
// taken just before; from_signal as above: without the registry lock the
// bins are left out (counted as remote) and out->partial is set, as it is
// when s lacks live threads' counters (s_complete false). Returns !partial.
bool hak_stats_report_memory_collect(hak_memory *out, const hak_stats *s, bool s_complete,
                                     bool from_signal) HAK_INTERNAL;
// Writes the text (or, json, JSON) report to fd; from_signal as above. A
// report with live threads' counters left out says so.
void hak_stats_report_write(int fd, bool json, bool from_signal) HAK_INTERNAL;

// Makes sig write the statistics report (text, or JSON with HAKMEM_STATS=json)
// to HAKMEM_STATS_FD. A handler the program had installed is kept and called
// after the report. 0 on success (or if it is installed already), -1 if
// sigaction refuses.
int hak_stats_report_signal_install(int sig) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_STATS_REPORT_H
