#include "tcache.h"
#include "integrity.h"

#include <errno.h>
#include <sched.h>

#include "log.h"
#include "options.h"
#include "page_arena.h"
#include "sampler.h"
#include "size_class.h"
#include "slab.h"
#include "superslab.h"
#include "heap.h"

void *hak_tcache_pop_bad(void *b) {
  if (!hak_integrity_is_marked_free(b))
    hak_integrity_block_written(b);
  hak_integrity_link_corrupt(b);
}

// A thread's first refill of a class asks for a page's worth of blocks, and
// each later one for twice as many, up to the class's batch: a class a thread
// barely uses costs it one page, not a batch.
static uint32_t first_refill(unsigned cls) {
  uint32_t n = (uint32_t)(HAK_PAGE_SIZE / hak_size_class_table[cls].size);
  if (n > hak_size_class_table[cls].batch)
    n = hak_size_class_table[cls].batch;
  return n == 0 ? 1 : n;
}

// Opens and closes a window in which the owner changes words and biases of
// its bins together; readers on other threads retry across it. Inside it the
// stores are releases and the reader's loads acquires (plain moves on x86),
// so a reader that sees any of them sees the odd count after (no fences:
// ThreadSanitizer does not model them).
static void seq_begin(hak_tcache_bin *bins) {
  __atomic_store_n(&bins->seq, bins->seq + 1, __ATOMIC_RELAXED);
}
static void seq_end(hak_tcache_bin *bins) {
  __atomic_store_n(&bins->seq, bins->seq + 1, __ATOMIC_RELEASE);
}

// Adds delta to bin i's room for blocks a slow path moved out (or, negative,
// in) without a malloc or free: the bias moves with it, so the derived count
// of fast frees stays as it was.
static void bin_move(hak_tcache_bin *bins, unsigned i, uint64_t delta) {
  seq_begin(bins);
  __atomic_store_n(hak_tcache_bin_word(bins, i), *hak_tcache_bin_word(bins, i) + delta,
                   __ATOMIC_RELEASE);
  __atomic_store_n(&bins->bias[i], bins->bias[i] + delta, __ATOMIC_RELEASE);
  seq_end(bins);
}

// A bin is armed when the sampler's next event falls within the blocks a
// refill gives it: the room is lowered by the bound, to minus the blocks
// held, so that every free takes the slow path (which then bypasses the bin)
// and the bin is empty exactly at the block before the sampled one; the next
// miss takes it. The hit paths are unchanged.
static void arm(hak_tcache_bin *bins, unsigned i) {
  bin_move(bins, i, -(uint64_t)bins->cap[i]);
  __atomic_store_n(&bins->armed[i], 1, __ATOMIC_RELAXED);
}
static void disarm(hak_tcache_bin *bins, unsigned i) {
  if (hak_likely(!bins->armed[i]))
    return;
  bin_move(bins, i, bins->cap[i]);
  __atomic_store_n(&bins->armed[i], 0, __ATOMIC_RELAXED);
}

// Ends an owner's slab-layer work on a slow path: the heap is busy, not idle.
static void slab_work_done(hak_heap *h) {
  hak_heap_unlock(h);
  hak_heap_note_slow(h);
}

// The bin's bound before any growth: about 32 KiB of blocks, at most
// HAKMEM_TCACHE_MAX (0 when the bins are closed).
static uint32_t base_cap(unsigned cls) {
  uint32_t cap = hak_size_class_table[cls].cache_cap;
  return cap > hak_options_current.tcache_max ? hak_options_current.tcache_max : cap;
}

// The most a bin grows to for a thread that keeps filling and emptying it:
// 128 KiB of blocks (a batch of 1600 64-byte blocks), at most
// HAKMEM_TCACHE_MAX, never below its base bound. All of a thread's bins
// together grow by at most as much: blocks held in bins keep their slabs
// (and SuperSlabs) from going back, so a thread whose batches change size
// grows the bin it uses now and shrinks the others.
#define GROWN_BYTES (128u << 10)
static uint32_t grown_cap(unsigned cls) {
  uint32_t cap = GROWN_BYTES / (uint32_t)hak_size_class_table[cls].size;
  if (cap > hak_options_current.tcache_max)
    cap = hak_options_current.tcache_max;
  uint32_t base = base_cap(cls);
  return cap < base ? base : cap;
}

