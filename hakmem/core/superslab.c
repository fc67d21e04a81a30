#include "superslab.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "integrity.h"
#include "log.h"
#include "os.h"
#include "page_arena.h"
#include "segmap.h"
#include "size_class.h"
#include "stats.h"

hak_superslab *hak_superslab_create(uint8_t region_kind) {
  size_t mapped;
  bool zeroed;
  hak_superslab *ss = hak_page_arena_alloc(HAK_SS_SIZE, &mapped, &zeroed);
  if (ss == NULL)
    return NULL;
  HAK_ASSERT(mapped == HAK_SS_SIZE && ((uintptr_t)ss & HAK_SS_MASK) == 0);
  // HAKMEM_THP: this mapping only; a reused region may have been advised
  // already, which is harmless.
  hak_os_hugepage(ss, HAK_SS_SIZE);
  if (!zeroed)
    memset(ss, 0, sizeof *ss);
  ss->magic = HAK_SS_MAGIC ^ (uintptr_t)ss;
  ss->kind = region_kind;
  ss->slab_shift = (uint8_t)hak_superslab_shift_of_kind(region_kind);
  ss->nslabs = (uint8_t)(HAK_SS_SIZE >> ss->slab_shift);
  ss->free_mask = hak_superslab_slot_mask(ss);
  for (unsigned i = 0; i < ss->nslabs; i++)
    ss->slabs[i].slot = (uint8_t)i;
  if (HAK_SS_GUARD_PAGE &&
      hak_os_protect((uint8_t *)ss + HAK_SS_SIZE - HAK_PAGE_SIZE, HAK_PAGE_SIZE, false) != 0) {
    hak_page_arena_free(ss, HAK_SS_SIZE);
    errno = ENOMEM;
    return NULL;
  }
  if (hak_segmap_set(ss, HAK_SS_SIZE, region_kind, region_kind) != 0) {
    hak_page_arena_free(ss, HAK_SS_SIZE);
    errno = ENOMEM;
    return NULL;
  }
  hak_stats_gauge(&hak_stats_global.superslabs, &hak_stats_global.superslabs_peak, 1);
  hak_stats_add(&hak_stats_global.superslabs_total, 1);
  return ss;
}

// Censuses reading a SuperSlab now. A census counts itself in, then checks
// the segment map; destroy clears the map, then waits for the count to be 0
// (a fence between the store and the load on each side): so either the census
// sees the region gone, or the region stays mapped until the census is out.
static _Atomic unsigned g_census_readers;

void hak_superslab_fork_child(void) {
  atomic_store_explicit(&g_census_readers, 0, memory_order_relaxed);
}

// The pages of slot `slot` that blocks may occupy (as the shared pool's).
static uint8_t *slot_range(hak_superslab *ss, unsigned shift, unsigned slot, size_t *len) {
  size_t size = (size_t)1 << shift;
  size_t skip = slot == 0 ? HAK_SS_HEADER_SIZE : 0;
  if (HAK_SS_GUARD_PAGE && slot == (HAK_SS_SIZE >> shift) - 1u)
    size -= HAK_PAGE_SIZE; // the guard page
  *len = size - skip;
  return (uint8_t *)ss + ((size_t)slot << shift) + skip;
}

static void census_one(hak_superslab *ss, uint8_t kind, hak_ss_census *acc) {
  // The geometry from the kind, not from the header: nothing read here can
  // send the walk outside the region.
  unsigned shift = hak_superslab_shift_of_kind(kind);
  unsigned nslabs = (unsigned)(HAK_SS_SIZE >> shift);
  acc->superslabs++;
  acc->header_resident += hak_os_resident(ss, HAK_SS_HEADER_SIZE);
  // A small SuperSlab's slot 0 is the header's granule, never a slab.
  for (unsigned slot = kind == HAK_REGION_SS_SMALL ? 1 : 0; slot < nslabs; slot++) {
    const hak_slab *s = &ss->slabs[slot];
    size_t len;
    uint8_t *start = slot_range(ss, shift, slot, &len);
    uint32_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
    if (HAK_SLAB_STATE(s) == HAK_SLAB_FREE) {
      if (carved != 0) { // released, its pages resident until the purge
        acc->free_slots_dirty++;
        acc->free_slot_resident += hak_os_resident(start, len);
      }
      continue;
    }
    unsigned cls = __atomic_load_n(&s->class_idx, __ATOMIC_RELAXED);
    if (cls >= HAK_NUM_CLASSES)
      continue;
    uint32_t capacity = __atomic_load_n(&s->capacity, __ATOMIC_RELAXED);
    uint32_t used = __atomic_load_n(&s->used, __ATOMIC_RELAXED);
    // Fields read at different moments: keep them in order.
    carved = carved < capacity ? carved : capacity;
    used = used < carved ? used : carved;
    acc->slabs[cls]++;
    acc->slab_bytes[cls] += len;
    acc->resident[cls] += hak_os_resident(start, len);
    acc->carved[cls] += carved;
    acc->used[cls] += used;
  }
}

