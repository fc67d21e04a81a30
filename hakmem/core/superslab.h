// A SuperSlab: one 2 MiB region, aligned to 2 MiB, whose first page is a
// header describing its fixed-size slabs. Masking any block pointer finds it.
#ifndef HAKMEM_SUPERSLAB_H
#define HAKMEM_SUPERSLAB_H

#include "size_class.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

static inline hak_superslab *hak_superslab_of(const void *p) {
  return (hak_superslab *)((uintptr_t)p & ~(uintptr_t)HAK_SS_MASK);
}

static inline unsigned hak_superslab_shift_of_kind(unsigned region_kind) {
  return 13u + 3u * region_kind;
}

// The slots a SuperSlab lends out. A small one keeps slot 0 for its header,
// so that every small slab fills a whole 64 KiB granule and its blocks start
// at granule offsets that are multiples of the block size (the free hit
// path's block check relies on it).
static inline uint32_t hak_superslab_slot_mask(const hak_superslab *ss) {
  uint32_t all = ss->nslabs == 32 ? 0xffffffffu : (1u << ss->nslabs) - 1u;
  return ss->kind == HAK_REGION_SS_SMALL ? all & ~1u : all;
}

// The slab holding block p, given the region kind the segment map reported.
static inline hak_slab *hak_superslab_slab_of(const void *p, unsigned region_kind) {
  hak_superslab *ss = hak_superslab_of(p);
  uintptr_t off = (uintptr_t)p - (uintptr_t)ss;
  return &ss->slabs[off >> hak_superslab_shift_of_kind(region_kind)];
}

// Maps and registers a new SuperSlab of a region kind (small or medium), all
// slots free. NULL with ENOMEM when memory is exhausted.
hak_superslab *hak_superslab_create(uint8_t region_kind) HAK_INTERNAL;
// Unregisters a SuperSlab whose slots are all free and hands it to the arena.
void hak_superslab_destroy(hak_superslab *ss) HAK_INTERNAL;
// Prepares free slot `slot` to hold blocks of class cls.
hak_slab *hak_superslab_init_slab(hak_superslab *ss, unsigned slot, unsigned cls) HAK_INTERNAL;
// Takes a slot that goes back to the pool out of the class map.
void hak_superslab_unmap_slab(hak_superslab *ss, unsigned slot) HAK_INTERNAL;
// Moves a detached remote chain (blocks freed by other threads) onto the
// local free list of s.
void hak_superslab_splice_remote(hak_slab *s, uintptr_t chain) HAK_INTERNAL;
// Non-zero when p is the start of a block that slab s has handed out. Any
// thread may ask (its free is checked against the owner's slab), so the
// fields the owner changes are read atomically.
static inline int hak_superslab_is_block(const hak_slab *s, const void *p) {
  uint32_t bs = __atomic_load_n(&s->block_size, __ATOMIC_RELAXED);
  if (HAK_SLAB_STATE(s) == HAK_SLAB_FREE || bs == 0)
    return 0;
  uintptr_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
  uintptr_t off = (uintptr_t)p - (uintptr_t)s->start;
  if ((uintptr_t)p < (uintptr_t)s->start || off >= carved * bs)
    return 0;
  // off % bs == 0 without a division (offsets are far below 2^32).
  uint64_t magic = hak_size_class_table[__atomic_load_n(&s->class_idx, __ATOMIC_RELAXED)].div_magic;
  return off * magic < magic;
}

// ---- the memory census -------------------------------------------------------