// Sets bin i's bound to cap, keeping the blocks it holds (at most cap).
static void set_cap(hak_tcache_bin *bins, unsigned i, uint32_t cap) {
  HAK_ASSERT(hak_tcache_bin_count(bins, i) <= cap);
  bin_move(bins, i, (uint64_t)cap - bins->cap[i]);
  __atomic_store_n(&bins->cap[i], cap, __ATOMIC_RELAXED); // read by the census
}

static void *release_chain(hak_heap *h, void *list, uint32_t n);

// Puts every grown bin but bin keep back to its base bound, giving the
// blocks beyond it back to their slabs.
static void shrink_grown(hak_heap *h, hak_tcache_bin *bins, unsigned keep) {
  hak_heap_lock(h);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    unsigned j = hak_tcache_bin_of_class(c);
    uint32_t base = base_cap(c);
    if (j == keep || bins->cap[j] <= base || bins->armed[j])
      continue;
    uint32_t held = hak_tcache_bin_count(bins, j);
    if (held > base) {
      bin_move(bins, j, held - base);
      *hak_tcache_bin_head(bins, j) = release_chain(h, *hak_tcache_bin_head(bins, j), held - base);
    }
    bins->grown_bytes -= (bins->cap[j] - base) * (uint32_t)hak_size_class_table[c].size;
    set_cap(bins, j, base);
  }
  slab_work_done(h);
}

void hak_tcache_set_caps(hak_tcache_bin *bins, bool enabled) {
  // Release builds run HAKMEM_CHECK=full on the slow paths, so the bins stay
  // empty and every call takes them.
  if (HAK_CHECK_CLOSES_BINS)
    enabled = false;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    unsigned i = hak_tcache_bin_of_class(c);
    // Set on empty bins only.
    HAK_ASSERT(*hak_tcache_bin_head(bins, i) == NULL && hak_tcache_bin_count(bins, i) == 0);
    uint32_t cap = base_cap(c);
    if (!enabled || !HAKMEM_FASTCACHE)
      cap = 0;
    bin_move(bins, i, (uint64_t)cap - hak_tcache_bin_room(bins, i));
    __atomic_store_n(&bins->cap[i], cap, __ATOMIC_RELAXED);
    bins->missed[i] = 0;
    bins->grown_bytes = 0;
    // The hit path's block check: only bins that take frees there.
    bool hit = cap > 0 && HAK_INLINE_FREE_HIT;
    bins->chk[HAK_BIN_SLOT(i)] = hit ? hak_size_class_table[c].chk_mul : 0;
    bins->chk[HAK_BIN_SLOT(i) + 1] = hit ? hak_size_class_table[c].chk_lim : 0;
    bins->refill[i] = first_refill(c);
  }
}

void hak_tcache_counts(const hak_tcache_bin *bins, unsigned cls, uint64_t *allocs,
                       uint64_t *frees) {
  unsigned i = hak_tcache_bin_of_class(cls);
  for (;;) {
    uint32_t seq = __atomic_load_n(&bins->seq, __ATOMIC_ACQUIRE);
    uint64_t word = __atomic_load_n(&bins->hot.w.word[HAK_BIN_SLOT(i)], __ATOMIC_ACQUIRE);
    uint64_t bias = __atomic_load_n(&bins->bias[i], __ATOMIC_ACQUIRE);
    // The caller's own bins: it can only be inside its window from a signal
    // handler, which must not wait for itself.
    bool own = bins == hak_tls.bins;
    if (own || ((seq & 1) == 0 && __atomic_load_n(&bins->seq, __ATOMIC_RELAXED) == seq)) {
      // An armed bin (see arm) has a negative room: the word is then
      // allocs << 16 plus that room, as a signed sum.
      uint64_t room = (uint64_t)(int64_t)(int16_t)(word & HAK_BIN_ROOM_MASK);
      *allocs = (word - room) >> HAK_BIN_ROOM_BITS;
      *frees = bias + *allocs - room;
      return;
    }
    sched_yield(); // the owner is inside a slow path, for a few instructions unless preempted
  }
}

uint32_t hak_tcache_held(const hak_tcache_bin *bins, unsigned cls) {
  unsigned i = hak_tcache_bin_of_class(cls);
  uint64_t word = __atomic_load_n(&bins->hot.w.word[HAK_BIN_SLOT(i)], __ATOMIC_ACQUIRE);
  int32_t room = (int16_t)(word & HAK_BIN_ROOM_MASK);
  int32_t cap = (int32_t)__atomic_load_n(&bins->cap[i], __ATOMIC_RELAXED);
  // An armed bin (see arm) has had its room lowered by its
  // bound: room = -held, so it is negative while the bin holds blocks, and 0
  // with the bound "used up" once it is empty.
  if (room < 0)
    return (uint32_t)-room;
  if (room == 0 && __atomic_load_n(&bins->armed[i], __ATOMIC_RELAXED))
    return 0;
  // Else the bound less the room. A bound changed between the two loads
  // (set_cap moves the room first) can make it negative for a moment.
  return cap > room ? (uint32_t)(cap - room) : 0;
}

