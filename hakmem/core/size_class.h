// Size classes: 16-byte steps up to 128 bytes, then four classes per doubling
// up to 128 KiB (at most 25% rounding waste). Classes up to 16 KiB live in
// 64 KiB slabs (where a slab emptied of one class serves another), larger
// ones in 512 KiB slabs, which waste less address space on a slab's tail.
#ifndef HAKMEM_SIZE_CLASS_H
#define HAKMEM_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

typedef struct hak_class_info {
  uint32_t size;       // block size in bytes
  uint8_t region_kind; // HAK_REGION_SS_SMALL or HAK_REGION_SS_MEDIUM
  uint16_t cache_cap;  // fast-cache bound, in blocks
  uint16_t batch;      // blocks moved per refill or flush
  // off % size == 0 iff off * div_magic < div_magic, for off < 2^32
  // (div_magic = ceil(2^64 / size); Lemire, Kaser and Kurz 2019).
  uint64_t div_magic;
  // Small classes: a granule offset off (< 64 KiB) is a block start iff
  // (uint32_t)(off * chk_mul) < chk_lim, where chk_mul = 2^32 / size + 1 and
  // chk_lim excludes the tail past the last whole block; 0 and 0 (never) for
  // medium classes. Exhaustively tested in size_class_test.
  uint32_t chk_mul, chk_lim;
} hak_class_info;

extern const hak_class_info hak_size_class_table[HAK_NUM_CLASSES] HAK_INTERNAL;
// Bin slot (HAK_BIN_SLOT(class + 1), see hak_tcache_bin) of every size up
// to HAK_LOOKUP_MAX, indexed by the size itself so that malloc's hit path
// needs no arithmetic before the load (1025 bytes, 17 cache lines, of which a
// program touches those of the sizes it uses; by (size + 15) >> 4 it would be
// 65 bytes and two more instructions). Size 0 gets bin 0, which the fast path
// never finds blocks in.
extern const uint8_t hak_size_class_lookup[HAK_LOOKUP_MAX + 1] HAK_INTERNAL;

// Class of a request of size bytes, 0 < size <= HAK_MEDIUM_MAX (0 maps to 0).
static inline unsigned hak_size_class_of(size_t size) {
  if (hak_likely(size <= HAK_LOOKUP_MAX))
    return size == 0 ? 0u : hak_size_class_lookup[size] / HAK_BIN_SLOT(1) - 1u;
  size_t s = size - 1;
  unsigned k = 63u - (unsigned)__builtin_clzll(s); // 2^k <= s < 2^(k+1)
  return 8u + (k - 7u) * 4u + (unsigned)((s >> (k - 2u)) & 3u);
}

static inline size_t hak_size_class_bytes(unsigned cls) { return hak_size_class_table[cls].size; }

// Smallest class of at least size bytes whose blocks are all aligned to
// align (a power of two <= HAK_PAGE_SIZE), or HAK_NUM_CLASSES if none.
unsigned hak_size_class_aligned(size_t size, size_t align) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_SIZE_CLASS_H
