#include "slab.h"
#include "integrity.h"

#include <errno.h>

#include "log.h"
#include "os.h"
#include "page_arena.h"
#include "shared_pool.h"
#include "stats.h"
#include "superslab.h"
#include "heap.h"

hak_slab hak_slab_empty = {.state = HAK_SLAB_ACTIVE};

// Full slabs looked at for remote frees before a new slab is acquired.
#define FULL_SCAN_BOUND 8

static void list_push(hak_slab **head, hak_slab *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head)
    (*head)->prev = s;
  *head = s;
}

static void list_unlink(hak_slab **head, hak_slab *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    *head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

void hak_slab_class_heaps_init(hak_heap *h) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    h->cls[c] = (hak_class_heap){.active = &hak_slab_empty};
  }
}

// Takes the remote frees of an owned slab; returns non-zero if there were any.
static int collect_remote(hak_slab *s) {
  uintptr_t v = atomic_load_explicit(&s->remote, memory_order_relaxed);
  if ((v & ~HAK_REMOTE_ABANDONED) == 0)
    return 0;
  v = atomic_exchange_explicit(&s->remote, 0, memory_order_acquire);
  hak_superslab_splice_remote(s, v & ~HAK_REMOTE_ABANDONED);
  return 1;
}

static void release(hak_heap *h, hak_slab *s) {
  h->cls[s->class_idx].nslabs--;
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  hak_shared_pool_release(s);
}

// A full slab that got blocks back: released if all came back, else partial.
static void leave_full(hak_heap *h, hak_class_heap *ch, hak_slab *s) {
  list_unlink(&ch->full, s);
  ch->nfull--;
  if (s->used == 0) {
    release(h, s);
  } else {
    HAK_SLAB_SET_STATE(s, HAK_SLAB_PARTIAL);
    list_push(&ch->partial, s);
  }
}

// Takes the remote frees of the first `bound` full slabs (the newest), which
// makes them partial (or releases them).
static void sweep_full_upto(hak_heap *h, hak_class_heap *ch, uint32_t bound) {
  hak_slab *s = ch->full;
  for (uint32_t i = 0; s != NULL && i < bound; i++) {
    hak_slab *next = s->next;
    if (collect_remote(s))
      leave_full(h, ch, s);
    s = next;
  }
}

// Looks through full slabs for remote frees: a few each time, all of them once
// the heap has grown by a quarter since the last full sweep (amortised O(1)).
static void sweep_full(hak_heap *h, hak_class_heap *ch) {
  uint32_t bound = FULL_SCAN_BOUND;
  if (ch->grown_since_scan * 4 >= ch->nfull) {
    bound = UINT32_MAX;
    ch->grown_since_scan = 0;
  }
  sweep_full_upto(h, ch, bound);
}

// Carves up to n never-used blocks onto the local free list: lowest address
// first so that allocation walks memory forwards, or in the order the
// integrity box draws (hak_integrity_carve_order).
static void carve(hak_slab *s, uint32_t n) {
  uint32_t avail = (uint32_t)(s->capacity - s->carved);
  if (n > avail)
    n = avail;
  if (n > 256)
    n = 256;
  uint8_t *base = s->start + (size_t)s->carved * s->block_size;
  uint16_t order[256];
  if (HAK_CARVE_SHUFFLED)
    hak_integrity_carve_order(order, n);
  void *head = s->free;
  for (uint32_t i = n; i > 0; i--) {
    uint32_t k = HAK_CARVE_SHUFFLED ? order[i - 1] : i - 1;
    void *b = base + (size_t)k * s->block_size;
    hak_integrity_link_set(b, head);
    hak_integrity_mark_free(b);
    if (HAK_POISON)
      hak_integrity_poison(b, s->block_size);
    head = b;
  }
  s->free = head;
  __atomic_store_n(&s->carved, (uint16_t)(s->carved + n), __ATOMIC_RELAXED);
}