void hak_tcache_reset_counts(hak_tcache_bin *bins) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    disarm(bins, hak_tcache_bin_of_class(c));
  hak_sampler_reset_bins();
  seq_begin(bins);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    unsigned i = hak_tcache_bin_of_class(c);
    __atomic_store_n(hak_tcache_bin_word(bins, i), (uint64_t)hak_tcache_bin_room(bins, i),
                     __ATOMIC_RELEASE);
    __atomic_store_n(&bins->bias[i], (uint64_t)hak_tcache_bin_room(bins, i), __ATOMIC_RELEASE);
  }
  seq_end(bins);
}

unsigned hak_tcache_sample_miss(unsigned cls, uint32_t *limit) {
  hak_tcache_bin *bins = hak_tls.bins;
  unsigned i = hak_tcache_bin_of_class(cls);
  disarm(bins, i); // the bin is empty: a miss
  return hak_sampler_miss(i, hak_size_class_table[cls].size,
                          *hak_tcache_bin_word(bins, i) >> HAK_BIN_ROOM_BITS, limit);
}

void hak_tcache_arm_empty(unsigned cls) {
  hak_tcache_bin *bins = hak_tls.bins;
  unsigned i = hak_tcache_bin_of_class(cls);
  if (bins->cap[i] != 0 && !bins->armed[i] && hak_tcache_bin_count(bins, i) == 0)
    arm(bins, i);
}

