#include "thread_heap.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "heap.h"
#include "options.h"
#include "os.h"
#include "page_arena.h"
#include "purge.h"
#include "shared_pool.h"
#include "slab.h"
#include "stats.h"
#include "tcache.h"

#define META_CHUNK ((size_t)256 << 10)

static struct {
  pthread_mutex_t lock;
  hak_heap *live;     // heaps of running threads
  hak_heap *recycled; // heap structs of exited threads, linked through next
  uint8_t *meta_cur;  // bump region heap structs are carved from
  size_t meta_left;
  // Heaps of exited threads kept whole, oldest first, for new threads.
  hak_heap *stash[HAK_HEAP_STASH_MAX];
  uint64_t stashed_at[HAK_HEAP_STASH_MAX];
  unsigned nstash;
  hak_class_counters exited[HAK_NUM_CLASSES];
  uint64_t exited_fast_allocs[HAK_NUM_CLASSES];
  uint64_t exited_fast_frees[HAK_NUM_CLASSES];
} g_reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_key_t g_exit_key;

static void heap_destructor(void *arg);

// Set while this thread holds the registry lock, so that a statistics report
// written from a signal handler on this thread does not wait for it (see
// hak_thread_heap_collect_counters_try). The signal fences keep the compiler from
// moving the stores across the lock, as seen from a handler on this thread.
static HAK_TLS int t_reg_held;

static void reg_lock(void) {
  hak_stats_mutex_lock(&g_reg.lock);
  t_reg_held = 1;
  atomic_signal_fence(memory_order_seq_cst);
}

static void reg_unlock(void) {
  atomic_signal_fence(memory_order_seq_cst);
  t_reg_held = 0;
  pthread_mutex_unlock(&g_reg.lock);
}

int hak_thread_heap_registry_init(void) {
  // The key's destructor is how a thread's exit reaches us; creating it does
  // not allocate.
  return pthread_key_create(&g_exit_key, heap_destructor);
}

static hak_heap *heap_struct_alloc(void) {
  hak_heap *h = g_reg.recycled;
  if (h != NULL) {
    g_reg.recycled = h->next;
    return h;
  }
  size_t need = (sizeof(hak_heap) + HAK_CACHELINE - 1) & ~(size_t)(HAK_CACHELINE - 1);
  if (g_reg.meta_left < need) {
    uint8_t *chunk = hak_os_map(META_CHUNK);
    if (chunk == NULL)
      return NULL;
    g_reg.meta_cur = chunk;
    g_reg.meta_left = META_CHUNK;
  }
  h = (hak_heap *)g_reg.meta_cur;
  g_reg.meta_cur += need;
  g_reg.meta_left -= need;
  return h;
}

hak_heap *hak_thread_heap_get(void) {
  hak_heap *h = hak_tls.heap;
  if (h != NULL)
    return h;

  reg_lock();
  // The heap an exited thread left, slabs and all: the new thread's first
  // allocations find blocks at once, with no pool lock and no system call.
  h = g_reg.nstash > 0 ? g_reg.stash[--g_reg.nstash] : NULL;
  if (h != NULL) {
    hak_stats_add(&hak_stats_global.heaps_reused, 1);
  } else {
    h = heap_struct_alloc();
    if (h == NULL) {
      reg_unlock();
      errno = ENOMEM;
      return NULL;
    }
    memset(h, 0, sizeof *h);
    hak_slab_class_heaps_init(h);
  }
  h->tcache = hak_tls.bins;
  h->thread = pthread_self();
  h->trimmed_ms = 0; // a stashed heap starts its trim record afresh
  atomic_store_explicit(&h->idle_trimmed, 0, memory_order_relaxed);
  atomic_store_explicit(&h->retrim, 0, memory_order_relaxed);
  h->live = true;
  h->next = g_reg.live;
  if (g_reg.live)
    g_reg.live->prev = h;
  g_reg.live = h;
  // Counted under the registry lock, which fork holds: a child never sees a
  // heap in the registry that the count misses (or the other way round).
  hak_stats_add(&hak_stats_global.threads_live, 1);
  reg_unlock();

  hak_tls.heap = h;
  hak_tls.exiting = 0;
  hak_tcache_set_caps(hak_tls.bins, true);
  pthread_setspecific(g_exit_key, h);
  return h;
}