// Gives the OS the pages of a slab that stays (some of its blocks are out)
// whose blocks are all free, and the never-carved pages past them. The free
// blocks that start in a purged page leave the free list: their links are
// gone. The slab's bits in the SuperSlab header remember those pages until
// untrim() takes the blocks back. Returns the bytes purged.
static size_t trim_slab(hak_slab *s) {
  if (s->free == NULL)
    return 0;
  uintptr_t base = (uintptr_t)s->start;
  size_t bs = s->block_size;
  size_t carved_end = (size_t)s->carved * bs;
  size_t npages = (carved_end + HAK_PAGE_SIZE - 1) / HAK_PAGE_SIZE;
  HAK_ASSERT(base % HAK_PAGE_SIZE == 0 && npages <= HAK_SLAB_MAX_PAGES);
  uint32_t free_bytes[HAK_SLAB_MAX_PAGES] = {0};
  for (void *b = s->free; b != NULL; b = hak_integrity_link_next(b)) {
    size_t lo = (uintptr_t)b - base, hi = lo + bs;
    for (size_t p = lo / HAK_PAGE_SIZE; p * HAK_PAGE_SIZE < hi; p++) {
      size_t a = p * HAK_PAGE_SIZE > lo ? p * HAK_PAGE_SIZE : lo;
      size_t z = (p + 1) * HAK_PAGE_SIZE < hi ? (p + 1) * HAK_PAGE_SIZE : hi;
      free_bytes[p] += (uint32_t)(z - a);
    }
  }
  // Pages whose carved bytes are all free.
  uint64_t fresh[HAK_SLAB_MAX_PAGES / 64] = {0};
  bool any = false;
  for (size_t p = 0; p < npages; p++) {
    size_t end = (p + 1) * HAK_PAGE_SIZE < carved_end ? (p + 1) * HAK_PAGE_SIZE : carved_end;
    if (free_bytes[p] == end - p * HAK_PAGE_SIZE) {
      fresh[p / 64] |= 1ull << (p % 64);
      any = true;
    }
  }
  size_t purged = 0;
  if (any) {
    // First the free list loses the blocks that start in those pages (their
    // links are read before the purge erases them)...
    void *keep = NULL;
    for (void *b = s->free, *next; b != NULL; b = next) {
      next = hak_integrity_link_next(b);
      size_t p = ((uintptr_t)b - base) / HAK_PAGE_SIZE;
      if (!(fresh[p / 64] >> (p % 64) & 1)) {
        hak_integrity_link_set(b, keep);
        keep = b;
      }
    }
    s->free = keep;
    // ...then the pages go, a run at a time, and the bits remember them.
    // Atomic: checked builds read the bits from any thread.
    uint64_t *bits = hak_superslab_purged_bits(s);
    for (size_t w = 0; w < HAK_SLAB_MAX_PAGES / 64; w++)
      __atomic_fetch_or(&bits[w], fresh[w], __ATOMIC_RELAXED);
    __atomic_store_n(&s->trimmed, 1, __ATOMIC_RELAXED);
    for (size_t p = 0; p < npages;) {
      size_t q = p;
      while (q < npages && (fresh[q / 64] >> (q % 64) & 1))
        q++;
      if (q > p) {
        hak_os_purge((void *)(base + p * HAK_PAGE_SIZE), (q - p) * HAK_PAGE_SIZE);
        purged += (q - p) * HAK_PAGE_SIZE;
      }
      p = q + 1;
    }
  }
  // Pages past the carved blocks may hold a former slab's data.
  uintptr_t tail = base + npages * HAK_PAGE_SIZE;
  uintptr_t slab_end = (base + (size_t)s->capacity * bs) & ~(HAK_PAGE_SIZE - 1);
  if (slab_end > tail)
    hak_os_purge((void *)tail, slab_end - tail);
  return purged;
}

// Puts the free blocks of a trimmed slab's purged pages back on its free list
// (touching those pages again) before the owner allocates from it. Those
// pages read as zeros since the purge: a block whose first words are not
// was freed again (it carries the free mark) or written to after its free.
static void untrim(hak_slab *s) {
  uint64_t *bits = hak_superslab_purged_bits(s);
  size_t bs = s->block_size;
  // A free block that stayed on the list may reach into a purged page, whose
  // zeros would read as a write after free: its poison is laid anew.
  if (HAK_POISON) {
    for (void *b = s->free; b != NULL; b = hak_integrity_link_next(b))
      hak_integrity_poison(b, bs);
  }
  void *head = s->free;
  for (size_t i = s->carved; i > 0; i--) {
    size_t p = (i - 1) * bs / HAK_PAGE_SIZE;
    if (bits[p / 64] >> (p % 64) & 1) {
      void *b = s->start + (i - 1) * bs;
      const uintptr_t *w = b;
      if (hak_unlikely(w[0] != 0 || w[1] != 0))
        hak_integrity_misuse(
            "free()", "%s %p",
            hak_integrity_is_marked_free(b) ? "double free of" : "write after free into block", b);
      hak_integrity_link_set(b, head);
      hak_integrity_mark_free(b);
      if (HAK_POISON)
        hak_integrity_poison(b, bs);
      head = b;
    }
  }
  s->free = head;
  hak_superslab_clear_purged(s);
}

