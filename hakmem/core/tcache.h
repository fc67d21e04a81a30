// The per-thread fast cache: for each class a bounded stack of free blocks.
// A hit is a pop on malloc and a push on free; misses refill from, and
// overflows flush to, the slab layer in batches.
#ifndef HAKMEM_TINY_FASTCACHE_H
#define HAKMEM_TINY_FASTCACHE_H

#include "integrity.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

// Whether the exported free's hit path is inlined (release builds with the
// fast cache; the hardened variant's hit paths add its checks, see
// HAK_VET_FREE_HIT).
#define HAK_INLINE_FREE_HIT (HAKMEM_FASTCACHE && !HAKMEM_DEBUG)

// Miss path of malloc for class cls (its bin is empty): refills the bin of h,
// the calling thread's heap, and returns a block; NULL with ENOMEM when h is
// NULL or memory is exhausted. limit (UINT32_MAX: none) bounds the blocks
// the bin hands out, the one returned included, before its next miss: the
// bin is armed (see sampler.h) to stop there.
void *hak_tcache_alloc_slow(hak_heap *h, unsigned cls, uint32_t limit) HAK_INTERNAL;
// With the sampler on, a miss of the bin of class cls is counted first:
// returns the allocation's HAK_SAMPLE_* events, and in *limit the bound to
// pass to hak_tcache_alloc_slow.
unsigned hak_tcache_sample_miss(unsigned cls, uint32_t *limit) HAK_INTERNAL;
// After a miss served elsewhere (the guarded pool), keeps the empty bin of
// class cls empty until its next miss: frees of the class bypass it.
void hak_tcache_arm_empty(unsigned cls) HAK_INTERNAL;
// Slow path of free for block p of class cls in slab s: the bin is full or
// off. h is the calling thread's heap, NULL when it has none (exiting).
void hak_tcache_free_slow(hak_heap *h, void *p, hak_slab *s, unsigned cls) HAK_INTERNAL;
// Fast allocations and frees of class cls made through bins.
void hak_tcache_counts(const hak_tcache_bin *bins, unsigned cls, uint64_t *allocs,
                       uint64_t *frees) HAK_INTERNAL;
// The blocks bin i of class cls holds: its bound less its room (the low 16
// bits of its word), or, while the heap profiler has armed it, minus its
// room. For the census: any thread may ask, racing the owner (a snapshot,
// never below 0).
uint32_t hak_tcache_held(const hak_tcache_bin *bins, unsigned cls) HAK_INTERNAL;
// Zeroes those counts (the thread's totals have been merged).
void hak_tcache_reset_counts(hak_tcache_bin *bins) HAK_INTERNAL;
// Returns every cached block of bins (a thread's bins) to its slab.
void hak_tcache_drain(hak_heap *h, hak_tcache_bin *bins) HAK_INTERNAL;
// Sets every bin's bound from the options (0 for a thread without a heap).
void hak_tcache_set_caps(hak_tcache_bin *bins, bool enabled) HAK_INTERNAL;

// Accessors of bin i of a thread's bins. The owner thread updates the packed
// word; statistics read it from other threads, so under ThreadSanitizer the
// update is an atomic store.
static inline void **hak_tcache_bin_head(hak_tcache_bin *bins, unsigned i) {
  return &bins->hot.head[HAK_BIN_SLOT(i)];
}
static inline uint64_t *hak_tcache_bin_word(hak_tcache_bin *bins, unsigned i) {
  return &bins->hot.w.word[HAK_BIN_SLOT(i)];
}
static inline uint32_t hak_tcache_bin_room(hak_tcache_bin *bins, unsigned i) {
  return (uint32_t)*hak_tcache_bin_word(bins, i) & HAK_BIN_ROOM_MASK;
}
static inline uint32_t hak_tcache_bin_count(hak_tcache_bin *bins, unsigned i) {
  return bins->cap[i] - hak_tcache_bin_room(bins, i);
}
static inline unsigned hak_tcache_bin_of_class(unsigned cls) { return cls + 1; }

// The calling thread's bins, by slot. The hit paths name them through
// hak_tls directly, not through a pointer, so that with the slot in a
// register GCC addresses a field as %fs:offset(tls, slot, 8) instead of first
// computing the thread pointer plus the TLS offset.
#define HAK_MY_HEAD(slot) (hak_tls.bins[0].hot.head[slot])
#define HAK_MY_WORD(slot) (hak_tls.bins[0].hot.w.word[slot])

#define HAK_MY_CHK(slot) (hak_tls.bins[0].chk[slot])

#if HAKMEM_FASTCACHE
// A pop hands out the head once it proves to be a free block (it carries
// the free mark: a link overwritten with a live block's address fails here)
// and clears the mark. The link it installs as the new head is vetted too:
// release builds check its alignment (what a write after free into the first
// word of a cached block usually breaks: a counter, a string, a small
// integer), checked and hardened builds check it in full.
// Reports the bad head b of a bin. It never returns, but is not declared so:
// the hit path then reaches it with a jump and needs no stack frame.
void *hak_tcache_pop_bad(void *b) HAK_INTERNAL;

// Where the hit path goes on after the pop (builds with a guard, whose
// hand-out lays it), the report is marked as not returning instead, for the
// same reason.
static inline void *hak_tcache_bad(void *b) {
  if (HAK_GUARD) {
    hak_tcache_pop_bad(b);
    __builtin_unreachable();
  }
  return hak_tcache_pop_bad(b);
}

// Takes b, the non-empty head of bin slot, out of it and hands it out.
static inline __attribute__((always_inline)) void *hak_tcache_take(uintptr_t slot, void *b) {
  void *n = HAK_VET_BIN_LINKS ? hak_integrity_bin_link_next(b, slot) : hak_integrity_link_get(b);
  if (hak_unlikely(!hak_integrity_is_marked_free(b)))
    return hak_tcache_bad(b);
  if (hak_unlikely((uintptr_t)n & 15))
    return hak_tcache_bad(b);
  HAK_MY_HEAD(slot) = n;
  HAK_COUNT(HAK_MY_WORD(slot), HAK_BIN_POP);
  hak_integrity_mark_clear(b);
  return b;
}

static inline void *hak_tcache_pop(uintptr_t slot) {
  void *b = HAK_MY_HEAD(slot);
  return hak_likely(b != NULL) ? hak_tcache_take(slot, b) : NULL;
}

// A push of a block the caller has vetted (a live block of the bin's class):
// it gets the free mark. The subtract both makes the push and counts the
// free (see hak_tcache_bin).
static inline bool hak_tcache_push(uintptr_t slot, void *p) {
  // Full, or armed by the heap profiler (a negative room).
  if (hak_unlikely((int16_t)HAK_MY_WORD(slot) <= 0))
    return false;
  hak_integrity_link_set(p, HAK_MY_HEAD(slot));
  hak_integrity_mark_free(p);
  HAK_MY_HEAD(slot) = p;
  HAK_COUNT(HAK_MY_WORD(slot), (uint64_t)-1);
  return true;
}
#endif

HAK_EXTERN_C_END

#endif // HAKMEM_TINY_FASTCACHE_H
