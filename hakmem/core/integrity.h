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
#include <string.h>

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
// free's inlined hit path proves, besides the block start and the free mark,
// that the block was carved and lies in no page a trim gave back, and checks
// its guard and lays its poison before the push (the general path's vetting,
// in the hit path);
#define HAK_VET_FREE_HIT HAKMEM_HARDENED
// the hardened release build's hit paths, which check the poison and the
// guard, are compiled twice on x86-64: as built, and for AVX2, taken when the
// CPU has it (hak_integrity_wide, set at init), where a check reads 32 bytes
// an instruction;
#if HAKMEM_HARDENED && !HAKMEM_DEBUG && defined(__x86_64__)
#define HAK_WIDE_PATTERNS 1
#else
#define HAK_WIDE_PATTERNS 0
#endif
extern bool hak_integrity_wide HAK_INTERNAL;
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
// The link as stored, decoded, unchecked.
static inline uintptr_t hak_integrity_link_raw(const void *b) {
  return *(const uintptr_t *)b ^ hak_integrity_link_key ^ (uintptr_t)b;
}
#else
static inline void hak_integrity_link_set(void *b, void *next) { *(void **)b = next; }
static inline uintptr_t hak_integrity_link_raw(const void *b) { return *(const uintptr_t *)b; }
#endif

// The link of free block b; checked and hardened builds make sure it is
// plausible.
static inline void *hak_integrity_link_get(const void *b) {
  uintptr_t n = hak_integrity_link_raw(b);
  if ((HAKMEM_DEBUG || HAKMEM_HARDENED) && hak_unlikely(!hak_integrity_link_plausible(n)))
    hak_integrity_link_corrupt(b);
  return (void *)n;
}

// The link of free block b, vetted before anyone follows it (the slow paths:
// refills, flushes, remote splices, trims): NULL, or a 16-byte aligned
// address in a SuperSlab whose block carries the free mark. Anything else
// means b's first word was written after b was freed.
static inline void *hak_integrity_link_next(const void *b) {
  uintptr_t u = hak_integrity_link_raw(b);
  if (HAKMEM_HARDENED || hak_integrity_level != 0) {
    // A link into b's own SuperSlab (most are) is plausible when aligned:
    // b is a free block of a SuperSlab, so the segment map would say so too
    // and need not be asked.
    bool near = ((u ^ (uintptr_t)b) >> HAK_SS_SHIFT) == 0 && (u & 15) == 0;
    if (u != 0 && hak_unlikely((!near && !hak_integrity_link_plausible(u)) ||
                               !hak_integrity_is_marked_free((const void *)u)))
      hak_integrity_link_corrupt(b);
  } else if (HAKMEM_DEBUG && hak_unlikely(!hak_integrity_link_plausible(u))) {
    hak_integrity_link_corrupt(b);
  }
  return (void *)u;
}

