// Which 2 MiB regions of the address space belong to hakmem, and as what.
// Consulted before any header is read, so a pointer hakmem did not hand out is
// never dereferenced.
#ifndef HAKMEM_SEGMENT_MAP_H
#define HAKMEM_SEGMENT_MAP_H

#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// User-space addresses have 47 bits: 26 bits of region index, split 10 / 16.
#define HAK_SEGMAP_L2_BITS 16
#define HAK_SEGMAP_L1_SIZE ((size_t)1 << (47 - HAK_SS_SHIFT - HAK_SEGMAP_L2_BITS))

extern HAK_ATOMIC(uint8_t *) hak_segmap_l1[HAK_SEGMAP_L1_SIZE] HAK_INTERNAL;

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

// ---- class map ---------------------------------------------------------------
// One byte per 64 KiB of the address space: the slot of the bin of the class
// (HAK_BIN_SLOT(class + 1), see hak_tcache_bin) where the 64 KiB lie in a slab
// that is in use, 0 elsewhere (foreign memory, large blocks, free slab slots).
// The free fast path reads it instead of the segment map and the slab header:
// one load, from a table that stays in cache. It is reserved at
// initialisation; until then (or if the reservation fails) the mask is 0,
// every lookup reads the zero byte and frees take the slow path.
#define HAK_CMAP_SHIFT 16
#define HAK_CMAP_ENTRIES ((uintptr_t)1 << (47 - HAK_CMAP_SHIFT))

typedef struct hak_classmap_t {
  uintptr_t mask; // HAK_CMAP_ENTRIES - 1 once map is the real table
  const uint8_t *map;
} hak_classmap_t;

extern hak_classmap_t hak_segmap_class HAK_INTERNAL;

// The bin slot of the slab holding p, 0 (bin 0's) if p is in none.
static inline unsigned hak_segmap_class_slot(const void *p) {
  uintptr_t i = (uintptr_t)p >> HAK_CMAP_SHIFT;
#if defined(__SANITIZE_THREAD__)
  i &= __atomic_load_n(&hak_segmap_class.mask, __ATOMIC_ACQUIRE);
  return __atomic_load_n(&__atomic_load_n(&hak_segmap_class.map, __ATOMIC_RELAXED)[i],
                         __ATOMIC_RELAXED);
#else
  // The mask is published after the map (x86 keeps loads in order): a thread
  // that sees the new mask sees the new map.
  i &= hak_segmap_class.mask;
  __asm__ volatile("" ::: "memory");
  return hak_segmap_class.map[i];
#endif
}

// Reserves the class map; without it hakmem still works, only slower.
void hak_segmap_class_init(void) HAK_INTERNAL;
// Records that the slab at [start, start + size) (64 KiB aligned) holds the
// class of bin (class + 1), or, with bin 0, that it holds nothing.
void hak_segmap_class_set(const void *start, size_t size, unsigned bin) HAK_INTERNAL;

// Marks [base, base + size) (2 MiB aligned) as kind; the first region gets
// first_kind. Returns 0, or -1 when the map itself could not be allocated.
int hak_segmap_set(void *base, size_t size, uint8_t first_kind, uint8_t kind) HAK_INTERNAL;
void hak_segmap_clear(void *base, size_t size) HAK_INTERNAL;

// The regions of one kind (not HAK_REGION_NONE), in address order: finds the
// first region of that kind at or above *cursor (rounded down to its region),
// stores its base in *cursor and returns true; false when there is none.
// Walks the first level and each second-level table that exists; loads
// only, no lock, no allocation (async-signal-safe). A region set or cleared
// meanwhile may or may not be seen. Every region of a kind:
//   for (uintptr_t a = 0; hak_segmap_next(kind, &a); a += HAK_SS_SIZE) ...
bool hak_segmap_next(uint8_t kind, uintptr_t *cursor) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_SEGMENT_MAP_H
