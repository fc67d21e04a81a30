#include "stats_report.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "os.h"
#include "segmap.h"
#include "size_class.h"
#include "stats.h"
#include "superslab.h"
#include "thread_heap.h"

#define LOAD(x) atomic_load_explicit(&hak_stats_global.x, memory_order_relaxed)

// How long a report written from a signal handler waits for the registry
// lock, which another thread holds for microseconds, before it leaves live
// threads' counters out.
#define SIGNAL_LOCK_WAIT_MS 20

bool hak_stats_report_collect(hak_stats *out, bool from_signal) {
  __builtin_memset(out, 0, sizeof *out);
  out->num_classes = HAK_NUM_CLASSES;
  hak_class_counters merged[HAK_NUM_CLASSES];
  uint64_t fast_allocs[HAK_NUM_CLASSES], fast_frees[HAK_NUM_CLASSES];
  bool complete = true;
  if (from_signal)
    complete =
        hak_thread_heap_collect_counters_try(merged, fast_allocs, fast_frees, SIGNAL_LOCK_WAIT_MS);
  else
    hak_thread_heap_collect_counters(merged, fast_allocs, fast_frees);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_class_stats *s = &out->classes[c];
    s->block_size = hak_size_class_table[c].size;
    s->allocs = merged[c].allocs + fast_allocs[c];
    s->frees = merged[c].frees + fast_frees[c];
    s->fast_hits = fast_allocs[c];
    s->refills = merged[c].refills;
    s->remote_frees = merged[c].remote_frees;
    s->slabs = LOAD(slabs[c]);
    s->capacity = LOAD(slab_blocks[c]);
  }
  out->large_allocs = LOAD(large_allocs);
  out->large_frees = LOAD(large_frees);
  out->large_live_bytes = LOAD(large_live_bytes);
  out->superslabs = LOAD(superslabs);
  out->superslabs_peak = LOAD(superslabs_peak);
  out->superslabs_total = LOAD(superslabs_total);
  out->mapped_bytes = LOAD(mapped);
  out->mapped_peak = LOAD(mapped_peak);
  out->cached_bytes = LOAD(cached);
  out->purged_bytes = LOAD(purged);
  out->abandoned_slabs = LOAD(abandoned);
  out->adopted_slabs = LOAD(adopted);
  out->threads_live = LOAD(threads_live);
  out->threads_exited = LOAD(threads_exited);
  out->heaps_reused = LOAD(heaps_reused);
  out->slabs_trimmed = LOAD(slabs_trimmed);
  out->mutex_acquires = LOAD(mutex_acquires);
  out->mutex_contended = LOAD(mutex_contended);
  hak_os_stats os;
  hak_os_stats_get(&os);
  out->os_mapped_bytes = os.mapped;
  out->os_mapped_peak = os.mapped_peak;
  out->reserved_bytes = os.reserved;
  out->resident_bytes = hak_os_resident_bytes();
  out->released_dontneed_bytes = os.released_dontneed;
  out->released_munmap_bytes = os.released_munmap;
  out->thp_advised_bytes = os.thp_advised;
  out->heap_limit_bytes = hak_os_limit(NULL);
  out->limit_givebacks = os.limit_givebacks;
  out->limit_refusals = os.limit_refusals;
  out->guarded_allocs = LOAD(guarded_allocs);
  out->guarded_fallbacks = LOAD(guarded_fallbacks);
  out->guarded_in_use = LOAD(guarded_in_use);
  out->guarded_faults = LOAD(guarded_faults);
  return complete;
}

void hak_stats_get(hak_stats *out) { hak_stats_report_collect(out, false); }

// ---- the memory census --------------------------------------------------------

static uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

