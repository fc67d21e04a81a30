// Misuse detection, all of it: what hakmem checks and where is answered here
// (and in docs/RELIABILITY.md). The free mark and the free-list links, the
// checking level, the guard trailer of debug and hardened builds, the poison
// of hardened builds, the hardened carving order, and the one report
// function every misuse report goes through. The hooks are declared in every
// build and are empty where a build has nothing to do, so callers carry no
// #if of their own.
#ifndef HAKMEM_INTEGRITY_H
#define HAKMEM_INTEGRITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "segmap.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

// ---- the report ---------------------------------------------------------------

// Reports misuse ("hakmem: <what>: <message>" on stderr) and aborts. Every
// report of a misused or damaged block, from any box, comes through here.
void hak_integrity_misuse(const char *what, const char *fmt, ...) HAK_INTERNAL
    __attribute__((noreturn, cold, format(printf, 2, 3)));

// The two commonest reports: p is no block hakmem handed out; p is already
// free (a double free when what is free()).
void hak_integrity_report_invalid(const char *what, const void *p) HAK_INTERNAL
    __attribute__((noreturn, cold));
void hak_integrity_report_freed(const char *what, const void *p) HAK_INTERNAL
    __attribute__((noreturn, cold));

// ---- the checking level ---------------------------------------------------------
// Set at init from HAKMEM_CHECK or the build's default (HAK_CHECK_*,
// options.h); hardened builds never go below cheap.
//   off:   only the checks built into the fast paths (the free mark, the
//          block-start proof); slow paths follow links unvetted, and the
//          guard trailer of debug builds is not checked.
//   cheap: also every link a slow path follows, every hand-out from a bin,
//          and the guard trailer and poison where the build has them.
//   full:  also every block handed out by any path; in release builds the
//          fast cache is bypassed, so every free and malloc is vetted.
extern int hak_integrity_level HAK_INTERNAL;
#define HAK_CHECK_IS_FULL (hak_integrity_level == HAK_CHECK_FULL)

// Draws the keys (the free mark's, and the link key of hardened builds) from
// the kernel's random bytes; once, before the first block is marked.
void hak_integrity_link_init(void) HAK_INTERNAL;
// Draws the keys and sets the level from the options; once, at init.
void hak_integrity_init(void) HAK_INTERNAL;

// The policy, by build, in the names the paths use:
// a bin's hit path vets the link it installs in full (else its alignment);
#define HAK_VET_BIN_LINKS (HAKMEM_DEBUG || HAKMEM_HARDENED)
// a block taken off a slab's free list by a hit (no fast cache) has its mark
// checked;
#define HAK_VET_SLAB_TAKE (HAKMEM_DEBUG || HAKMEM_HARDENED)
// a block handed out by a slow path has its mark checked;
#define HAK_VET_SLOW_TAKE (HAKMEM_HARDENED || HAK_CHECK_IS_FULL)
// release builds at HAKMEM_CHECK=full send every call down the slow paths
// (the bins stay closed).
#define HAK_CHECK_CLOSES_BINS (!HAKMEM_DEBUG && HAK_CHECK_IS_FULL)

// ---- the free mark ---------------------------------------------------------------
// A random per-process key. Every free block carries it in its second word,
// and every block handed out has that word cleared: a block whose second word
// holds the key is free (user data can only hold it by copying it out of
// freed memory). This is what makes every double free detectable in O(1), in
// every build.
extern uintptr_t hak_integrity_free_key HAK_INTERNAL;

static inline void hak_integrity_mark_free(void *p) {
  ((uintptr_t *)p)[1] = hak_integrity_free_key;
}
static inline int hak_integrity_is_marked_free(const void *p) {
  return ((const uintptr_t *)p)[1] == hak_integrity_free_key;
}
static inline void hak_integrity_mark_clear(void *p) { ((uintptr_t *)p)[1] = 0; }

// ---- free-list links ---------------------------------------------------------------
// The first word of every free block. The hardened variant stores each link
// xor a per-process random key and the block's address, and checks every
// link it follows, so a heap overflow cannot forge one; debug builds check
// the links they follow too (a write after free lands there).

// A link may be NULL or point at a 16-byte aligned address in a SuperSlab.
static inline int hak_integrity_link_plausible(uintptr_t n) {
  if (n == 0)
    return 1;
  uint8_t kind = hak_segmap_kind((const void *)n);
  return (n & 15) == 0 && (kind == HAK_REGION_SS_SMALL || kind == HAK_REGION_SS_MEDIUM);
}

// Reports the damaged link of block and aborts.
void hak_integrity_link_corrupt(const void *block) HAK_INTERNAL __attribute__((noreturn, cold));

