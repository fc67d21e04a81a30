#include "shared_pool.h"

#include "integrity.h"
#include "log.h"
#include "os.h"
#include "options.h"
#include "page_arena.h"
#include "purge.h"
#include "size_class.h"
#include "stats.h"
#include "superslab.h"

_Atomic int hak_shared_pool_sweep_wanted;

// SuperSlabs of one region kind that have free slots.
typedef struct {
  pthread_mutex_t lock;
  hak_superslab *avail;
} pool_kind;

// Slabs of one class whose thread exited.
typedef struct {
  pthread_mutex_t lock;
  hak_slab *head; // doubly linked through next/prev
  _Atomic uint32_t count;
} abandoned_list;

static pool_kind g_kinds[3] = {
    {PTHREAD_MUTEX_INITIALIZER, NULL},
    {PTHREAD_MUTEX_INITIALIZER, NULL},
    {PTHREAD_MUTEX_INITIALIZER, NULL},
};
static abandoned_list g_abandoned[HAK_NUM_CLASSES] = {
    [0 ... HAK_NUM_CLASSES - 1] = {PTHREAD_MUTEX_INITIALIZER, NULL, 0},
};

// Free slots whose pages may still be resident. A free slot with carved != 0
// is dirty: blocks were carved from it; a purge sets carved back to 0.
static _Atomic int g_slots_dirty;
static _Atomic uint64_t g_last_slot_release_ms;

static void note_dirty_slots(void) {
  uint64_t now = hak_os_now_ms();
  atomic_store_explicit(&g_last_slot_release_ms, now, memory_order_relaxed);
  if (!atomic_load_explicit(&g_slots_dirty, memory_order_relaxed))
    atomic_store_explicit(&g_slots_dirty, 1, memory_order_relaxed);
  hak_purge_wanted(now + hak_options_current.decay_ms);
}

static uint32_t full_mask(const hak_superslab *ss) { return hak_superslab_slot_mask(ss); }

static void avail_unlink(pool_kind *k, hak_superslab *ss) {
  if (ss->prev)
    ss->prev->next = ss->next;
  else
    k->avail = ss->next;
  if (ss->next)
    ss->next->prev = ss->prev;
  ss->next = ss->prev = NULL;
}

static void avail_push(pool_kind *k, hak_superslab *ss) {
  ss->prev = NULL;
  ss->next = k->avail;
  if (k->avail)
    k->avail->prev = ss;
  k->avail = ss;
}

static void abandoned_unlink(abandoned_list *a, hak_slab *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    a->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->next = s->prev = NULL;
  atomic_fetch_sub_explicit(&a->count, 1, memory_order_relaxed);
  hak_stats_add(&hak_stats_global.abandoned, -1);
}

// Stage 1: take over a slab that an exited thread left with blocks out.
static hak_slab *adopt(unsigned cls, hak_heap *heap) {
  abandoned_list *a = &g_abandoned[cls];
  if (atomic_load_explicit(&a->count, memory_order_relaxed) == 0)
    return NULL;
  hak_stats_mutex_lock(&a->lock);
  hak_slab *s = a->head;
  if (s != NULL) {
    abandoned_unlink(a, s);
    // Clearing the abandoned mark and taking pending remote frees is one step,
    // so no remote free is left behind with the mark gone.
    uintptr_t pending = atomic_exchange_explicit(&s->remote, 0, memory_order_acq_rel);
    atomic_store_explicit(&s->owner, heap, memory_order_release);
    HAK_SLAB_SET_STATE(s, HAK_SLAB_ACTIVE);
    hak_superslab_splice_remote(s, pending & ~HAK_REMOTE_ABANDONED);
  }
  pthread_mutex_unlock(&a->lock);
  if (s != NULL)
    hak_stats_add(&hak_stats_global.adopted, 1);
  return s;
}

// A free slot whose pages are still resident (a released slab's, not yet
// purged) if there is one: reusing it for any class costs no new memory, a
// clean slot costs page faults and RSS. Else the lowest free slot.
static unsigned dirty_slot(const hak_superslab *ss) {
  for (uint32_t m = ss->free_mask; m != 0; m &= m - 1) {
    unsigned slot = (unsigned)__builtin_ctz(m);
    if (__atomic_load_n(&ss->slabs[slot].carved, __ATOMIC_RELAXED) != 0)
      return slot;
  }
  return (unsigned)__builtin_ctz(ss->free_mask);
}