// The same for a block of the bin in slot (HAK_BIN_SLOT): a link into a slab
// that the class map names for that bin is plausible when aligned, as one
// into b's SuperSlab is: every block of a bin is of its class. The segment
// map is asked only about the rest (medium classes, or damage).
static inline __attribute__((always_inline)) void *hak_integrity_bin_link_next(const void *b,
                                                                               uintptr_t slot) {
  uintptr_t u = hak_integrity_link_raw(b);
  if (HAKMEM_HARDENED || hak_integrity_level != 0) {
    bool near = (((u ^ (uintptr_t)b) >> HAK_SS_SHIFT) == 0 ||
                 ((u >> HAK_CMAP_SHIFT) < HAK_CMAP_ENTRIES &&
                  hak_segmap_class_slot((const void *)u) == slot)) &&
                (u & 15) == 0;
    if (u != 0 && hak_unlikely((!near && !hak_integrity_link_plausible(u)) ||
                               !hak_integrity_is_marked_free((const void *)u)))
      hak_integrity_link_corrupt(b);
    return (void *)u;
  }
  return hak_integrity_link_next(b);
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

// ---- poison (hardened builds) -------------------------------------------------------
// A free block is filled past its link and mark, up to HAK_POISON_MAX bytes
// from its start, with a pattern, checked when the block is handed out
// again: a write after free there is reported then.
#define HAK_POISON HAKMEM_HARDENED
#define HAK_POISON_MAX ((size_t)256)

// ---- the patterns --------------------------------------------------------------------
// The guard and the poison are laid and checked inline, 8 or 16 bytes at a
// time, with no branch per word (the checks or together what differs); only
// the reports are out of line. Blocks are 16-byte aligned.
#define HAK_GUARD_BYTE 0xA5
#define HAK_POISON_BYTE 0xDB
#define HAK_GUARD_WORD (0x0101010101010101ULL * HAK_GUARD_BYTE)
#define HAK_POISON_WORD (0x0101010101010101ULL * HAK_POISON_BYTE)

// 16 bytes, aligned (the poison) or not (the guard, which starts at any byte),
// and 32 for the checks: two SSE2 loads, or one AVX2 load where the hit paths
// are compiled for it (HAK_WIDE_PATTERNS). may_alias: they hold whatever the
// program stored there.
typedef uint64_t hak_integrity_v16 __attribute__((vector_size(16), may_alias));
typedef uint64_t hak_integrity_u16 __attribute__((vector_size(16), aligned(1), may_alias));
typedef uint64_t hak_integrity_v32 __attribute__((vector_size(32), aligned(16), may_alias));
typedef uint64_t hak_integrity_u32 __attribute__((vector_size(32), aligned(1), may_alias));

// A 32-byte vector of a pattern to store: the empty asm hides the constant,
// which GCC would otherwise store 8 bytes at a time where there is no AVX.
#define HAK_INTEGRITY_SPLAT32(pattern)                                                             \
  __extension__({                                                                                  \
    uint64_t w_ = (pattern);                                                                       \
    __asm__("" : "+r"(w_));                                                                        \
    (hak_integrity_u32){w_, w_, w_, w_};                                                           \
  })

// Whether the differences d (a 16- or 32-byte vector) are all zero.
#define HAK_INTEGRITY_NONE16(d) (((d)[0] | (d)[1]) == 0)
// (A macro: a 32-byte vector passed by value changes the ABI where there is
// no AVX.)
#define HAK_INTEGRITY_NONE32(d)                                                                    \
  __extension__({                                                                                  \
    hak_integrity_v16 lo_, hi_;                                                                    \
    memcpy(&lo_, &(d), sizeof lo_);                                                                \
    memcpy(&hi_, (const uint8_t *)&(d) + sizeof lo_, sizeof hi_);                                  \
    HAK_INTEGRITY_NONE16(lo_ | hi_);                                                               \
  })

static inline uint64_t hak_integrity_load8(const uint8_t *b) {
  uint64_t x;
  memcpy(&x, b, sizeof x);
  return x;
}
static inline void hak_integrity_store8(uint8_t *b, uint64_t x) { memcpy(b, &x, sizeof x); }

// The top n (< 8) bytes of a word (little-endian: the last n in memory).
static inline uint64_t hak_integrity_top_bytes(size_t n) { return ~(~(uint64_t)0 >> (8 * n)); }

// Guard spans longer than this (a medium block's, a block realloc shrank)
// are laid by memset and checked by memcmp against a run of guard bytes, out
// of line: the C library's versions use the widest vectors the CPU has. The
// span functions below take the short ones (and the poison's, at most 240).
#define HAK_INTEGRITY_LONG_SPAN ((size_t)256)
bool hak_integrity_guard_run_holds(const uint8_t *b, size_t n) HAK_INTERNAL;

// Bytes [from, to) of b set to pattern, to >= 8 and from <= to. A span of up
// to 32 bytes takes two 16-byte stores, the second overlapping the first; a
// longer one two 32-byte stores and a loop over the middle; one shorter than
// 16 bytes two 8-byte stores, or under 8 bytes the top of the word that ends
// it, whose other bytes are kept.
static inline __attribute__((always_inline)) void
hak_integrity_span_fill(uint8_t *b, size_t from, size_t to, uint64_t pattern) {
  size_t n = to - from;
  if (n < 8) {
    uint64_t mask = hak_integrity_top_bytes(n);
    hak_integrity_store8(b + to - 8, (hak_integrity_load8(b + to - 8) & ~mask) | (pattern & mask));
    return;
  }
  if (n < 16) {
    hak_integrity_store8(b + from, pattern);
    hak_integrity_store8(b + to - 8, pattern);
    return;
  }
  if (n <= 32) {
    const hak_integrity_u16 pat = {pattern, pattern};
    *(hak_integrity_u16 *)(b + from) = pat;
    *(hak_integrity_u16 *)(b + to - 16) = pat;
    return;
  }
  const hak_integrity_u32 pat = HAK_INTEGRITY_SPLAT32(pattern);
  *(hak_integrity_u32 *)(b + from) = pat;
  *(hak_integrity_u32 *)(b + to - 32) = pat;
  for (size_t i = from + 32; i + 32 < to; i += 32)
    *(hak_integrity_u32 *)(b + i) = pat;
}

// Whether bytes [from, to) of b all hold pattern: the same spans as above,
// read 32 bytes at a time past 32.
static inline __attribute__((always_inline)) bool
hak_integrity_span_holds(const uint8_t *b, size_t from, size_t to, uint64_t pattern) {
  size_t n = to - from;
  if (n < 8)
    return ((hak_integrity_load8(b + to - 8) ^ pattern) & hak_integrity_top_bytes(n)) == 0;
  if (n < 16)
    return ((hak_integrity_load8(b + from) ^ pattern) |
            (hak_integrity_load8(b + to - 8) ^ pattern)) == 0;
  if (n <= 32) {
    const hak_integrity_u16 pat = {pattern, pattern};
    hak_integrity_u16 d = (*(const hak_integrity_u16 *)(b + from) ^ pat) |
                          (*(const hak_integrity_u16 *)(b + to - 16) ^ pat);
    return HAK_INTEGRITY_NONE16(d);
  }
  const hak_integrity_u32 pat = {pattern, pattern, pattern, pattern};
  hak_integrity_u32 d = (*(const hak_integrity_u32 *)(b + from) ^ pat) |
                        (*(const hak_integrity_u32 *)(b + to - 32) ^ pat);
  for (size_t i = from + 32; i + 32 < to; i += 32)
    d |= *(const hak_integrity_u32 *)(b + i) ^ pat;
  return HAK_INTEGRITY_NONE32(d);
}

// The poisoned bytes of a block: [16, hak_integrity_poison_end), after its
// link and mark and before its trailer. A block of at least
// HAK_POISON_FULL bytes (most of them) has all HAK_POISON_MAX, and there the
// loops are unrolled whole, on aligned pairs of words.
#define HAK_POISON_FULL (HAK_POISON_MAX + HAK_TRAILER)
static inline size_t hak_integrity_poison_end(size_t block_size) {
  size_t end = block_size - HAK_TRAILER;
  return end < HAK_POISON_MAX ? end : HAK_POISON_MAX;
}

// Poisons free block p (used by the hardened variant, callable in all).
static inline __attribute__((always_inline)) void hak_integrity_poison(void *p, size_t block_size) {
  uint8_t *b = (uint8_t *)p;
  if (hak_likely(block_size >= HAK_POISON_FULL)) {
    // As poison_intact reads it.
    const hak_integrity_v32 pat = HAK_INTEGRITY_SPLAT32(HAK_POISON_WORD);
    *(hak_integrity_v32 *)(b + HAK_POISON_MAX - 32) = pat;
#pragma GCC unroll 16
    for (size_t i = 16; i + 32 < HAK_POISON_MAX; i += 32)
      *(hak_integrity_v32 *)(b + i) = pat;
    return;
  }
  size_t end = hak_integrity_poison_end(block_size);
  if (end > 16)
    hak_integrity_span_fill(b, 16, end, HAK_POISON_WORD);
}

static inline __attribute__((always_inline)) bool hak_integrity_poison_intact(const void *p,
                                                                              size_t block_size) {
  const uint8_t *b = (const uint8_t *)p;
  if (hak_likely(block_size >= HAK_POISON_FULL)) {
    // [16, 240) in 32-byte steps, and the last 32 bytes, overlapping.
    const hak_integrity_v32 pat = {HAK_POISON_WORD, HAK_POISON_WORD, HAK_POISON_WORD,
                                   HAK_POISON_WORD};
    hak_integrity_v32 d = *(const hak_integrity_v32 *)(b + HAK_POISON_MAX - 32) ^ pat;
#pragma GCC unroll 16
    for (size_t i = 16; i + 32 < HAK_POISON_MAX; i += 32)
      d |= *(const hak_integrity_v32 *)(b + i) ^ pat;
    return HAK_INTEGRITY_NONE32(d);
  }
  size_t end = hak_integrity_poison_end(block_size);
  return end <= 16 || hak_integrity_span_holds(b, 16, end, HAK_POISON_WORD);
}

// Reports free block p, whose poison changed (naming the first byte), and
// aborts.
void hak_integrity_poison_damaged(const void *p) HAK_INTERNAL __attribute__((noreturn, cold));

// Checks the poison of free block p.
static inline __attribute__((always_inline)) void hak_integrity_poison_check(const void *p,
                                                                             size_t block_size) {
  if (hak_unlikely(!hak_integrity_poison_intact(p, block_size)))
    hak_integrity_poison_damaged(p);
}

// ---- the guard ----------------------------------------------------------------------

// Reports the damaged guard of block p for what (requested: the size its
// record holds, or SIZE_MAX when the record itself is damaged) and aborts.
void hak_integrity_guard_damaged(const char *what, const void *p, size_t block_size,
                                 size_t requested) HAK_INTERNAL __attribute__((noreturn, cold));

#if HAK_GUARD
void *hak_integrity_guard_arm_long(void *p, size_t block_size, size_t requested) HAK_INTERNAL;
#endif

// Whether the guard span [requested, room) of a block is long.
static inline bool hak_integrity_guard_is_long(size_t room, size_t requested) {
  return room - requested > HAK_INTEGRITY_LONG_SPAN;
}

// Lays the guard of block p for a request of requested bytes, its span short.
// The record is complemented, so that a trailer that shares the second word
// of a 16-byte block can never look like the free mark.
static inline __attribute__((always_inline)) void
hak_integrity_guard_arm_short(void *p, size_t block_size, size_t requested) {
  uint8_t *b = (uint8_t *)p;
  size_t room = block_size - HAK_TRAILER;
  hak_integrity_span_fill(b, requested, room, HAK_GUARD_WORD);
  hak_integrity_store8(b + room,
                       (uint64_t)requested ^ ~(uint64_t)(hak_integrity_free_key ^ (uintptr_t)p));
}

// Lays the guard of block p for a request of requested bytes.
static inline void hak_integrity_guard_arm(void *p, size_t block_size, size_t requested) {
#if HAK_GUARD
  if (hak_unlikely(hak_integrity_guard_is_long(block_size - HAK_TRAILER, requested)))
    hak_integrity_guard_arm_long(p, block_size, requested);
  else
    hak_integrity_guard_arm_short(p, block_size, requested);
#else
  (void)p, (void)block_size, (void)requested;
#endif
}

// The size record of block p: the bytes requested, checked against the room
// the block has (a damaged record is reported), or, where the guard is not
// checked (HAKMEM_CHECK=off, never in the hardened variant), bounded by it.
static inline __attribute__((always_inline)) size_t
hak_integrity_guard_record(const char *what, const void *p, size_t block_size) {
  const uint8_t *b = (const uint8_t *)p;
  size_t room = block_size - HAK_TRAILER;
  size_t requested =
      (size_t)(hak_integrity_load8(b + room) ^ ~(uint64_t)(hak_integrity_free_key ^ (uintptr_t)p));
  if (!HAKMEM_HARDENED && hak_integrity_level == HAK_CHECK_OFF)
    return requested <= room ? requested : room;
  if (hak_unlikely(requested > room))
    hak_integrity_guard_damaged(what, p, block_size, SIZE_MAX);
  return requested;
}

// The bytes of block p the program may use (what it asked for, where the
// build keeps that), after checking that nothing wrote past them.
static inline size_t hak_integrity_guard_check(const char *what, const void *p, size_t block_size) {
#if HAK_GUARD
  const uint8_t *b = (const uint8_t *)p;
  size_t room = block_size - HAK_TRAILER;
  size_t requested = hak_integrity_guard_record(what, p, block_size);
  if (!HAKMEM_HARDENED && hak_integrity_level == HAK_CHECK_OFF)
    return requested;
  bool intact = hak_integrity_guard_is_long(room, requested)
                    ? hak_integrity_guard_run_holds(b + requested, room - requested)
                    : hak_integrity_span_holds(b, requested, room, HAK_GUARD_WORD);
  if (hak_unlikely(!intact))
    hak_integrity_guard_damaged(what, p, block_size, requested);
  return requested;
#else
  (void)what, (void)p;
  return block_size;
#endif
}

// ---- the hooks of the paths ---------------------------------------------------------
// Inline, so that a hit of malloc or free is one function with the checks in
// it, and one that calls nothing but the reports (which do not return) or,
// as its last step, the general path: it then needs no stack frame.

// Block p (of block_size bytes) handed out for a request of requested bytes:
// its poison checked where the build has it, then its guard laid. Returns p.
static inline __attribute__((always_inline)) void *hak_integrity_alloced(void *p, size_t block_size,
                                                                         size_t requested) {
  if (HAK_POISON)
    hak_integrity_poison_check(p, block_size);
#if HAK_GUARD
  if (hak_unlikely(hak_integrity_guard_is_long(block_size - HAK_TRAILER, requested)))
    return hak_integrity_guard_arm_long(p, block_size, requested);
  hak_integrity_guard_arm_short(p, block_size, requested);
#else
  (void)block_size, (void)requested;
#endif
  return p;
}

// Block p, proven the start of a live block, freed by the program: its
// guard checked (reported as free()'s), then, where the build has it, its
// poison laid.
static inline void hak_integrity_freed(void *p, size_t block_size) {
  hak_integrity_guard_check("free()", p, block_size);
  if (HAK_POISON)
    hak_integrity_poison(p, block_size);
}

// The same for free's hit path: false, having done nothing but check the
// size record, when the guard span is long (the hit path then hands p to the
// general path, which checks it).
static inline __attribute__((always_inline)) bool hak_integrity_freed_hit(void *p,
                                                                          size_t block_size) {
#if HAK_GUARD
  const uint8_t *b = (const uint8_t *)p;
  size_t room = block_size - HAK_TRAILER;
  size_t requested = hak_integrity_guard_record("free()", p, block_size);
  if (HAKMEM_HARDENED || hak_integrity_level != HAK_CHECK_OFF) {
    if (hak_unlikely(hak_integrity_guard_is_long(room, requested)))
      return false;
    if (hak_unlikely(!hak_integrity_span_holds(b, requested, room, HAK_GUARD_WORD)))
      hak_integrity_guard_damaged("free()", p, block_size, requested);
  }
#endif
  if (HAK_POISON)
    hak_integrity_poison(p, block_size);
  return true;
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
