#include "page_arena.h"

#include "options.h"
#include "os.h"
#include "purge.h"
#include "stats.h"

// Idle SuperSlabs kept: enough to absorb a heap that shrinks and grows again,
// few enough that freeing everything leaves little resident memory behind.
#define ARENA_SUPERSLABS_KEPT 8

typedef struct {
  void *base;
  size_t size;
  uint64_t idle_since_ms;
  bool superslab; // counted against ARENA_SUPERSLABS_KEPT
} arena_entry;

static struct {
  pthread_mutex_t lock;
  uint32_t count;
  size_t bytes;
  arena_entry entries[HAK_ARENA_SLOTS]; // oldest first
  _Atomic uint64_t last_tick_ms;
} g_arena = {.lock = PTHREAD_MUTEX_INITIALIZER};

// Lock-free peek at the entry count; a stale answer only delays a decay.
static uint32_t cached_count(void) { return __atomic_load_n(&g_arena.count, __ATOMIC_RELAXED); }

static void remove_at(uint32_t i) {
  g_arena.bytes -= g_arena.entries[i].size;
  for (uint32_t j = i + 1; j < g_arena.count; j++)
    g_arena.entries[j - 1] = g_arena.entries[j];
  __atomic_store_n(&g_arena.count, g_arena.count - 1, __ATOMIC_RELAXED);
}

void hak_arena_account(int64_t delta) {
  hak_stat_gauge(&hak_gstats.mapped, &hak_gstats.mapped_peak, delta);
}

static void release_to_os(void *base, size_t size) {
  hak_os_unmap(base, size);
  hak_arena_account(-(int64_t)size);
  hak_stat_add(&hak_gstats.purged, (int64_t)size);
}

void *hak_arena_alloc(size_t size, size_t *mapped, bool *zeroed) {
  if (cached_count() > 0) {
    hak_lock(&g_arena.lock);
    // The smallest idle region that fits; newest first among equals, since
    // its pages are most likely still resident.
    int best = -1;
    for (int i = (int)g_arena.count - 1; i >= 0; i--) {
      size_t s = g_arena.entries[i].size;
      if (s < size)
        continue;
      if (best < 0 || s < g_arena.entries[best].size)
        best = i;
      if (s == size)
        break;
    }
    if (best >= 0) {
      void *base = g_arena.entries[best].base;
      size_t got = g_arena.entries[best].size;
      remove_at((uint32_t)best);
      pthread_mutex_unlock(&g_arena.lock);
      hak_stat_add(&hak_gstats.cached, -(int64_t)got);
      // Much too big: give the tail back rather than map afresh, since its
      // head pages are already faulted in.
      if (got - size > size / 4) {
        release_to_os((uint8_t *)base + size, got - size);
        got = size;
      }
      *mapped = got;
      *zeroed = false;
      return base;
    }
    pthread_mutex_unlock(&g_arena.lock);
  }
  void *base = hak_os_map_aligned(size, HAK_SS_SIZE);
  if (base == NULL) {
    // Idle regions may be what stands between us and the limit.
    hak_arena_decay(true);
    base = hak_os_map_aligned(size, HAK_SS_SIZE);
    if (base == NULL)
      return NULL;
  }
  hak_arena_account((int64_t)size);
  *mapped = size;
  *zeroed = true;
  return base;
}

static void arena_put(void *base, size_t size, bool superslab);

void hak_arena_free(void *base, size_t size) { arena_put(base, size, false); }

void hak_arena_free_superslab(void *base) { arena_put(base, HAK_SS_SIZE, true); }

static void arena_put(void *base, size_t size, bool superslab) {
  size_t limit = hak_opts.arena_cache_bytes;
  if (size > limit / 2 || hak_opts.decay_ms == 0) {
    release_to_os(base, size);
    return;
  }
  arena_entry evicted[HAK_ARENA_SLOTS];
  uint32_t nevicted = 0;
  hak_lock(&g_arena.lock);
  if (superslab) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < g_arena.count; i++)
      kept += g_arena.entries[i].superslab;
    if (kept >= ARENA_SUPERSLABS_KEPT) {
      pthread_mutex_unlock(&g_arena.lock);
      release_to_os(base, size);
      return;
    }
  }
  while (g_arena.count > 0 && (g_arena.count == HAK_ARENA_SLOTS || g_arena.bytes + size > limit)) {
    evicted[nevicted++] = g_arena.entries[0];
    remove_at(0);
  }
  g_arena.entries[g_arena.count] = (arena_entry){base, size, hak_os_now_ms(), superslab};
  __atomic_store_n(&g_arena.count, g_arena.count + 1, __ATOMIC_RELAXED);
  g_arena.bytes += size;
  uint64_t due = g_arena.entries[0].idle_since_ms + hak_opts.decay_ms;
  pthread_mutex_unlock(&g_arena.lock);
  hak_purge_wanted(due);
  hak_stat_add(&hak_gstats.cached, (int64_t)size);
  for (uint32_t i = 0; i < nevicted; i++) {
    hak_stat_add(&hak_gstats.cached, -(int64_t)evicted[i].size);
    release_to_os(evicted[i].base, evicted[i].size);
  }
}

uint64_t hak_arena_decay_next(bool force) {
  if (cached_count() == 0)
    return 0;
  uint64_t now = hak_os_now_ms();
  arena_entry expired[HAK_ARENA_SLOTS];
  uint32_t n = 0;
  hak_lock(&g_arena.lock);
  // Entries are oldest first, so the expired ones form a prefix.
  while (g_arena.count > 0 &&
         (force || now - g_arena.entries[0].idle_since_ms >= hak_opts.decay_ms)) {
    expired[n++] = g_arena.entries[0];
    remove_at(0);
  }
  uint64_t next = g_arena.count > 0 ? g_arena.entries[0].idle_since_ms + hak_opts.decay_ms : 0;
  pthread_mutex_unlock(&g_arena.lock);
  for (uint32_t i = 0; i < n; i++) {
    hak_stat_add(&hak_gstats.cached, -(int64_t)expired[i].size);
    release_to_os(expired[i].base, expired[i].size);
  }
  return next;
}

void hak_arena_decay(bool force) { (void)hak_arena_decay_next(force); }

void hak_arena_tick_nostart(void) {
  uint64_t due = hak_purge_due();
  if (due == 0)
    return;
  uint64_t now = hak_os_now_ms();
  if (now < due)
    return;
  uint64_t last = atomic_load_explicit(&g_arena.last_tick_ms, memory_order_relaxed);
  uint64_t period = hak_opts.decay_ms / 8 + 1;
  if (now - last < period)
    return;
  if (!atomic_compare_exchange_strong_explicit(&g_arena.last_tick_ms, &last, now,
                                               memory_order_relaxed, memory_order_relaxed))
    return; // another thread is decaying
  hak_purge_try_run();
}

void hak_arena_tick(void) {
  hak_arena_tick_nostart();
  hak_purge_poll();
}

void hak_arena_lock_all(void) { pthread_mutex_lock(&g_arena.lock); }
void hak_arena_unlock_all(void) { pthread_mutex_unlock(&g_arena.lock); }
void hak_arena_reset_locks(void) { pthread_mutex_init(&g_arena.lock, NULL); }