void *hak_tcache_alloc_slow(hak_heap *h, unsigned cls, uint32_t limit) {
  if (h == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  hak_tcache_bin *bins = hak_tls.bins;
  unsigned i = hak_tcache_bin_of_class(cls);
  hak_page_arena_tick(); // slow paths are where idle memory gets returned
  bins->missed[i] = 1;
  uint32_t want = bins->refill[i];
  if (want > bins->cap[i])
    want = bins->cap[i];
  if (want == 0)
    want = 1;
  if (bins->refill[i] < hak_size_class_table[cls].batch)
    bins->refill[i] = bins->refill[i] * 2 < hak_size_class_table[cls].batch
                          ? bins->refill[i] * 2
                          : hak_size_class_table[cls].batch;
  bool armed = false;
  if (limit <= want) {
    want = limit;
    armed = true;
  }
  void *list;
  hak_heap_lock(h);
  // A whole free list that fits the bin is taken without walking it, except
  // when the bin must stop at exactly want blocks.
  uint32_t most = armed ? want : hak_tcache_bin_room(bins, i) + 1;
  uint32_t got = hak_slab_take_upto(h, cls, want, most < want ? want : most, &list);
  slab_work_done(h);
  if (got == 0)
    return NULL;
  HAK_COUNT(h->counters[cls].allocs, 1);
  HAK_COUNT(h->counters[cls].slow_allocs, 1);
  HAK_COUNT(h->counters[cls].refills, 1);
  void *b = list;
  if (got > 1) {
    // The rest go under whatever the bin still holds; it is empty on a miss.
    HAK_ASSERT(got - 1 <= hak_tcache_bin_room(bins, i));
    void *rest = hak_integrity_link_next(b);
    void *held = *hak_tcache_bin_head(bins, i);
    if (held != NULL) {
      void *tail = rest;
      for (void *next; (next = hak_integrity_link_next(tail)) != NULL;)
        tail = next;
      hak_integrity_link_set(tail, held);
    }
    *hak_tcache_bin_head(bins, i) = rest;
    bin_move(bins, i, -(uint64_t)(got - 1));
  }
  hak_integrity_block_take(b, HAK_VET_SLOW_TAKE);
  if (armed && got == want)
    arm(bins, i);
  return b;
}

// Gives a run of len blocks of slab s, linked first..last, back to it: one
// splice onto the free list if this heap owns s, else one remote push.
static void release_run(hak_heap *h, hak_slab *s, void *first, void *last, uint32_t len) {
  hak_heap *owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
  if (owner == h) {
    hak_slab_free_local_run(h, s, first, last, len);
    return;
  }
  HAK_COUNT(h->counters[s->class_idx].remote_frees, len);
  hak_slab_free_remote(s, first, last);
  hak_heap_note_remote(owner);
}

// Frees the first n blocks of a chain to their slabs and returns the block
// after them. Blocks freed together mostly share a slab, so each run of one
// slab's blocks goes back as it is linked, not block by block.
static void *release_chain(hak_heap *h, void *list, uint32_t n) {
  hak_slab *run = NULL;
  unsigned shift = 63; // a slab's address span, 1 << shift, aligned to it
  void *first = NULL, *last = NULL;
  uint32_t len = 0;
  void *p = list;
  while (n-- > 0) {
    void *next = hak_integrity_link_next(p); // read before a splice rewrites p's link
    if ((((uintptr_t)p ^ (uintptr_t)first) >> shift) != 0 || run == NULL) {
      if (run != NULL)
        release_run(h, run, first, last, len);
      unsigned kind = hak_superslab_of(p)->kind;
      run = hak_superslab_slab_of(p, kind);
      shift = hak_superslab_shift_of_kind(kind);
      first = p;
      len = 0;
    }
    last = p;
    len++;
    p = next;
  }
  if (run != NULL)
    release_run(h, run, first, last, len);
  return p;
}

void hak_tcache_free_slow(hak_heap *h, void *p, hak_slab *s, unsigned cls) {
  hak_tcache_bin *bins = hak_tls.bins;
  unsigned i = hak_tcache_bin_of_class(cls);
  hak_integrity_mark_free(p); // vetted by the caller: a live block, now free
  if (h == NULL) {
    hak_slab_free_any(NULL, s, p); // no heap (exiting, or none to be had): a remote push
    return;
  }
  if (bins->cap[i] == 0 || bins->armed[i]) {
    hak_heap_lock(h);
    hak_slab_free_any(h, s, p);
    slab_work_done(h);
    return;
  }
  if (hak_tcache_bin_room(bins, i) == 0 && bins->missed[i] && bins->cap[i] < grown_cap(cls)) {
    // Full again after a miss: the thread cycles more blocks than the bin
    // holds (batches), so the bin grows by a batch instead of flushing
    // blocks that the next mallocs would take back.
    uint32_t cap = bins->cap[i] + hak_size_class_table[cls].batch;
    if (cap > grown_cap(cls))
      cap = grown_cap(cls);
    uint32_t more = (cap - bins->cap[i]) * (uint32_t)hak_size_class_table[cls].size;
    if (bins->grown_bytes + more > GROWN_BYTES)
      shrink_grown(h, bins, i);
    if (bins->grown_bytes + more <= GROWN_BYTES) {
      set_cap(bins, i, cap);
      bins->grown_bytes += more;
    }
    bins->missed[i] = 0;
  }
  if (hak_tcache_bin_room(bins, i) == 0) {
    hak_page_arena_tick();
    bins->missed[i] = 0;
    // Full: hand back the top half, keeping the rest for the next mallocs.
    uint32_t n = hak_size_class_table[cls].batch;
    uint32_t held = hak_tcache_bin_count(bins, i);
    if (n > held)
      n = held;
    bin_move(bins, i, n);
    hak_heap_lock(h);
    *hak_tcache_bin_head(bins, i) = release_chain(h, *hak_tcache_bin_head(bins, i), n);
    slab_work_done(h);
  }
  hak_integrity_link_set(p, *hak_tcache_bin_head(bins, i));
  *hak_tcache_bin_head(bins, i) = p;
  HAK_COUNT(*hak_tcache_bin_word(bins, i), (uint64_t)-1); // a free, counted as on the fast path
}

void hak_tcache_drain(hak_heap *h, hak_tcache_bin *bins) {
  hak_heap_lock(h);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    unsigned i = hak_tcache_bin_of_class(c);
    disarm(bins, i);
    uint32_t n = hak_tcache_bin_count(bins, i);
    if (n != 0) {
      void *list = *hak_tcache_bin_head(bins, i);
      *hak_tcache_bin_head(bins, i) = NULL;
      bin_move(bins, i, n);
      (void)release_chain(h, list, n);
    }
    // A grown bin goes back to its base bound: demand is measured afresh.
    if (bins->cap[i] > base_cap(c))
      set_cap(bins, i, base_cap(c));
    bins->missed[i] = 0;
  }
  bins->grown_bytes = 0;
  slab_work_done(h);
}