bool hak_superslab_census(void *region, uint8_t kind, hak_ss_census *acc) {
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return false;
  hak_superslab *ss = hak_superslab_of(region);
  atomic_fetch_add_explicit(&g_census_readers, 1, memory_order_seq_cst);
  atomic_thread_fence(memory_order_seq_cst);
  bool found = hak_segmap_kind(ss) == kind &&
               __atomic_load_n(&ss->magic, __ATOMIC_RELAXED) == (HAK_SS_MAGIC ^ (uintptr_t)ss);
  if (found)
    census_one(ss, kind, acc);
  atomic_fetch_sub_explicit(&g_census_readers, 1, memory_order_release);
  return found;
}

void hak_superslab_destroy(hak_superslab *ss) {
  HAK_ASSERT(ss->free_mask == hak_superslab_slot_mask(ss));
  hak_segmap_clear(ss, HAK_SS_SIZE);
  // A census that saw the region before the clear may still be reading it
  // (a few mincore calls): the mapping stays until it is out.
  atomic_thread_fence(memory_order_seq_cst);
  while (atomic_load_explicit(&g_census_readers, memory_order_acquire) != 0)
    sched_yield();
  __atomic_store_n(&ss->magic, 0, __ATOMIC_RELAXED);
  hak_stats_add(&hak_stats_global.superslabs, -1);
  if (HAK_SS_GUARD_PAGE)
    hak_os_protect((uint8_t *)ss + HAK_SS_SIZE - HAK_PAGE_SIZE, HAK_PAGE_SIZE, true);
  hak_page_arena_free_superslab(ss);
}

hak_slab *hak_superslab_init_slab(hak_superslab *ss, unsigned slot, unsigned cls) {
  hak_slab *s = &ss->slabs[slot];
  size_t slab_size = (size_t)1 << ss->slab_shift;
  size_t skip = slot == 0 ? HAK_SS_HEADER_SIZE : 0;
  if (HAK_SS_GUARD_PAGE && slot == ss->nslabs - 1u)
    slab_size -= HAK_PAGE_SIZE; // the guard page
  s->free = NULL;
  atomic_store_explicit(&s->remote, 0, memory_order_relaxed);
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  s->next = s->prev = NULL;
  s->start = (uint8_t *)ss + ((size_t)slot << ss->slab_shift) + skip;
  __atomic_store_n(&s->block_size, hak_size_class_table[cls].size, __ATOMIC_RELAXED);
  __atomic_store_n(&s->capacity, (uint16_t)((slab_size - skip) / hak_size_class_table[cls].size),
                   __ATOMIC_RELAXED);
  __atomic_store_n(&s->carved, 0, __ATOMIC_RELAXED);
  HAK_SLAB_SET_USED(s, 0);
  __atomic_store_n(&s->class_idx, (uint8_t)cls, __ATOMIC_RELAXED);
  HAK_SLAB_SET_STATE(s, HAK_SLAB_ACTIVE);
  s->slot = (uint8_t)slot;
  hak_superslab_clear_purged(s);
  s->prof_live = 0;
  ss->prof_filter[slot] = 0;
  hak_segmap_class_set((uint8_t *)ss + ((size_t)slot << ss->slab_shift),
                       (size_t)1 << ss->slab_shift, cls + 1);
  return s;
}

void hak_superslab_prof_add(hak_slab *s, const void *p, bool first) {
  hak_superslab *ss = hak_superslab_of(s);
  uint64_t *filter = &ss->prof_filter[s->slot];
  // The bit first: a free that sees the class map sees it.
  __atomic_store_n(filter, __atomic_load_n(filter, __ATOMIC_RELAXED) | hak_superslab_prof_bit(p),
                   __ATOMIC_RELAXED);
  if (first)
    hak_segmap_class_set((uint8_t *)ss + ((size_t)s->slot << ss->slab_shift),
                         (size_t)1 << ss->slab_shift, 0);
}

void hak_superslab_prof_clear(hak_slab *s) {
  hak_superslab *ss = hak_superslab_of(s);
  __atomic_store_n(&ss->prof_filter[s->slot], 0, __ATOMIC_RELAXED);
  hak_segmap_class_set((uint8_t *)ss + ((size_t)s->slot << ss->slab_shift),
                       (size_t)1 << ss->slab_shift, s->class_idx + 1u);
}

void hak_superslab_unmap_slab(hak_superslab *ss, unsigned slot) {
  hak_segmap_class_set((uint8_t *)ss + ((size_t)slot << ss->slab_shift),
                       (size_t)1 << ss->slab_shift, 0);
}

void hak_superslab_splice_remote(hak_slab *s, uintptr_t chain) {
  if (chain == 0)
    return;
  void *first = (void *)chain, *last = first;
  uint32_t n = 1;
  for (void *next; (next = hak_integrity_link_next(last)) != NULL; n++)
    last = next;
  hak_integrity_link_set(last, s->free);
  s->free = first;
  HAK_ASSERT(s->used >= n);
  HAK_SLAB_SET_USED(s, s->used - n);
}