int hak_slab_refill(hak_heap *h, unsigned cls, uint32_t want) {
  hak_class_heap *ch = &h->cls[cls];
  for (;;) {
    hak_slab *s = ch->active;
    if (hak_unlikely(s->trimmed))
      untrim(s);
    if (s->free != NULL)
      return 0;
    // Blocks already touched come before fresh ones: the active slab's
    // remote frees, then a partial slab's free blocks, then carving.
    if (s != &hak_slab_empty && collect_remote(s))
      continue;
    if (s->carved < s->capacity) {
      hak_slab *p = ch->partial;
      // Blocks other threads freed into full slabs are touched memory:
      // take them before carving fresh pages (RSS), a few slabs a time.
      if ((p == NULL || (p->free == NULL && !p->trimmed)) && ch->full != NULL) {
        sweep_full_upto(h, ch, FULL_SCAN_BOUND); // O(1) per refill
        p = ch->partial;
      }
      if (p != NULL && (p->free != NULL || p->trimmed)) {
        list_unlink(&ch->partial, p);
        HAK_SLAB_SET_STATE(s, HAK_SLAB_PARTIAL); // parked: it can still carve
        list_push(&ch->partial, s);
        HAK_SLAB_SET_STATE(p, HAK_SLAB_ACTIVE);
        ch->active = p;
        continue;
      }
      carve(s, want == 0 ? 1 : want); // only what is asked for: carving touches pages
      return 0;
    }
    if (s != &hak_slab_empty) {
      HAK_SLAB_SET_STATE(s, HAK_SLAB_FULL);
      list_push(&ch->full, s);
      ch->nfull++;
      ch->active = &hak_slab_empty;
    }
    if (ch->partial == NULL && ch->full != NULL)
      sweep_full(h, ch);
    if (ch->partial != NULL) {
      s = ch->partial;
      list_unlink(&ch->partial, s);
      HAK_SLAB_SET_STATE(s, HAK_SLAB_ACTIVE);
      ch->active = s;
      continue;
    }
    hak_page_arena_tick_nostart(); // active is the empty slab: a nested malloc would lose one
    s = hak_shared_pool_acquire(cls, h);
    if (s == NULL) {
      errno = ENOMEM;
      return -1;
    }
    HAK_SLAB_SET_STATE(s, HAK_SLAB_ACTIVE);
    ch->active = s;
    ch->nslabs++;
    ch->grown_since_scan++;
  }
}

uint32_t hak_slab_take(hak_heap *h, unsigned cls, uint32_t n, void **list) {
  return hak_slab_take_upto(h, cls, n, n, list);
}

uint32_t hak_slab_take_upto(hak_heap *h, unsigned cls, uint32_t n, uint32_t max, void **list) {
  if (hak_slab_refill(h, cls, n) != 0)
    return 0;
  hak_slab *s = h->cls[cls].active;
  // After a refill the active slab is untrimmed, so its free list holds
  // every carved block that is not out. Its links are vetted as the bin
  // hands the blocks out (the first's by the caller when there are more).
  uint32_t len = (uint32_t)(s->carved - s->used);
  if (len <= max) {
    if (HAKMEM_DEBUG) {
      uint32_t walked = 0;
      for (void *b = s->free; b != NULL; b = hak_integrity_link_next(b))
        walked++;
      HAK_ASSERT(walked == len);
    }
    // A lone block goes to the caller, not the bin: its link is vetted here
    // (it must end the list), as the walk below would.
    if (len == 1 && hak_integrity_link_next(s->free) != NULL)
      hak_integrity_link_corrupt(s->free);
    *list = s->free;
    s->free = NULL;
    HAK_SLAB_SET_USED(s, s->used + len);
    return len;
  }
  void *first = s->free, *last = first;
  uint32_t got = 1;
  // Each link is vetted before it is followed or the list is cut there: a
  // write after free may have replaced it.
  void *rest = hak_integrity_link_next(last);
  for (;; got++) {
    if (got >= n || rest == NULL)
      break;
    last = rest;
    rest = hak_integrity_link_next(last);
  }
  s->free = rest;
  hak_integrity_link_set(last, NULL);
  HAK_SLAB_SET_USED(s, s->used + got);
  *list = first;
  return got;
}