uint64_t hak_thread_heap_trim_idle(bool force) {
  // Without bins the owner allocates from its slabs with no lock to take.
  if (!HAKMEM_FASTCACHE)
    return 0;
  uint64_t now = hak_os_now_ms(), next = 0;
  uint32_t released = 0;
  reg_lock(); // held throughout, so no heap leaves the registry mid-trim
  for (hak_heap *h = g_reg.live; h != NULL; h = h->next) {
    uint64_t last = atomic_load_explicit(&h->last_slow_ms, memory_order_relaxed);
    bool retrim = atomic_load_explicit(&h->retrim, memory_order_relaxed) != 0;
    if (last == h->trimmed_ms && !retrim && !force)
      continue; // no slow path or remote free since the last trim: nothing new
    uint64_t due = last + hak_heap_idle_ms();
    if (!force && now < due) {
      if (next == 0 || due < next)
        next = due;
      continue;
    }
    if (!hak_heap_trylock(h)) {
      if (next == 0 || now + hak_heap_idle_ms() < next)
        next = now + hak_heap_idle_ms(); // busy now: look again later
      continue;
    }
    atomic_store_explicit(&h->retrim, 0, memory_order_relaxed);
    atomic_store_explicit(&h->idle_trimmed, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); // the mark before the collection (note_remote)
    released += hak_slab_trim(h);
    h->trimmed_ms = last;
    hak_heap_unlock(h);
  }
  reg_unlock();
  if (released > 0) {
    hak_stats_add(&hak_stats_global.slabs_trimmed, (int64_t)released);
    hak_shared_pool_purge_slots(true); // these slots have been idle for the decay time already
  }
  return next;
}

static void registry_unlink(hak_heap *h) {
  if (h->prev)
    h->prev->next = h->next;
  else
    g_reg.live = h->next;
  if (h->next)
    h->next->prev = h->prev;
  h->prev = NULL;
}

// Adds a heap's counters to the exited totals; registry lock held.
static void merge_counters(hak_heap *h, hak_tcache_bin *bins) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_class_counters *e = &g_reg.exited[c];
    const hak_class_counters *k = &h->counters[c];
    e->allocs += k->allocs;
    e->frees += k->frees;
    e->slow_allocs += k->slow_allocs;
    e->refills += k->refills;
    e->remote_frees += k->remote_frees;
    if (bins != NULL) {
      uint64_t a, f;
      hak_tcache_counts(bins, c, &a, &f);
      g_reg.exited_fast_allocs[c] += a;
      g_reg.exited_fast_frees[c] += f;
    }
  }
  if (bins != NULL)
    hak_tcache_reset_counts(bins);
  memset(h->counters, 0, sizeof h->counters); // a stashed heap lives on
}

// Gives up a heap for good: its slabs to the pool (abandoned if in use), the
// struct to the recycled list. No lock held.
static void retire(hak_heap *h) {
  hak_slab_abandon_all(h);
  reg_lock();
  h->next = g_reg.recycled;
  g_reg.recycled = h;
  reg_unlock();
}

// How long a stashed heap waits for a new thread: half the decay time, since
// the SuperSlabs it frees when it retires then wait the decay time again.
static uint64_t stash_wait_ms(void) { return hak_options_current.decay_ms / 2; }

uint64_t hak_thread_heap_stash_expire(bool force) {
  hak_heap *old[HAK_HEAP_STASH_MAX];
  unsigned n = 0;
  uint64_t now = hak_os_now_ms(), next = 0;
  reg_lock();
  while (n < g_reg.nstash && (force || g_reg.stashed_at[n] + stash_wait_ms() <= now)) {
    old[n] = g_reg.stash[n];
    n++;
  }
  for (unsigned i = n; i < g_reg.nstash; i++) {
    g_reg.stash[i - n] = g_reg.stash[i];
    g_reg.stashed_at[i - n] = g_reg.stashed_at[i];
  }
  g_reg.nstash -= n;
  if (g_reg.nstash > 0)
    next = g_reg.stashed_at[0] + stash_wait_ms();
  reg_unlock();
  for (unsigned i = 0; i < n; i++)
    retire(old[i]);
  return next;
}