hak_slab *hak_shared_pool_acquire(unsigned cls, hak_heap *heap) {
  // Sweep first: a thread that keeps adopting would otherwise never get to
  // the slabs that remote frees have emptied since.
  if (atomic_load_explicit(&hak_shared_pool_sweep_wanted, memory_order_relaxed))
    hak_shared_pool_sweep_abandoned(false);
  hak_slab *s = adopt(cls, heap);
  if (s != NULL)
    return s;

  uint8_t kind = hak_size_class_table[cls].region_kind;
  pool_kind *k = &g_kinds[kind];
  hak_stats_mutex_lock(&k->lock);
  hak_superslab *ss = k->avail;
  if (ss == NULL) {
    // Map outside the lock so other threads keep acquiring slots meanwhile.
    pthread_mutex_unlock(&k->lock);
    hak_superslab *fresh = hak_superslab_create(kind);
    if (fresh == NULL)
      return NULL;
    hak_stats_mutex_lock(&k->lock);
    avail_push(k, fresh);
    ss = k->avail;
  }
  unsigned slot = dirty_slot(ss);
  ss->free_mask &= ~(1u << slot);
  if (ss->free_mask == 0)
    avail_unlink(k, ss);
  pthread_mutex_unlock(&k->lock);

  s = hak_superslab_init_slab(ss, slot, cls);
  atomic_store_explicit(&s->owner, heap, memory_order_release);
  hak_stats_add(&hak_stats_global.slabs[cls], 1);
  hak_stats_add(&hak_stats_global.slab_blocks[cls], s->capacity);
  return s;
}

void hak_shared_pool_release(hak_slab *s) {
  HAK_ASSERT(s->used == 0);
  HAK_ASSERT((atomic_load_explicit(&s->remote, memory_order_relaxed) & ~HAK_REMOTE_ABANDONED) == 0);
  hak_stats_add(&hak_stats_global.slabs[s->class_idx], -1);
  hak_stats_add(&hak_stats_global.slab_blocks[s->class_idx], -(int64_t)s->capacity);
  hak_superslab *ss = hak_superslab_of(s);
  pool_kind *k = &g_kinds[ss->kind];
  HAK_SLAB_SET_STATE(s, HAK_SLAB_FREE);
  hak_superslab_unmap_slab(ss, s->slot);
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->remote, 0, memory_order_relaxed);
  __atomic_store_n(&s->block_size, 0, __ATOMIC_RELAXED);
  hak_stats_mutex_lock(&k->lock);
  if (ss->free_mask == 0)
    avail_push(k, ss);
  ss->free_mask |= 1u << s->slot;
  int empty = ss->free_mask == full_mask(ss);
  if (empty)
    avail_unlink(k, ss);
  pthread_mutex_unlock(&k->lock);
  // An empty SuperSlab goes to the page arena, whose cache makes reuse cheap
  // and whose decay returns it to the OS when it stays idle.
  if (empty) {
    hak_superslab_destroy(ss);
    hak_page_arena_tick_nostart();
  } else {
    note_dirty_slots();
  }
}

// The pages a free slot's blocks occupy (not the header, not a guard page).
static void slot_range(hak_superslab *ss, unsigned slot, uint8_t **start, size_t *len) {
  size_t size = (size_t)1 << ss->slab_shift;
  size_t skip = slot == 0 ? HAK_SS_HEADER_SIZE : 0;
  if (HAK_SS_GUARD_PAGE && slot == ss->nslabs - 1u)
    size -= HAK_PAGE_SIZE;
  *start = (uint8_t *)ss + ((size_t)slot << ss->slab_shift) + skip;
  *len = size - skip;
}

#define PURGE_BATCH 16

// Purges the dirty free slots of one kind's SuperSlabs, a batch at a time:
// the batch's slots are taken out of free_mask under the lock (so nobody
// acquires them), purged outside it, then put back.
static void purge_kind(pool_kind *k) {
  for (;;) {
    hak_superslab *ss_of[PURGE_BATCH];
    uint32_t mask_of[PURGE_BATCH];
    unsigned n = 0;
    hak_stats_mutex_lock(&k->lock);
    for (hak_superslab *ss = k->avail, *next; ss != NULL && n < PURGE_BATCH; ss = next) {
      next = ss->next;
      uint32_t dirty = 0;
      for (uint32_t m = ss->free_mask; m != 0; m &= m - 1) {
        unsigned slot = (unsigned)__builtin_ctz(m);
        if (__atomic_load_n(&ss->slabs[slot].carved, __ATOMIC_RELAXED) != 0) {
          dirty |= 1u << slot;
          __atomic_store_n(&ss->slabs[slot].carved, 0, __ATOMIC_RELAXED);
        }
      }
      if (dirty == 0)
        continue;
      ss->free_mask &= ~dirty;
      if (ss->free_mask == 0)
        avail_unlink(k, ss);
      ss_of[n] = ss;
      mask_of[n++] = dirty;
    }
    pthread_mutex_unlock(&k->lock);
    if (n == 0)
      return;
    for (unsigned i = 0; i < n; i++) {
      for (uint32_t m = mask_of[i]; m != 0; m &= m - 1) {
        uint8_t *start;
        size_t len;
        slot_range(ss_of[i], (unsigned)__builtin_ctz(m), &start, &len);
        hak_os_purge(start, len);
        hak_stats_add(&hak_stats_global.purged, (int64_t)len);
      }
    }
    hak_superslab *empty[PURGE_BATCH];
    unsigned nempty = 0;
    hak_stats_mutex_lock(&k->lock);
    for (unsigned i = 0; i < n; i++) {
      hak_superslab *ss = ss_of[i];
      if (ss->free_mask == 0)
        avail_push(k, ss);
      ss->free_mask |= mask_of[i];
      if (ss->free_mask == full_mask(ss)) {
        avail_unlink(k, ss);
        empty[nempty++] = ss;
      }
    }
    pthread_mutex_unlock(&k->lock);
    for (unsigned i = 0; i < nempty; i++)
      hak_superslab_destroy(empty[i]);
  }
}

