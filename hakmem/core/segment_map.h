// Which 2 MiB regions of the address space belong to hakmem, and as what.
// Consulted before any header is read, so a pointer hakmem did not hand out is
// never dereferenced.
#ifndef HAKMEM_SEGMENT_MAP_H
#define HAKMEM_SEGMENT_MAP_H

#include <stdint.h>

#include "types.h"

// User-space addresses have 47 bits: 26 bits of region index, split 10 / 16.
#define HAK_SEGMAP_L2_BITS 16
#define HAK_SEGMAP_L1_SIZE ((size_t)1 << (47 - HAK_SS_SHIFT - HAK_SEGMAP_L2_BITS))

extern _Atomic(uint8_t *) hak_segmap_l1[HAK_SEGMAP_L1_SIZE] HAK_INTERNAL;

// The HAK_REGION_* kind of the region holding p; HAK_REGION_NONE for foreign
// memory, NULL, and non-canonical addresses.
static inline uint8_t hak_segmap_kind(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uintptr_t l1 = a >> (HAK_SS_SHIFT + HAK_SEGMAP_L2_BITS);
  if (hak_unlikely(l1 >= HAK_SEGMAP_L1_SIZE))
    return HAK_REGION_NONE;
  uint8_t *l2 = atomic_load_explicit(&hak_segmap_l1[l1], memory_order_acquire);
  if (l2 == NULL)
    return HAK_REGION_NONE;
  return __atomic_load_n(&l2[(a >> HAK_SS_SHIFT) & (((uintptr_t)1 << HAK_SEGMAP_L2_BITS) - 1)],
                         __ATOMIC_RELAXED);
}

// Marks [base, base + size) (2 MiB aligned) as kind; the first region gets
// first_kind. Returns 0, or -1 when the map itself could not be allocated.
int hak_segmap_set(void *base, size_t size, uint8_t first_kind, uint8_t kind) HAK_INTERNAL;
void hak_segmap_clear(void *base, size_t size) HAK_INTERNAL;

#endif // HAKMEM_SEGMENT_MAP_H