bool hak_stats_report_memory_collect(hak_memory *out, const hak_stats *s, bool s_complete,
                                     bool from_signal) {
  __builtin_memset(out, 0, sizeof *out);
  out->num_classes = HAK_NUM_CLASSES;
  hak_ss_census acc;
  __builtin_memset(&acc, 0, sizeof acc);
  for (uint8_t kind = HAK_REGION_SS_SMALL; kind <= HAK_REGION_SS_MEDIUM; kind++) {
    for (uintptr_t a = 0; hak_segmap_next(kind, &a); a += HAK_SS_SIZE)
      hak_superslab_census((void *)a, kind, &acc);
  }
  uint64_t held[HAK_NUM_CLASSES];
  // A signal handler that already waited for the registry in vain for s does
  // not wait again.
  bool bins = hak_thread_heap_collect_bins(held, from_signal,
                                           from_signal && !s_complete ? 0 : SIGNAL_LOCK_WAIT_MS);
  out->partial = !bins || !s_complete;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_class_memory *m = &out->classes[c];
    const hak_class_stats *k = &s->classes[c];
    uint64_t size = hak_size_class_table[c].size;
    // Blocks out of their slabs are live, in a bin, or freed by another
    // thread and not yet collected; the figures are read at different
    // moments, so the difference is kept from going below 0.
    uint64_t live = sub0(k->allocs, k->frees);
    uint64_t used = acc.used[c];
    m->block_size = size;
    m->slabs = acc.slabs[c];
    m->slab_bytes = acc.slab_bytes[c];
    m->resident_bytes = acc.resident[c];
    m->live_bytes = live * size;
    m->bin_bytes = held[c] * size;
    m->remote_bytes = sub0(sub0(used, live), held[c]) * size;
    m->free_bytes = (acc.carved[c] - used) * size;
    m->carved_bytes = acc.carved[c] * size;
    out->slab_bytes += m->slab_bytes;
    out->slab_resident_bytes += m->resident_bytes;
  }
  out->superslabs = acc.superslabs;
  out->header_resident_bytes = acc.header_resident;
  out->free_slots_dirty = acc.free_slots_dirty;
  out->free_slot_resident_bytes = acc.free_slot_resident;
  out->large_live_bytes = s->large_live_bytes;
  out->cached_bytes = s->cached_bytes;
  out->metadata_bytes = sub0(s->os_mapped_bytes, s->mapped_bytes);
  out->os_mapped_bytes = s->os_mapped_bytes;
  out->resident_bytes = s->resident_bytes;
  return !out->partial;
}

void hak_memory_get(hak_memory *out) {
  hak_stats s;
  hak_stats_report_collect(&s, false);
  hak_stats_report_memory_collect(out, &s, true, false);
}

// The defines of this box's own compilation are the library's variant and mode.
void hak_build_info_get(hak_build_info *out) {
  out->build = HAKMEM_BUILD_RELEASE ? "release" : "debug";
  out->release = HAKMEM_BUILD_RELEASE != 0;
  out->debug_checks = HAKMEM_DEBUG != 0;
  out->fast_cache = HAKMEM_FASTCACHE != 0;
  out->hardened = HAKMEM_HARDENED != 0;
}

static const char *limit_mode_name(void) {
  int mode;
  hak_os_limit(&mode);
  return mode == HAK_OS_LIMIT_HARD ? "hard" : "soft";
}

static void print_memory_text(hak_text *r, const hak_stats *s, bool complete, bool from_signal);

// The options in effect, from the options table: NAME=value words, or a JSON
// object (numbers as numbers; words and paths as strings).
static void print_options(hak_text *r, bool json) {
  hak_log_text_add(r, json ? "\"options\":{" : "options");
  for (size_t i = 0; i < hak_options_count; i++) {
    const hak_option_def *d = &hak_options_table[i];
    char value[sizeof hak_options_current.prof_file];
    hak_options_format(d, &hak_options_current, value, sizeof value);
    if (!json) {
      hak_log_text_add(r, " %s=%s", d->name, value);
      continue;
    }
    bool quoted = d->type == HAK_OPT_CHOICE || d->type == HAK_OPT_STRING;
    hak_log_text_add(r, "%s\"%s\":%s", i == 0 ? "" : ",", d->name, quoted ? "\"" : "");
    for (const char *c = value; quoted && *c != '\0'; c++) {
      if (*c == '"' || *c == '\\')
        hak_log_text_add(r, "\\%c", *c);
      else if ((unsigned char)*c < 0x20)
        hak_log_text_add(r, "\\u%04x", (unsigned)(unsigned char)*c);
      else
        hak_log_text_add(r, "%c", *c);
    }
    hak_log_text_add(r, "%s", quoted ? "\"" : value);
  }
  hak_log_text_add(r, json ? "}," : "\n");
}

