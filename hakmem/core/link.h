// Free-list links: the first word of every free block. The hardened variant
// stores each link xor a per-process random key and the block's address, and
// checks every link it follows, so a heap overflow cannot forge one; debug
// builds check the links they follow too (a write after free lands there).
#ifndef HAKMEM_LINK_H
#define HAKMEM_LINK_H

#include "types.h"

#include "segment_map.h"

HAK_EXTERN_C_BEGIN

// A link may be NULL or point at a 16-byte aligned address in a SuperSlab.
static inline int hak_link_plausible(uintptr_t n) {
  if (n == 0)
    return 1;
  uint8_t kind = hak_segmap_kind((const void *)n);
  return (n & 15) == 0 && (kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM);
}

// A random per-process key (check.c). Every free block carries it in its
// second word, the free mark, and every block handed out has that word
// cleared: a block whose second word holds the key is free (user data can
// only hold it by copying it out of freed memory). This is what makes every
// double free detectable in O(1), in every build.
extern uintptr_t hak_free_key HAK_INTERNAL;
// The checking level (check.h); links are vetted unless it is off (0).
extern int hak_check_level HAK_INTERNAL;

static inline void hak_mark_free(void *p) { ((uintptr_t *)p)[1] = hak_free_key; }
static inline int hak_is_marked_free(const void *p) {
  return ((const uintptr_t *)p)[1] == hak_free_key;
}
static inline void hak_mark_clear(void *p) { ((uintptr_t *)p)[1] = 0; }

// Draws the keys (the free mark's, and the link key of hardened builds) from
// the kernel's random bytes; once, before the first block is marked.
void hak_link_init(void) HAK_INTERNAL;

// Reports the damaged link of block and aborts.
void hak_link_corrupt(const void *block) HAK_INTERNAL __attribute__((noreturn, cold));

#if HAKMEM_HARDENED
extern uintptr_t hak_link_key HAK_INTERNAL;

static inline void hak_link_set(void *b, void *next) {
  *(uintptr_t *)b = (uintptr_t)next ^ hak_link_key ^ (uintptr_t)b;
}

static inline void *hak_link_get(const void *b) {
  uintptr_t n = *(const uintptr_t *)b ^ hak_link_key ^ (uintptr_t)b;
  if (hak_unlikely(!hak_link_plausible(n)))
    hak_link_corrupt(b);
  return (void *)n;
}
#else
static inline void hak_link_set(void *b, void *next) { *(void **)b = next; }
static inline void *hak_link_get(const void *b) {
  void *n = *(void *const *)b;
  if (HAKMEM_DEBUG && hak_unlikely(!hak_link_plausible((uintptr_t)n)))
    hak_link_corrupt(b);
  return n;
}
#endif

// The link of free block b, vetted before anyone follows it (the slow paths:
// refills, flushes, remote splices, trims): NULL, or a 16-byte aligned
// address in a SuperSlab whose block carries the free mark. Anything else
// means b's first word was written after b was freed.
static inline void *hak_link_next(const void *b) {
  void *n = hak_link_get(b);
  if (n != NULL && (HAKMEM_HARDENED || hak_check_level != 0)) {
    // A link into b's own SuperSlab (most are) is plausible when aligned:
    // b is a free block of a SuperSlab, so the segment map would say so too.
    uintptr_t u = (uintptr_t)n;
    bool near = ((u ^ (uintptr_t)b) >> HAK_SS_SHIFT) == 0 && (u & 15) == 0;
    if (hak_unlikely((!near && !hak_link_plausible(u)) || !hak_is_marked_free(n)))
      hak_link_corrupt(b);
  }
  return n;
}

// Reports free block b, whose free mark is gone, and aborts.
void hak_block_written(const void *b) HAK_INTERNAL __attribute__((noreturn, cold));

// Hands out free block b: its mark goes. Checked callers first make sure the
// mark survived, or b was written to after its free (or is no free block at
// all: a link overwritten with a live block's address leads to one).
static inline void hak_block_take(void *b, bool checked) {
  if (checked && hak_unlikely(!hak_is_marked_free(b)))
    hak_block_written(b);
  hak_mark_clear(b);
}

HAK_EXTERN_C_END

#endif // HAKMEM_LINK_H