#if HAKMEM_HARDENED
extern uintptr_t hak_integrity_link_key HAK_INTERNAL;
static inline void hak_integrity_link_set(void *b, void *next) {
  *(uintptr_t *)b = (uintptr_t)next ^ hak_integrity_link_key ^ (uintptr_t)b;
}
static inline void *hak_integrity_link_get(const void *b) {
  uintptr_t n = *(const uintptr_t *)b ^ hak_integrity_link_key ^ (uintptr_t)b;
  if (hak_unlikely(!hak_integrity_link_plausible(n)))
    hak_integrity_link_corrupt(b);
  return (void *)n;
}
#else
static inline void hak_integrity_link_set(void *b, void *next) { *(void **)b = next; }
static inline void *hak_integrity_link_get(const void *b) {
  void *n = *(void *const *)b;
  if (HAKMEM_DEBUG && hak_unlikely(!hak_integrity_link_plausible((uintptr_t)n)))
    hak_integrity_link_corrupt(b);
  return n;
}
#endif

// The link of free block b, vetted before anyone follows it (the slow paths:
// refills, flushes, remote splices, trims): NULL, or a 16-byte aligned
// address in a SuperSlab whose block carries the free mark. Anything else
// means b's first word was written after b was freed.
static inline void *hak_integrity_link_next(const void *b) {
  void *n = hak_integrity_link_get(b);
  if (n != NULL && (HAKMEM_HARDENED || hak_integrity_level != 0)) {
    // A link into b's own SuperSlab (most are) is plausible when aligned:
    // b is a free block of a SuperSlab, so the segment map would say so too.
    uintptr_t u = (uintptr_t)n;
    bool near = ((u ^ (uintptr_t)b) >> HAK_SS_SHIFT) == 0 && (u & 15) == 0;
    if (hak_unlikely((!near && !hak_integrity_link_plausible(u)) ||
                     !hak_integrity_is_marked_free(n)))
      hak_integrity_link_corrupt(b);
  }
  return n;
}

// Reports free block b, whose free mark is gone, and aborts.
void hak_integrity_block_written(const void *b) HAK_INTERNAL __attribute__((noreturn, cold));

// Hands out free block b: its mark goes. Checked callers first make sure the
// mark survived, or b was written to after its free (or is no free block at
// all: a link overwritten with a live block's address leads to one).
static inline void hak_integrity_block_take(void *b, bool checked) {
  if (checked && hak_unlikely(!hak_integrity_is_marked_free(b)))
    hak_integrity_block_written(b);
  hak_integrity_mark_clear(b);
}

// ---- the guard trailer (debug and hardened builds) ---------------------------------
// The requested size, masked with the key, in the last 8 bytes of each slab
// block, and a pattern in the slack before it, checked when the block is
// freed: a write past the end.
#define HAK_GUARD (HAKMEM_DEBUG || HAKMEM_HARDENED)
#if HAK_GUARD
#define HAK_TRAILER ((size_t)8)
#else
#define HAK_TRAILER ((size_t)0)
#endif

#if HAK_GUARD
void hak_integrity_guard_arm_(void *p, size_t block_size, size_t requested) HAK_INTERNAL;
size_t hak_integrity_guard_check_(const char *what, const void *p, size_t block_size) HAK_INTERNAL;
#endif
// Lays the guard of block p for a request of requested bytes.
static inline void hak_integrity_guard_arm(void *p, size_t block_size, size_t requested) {
#if HAK_GUARD
  hak_integrity_guard_arm_(p, block_size, requested);
#else
  (void)p, (void)block_size, (void)requested;
#endif
}
// The bytes of block p the program may use (what it asked for, where the
// build keeps that), after checking that nothing wrote past them.
static inline size_t hak_integrity_guard_check(const char *what, const void *p, size_t block_size) {
#if HAK_GUARD
  return hak_integrity_guard_check_(what, p, block_size);
#else
  (void)what, (void)p;
  return block_size;
#endif
}

// ---- poison (hardened builds) -------------------------------------------------------
// A free block is filled past its link and mark, up to HAK_POISON_MAX bytes
// from its start, with a pattern, checked when the block is handed out
// again: a write after free there is reported then.
#define HAK_POISON HAKMEM_HARDENED
#define HAK_POISON_MAX ((size_t)256)
void hak_integrity_poison(void *p, size_t block_size) HAK_INTERNAL;
void hak_integrity_poison_check(const void *p, size_t block_size) HAK_INTERNAL;

// ---- the hooks of the paths ---------------------------------------------------------

// Block p (of block_size bytes) handed out for a request of requested bytes.
static inline void hak_integrity_alloced(void *p, size_t block_size, size_t requested) {
  if (HAK_POISON)
    hak_integrity_poison_check(p, block_size);
  hak_integrity_guard_arm(p, block_size, requested);
}

// Block p, vetted live, freed by the program.
static inline void hak_integrity_freed(void *p, size_t block_size) {
  if (HAK_POISON)
    hak_integrity_poison(p, block_size);
}

// The order in which a slab carves n (at most 256) fresh blocks: in address
// order, or in the hardened variant a random one, so that neighbours are not
// predictable. Fills order[0..n) when HAK_CARVE_SHUFFLED.
#define HAK_CARVE_SHUFFLED HAKMEM_HARDENED
// Hardened builds keep the last page of every SuperSlab inaccessible, so that
// a linear overflow stops there instead of running into the next one.
#define HAK_SS_GUARD_PAGE HAKMEM_HARDENED
void hak_integrity_carve_order(uint16_t *order, uint32_t n) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_INTEGRITY_H