static void print_text(int fd, bool from_signal) {
  hak_stats s;
  bool complete = hak_stats_report_collect(&s, from_signal);
  hak_text r = {.sink = hak_log_text_fd_sink, .ctx = (void *)(intptr_t)fd, .len = 0};
  uint64_t ta = 0, tf = 0, th = 0, tr = 0, trf = 0;
  hak_build_info b;
  hak_build_info_get(&b);
  hak_log_text_add(&r, "hakmem stats (pid %d, %s build, fast cache %s)\n", (int)getpid(), b.build,
                   b.fast_cache ? "on" : "off");
  if (!complete)
    hak_log_text_add(&r, "partial: live threads' counters left out (the registry was busy)\n");
  print_options(&r, false);
  hak_log_text_add(&r, "%5s %8s %12s %12s %12s %10s %12s %6s\n", "class", "size", "allocs", "frees",
                   "fast_hits", "refills", "remote_frees", "slabs");
  for (unsigned c = 0; c < s.num_classes; c++) {
    hak_class_stats *k = &s.classes[c];
    ta += k->allocs;
    tf += k->frees;
    th += k->fast_hits;
    tr += k->refills;
    trf += k->remote_frees;
    if (k->allocs == 0 && k->frees == 0 && k->slabs == 0)
      continue;
    hak_log_text_add(&r, "%5u %8llu %12llu %12llu %12llu %10llu %12llu %6llu\n", c,
                     (unsigned long long)k->block_size, (unsigned long long)k->allocs,
                     (unsigned long long)k->frees, (unsigned long long)k->fast_hits,
                     (unsigned long long)k->refills, (unsigned long long)k->remote_frees,
                     (unsigned long long)k->slabs);
  }
  hak_log_text_add(&r,
                   "total allocs %llu frees %llu fast_hits %llu refills %llu remote_frees %llu\n",
                   (unsigned long long)ta, (unsigned long long)tf, (unsigned long long)th,
                   (unsigned long long)tr, (unsigned long long)trf);
  hak_log_text_add(&r, "large allocs %llu frees %llu live_bytes %llu\n",
                   (unsigned long long)s.large_allocs, (unsigned long long)s.large_frees,
                   (unsigned long long)s.large_live_bytes);
  hak_log_text_add(&r, "superslabs now %llu peak %llu total %llu\n",
                   (unsigned long long)s.superslabs, (unsigned long long)s.superslabs_peak,
                   (unsigned long long)s.superslabs_total);
  hak_log_text_add(&r, "mapped_bytes now %llu peak %llu cached %llu purged %llu\n",
                   (unsigned long long)s.mapped_bytes, (unsigned long long)s.mapped_peak,
                   (unsigned long long)s.cached_bytes, (unsigned long long)s.purged_bytes);
  hak_log_text_add(&r, "memory resident %llu os_mapped %llu os_peak %llu reserved %llu\n",
                   (unsigned long long)s.resident_bytes, (unsigned long long)s.os_mapped_bytes,
                   (unsigned long long)s.os_mapped_peak, (unsigned long long)s.reserved_bytes);
  hak_log_text_add(&r, "released dontneed %llu munmap %llu thp_advised %llu\n",
                   (unsigned long long)s.released_dontneed_bytes,
                   (unsigned long long)s.released_munmap_bytes,
                   (unsigned long long)s.thp_advised_bytes);
  hak_log_text_add(&r, "heap_limit %llu (%s) givebacks %llu refusals %llu\n",
                   (unsigned long long)s.heap_limit_bytes, limit_mode_name(),
                   (unsigned long long)s.limit_givebacks, (unsigned long long)s.limit_refusals);
  hak_log_text_add(&r, "slabs abandoned %llu adopted %llu\n", (unsigned long long)s.abandoned_slabs,
                   (unsigned long long)s.adopted_slabs);
  hak_log_text_add(&r, "threads live %llu exited %llu heaps_reused %llu slabs_trimmed %llu\n",
                   (unsigned long long)s.threads_live, (unsigned long long)s.threads_exited,
                   (unsigned long long)s.heaps_reused, (unsigned long long)s.slabs_trimmed);
  hak_log_text_add(&r, "mutexes acquired %llu contended %llu\n",
                   (unsigned long long)s.mutex_acquires, (unsigned long long)s.mutex_contended);
  hak_log_text_add(&r, "guarded allocs %llu fallbacks %llu in_use %llu faults %llu\n",
                   (unsigned long long)s.guarded_allocs, (unsigned long long)s.guarded_fallbacks,
                   (unsigned long long)s.guarded_in_use, (unsigned long long)s.guarded_faults);
  print_memory_text(&r, &s, complete, from_signal);
  hak_log_text_flush(&r);
}

