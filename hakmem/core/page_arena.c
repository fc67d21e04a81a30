#include "page_arena.h"

#include "options.h"
#include "os.h"
#include "purge.h"
#include "stats.h"

// Idle SuperSlabs kept: enough to absorb a heap that shrinks and grows again,
// few enough that freeing everything leaves little resident memory behind.
#define ARENA_SUPERSLABS_KEPT 8

// A reused region keeps its resident pages while they are at most three times
// what the new block needs; beyond that it keeps twice the need and gives
// the rest back (one madvise). With best fit this is rare; tighter bounds
// (more than twice, keeping 1.5x) cut churn-large's RSS by only 4% more but
// took a quarter more page faults.
#define ARENA_TRIM_OVER(want) (2 * (want))
#define ARENA_TRIM_KEEP(want) (2 * (want))

// A cached region is moved into a larger mapping (no region fits) only when
// its resident pages are worth the system calls (a move costs a TLB
// shootdown on every CPU the process runs on): at least 1 MiB (256 faults
// saved), and at least a quarter of the region, so that blocks touched
// sparsely are not moved for nothing.
#define ARENA_MOVE_MIN ((size_t)1 << 20)
#define ARENA_MOVE_DENSITY 4
// Most cached regions gathered into one new mapping: a system call each.
#define ARENA_GATHER_MAX 8