void hak_slab_local_transition(hak_heap *h, hak_slab *s) {
  hak_class_heap *ch = &h->cls[s->class_idx];
  switch (HAK_SLAB_STATE(s)) {
  case HAK_SLAB_ACTIVE:
    return; // an empty active slab is kept: the next allocation wants it
  case HAK_SLAB_FULL:
    leave_full(h, ch, s);
    return;
  case HAK_SLAB_PARTIAL:
    if (s->used == 0) {
      list_unlink(&ch->partial, s);
      release(h, s);
    }
    return;
  default:
    hak_integrity_misuse("free()", "slab %p of block in state %u", (void *)s, HAK_SLAB_STATE(s));
  }
}

void hak_slab_free_remote(hak_slab *s, void *first, void *last) {
  uintptr_t old = atomic_load_explicit(&s->remote, memory_order_relaxed);
  uintptr_t next;
  do {
    hak_integrity_link_set(last, (void *)(old & ~HAK_REMOTE_ABANDONED));
    next = (uintptr_t)first | (old & HAK_REMOTE_ABANDONED);
  } while (!atomic_compare_exchange_weak_explicit(&s->remote, &old, next, memory_order_release,
                                                  memory_order_relaxed));
  // The slab cannot be touched after the push (its owner may free it); the
  // mark seen by the exchange says whether a sweep is due.
  if (old & HAK_REMOTE_ABANDONED)
    hak_shared_pool_note_abandoned_free();
}

void hak_slab_free_any(hak_heap *h, hak_slab *s, void *p) {
  unsigned cls = s->class_idx;
  hak_heap *owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
  if (h != NULL && owner == h) {
    HAK_COUNT(h->counters[cls].frees, 1);
    hak_slab_free_local(h, s, p);
    return;
  }
  if (h != NULL) {
    HAK_COUNT(h->counters[cls].frees, 1);
    HAK_COUNT(h->counters[cls].remote_frees, 1);
  } else {
    hak_heap_orphan_free(cls);
  }
  hak_slab_free_remote(s, p, p);
  hak_heap_note_remote(owner);
}

uint32_t hak_slab_trim(hak_heap *h) {
  size_t purged = 0;
  uint32_t before = 0, after = 0;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_class_heap *ch = &h->cls[c];
    if (ch->nslabs == 0)
      continue;
    before += ch->nslabs;
    for (hak_slab *s = ch->full, *next; s != NULL; s = next) {
      next = s->next;
      if (collect_remote(s))
        leave_full(h, ch, s); // to the pool if every block came back
    }
    for (hak_slab *s = ch->partial, *next; s != NULL; s = next) {
      next = s->next;
      collect_remote(s);
      if (s->used == 0) {
        list_unlink(&ch->partial, s);
        release(h, s);
      } else {
        purged += trim_slab(s);
      }
    }
    hak_slab *a = ch->active;
    if (a != &hak_slab_empty) {
      collect_remote(a);
      if (a->used == 0) {
        ch->active = &hak_slab_empty; // the next refill takes a partial or a new slab
        release(h, a);
      } else {
        purged += trim_slab(a);
      }
    }
    after += ch->nslabs;
  }
  if (purged > 0)
    hak_stats_add(&hak_stats_global.purged, (int64_t)purged);
  return before - after;
}

static void abandon_list(hak_heap *h, hak_slab *s) {
  while (s != NULL) {
    hak_slab *next = s->next;
    s->next = s->prev = NULL;
    h->cls[s->class_idx].nslabs--;
    hak_shared_pool_abandon(s);
    s = next;
  }
}

void hak_slab_abandon_all(hak_heap *h) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    hak_class_heap *ch = &h->cls[c];
    if (ch->active != &hak_slab_empty) {
      hak_slab *s = ch->active;
      ch->active = &hak_slab_empty;
      s->next = NULL;
      abandon_list(h, s);
    }
    hak_slab *p = ch->partial, *f = ch->full;
    ch->partial = ch->full = NULL;
    ch->nfull = 0;
    abandon_list(h, p);
    abandon_list(h, f);
  }
}