// The memory section of the text report: the census against s.
static void print_memory_text(hak_text *r, const hak_stats *s, bool complete, bool from_signal) {
  hak_memory m;
  hak_stats_report_memory_collect(&m, s, complete, from_signal);
  hak_log_text_add(r, "memory census (bytes; resident pages from mincore)%s\n",
                   m.partial ? " partial: live threads' bins left out, counted as remote" : "");
  hak_log_text_add(r, "%5s %8s %6s %12s %12s %12s %12s %12s %12s\n", "class", "size", "slabs",
                   "slab_bytes", "resident", "live", "bins", "remote", "free");
  uint64_t live = 0, bins = 0, remote = 0, free_bytes = 0, slabs = 0;
  for (unsigned c = 0; c < m.num_classes; c++) {
    const hak_class_memory *k = &m.classes[c];
    live += k->live_bytes;
    bins += k->bin_bytes;
    remote += k->remote_bytes;
    free_bytes += k->free_bytes;
    slabs += k->slabs;
    if (k->slabs == 0 && k->live_bytes == 0)
      continue;
    hak_log_text_add(r, "%5u %8llu %6llu %12llu %12llu %12llu %12llu %12llu %12llu\n", c,
                     (unsigned long long)k->block_size, (unsigned long long)k->slabs,
                     (unsigned long long)k->slab_bytes, (unsigned long long)k->resident_bytes,
                     (unsigned long long)k->live_bytes, (unsigned long long)k->bin_bytes,
                     (unsigned long long)k->remote_bytes, (unsigned long long)k->free_bytes);
  }
  hak_log_text_add(
      r,
      "census slabs %llu slab_bytes %llu resident %llu live %llu bins %llu remote %llu "
      "free %llu\n",
      (unsigned long long)slabs, (unsigned long long)m.slab_bytes,
      (unsigned long long)m.slab_resident_bytes, (unsigned long long)live, (unsigned long long)bins,
      (unsigned long long)remote, (unsigned long long)free_bytes);
  hak_log_text_add(
      r, "census superslabs %llu header_resident %llu free_slots %llu free_slot_resident %llu\n",
      (unsigned long long)m.superslabs, (unsigned long long)m.header_resident_bytes,
      (unsigned long long)m.free_slots_dirty, (unsigned long long)m.free_slot_resident_bytes);
  hak_log_text_add(r,
                   "census large_live %llu cached %llu metadata %llu os_mapped %llu "
                   "process_resident %llu\n",
                   (unsigned long long)m.large_live_bytes, (unsigned long long)m.cached_bytes,
                   (unsigned long long)m.metadata_bytes, (unsigned long long)m.os_mapped_bytes,
                   (unsigned long long)m.resident_bytes);
}