void hak_thread_heap_exit(void) {
  hak_heap *h = hak_tls.heap;
  if (h == NULL)
    return;
  hak_tls.exiting = 1;
  // Empty the bins, then close them: frees from later destructors go slow.
  hak_tcache_drain(h, hak_tls.bins);
  hak_tcache_set_caps(hak_tls.bins, false);

  // The heap goes to the stash whole (the oldest one retires when it is
  // full); it retires at once when the stash is off.
  uint64_t now = hak_os_now_ms();
  unsigned limit = hak_options_current.heap_stash;
  hak_heap *victim = h;
  reg_lock();
  merge_counters(h, hak_tls.bins);
  registry_unlink(h);
  h->live = false;
  h->tcache = NULL;
  if (limit > 0) {
    victim = NULL;
    if (g_reg.nstash >= limit) {
      victim = g_reg.stash[0];
      for (unsigned i = 1; i < g_reg.nstash; i++) {
        g_reg.stash[i - 1] = g_reg.stash[i];
        g_reg.stashed_at[i - 1] = g_reg.stashed_at[i];
      }
      g_reg.nstash--;
    }
    g_reg.stash[g_reg.nstash] = h;
    g_reg.stashed_at[g_reg.nstash++] = now;
  }
  hak_stats_add(&hak_stats_global.threads_live, -1); // under the lock, as in hak_thread_heap_get
  hak_stats_add(&hak_stats_global.threads_exited, 1);
  reg_unlock();
  if (victim != NULL)
    retire(victim);
  if (victim != h)
    hak_purge_wanted(now + stash_wait_ms()); // an unclaimed heap retires when idle

  hak_tls.heap = NULL;
  hak_shared_pool_sweep_abandoned(false); // only if a remote free asked for it
  hak_page_arena_tick_nostart();          // a malloc now would give the exiting thread a heap
}

static void heap_destructor(void *arg) {
  (void)arg;
  hak_thread_heap_exit();
}

// The exited totals and orphan frees; the registry lock held, or, from
// hak_thread_heap_collect_counters_try's fallback, a racy but memory-safe read.
static void collect_exited(hak_class_counters merged[HAK_NUM_CLASSES],
                           uint64_t fast_allocs[HAK_NUM_CLASSES],
                           uint64_t fast_frees[HAK_NUM_CLASSES]) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    merged[c] = g_reg.exited[c];
    merged[c].frees += hak_heap_orphan_frees(c);
    fast_allocs[c] = g_reg.exited_fast_allocs[c];
    fast_frees[c] = g_reg.exited_fast_frees[c];
  }
}

// Adds the counters of live heaps; the registry lock held.
static void collect_live(hak_class_counters merged[HAK_NUM_CLASSES],
                         uint64_t fast_allocs[HAK_NUM_CLASSES],
                         uint64_t fast_frees[HAK_NUM_CLASSES]) {
  // Live threads' counters are read while they run: a snapshot, not a barrier.
  for (hak_heap *h = g_reg.live; h != NULL; h = h->next) {
    for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
      merged[c].allocs += __atomic_load_n(&h->counters[c].allocs, __ATOMIC_RELAXED);
      merged[c].frees += __atomic_load_n(&h->counters[c].frees, __ATOMIC_RELAXED);
      merged[c].slow_allocs += __atomic_load_n(&h->counters[c].slow_allocs, __ATOMIC_RELAXED);
      merged[c].refills += __atomic_load_n(&h->counters[c].refills, __ATOMIC_RELAXED);
      merged[c].remote_frees += __atomic_load_n(&h->counters[c].remote_frees, __ATOMIC_RELAXED);
      if (h->tcache != NULL) {
        uint64_t a, f;
        hak_tcache_counts(h->tcache, c, &a, &f);
        fast_allocs[c] += a;
        fast_frees[c] += f;
      }
    }
  }
}

