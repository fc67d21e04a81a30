// C shim for options_test.cc: option parsing into a caller's struct, and the
// process-wide options.
#include "options.h"
#include "thread_heap.h"

typedef struct {
  int stats;
  int stats_fd;
  uint32_t decay_ms;
  size_t arena_cache_bytes;
  uint32_t tcache_max;
  int verbose;
  int check_full;
  int crash_report;
  int purge_thread;
  unsigned heap_stash;
  int stats_signal;
} opt_values;

static void copy_out(const hak_options *o, opt_values *v) {
  v->stats = o->stats;
  v->stats_fd = o->stats_fd;
  v->decay_ms = o->decay_ms;
  v->arena_cache_bytes = o->arena_cache_bytes;
  v->tcache_max = o->tcache_max;
  v->verbose = o->verbose;
  v->check_full = o->check_full;
  v->crash_report = o->crash_report;
  v->purge_thread = o->purge_thread;
  v->heap_stash = o->heap_stash;
  v->stats_signal = o->stats_signal;
}

void opt_defaults(opt_values *v) {
  hak_options o;
  hak_options_defaults(&o);
  copy_out(&o, v);
}

// Parses envp over the defaults (or over *start when start_from_v is set).
int opt_parse(opt_values *v, char *const *envp, int start_from_v) {
  hak_options o;
  hak_options_defaults(&o);
  if (start_from_v) {
    o.stats = v->stats;
    o.stats_fd = v->stats_fd;
    o.decay_ms = v->decay_ms;
    o.arena_cache_bytes = v->arena_cache_bytes;
    o.tcache_max = v->tcache_max;
    o.verbose = v->verbose;
    o.check_full = v->check_full;
    o.crash_report = v->crash_report;
    o.purge_thread = v->purge_thread;
    o.heap_stash = v->heap_stash;
    o.stats_signal = v->stats_signal;
  }
  int rejected = hak_options_parse(&o, envp);
  copy_out(&o, v);
  return rejected;
}

void opt_init(void) { hak_init(); }
void opt_load(void) { hak_options_load(); }
void opt_global(opt_values *v) { copy_out(&hak_opts, v); }
int opt_debug_build(void) { return HAKMEM_DEBUG != 0; }
int opt_stats_off(void) { return HAK_STATS_OFF; }
int opt_stats_text(void) { return HAK_STATS_TEXT; }
int opt_stats_json(void) { return HAK_STATS_JSON; }