// The memory section of the JSON report: "memory":{...}, every class.
static void print_memory_json(hak_text *r, const hak_stats *s, bool complete, bool from_signal) {
  hak_memory m;
  hak_stats_report_memory_collect(&m, s, complete, from_signal);
  // "partial" only when it is, as at the top of the report.
  hak_log_text_add(r, "\"memory\":{%s\"classes\":[", m.partial ? "\"partial\":true," : "");
  for (unsigned c = 0; c < m.num_classes; c++) {
    const hak_class_memory *k = &m.classes[c];
    // Two pieces: a line is cut at 256 bytes.
    hak_log_text_add(r, "%s{\"class\":%u,\"size\":%llu,\"slabs\":%llu,\"slab_bytes\":%llu,",
                     c == 0 ? "" : ",", c, (unsigned long long)k->block_size,
                     (unsigned long long)k->slabs, (unsigned long long)k->slab_bytes);
    hak_log_text_add(r,
                     "\"resident_bytes\":%llu,\"live_bytes\":%llu,\"bin_bytes\":%llu,"
                     "\"remote_bytes\":%llu,\"free_bytes\":%llu,\"carved_bytes\":%llu}",
                     (unsigned long long)k->resident_bytes, (unsigned long long)k->live_bytes,
                     (unsigned long long)k->bin_bytes, (unsigned long long)k->remote_bytes,
                     (unsigned long long)k->free_bytes, (unsigned long long)k->carved_bytes);
  }
  hak_log_text_add(r,
                   "],\"superslabs\":%llu,\"slab_bytes\":%llu,\"slab_resident_bytes\":%llu,"
                   "\"header_resident_bytes\":%llu,\"free_slots_dirty\":%llu,",
                   (unsigned long long)m.superslabs, (unsigned long long)m.slab_bytes,
                   (unsigned long long)m.slab_resident_bytes,
                   (unsigned long long)m.header_resident_bytes,
                   (unsigned long long)m.free_slots_dirty);
  hak_log_text_add(r,
                   "\"free_slot_resident_bytes\":%llu,\"large_live_bytes\":%llu,"
                   "\"cached_bytes\":%llu,\"metadata_bytes\":%llu,\"os_mapped_bytes\":%llu,"
                   "\"resident_bytes\":%llu}",
                   (unsigned long long)m.free_slot_resident_bytes,
                   (unsigned long long)m.large_live_bytes, (unsigned long long)m.cached_bytes,
                   (unsigned long long)m.metadata_bytes, (unsigned long long)m.os_mapped_bytes,
                   (unsigned long long)m.resident_bytes);
}

static void print_json(int fd, bool from_signal) {
  hak_stats s;
  bool complete = hak_stats_report_collect(&s, from_signal);
  hak_text r = {.sink = hak_log_text_fd_sink, .ctx = (void *)(intptr_t)fd, .len = 0};
  hak_build_info b;
  hak_build_info_get(&b);
  hak_log_text_add(&r, "{\"pid\":%d,\"build\":\"%s\",\"fast_cache\":%s,%s", (int)getpid(), b.build,
                   b.fast_cache ? "true" : "false", complete ? "" : "\"partial\":true,");
  print_options(&r, true);
  hak_log_text_add(&r, "\"classes\":[");
  for (unsigned c = 0; c < s.num_classes; c++) {
    hak_class_stats *k = &s.classes[c];
    hak_log_text_add(
        &r,
        "%s{\"class\":%u,\"size\":%llu,\"allocs\":%llu,\"frees\":%llu,\"fast_hits\":%llu,"
        "\"refills\":%llu,\"remote_frees\":%llu,\"slabs\":%llu}",
        c == 0 ? "" : ",", c, (unsigned long long)k->block_size, (unsigned long long)k->allocs,
        (unsigned long long)k->frees, (unsigned long long)k->fast_hits,
        (unsigned long long)k->refills, (unsigned long long)k->remote_frees,
        (unsigned long long)k->slabs);
  }
  hak_log_text_add(&r, "],\"large_allocs\":%llu,\"large_frees\":%llu,\"large_live_bytes\":%llu,",
                   (unsigned long long)s.large_allocs, (unsigned long long)s.large_frees,
                   (unsigned long long)s.large_live_bytes);
  hak_log_text_add(&r, "\"superslabs\":%llu,\"superslabs_peak\":%llu,\"superslabs_total\":%llu,",
                   (unsigned long long)s.superslabs, (unsigned long long)s.superslabs_peak,
                   (unsigned long long)s.superslabs_total);
  hak_log_text_add(
      &r, "\"mapped_bytes\":%llu,\"mapped_peak\":%llu,\"cached_bytes\":%llu,\"purged_bytes\":%llu,",
      (unsigned long long)s.mapped_bytes, (unsigned long long)s.mapped_peak,
      (unsigned long long)s.cached_bytes, (unsigned long long)s.purged_bytes);
  hak_log_text_add(&r, "\"abandoned_slabs\":%llu,\"adopted_slabs\":%llu,\"threads_live\":%llu,",
                   (unsigned long long)s.abandoned_slabs, (unsigned long long)s.adopted_slabs,
                   (unsigned long long)s.threads_live);
  hak_log_text_add(&r,
                   "\"guarded_allocs\":%llu,\"guarded_fallbacks\":%llu,\"guarded_in_use\":%llu,"
                   "\"guarded_faults\":%llu,",
                   (unsigned long long)s.guarded_allocs, (unsigned long long)s.guarded_fallbacks,
                   (unsigned long long)s.guarded_in_use, (unsigned long long)s.guarded_faults);
  hak_log_text_add(&r,
                   "\"threads_exited\":%llu,\"mutex_acquires\":%llu,\"mutex_contended\":%llu,"
                   "\"heaps_reused\":%llu,\"slabs_trimmed\":%llu,",
                   (unsigned long long)s.threads_exited, (unsigned long long)s.mutex_acquires,
                   (unsigned long long)s.mutex_contended, (unsigned long long)s.heaps_reused,
                   (unsigned long long)s.slabs_trimmed);
  hak_log_text_add(&r,
                   "\"os_mapped_bytes\":%llu,\"os_mapped_peak\":%llu,\"reserved_bytes\":%llu,"
                   "\"resident_bytes\":%llu,\"released_dontneed_bytes\":%llu,"
                   "\"released_munmap_bytes\":%llu,\"thp_advised_bytes\":%llu,",
                   (unsigned long long)s.os_mapped_bytes, (unsigned long long)s.os_mapped_peak,
                   (unsigned long long)s.reserved_bytes, (unsigned long long)s.resident_bytes,
                   (unsigned long long)s.released_dontneed_bytes,
                   (unsigned long long)s.released_munmap_bytes,
                   (unsigned long long)s.thp_advised_bytes);
  hak_log_text_add(&r,
                   "\"heap_limit_bytes\":%llu,\"heap_limit_mode\":\"%s\",\"limit_givebacks\":%llu,"
                   "\"limit_refusals\":%llu,",
                   (unsigned long long)s.heap_limit_bytes, limit_mode_name(),
                   (unsigned long long)s.limit_givebacks, (unsigned long long)s.limit_refusals);
  print_memory_json(&r, &s, complete, from_signal);
  hak_log_text_add(&r, "}\n");
  hak_log_text_flush(&r);
}

