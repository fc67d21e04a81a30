// The hit paths of malloc and free, inlined into hak_malloc/hak_free and into
// the exported malloc/free, so that a hit is one function with no call.
// Release builds with the fast cache only; other builds call the general
// paths in hakmem.c.
#ifndef HAKMEM_FASTPATH_H
#define HAKMEM_FASTPATH_H

#include <stddef.h>

#include "link.h"
#include "segment_map.h"
#include "size_class.h"
#include "tiny_fastcache.h"
#include "types.h"

#define HAK_INLINE_FAST_PATHS (HAKMEM_FASTCACHE && !HAKMEM_DEBUG)

// Everything else malloc does, for any size.
void *hak_malloc_miss(size_t size) HAK_INTERNAL;

#if HAK_INLINE_FAST_PATHS
void hak_free_miss(void *p) HAK_INTERNAL;

// For sizes up to 1 KiB one table load, indexed by the size itself, names
// the bin (its slot): a hit is a bounds check, the lookup, a pop and one add (which
// counts the allocation and makes room).
static inline __attribute__((always_inline)) void *hak_malloc_hit(size_t size) {
  if (hak_likely(size <= HAK_LOOKUP_MAX)) {
    void *b = hak_tcache_pop(hak_bin_lookup[size]);
    if (hak_likely(b != NULL)) {
#if defined(__x86_64__)
      // No code: it asks for the block in the return register, which GCC
      // then loads it into, instead of loading it elsewhere and moving it.
      __asm__("" : "+a"(b));
#endif
      return b;
    }
  }
  return hak_malloc_miss(size);
}

// The class map names the bin (its slot); a block of a free slot or of
// foreign memory names bin 0, which never has room. p == head is the double free that every
// build catches.
static inline __attribute__((always_inline)) void hak_free_hit(void *p) {
  if (hak_likely(hak_tcache_push(hak_classmap_slot(p), p)))
    return;
  hak_free_miss(p);
}
#else
static inline void *hak_malloc_hit(size_t size) { return hak_malloc_miss(size); }
#endif

#endif // HAKMEM_FASTPATH_H