uint64_t hak_shared_pool_purge_slots(bool force) {
  if (!atomic_load_explicit(&g_slots_dirty, memory_order_relaxed))
    return 0;
  uint64_t last = atomic_load_explicit(&g_last_slot_release_ms, memory_order_relaxed);
  uint64_t now = hak_os_now_ms();
  if (!force && now - last < hak_options_current.decay_ms)
    return last + hak_options_current.decay_ms; // slots still churn: wait for a quiet spell
  // Cleared first: a release during the pass sets it again.
  atomic_store_explicit(&g_slots_dirty, 0, memory_order_relaxed);
  purge_kind(&g_kinds[HAK_REGION_SS_SMALL]);
  purge_kind(&g_kinds[HAK_REGION_SS_MEDIUM]);
  if (!atomic_load_explicit(&g_slots_dirty, memory_order_relaxed))
    return 0;
  return atomic_load_explicit(&g_last_slot_release_ms, memory_order_relaxed) +
         hak_options_current.decay_ms;
}

void hak_shared_pool_abandon(hak_slab *s) {
  abandoned_list *a = &g_abandoned[s->class_idx];
  hak_stats_mutex_lock(&a->lock);
  atomic_store_explicit(&s->owner, NULL, memory_order_release);
  HAK_SLAB_SET_STATE(s, HAK_SLAB_ABANDONED);
  uintptr_t pending =
      atomic_exchange_explicit(&s->remote, HAK_REMOTE_ABANDONED, memory_order_acq_rel);
  hak_superslab_splice_remote(s, pending & ~HAK_REMOTE_ABANDONED);
  int empty = s->used == 0;
  if (!empty) {
    s->prev = NULL;
    s->next = a->head;
    if (a->head)
      a->head->prev = s;
    a->head = s;
    atomic_fetch_add_explicit(&a->count, 1, memory_order_relaxed);
    hak_stats_add(&hak_stats_global.abandoned, 1);
  }
  pthread_mutex_unlock(&a->lock);
  if (empty)
    hak_shared_pool_release(s);
}

void hak_shared_pool_sweep_abandoned(bool force) {
  if (!atomic_exchange_explicit(&hak_shared_pool_sweep_wanted, 0, memory_order_acq_rel) && !force)
    return;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    abandoned_list *a = &g_abandoned[c];
    if (atomic_load_explicit(&a->count, memory_order_relaxed) == 0)
      continue;
    hak_slab *empty = NULL;
    hak_stats_mutex_lock(&a->lock);
    for (hak_slab *s = a->head, *next; s != NULL; s = next) {
      next = s->next;
      uintptr_t v = atomic_load_explicit(&s->remote, memory_order_relaxed);
      if ((v & ~HAK_REMOTE_ABANDONED) == 0)
        continue;
      // The lock holder stands in for the missing owner; the mark stays.
      v = atomic_exchange_explicit(&s->remote, HAK_REMOTE_ABANDONED, memory_order_acq_rel);
      hak_superslab_splice_remote(s, v & ~HAK_REMOTE_ABANDONED);
      if (s->used == 0) {
        abandoned_unlink(a, s);
        s->next = empty;
        empty = s;
      }
    }
    pthread_mutex_unlock(&a->lock);
    while (empty != NULL) {
      hak_slab *next = empty->next;
      empty->next = NULL;
      hak_shared_pool_release(empty);
      empty = next;
    }
  }
}

void hak_shared_pool_note_abandoned_free(void) {
  static _Atomic uint64_t last_sweep_ms;
  atomic_store_explicit(&hak_shared_pool_sweep_wanted, 1, memory_order_relaxed);
  uint64_t now = hak_os_now_ms();
  uint64_t last = atomic_load_explicit(&last_sweep_ms, memory_order_relaxed);
  if (now == last)
    return; // one sweep per clock tick at most
  if (!atomic_compare_exchange_strong_explicit(&last_sweep_ms, &last, now, memory_order_relaxed,
                                               memory_order_relaxed))
    return;
  hak_shared_pool_sweep_abandoned(false);
}

// Fork: every lock, in one order (abandoned lists, then kinds).
void hak_shared_pool_lock_all(void) {
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    pthread_mutex_lock(&g_abandoned[c].lock);
  for (unsigned k = 0; k < 3; k++)
    pthread_mutex_lock(&g_kinds[k].lock);
}

void hak_shared_pool_unlock_all(void) {
  for (unsigned k = 0; k < 3; k++)
    pthread_mutex_unlock(&g_kinds[k].lock);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    pthread_mutex_unlock(&g_abandoned[c].lock);
}

void hak_shared_pool_reset_locks(void) {
  for (unsigned k = 0; k < 3; k++)
    pthread_mutex_init(&g_kinds[k].lock, NULL);
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
    pthread_mutex_init(&g_abandoned[c].lock, NULL);
}