void hak_stats_report_write(int fd, bool json, bool from_signal) {
  if (json)
    print_json(fd, from_signal);
  else
    print_text(fd, from_signal);
}

void hak_stats_print(int fd) { print_text(fd, false); }
void hak_stats_print_json(int fd) { print_json(fd, false); }

// The exit report; a destructor rather than atexit, which may allocate.
__attribute__((destructor)) static void stats_at_exit(void) {
  if (hak_options_current.stats == HAK_STATS_TEXT)
    hak_stats_print(hak_options_current.stats_fd);
  else if (hak_options_current.stats == HAK_STATS_JSON)
    hak_stats_print_json(hak_options_current.stats_fd);
}

// ---- the statistics report on a signal ----------------------------------------

// The handler each signal had before ours, called after the report.
static struct sigaction g_previous[_NSIG];
// Set while a report is being written: a second signal meanwhile (on another
// thread) is not reported again, so two reports never interleave.
static _Atomic int g_reporting;

static void on_stats_signal(int sig, siginfo_t *info, void *uctx) {
  int saved = errno;
  if (atomic_exchange_explicit(&g_reporting, 1, memory_order_acquire) == 0) {
    // Async-signal-safe: write(2) only, stack buffers, and the registry lock
    // only tried (hak_stats_report_collect with from_signal).
    hak_stats_report_write(hak_options_current.stats_fd,
                           hak_options_current.stats == HAK_STATS_JSON, true);
    atomic_store_explicit(&g_reporting, 0, memory_order_release);
  }
  errno = saved;
  const struct sigaction *prev = &g_previous[sig];
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction != NULL)
      prev->sa_sigaction(sig, info, uctx);
  } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
  }
  // With no handler of the program's, the signal's default action (often
  // termination) is replaced: naming the signal asked for the report instead.
}

int hak_stats_report_signal_install(int sig) {
  if (sig <= 0 || sig >= _NSIG)
    return -1;
  struct sigaction old;
  if (sigaction(sig, NULL, &old) != 0)
    return -1;
  if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == on_stats_signal)
    return 0;
  g_previous[sig] = old;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_stats_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL) == 0 ? 0 : -1;
}
