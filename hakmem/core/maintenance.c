#include "maintenance.h"

#include <pthread.h>

#include "integrity.h"
#include "crash.h"
#include "guarded.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "page_arena.h"
#include "profile.h"
#include "purge.h"
#include "sampler.h"
#include "segmap.h"
#include "shared_pool.h"
#include "stats.h"
#include "stats_report.h"
#include "superslab.h"
#include "thread_heap.h"
#include "tcache.h"

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static _Atomic int g_atfork_registered;

static uint64_t earliest(uint64_t a, uint64_t b) {
  if (a == 0)
    return b;
  return b == 0 || a < b ? a : b;
}

uint64_t hak_maintenance_pass(void) {
  uint64_t next = hak_thread_heap_trim_idle(false); // first: trimming and retiring heaps free slabs
  next = earliest(next, hak_thread_heap_stash_expire(false));
  next = earliest(next, hak_page_arena_decay_next(false));
  return earliest(next, hak_shared_pool_purge_slots(false));
}

// The heap limit's give-back, run by the os box on the thread that maps (see
// docs/MEMORY.md). It takes only the arena's and the pool's locks, which no
// thread holds across a map; idle heaps' trims need the registry lock, which
// heap creation holds while it maps, so they are left to a pass due now.
static void limit_giveback(void) {
  hak_shared_pool_purge_slots(true); // first: SuperSlabs it empties go to the arena
  hak_page_arena_decay(true);
  hak_purge_wanted(hak_os_now_ms());
}

static void trim_all_heaps(void) { hak_thread_heap_trim_idle(true); }

bool hak_maintenance_trim(void) {
  hak_maintenance_init();
  if (HAKMEM_FASTCACHE && hak_tls.heap != NULL)
    hak_tcache_drain(hak_tls.heap, hak_tls.bins);
  hak_purge_exclusive(trim_all_heaps);
  hak_thread_heap_stash_expire(true);
  hak_shared_pool_sweep_abandoned(true);
  uint64_t before = atomic_load_explicit(&hak_stats_global.purged, memory_order_relaxed);
  hak_page_arena_decay(true);
  return atomic_load_explicit(&hak_stats_global.purged, memory_order_relaxed) != before;
}

// Fork: every hakmem lock is held across fork() so the child inherits
// consistent state; order: purge pass, heap registry, pool, arena.
static void fork_prepare(void) {
  hak_guarded_fork_prepare();
  hak_profile_fork_prepare();
  hak_purge_fork_prepare();
  hak_thread_heap_fork_prepare();
  hak_shared_pool_lock_all();
  hak_page_arena_lock_all();
}

static void fork_parent(void) {
  hak_page_arena_unlock_all();
  hak_shared_pool_unlock_all();
  hak_thread_heap_fork_parent();
  hak_purge_fork_parent();
  hak_profile_fork_parent();
  hak_guarded_fork_parent();
}

static void fork_child(void) {
  hak_purge_fork_child();
  hak_page_arena_reset_locks();
  hak_shared_pool_reset_locks();
  hak_superslab_fork_child();
  hak_thread_heap_fork_child();
  hak_profile_fork_child();
  hak_guarded_fork_child();
}

// HAKMEM_HEAP_LIMIT_MODE's values go to the os box unchanged.
_Static_assert((int)HAK_LIMIT_SOFT == (int)HAK_OS_LIMIT_SOFT &&
                   (int)HAK_LIMIT_HARD == (int)HAK_OS_LIMIT_HARD,
               "heap limit modes");

static void init_once(void) {
  hak_options_load();
  hak_os_set_thp(hak_options_current.thp != 0);
  hak_os_set_giveback(limit_giveback);
  if (hak_options_current.heap_limit_bytes != 0)
    hak_os_set_limit(hak_options_current.heap_limit_bytes, hak_options_current.heap_limit_mode);
  hak_integrity_init();
  hak_segmap_class_init();
  hak_profile_init();
  if (hak_options_current.crash_report)
    hak_crash_install();
  // After the crash report's handler: the guarded pool's runs first and hands
  // the fault on to it.
  hak_guarded_init();
  hak_sampler_set(hak_profile_enabled ? hak_options_current.prof_sample : 0,
                  hak_guarded_on ? hak_options_current.guard_sample : 0);
  if (hak_options_current.stats_signal != 0 &&
      hak_stats_report_signal_install(hak_options_current.stats_signal) != 0)
    hak_log_write_fmt(2, "hakmem: cannot install the HAKMEM_STATS_SIGNAL handler\n");
  if (hak_thread_heap_registry_init() != 0)
    hak_log_fatal("cannot create the thread-exit key");
  hak_purge_set_pass(hak_maintenance_pass);
}

void hak_maintenance_init(void) {
  pthread_once(&g_init_once, init_once);
  // pthread_atfork may allocate, so it runs after the once-block, and a
  // nested malloc from inside it finds initialisation complete.
  if (atomic_load_explicit(&g_atfork_registered, memory_order_acquire) == 0 &&
      atomic_exchange_explicit(&g_atfork_registered, 1, memory_order_acq_rel) == 0)
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}
