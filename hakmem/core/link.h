// Free-list links: the first word of every free block. The hardened variant
// stores each link xor a per-process random key and the block's address, and
// checks every link it follows, so a heap overflow cannot forge one.
#ifndef HAKMEM_LINK_H
#define HAKMEM_LINK_H

#include "types.h"

#ifndef HAKMEM_HARDENED
#define HAKMEM_HARDENED 0
#endif

#if HAKMEM_HARDENED
#include "segment_map.h"

extern uintptr_t hak_link_key HAK_INTERNAL;
void hak_link_corrupt(const void *block) HAK_INTERNAL __attribute__((noreturn, cold));

static inline void hak_link_set(void *b, void *next) {
  *(uintptr_t *)b = (uintptr_t)next ^ hak_link_key ^ (uintptr_t)b;
}

static inline void *hak_link_get(const void *b) {
  uintptr_t n = *(const uintptr_t *)b ^ hak_link_key ^ (uintptr_t)b;
  if (n != 0) {
    uint8_t kind = hak_segmap_kind((const void *)n);
    if (hak_unlikely((n & 15) != 0 || (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)))
      hak_link_corrupt(b);
  }
  return (void *)n;
}
#else
static inline void hak_link_set(void *b, void *next) { *(void **)b = next; }
static inline void *hak_link_get(const void *b) { return *(void *const *)b; }
#endif

#endif // HAKMEM_LINK_H
