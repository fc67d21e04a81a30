// The hit paths of malloc and free, inlined into hak_malloc/hak_free and into
// the exported malloc/free, so that a hit is one function with no call.
// Release builds with the fast cache only; other builds call the general
// paths in api.c.
#ifndef HAKMEM_FASTPATH_H
#define HAKMEM_FASTPATH_H

#include <stddef.h>

#include "integrity.h"
#include "segmap.h"
#include "size_class.h"
#include "superslab.h"
#include "tcache.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

#define HAK_INLINE_FAST_PATHS HAK_INLINE_FREE_HIT

// Everything else malloc does, for any size.
void *hak_fastpath_malloc_miss(size_t size) HAK_INTERNAL;

// All of free where the build has no inlined hit path, else what it does
// not take.
void hak_fastpath_free_miss(void *p) HAK_INTERNAL;

#if HAK_INLINE_FAST_PATHS

// For sizes up to 1 KiB one table load, indexed by the size itself, names
// the bin (its slot): a hit is a bounds check, the lookup, a pop and one add (which
// counts the allocation and makes room).
// Builds with a trailer look up the size with it, and hand the block out
// through the integrity hook (poison checked, guard laid), which needs its
// class's block size.
static inline __attribute__((always_inline)) void *hak_fastpath_malloc_hit(size_t size) {
  if (hak_likely(size <= HAK_LOOKUP_MAX - HAK_TRAILER)) {
    uintptr_t slot = hak_size_class_lookup[size + HAK_TRAILER];
    void *b = HAK_MY_HEAD(slot);
    if (hak_likely(b != NULL)) {
#if defined(__x86_64__)
      // No code: it asks for the block in the return register, which GCC
      // then loads it into, instead of loading it elsewhere and moving it.
      __asm__("" : "+a"(b));
#endif
      b = hak_tcache_take(slot, b);
      if (HAK_GUARD)
        return hak_integrity_alloced(b, hak_size_class_table[slot / HAK_BIN_SLOT(1) - 1].size,
                                     size);
      return b;
    }
  }
  return hak_fastpath_malloc_miss(size);
}

// The slow path of free when the bin was full: the hit path's subtract
// wrapped its room to 0xffff, which this puts back before hak_fastpath_free_miss.
void hak_fastpath_free_full(void *p, uintptr_t slot) HAK_INTERNAL;

// The push of a vetted block p into bin slot: its link and its mark (key).
static inline __attribute__((always_inline)) void hak_fastpath_push(void *p, uintptr_t slot,
                                                                    uintptr_t key) {
  hak_integrity_link_set(p, HAK_MY_HEAD(slot));
  ((uintptr_t *)p)[1] = key;
  HAK_MY_HEAD(slot) = p;
}

// The rest of a free hit whose guard span is long (HAK_VET_FREE_HIT): the
// bin has made room for p; the guard is checked out of line, the poison
// laid, and p pushed.
void hak_fastpath_free_long(void *p, uintptr_t slot, uint32_t block_size) HAK_INTERNAL;

// The class map names the bin (its slot); foreign memory, large blocks, free
// slab slots and medium slabs name bin 0 or a bin whose check never passes.
// A hit then proves p is a block start of a small slab (one multiply, see
// size_class.h) and not free (its second word is not the free mark), so an
// interior pointer or a double free never enters a bin; the slow path says
// which it was. The push stores the link and the mark.
//
// Where HAK_VET_FREE_HIT, the hit also proves what the general path's
// vetting does beyond that: p was carved (before its second word is read:
// the guard page lies past the last carved block) and does not lie in a page
// a trim gave back (else the miss path names what it is); and once the bin has
// room, the guard is checked and the poison laid (hak_integrity_freed_hit;
// a long guard span by hak_fastpath_free_long).
static inline __attribute__((always_inline)) void hak_fastpath_free_hit(void *p) {
  uintptr_t slot = hak_segmap_class_slot(p);
  uint32_t off = (uint16_t)(uintptr_t)p;
  if (hak_likely(off * HAK_MY_CHK(slot) < HAK_MY_CHK(slot + 1))) {
    uint32_t bs = 0;
    if (HAK_VET_FREE_HIT) {
      // The class map names bins only where small slabs lie. (The empty asm
      // hides p's value: a caller's constant, NULL say, that cannot get
      // here would have GCC warn about the slab and the block it reaches.)
      __asm__("" : "+r"(p));
      const hak_slab *s = hak_superslab_slab_of(p, HAK_REGION_SS_SMALL);
      bs = __atomic_load_n(&s->block_size, __ATOMIC_RELAXED);
      uintptr_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
      if (hak_unlikely((uintptr_t)p - (uintptr_t)s->start >= carved * bs ||
                       hak_superslab_block_purged(s, p))) {
        hak_fastpath_free_miss(p);
        return;
      }
    }
    uintptr_t key = hak_integrity_free_key;
    if (hak_likely(((const uintptr_t *)p)[1] != key)) {
#if defined(__SANITIZE_THREAD__)
      if (hak_likely((int16_t)HAK_MY_WORD(slot) > 0)) {
        HAK_COUNT(HAK_MY_WORD(slot), (uint64_t)-1);
#else
      // One subtract makes room for the push, counts the free (see
      // hak_tcache_bin) and, going negative, says the bin was full (room
      // never exceeds 256): GCC emits it as subw and js.
      if (hak_likely((int16_t)--hak_tls.bins[0].hot.r.e[slot].room >= 0)) {
#endif
        if (HAK_VET_FREE_HIT && hak_unlikely(!hak_integrity_freed_hit(p, bs))) {
          hak_fastpath_free_long(p, slot, bs); // its last step: a jump
          return;
        }
        hak_fastpath_push(p, slot, key);
        return;
      }
#if defined(__SANITIZE_THREAD__)
      hak_fastpath_free_miss(p);
#else
      hak_fastpath_free_full(p, slot);
#endif
      return;
    }
  }
  hak_fastpath_free_miss(p);
}

#if HAK_WIDE_PATTERNS
// The same hit paths compiled for AVX2 (see HAK_WIDE_PATTERNS).
__attribute__((target("avx2"))) void *hak_fastpath_malloc_wide(size_t size) HAK_INTERNAL;
__attribute__((target("avx2"))) void hak_fastpath_free_wide(void *p) HAK_INTERNAL;
#endif

static inline __attribute__((always_inline)) void *hak_fastpath_malloc(size_t size) {
#if HAK_WIDE_PATTERNS
  if (__atomic_load_n(&hak_integrity_wide, __ATOMIC_RELAXED))
    return hak_fastpath_malloc_wide(size);
#endif
  return hak_fastpath_malloc_hit(size);
}

static inline __attribute__((always_inline)) void hak_fastpath_free(void *p) {
#if HAK_WIDE_PATTERNS
  if (__atomic_load_n(&hak_integrity_wide, __ATOMIC_RELAXED)) {
    hak_fastpath_free_wide(p);
    return;
  }
#endif
  hak_fastpath_free_hit(p);
}
#else
static inline void *hak_fastpath_malloc(size_t size) { return hak_fastpath_malloc_miss(size); }
#endif

HAK_EXTERN_C_END

#endif // HAKMEM_FASTPATH_H