// What the census found in SuperSlabs, summed over those it was given. Per
// class: the slabs in use (any state but free), the bytes of their ranges
// (mapped: the slot less the header page and, hardened, the guard page), of
// those the bytes resident (mincore), and their blocks carved and out
// (`used`: handed out, including blocks in any thread's bins and in remote
// lists not yet collected).
typedef struct hak_ss_census {
  uint64_t superslabs;
  uint64_t header_resident;    // header pages' resident bytes
  uint64_t free_slots_dirty;   // free slots with carved != 0 (released, not yet purged)
  uint64_t free_slot_resident; // their resident bytes
  uint64_t slabs[HAK_NUM_CLASSES];
  uint64_t slab_bytes[HAK_NUM_CLASSES];
  uint64_t resident[HAK_NUM_CLASSES];
  uint64_t carved[HAK_NUM_CLASSES]; // blocks
  uint64_t used[HAK_NUM_CLASSES];   // blocks
} hak_ss_census;

// Adds the SuperSlab at region (a base the segment map names as kind) to
// acc; false, adding nothing, when the region no longer holds one. Reads the
// header with relaxed loads while owners change it (a snapshot) and asks the
// kernel which pages are resident: expensive, for reports only, never on an
// allocation path. Async-signal-safe: no lock, no allocation, no wait. The
// SuperSlab cannot be unmapped meanwhile: hak_superslab_destroy waits until
// no census is reading one.
bool hak_superslab_census(void *region, uint8_t kind, hak_ss_census *acc) HAK_INTERNAL;
// In a fork child: a census that was running in the parent on another thread
// never ends here.
void hak_superslab_fork_child(void) HAK_INTERNAL;

// The bits of slab s's pages that a trim gave back (bit i: page i from the
// slab's start), in its SuperSlab's header.
// Slab s holds sampled block p (the heap profiler's, under its lock): p's bit
// goes into the slab's filter and, for the slab's first (first true), the
// class map names bin 0 there, so every free of the slab misses the fast path.
void hak_superslab_prof_add(hak_slab *s, const void *p, bool first) HAK_INTERNAL;
// Slab s holds no sampled block any more: its filter and class map entry are
// restored.
void hak_superslab_prof_clear(hak_slab *s) HAK_INTERNAL;

// The filter bit of block p, and whether a free of p must ask the profiler.
static inline uint64_t hak_superslab_prof_bit(const void *p) {
  return 1ull << (((uintptr_t)p * 0x9e3779b97f4a7c15ull) >> 58);
}
static inline bool hak_superslab_prof_maybe(const hak_slab *s, const void *p) {
  const hak_superslab *ss = hak_superslab_of(s);
  return __atomic_load_n(&s->prof_live, __ATOMIC_RELAXED) != 0 &&
         (__atomic_load_n(&ss->prof_filter[s->slot], __ATOMIC_RELAXED) &
          hak_superslab_prof_bit(p)) != 0;
}

static inline uint64_t *hak_superslab_purged_bits(const hak_slab *s) {
  return hak_superslab_of(s)->purged_pages[s->slot];
}

// Forgets them: the slab is fresh, or its blocks are back on its free list.
// Atomic: checked builds read them from any thread (hak_superslab_block_purged).
static inline void hak_superslab_clear_purged(hak_slab *s) {
  uint64_t *bits = hak_superslab_purged_bits(s);
  for (size_t w = 0; w < HAK_SLAB_MAX_PAGES / 64; w++)
    __atomic_store_n(&bits[w], 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->trimmed, 0, __ATOMIC_RELAXED);
}

// Whether block p of slab s starts in a page a trim gave back: it is free,
// off the free list until the owner takes the slab's blocks back. Any thread
// may ask.
static inline bool hak_superslab_block_purged(const hak_slab *s, const void *p) {
  if (__atomic_load_n(&s->trimmed, __ATOMIC_RELAXED) == 0)
    return false;
  size_t page = ((uintptr_t)p - (uintptr_t)s->start) / HAK_PAGE_SIZE;
  const uint64_t *bits = hak_superslab_purged_bits(s);
  return (__atomic_load_n(&bits[page / 64], __ATOMIC_RELAXED) >> (page % 64) & 1) != 0;
}

HAK_EXTERN_C_END

#endif // HAKMEM_SUPERSLAB_H