void hak_thread_heap_collect_counters(hak_class_counters merged[HAK_NUM_CLASSES],
                                      uint64_t fast_allocs[HAK_NUM_CLASSES],
                                      uint64_t fast_frees[HAK_NUM_CLASSES]) {
  reg_lock();
  collect_exited(merged, fast_allocs, fast_frees);
  collect_live(merged, fast_allocs, fast_frees);
  reg_unlock();
}

// The registry lock for a context that must not wait (a signal handler):
// true when taken (then released with reg_unlock).
static bool reg_trylock(uint32_t wait_ms) {
  // This thread, interrupted while it held the lock, would wait for itself.
  bool got = false;
  if (!t_reg_held) {
    // Another thread holds it for microseconds, unless it waits for this
    // one (a reader spinning on the bins this thread was changing when the
    // signal came): hence the bound. pthread_mutex_trylock is one
    // compare-and-swap, never a wait.
    uint64_t deadline = hak_os_now_ms() + wait_ms;
    for (unsigned spins = 0;; spins++) {
      if (pthread_mutex_trylock(&g_reg.lock) == 0) {
        got = true;
        break;
      }
      if (hak_os_now_ms() > deadline)
        break;
      if (spins < 100)
        __builtin_ia32_pause();
      else
        sched_yield();
    }
  }
  if (got) {
    t_reg_held = 1;
    atomic_signal_fence(memory_order_seq_cst);
  }
  return got;
}

bool hak_thread_heap_collect_counters_try(hak_class_counters merged[HAK_NUM_CLASSES],
                                          uint64_t fast_allocs[HAK_NUM_CLASSES],
                                          uint64_t fast_frees[HAK_NUM_CLASSES], uint32_t wait_ms) {
  bool got = reg_trylock(wait_ms);
  collect_exited(merged, fast_allocs, fast_frees);
  if (!got)
    return false;
  collect_live(merged, fast_allocs, fast_frees);
  reg_unlock();
  return true;
}

bool hak_thread_heap_collect_bins(uint64_t held[HAK_NUM_CLASSES], bool from_signal,
                                  uint32_t wait_ms) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    held[c] = 0;
  if (from_signal) {
    if (!reg_trylock(wait_ms))
      return false;
  } else {
    reg_lock();
  }
  // Exited threads' bins were drained; a stashed heap has none.
  for (hak_heap *h = g_reg.live; h != NULL; h = h->next) {
    if (h->tcache == NULL)
      continue;
    for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
      held[c] += hak_tcache_held(h->tcache, c);
  }
  reg_unlock();
  return true;
}

void hak_thread_heap_registry_hold(bool hold) {
  if (hold)
    reg_lock();
  else
    reg_unlock();
}

// Fork: the registry lock is held across fork() (maintenance orders it among
// the other boxes' locks), so the child inherits a consistent registry.
void hak_thread_heap_fork_prepare(void) { pthread_mutex_lock(&g_reg.lock); }

void hak_thread_heap_fork_parent(void) { pthread_mutex_unlock(&g_reg.lock); }

void hak_thread_heap_fork_child(void) {
  pthread_mutex_init(&g_reg.lock, NULL);
  // Other threads do not exist in the child. Their heaps may have been
  // mid-update when fork() ran, so their memory is left alone (it stays
  // allocated in the child); they only leave the registry.
  hak_heap *self = hak_tls.heap;
  // Trims run under the registry or purge lock, both held across fork(), so
  // no trimmer holds this heap; its owner is here, outside any slow path.
  if (self != NULL)
    atomic_store_explicit(&self->lock, 0, memory_order_relaxed);
  for (hak_heap *h = g_reg.live, *next; h != NULL; h = next) {
    next = h->next;
    if (h == self)
      continue;
    merge_counters(h, NULL);
    registry_unlink(h);
    h->live = false;
    h->tcache = NULL;
    hak_stats_add(&hak_stats_global.threads_live, -1);
  }
}
