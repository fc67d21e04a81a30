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

static inline hak_tcache_bin *fast_bin_at(uintptr_t index) { return &hak_tls.bins[index]; }

// For sizes up to 1 KiB one table load names the bin: a hit is a bounds
// check, the lookup, a pop and one add (which counts the allocation and
// makes room).
static inline __attribute__((always_inline)) void *hak_malloc_hit(size_t size) {
  if (hak_likely(size <= HAK_LOOKUP_MAX)) {
    void *b = hak_tcache_pop(fast_bin_at(hak_bin_lookup[(size + 15) >> 4]));
    if (hak_likely(b != NULL))
      return b;
  }
  return hak_malloc_miss(size);
}

// The class map names the bin; a block of a free slot or of foreign memory
// names bin 0, which never has room. (Not hak_tcache_push: through it GCC
// loads, tests and stores the packed word, 20 instructions instead of 18.) p == head is the double
// free that every build catches.
static inline __attribute__((always_inline)) void hak_free_hit(void *p) {
  hak_tcache_bin *bin = fast_bin_at(hak_classmap_bin(p));
  void *head = bin->head;
  if (hak_likely(hak_bin_room(bin) != 0 && p != head)) {
    hak_link_set(p, head);
    bin->head = p;
    hak_bin_add(bin, (uint64_t)-1);
    HAK_COUNT(bin->frees, 1);
    return;
  }
  hak_free_miss(p);
}
#else
static inline void *hak_malloc_hit(size_t size) { return hak_malloc_miss(size); }
#endif

#endif // HAKMEM_FASTPATH_H