static size_t round_up(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

// A cached region starts on a 2 MiB boundary; its size is a multiple of the
// page (a large block's mapping ends at its last page).
typedef struct {
  void *base;
  size_t size;
  size_t touched; // bytes from base that may be resident; zeros beyond
  uint64_t idle_since_ms;
  uint64_t seq;    // order of arrival: the highest is the newest
  size_t resident; // bytes resident as last asked of the kernel; SIZE_MAX: not asked
  bool superslab;  // counted against ARENA_SUPERSLABS_KEPT
} arena_entry;

// Entries are in no order, so that taking one out is a swap with the last
// (best fit takes them from anywhere) and the lock is held for one scan.
static struct {
  pthread_mutex_t lock;
  uint32_t count;
  uint32_t superslabs; // entries that are SuperSlabs
  size_t bytes;
  uint64_t next_seq;
  arena_entry entries[HAK_ARENA_SLOTS];
  _Atomic uint64_t last_tick_ms;
} g_arena = {.lock = PTHREAD_MUTEX_INITIALIZER};

// Lock-free peek at the entry count; a stale answer only delays a decay.
static uint32_t cached_count(void) { return __atomic_load_n(&g_arena.count, __ATOMIC_RELAXED); }

static void remove_at(uint32_t i) {
  g_arena.bytes -= g_arena.entries[i].size;
  g_arena.superslabs -= g_arena.entries[i].superslab;
  g_arena.entries[i] = g_arena.entries[g_arena.count - 1];
  __atomic_store_n(&g_arena.count, g_arena.count - 1, __ATOMIC_RELAXED);
}

static uint32_t oldest_index(void) {
  uint32_t o = 0;
  for (uint32_t i = 1; i < g_arena.count; i++)
    if (g_arena.entries[i].seq < g_arena.entries[o].seq)
      o = i;
  return o;
}

void hak_page_arena_account(int64_t delta) {
  hak_stats_gauge(&hak_stats_global.mapped, &hak_stats_global.mapped_peak, delta);
}

static void release_to_os(void *base, size_t size) {
  hak_os_unmap(base, size);
  hak_page_arena_account(-(int64_t)size);
  hak_stats_add(&hak_stats_global.purged, (int64_t)size);
}

// How badly a cached region whose first touched bytes are resident suits a
// block that will touch want bytes: one that covers want with the least to
// spare (no faults, little to trim) is best; else the one with the most
// resident (fewest faults).
static uint64_t fit_cost(size_t touched, size_t want) {
  return touched >= want ? touched - want : ((uint64_t)1 << 62) + (want - touched);
}

static void arena_put(void *base, size_t size, size_t touched, bool superslab);

// Moves the cached regions parts[0..n) (out of the cache already) into a new
// mapping of size bytes, in order, each as far as it fits; what does not fit
// of the last goes back to the cache. Regions that cannot be moved go to the
// OS. Returns the mapping, whose first *touched bytes may be nonzero (the
// moved pages; never-touched ones count too), or NULL.
static void *gather(arena_entry *parts, uint32_t n, size_t size, size_t *mapped, size_t *touched) {
  for (uint32_t k = 0; k < n; k++)
    hak_stats_add(&hak_stats_global.cached, -(int64_t)parts[k].size);
  uint8_t *to = hak_os_map_aligned(size, HAK_SS_SIZE);
  if (to == NULL) {
    for (uint32_t k = 0; k < n; k++)
      release_to_os(parts[k].base, parts[k].size);
    return NULL;
  }
  hak_page_arena_account((int64_t)size);
  size_t off = 0, dirty = 0;
  for (uint32_t k = 0; k < n; k++) {
    arena_entry e = parts[k];
    size_t take = e.size < size - off ? e.size : size - off;
    if (take == 0 || hak_os_move(e.base, take, to + off, take) != 0) {
      release_to_os(e.base, e.size);
      continue;
    }
    hak_page_arena_account(-(int64_t)take); // the old pages now back part of the new mapping
    dirty = off + (e.touched < take ? e.touched : take);
    if (take < e.size) {
      // The rest stays cached only if it starts on a 2 MiB boundary, as
      // every cached region must.
      uint8_t *rest = (uint8_t *)e.base + take;
      size_t rest_touched = e.touched > take ? e.touched - take : 0;
      if (((uintptr_t)rest & HAK_SS_MASK) == 0)
        arena_put(rest, e.size - take, rest_touched, false);
      else
        release_to_os(rest, e.size - take);
    }
    off += take;
  }
  *mapped = size;
  *touched = dirty;
  return to;
}

// exact: the region is cut to size (a SuperSlab); else it may be up to a
// quarter larger.
static void *alloc_extent(size_t size, size_t want, bool exact, size_t *mapped, size_t *touched) {
  if (cached_count() > 0) {
    hak_stats_mutex_lock(&g_arena.lock);
    // The smallest region that fits, then the best fit of its resident pages;
    // among equals the newest, since its pages are most likely still in cache.
    int best = -1;
    size_t best_size = SIZE_MAX;
    uint64_t best_cost = UINT64_MAX, best_seq = 0;
    for (uint32_t i = 0; i < g_arena.count; i++) {
      const arena_entry *e = &g_arena.entries[i];
      if (e->size < size || e->size > best_size)
        continue;
      uint64_t cost = fit_cost(e->touched, want);
      if (e->size < best_size || cost < best_cost || (cost == best_cost && e->seq > best_seq)) {
        best = (int)i;
        best_size = e->size;
        best_cost = cost;
        best_seq = e->seq;
      }
    }
    if (best >= 0) {
      arena_entry e = g_arena.entries[best];
      remove_at((uint32_t)best);
      pthread_mutex_unlock(&g_arena.lock);
      hak_stats_add(&hak_stats_global.cached, -(int64_t)e.size);
      size_t got = e.size;
      // Much too big: the tail from the next 2 MiB boundary (every cached
      // region starts on one) goes back to the cache as a region of its own
      // if enough of it is resident to be worth keeping (see ARENA_MOVE_MIN),
      // else to the OS; so does what lies between the two.
      if (got - size > (exact ? 0 : size / 4)) {
        size_t split = round_up(size, HAK_SS_SIZE);
        if (split < got) {
          uint8_t *tail = (uint8_t *)e.base + split;
          size_t tail_touched = e.touched > split ? e.touched - split : 0;
          size_t resident =
              tail_touched >= ARENA_MOVE_MIN ? hak_os_resident(tail, tail_touched) : 0;
          if (resident >= ARENA_MOVE_MIN && resident * ARENA_MOVE_DENSITY >= got - split)
            arena_put(tail, got - split, tail_touched, false);
          else
            release_to_os(tail, got - split);
          got = split;
        }
        if (got > size) {
          release_to_os((uint8_t *)e.base + size, got - size);
          got = size;
        }
      }
      size_t t = e.touched < got ? e.touched : got;
      if (t > want && t - want > ARENA_TRIM_OVER(want)) {
        size_t keep = ARENA_TRIM_KEEP(want);
        hak_os_purge((uint8_t *)e.base + keep, t - keep);
        hak_stats_add(&hak_stats_global.purged, (int64_t)(t - keep));
        t = keep;
      }
      *mapped = got;
      *touched = t;
      return e.base;
    }
    // None fits: the cached regions of large blocks (SuperSlabs stay for
    // slabs) with the most resident pages are moved, one after another, into
    // a fresh mapping of the new size, so that their pages need no fault
    // (huge blocks of varying sizes) and leave the cache instead of staying
    // resident beside a new mapping.
    arena_entry parts[ARENA_GATHER_MAX];
    uint32_t nparts = 0;
    size_t gathered = 0;
    while (nparts < ARENA_GATHER_MAX && gathered < size) {
      int most = -1;
      for (uint32_t i = 0; i < g_arena.count; i++) {
        arena_entry *e = &g_arena.entries[i];
        if (e->superslab || e->touched < ARENA_MOVE_MIN)
          continue;
        // Cached pages stay as they are (nothing purges them but the
        // arena): the kernel is asked once per region.
        if (e->resident == SIZE_MAX)
          e->resident = hak_os_resident(e->base, e->touched);
        if (e->resident < ARENA_MOVE_MIN || e->resident * ARENA_MOVE_DENSITY < e->size)
          continue;
        if (most < 0 || e->resident > g_arena.entries[most].resident)
          most = (int)i;
      }
      if (most < 0)
        break;
      parts[nparts++] = g_arena.entries[most];
      gathered += g_arena.entries[most].size;
      remove_at((uint32_t)most);
    }
    pthread_mutex_unlock(&g_arena.lock);
    if (nparts > 0)
      return gather(parts, nparts, size, mapped, touched);
  }
  void *base = hak_os_map_aligned(size, HAK_SS_SIZE);
  if (base == NULL) {
    // Idle regions may be what stands between us and the limit.
    hak_page_arena_decay(true);
    base = hak_os_map_aligned(size, HAK_SS_SIZE);
    if (base == NULL)
      return NULL;
  }
  hak_page_arena_account((int64_t)size);
  *mapped = size;
  *touched = 0;
  return base;
}

void *hak_page_arena_alloc_extent(size_t size, size_t want, size_t *mapped, size_t *touched) {
  return alloc_extent(size, want, false, mapped, touched);
}

void *hak_page_arena_alloc(size_t size, size_t *mapped, bool *zeroed) {
  size_t touched;
  void *base = alloc_extent(size, size, true, mapped, &touched);
  *zeroed = touched == 0;
  return base;
}

static void arena_put(void *base, size_t size, size_t touched, bool superslab);

void hak_page_arena_free(void *base, size_t size) { arena_put(base, size, size, false); }

void hak_page_arena_free_extent(void *base, size_t size, size_t touched) {
  arena_put(base, size, touched < size ? touched : size, false);
}

void hak_page_arena_free_superslab(void *base) { arena_put(base, HAK_SS_SIZE, HAK_SS_SIZE, true); }

static void arena_put(void *base, size_t size, size_t touched, bool superslab) {
  size_t limit = hak_options_current.arena_cache_bytes;
  if (size > limit / 2 || hak_options_current.decay_ms == 0) {
    release_to_os(base, size);
    return;
  }
  arena_entry evicted[HAK_ARENA_SLOTS];
  uint32_t nevicted = 0;
  uint64_t now = hak_os_now_ms();
  hak_stats_mutex_lock(&g_arena.lock);
  if (superslab && g_arena.superslabs >= ARENA_SUPERSLABS_KEPT) {
    pthread_mutex_unlock(&g_arena.lock);
    release_to_os(base, size);
    return;
  }
  while (g_arena.count > 0 && (g_arena.count == HAK_ARENA_SLOTS || g_arena.bytes + size > limit)) {
    uint32_t o = oldest_index();
    evicted[nevicted++] = g_arena.entries[o];
    remove_at(o);
  }
  g_arena.entries[g_arena.count] =
      (arena_entry){base, size, touched, now, g_arena.next_seq++, SIZE_MAX, superslab};
  __atomic_store_n(&g_arena.count, g_arena.count + 1, __ATOMIC_RELAXED);
  g_arena.bytes += size;
  g_arena.superslabs += superslab;
  pthread_mutex_unlock(&g_arena.lock);
  // Older entries' deadlines are registered already and the purge keeps the
  // earliest one.
  hak_purge_wanted(now + hak_options_current.decay_ms);
  hak_stats_add(&hak_stats_global.cached, (int64_t)size);
  for (uint32_t i = 0; i < nevicted; i++) {
    hak_stats_add(&hak_stats_global.cached, -(int64_t)evicted[i].size);
    release_to_os(evicted[i].base, evicted[i].size);
  }
}

uint64_t hak_page_arena_decay_next(bool force) {
  if (cached_count() == 0)
    return 0;
  uint64_t now = hak_os_now_ms();
  arena_entry expired[HAK_ARENA_SLOTS];
  uint32_t n = 0;
  hak_stats_mutex_lock(&g_arena.lock);
  uint64_t oldest = UINT64_MAX;
  for (uint32_t i = 0; i < g_arena.count;) {
    const arena_entry *e = &g_arena.entries[i];
    if (force || now - e->idle_since_ms >= hak_options_current.decay_ms) {
      expired[n++] = *e;
      remove_at(i); // brings the last entry here: look at i again
    } else {
      if (e->idle_since_ms < oldest)
        oldest = e->idle_since_ms;
      i++;
    }
  }
  uint64_t next = g_arena.count > 0 ? oldest + hak_options_current.decay_ms : 0;
  pthread_mutex_unlock(&g_arena.lock);
  for (uint32_t i = 0; i < n; i++) {
    hak_stats_add(&hak_stats_global.cached, -(int64_t)expired[i].size);
    release_to_os(expired[i].base, expired[i].size);
  }
  return next;
}

void hak_page_arena_decay(bool force) { (void)hak_page_arena_decay_next(force); }

void hak_page_arena_tick_nostart(void) {
  uint64_t due = hak_purge_due();
  if (due == 0)
    return;
  uint64_t now = hak_os_now_ms();
  if (now < due)
    return;
  uint64_t last = atomic_load_explicit(&g_arena.last_tick_ms, memory_order_relaxed);
  uint64_t period = hak_options_current.decay_ms / 8 + 1;
  if (now - last < period)
    return;
  if (!atomic_compare_exchange_strong_explicit(&g_arena.last_tick_ms, &last, now,
                                               memory_order_relaxed, memory_order_relaxed))
    return; // another thread is decaying
  hak_purge_try_run();
}

void hak_page_arena_tick(void) {
  hak_page_arena_tick_nostart();
  hak_purge_poll();
}

void hak_page_arena_lock_all(void) { pthread_mutex_lock(&g_arena.lock); }
void hak_page_arena_unlock_all(void) { pthread_mutex_unlock(&g_arena.lock); }
void hak_page_arena_reset_locks(void) { pthread_mutex_init(&g_arena.lock, NULL); }
