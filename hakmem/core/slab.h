// The slab layer: a heap's slabs of each class, their local free lists and
// their lock-free remote-free lists. Owner frees push locally; other threads
// push onto the slab's remote stack, which the owner takes in one exchange.
#ifndef HAKMEM_SLAB_H
#define HAKMEM_SLAB_H

#include "integrity.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

// An empty slab that every class heap points at before it has a real one, so
// the allocation path needs no NULL test.
extern hak_slab hak_slab_empty HAK_INTERNAL;

void hak_slab_class_heaps_init(hak_heap *h) HAK_INTERNAL;

// Makes the active slab of class cls have local free blocks, moving to another
// slab (partial, swept, or from the shared pool) as needed and carving up to
// want fresh blocks. 0 on success, -1 with ENOMEM when no memory can be had.
int hak_slab_refill(hak_heap *h, unsigned cls, uint32_t want) HAK_INTERNAL;

// Takes up to n blocks of class cls as a NULL-terminated list; returns how
// many (0 when memory is exhausted).
uint32_t hak_slab_take(hak_heap *h, unsigned cls, uint32_t n, void **list) HAK_INTERNAL;
// As hak_slab_take, but takes the slab's whole free list when it holds at
// most max blocks (max >= n): no walk over blocks whose memory is cold.
uint32_t hak_slab_take_upto(hak_heap *h, unsigned cls, uint32_t n, uint32_t max,
                            void **list) HAK_INTERNAL;

// Frees p into s, which h owns; handles the slab's change of state.
static inline void hak_slab_free_local(hak_heap *h, hak_slab *s, void *p);
void hak_slab_local_transition(hak_heap *h, hak_slab *s) HAK_INTERNAL;

// Pushes the chain first..last (n blocks, linked through their first word)
// onto the remote stack of s, which another thread owns or nobody does.
void hak_slab_free_remote(hak_slab *s, void *first, void *last) HAK_INTERNAL;

// Frees block p of slab s from the calling thread, whose heap may be NULL.
void hak_slab_free_any(hak_heap *h, hak_slab *s, void *p) HAK_INTERNAL;

// Gives back what an idle heap holds without using it: remote frees are
// collected and every slab with no block out goes to the pool, the active one
// included; the slabs that stay give back the pages inside their free blocks.
// The caller holds the heap's lock; returns the slabs released.
uint32_t hak_slab_trim(hak_heap *h) HAK_INTERNAL;

// Gives up every slab of h: empty ones to the pool, others abandoned.
void hak_slab_abandon_all(hak_heap *h) HAK_INTERNAL;

// Frees the chain first..last of n blocks of slab s, already linked in
// order, from the owner's thread: one splice onto the free list.
static inline void hak_slab_free_local_run(hak_heap *h, hak_slab *s, void *first, void *last,
                                           uint32_t n) {
  hak_integrity_link_set(last, s->free);
  s->free = first;
  HAK_SLAB_SET_USED(s, s->used - n);
  if (hak_unlikely(HAK_SLAB_STATE(s) != HAK_SLAB_ACTIVE || s->used == 0))
    hak_slab_local_transition(h, s);
}

static inline void hak_slab_free_local(hak_heap *h, hak_slab *s, void *p) {
  hak_integrity_link_set(p, s->free);
  s->free = p;
  HAK_SLAB_SET_USED(s, s->used - 1);
  if (hak_unlikely(HAK_SLAB_STATE(s) != HAK_SLAB_ACTIVE || s->used == 0))
    hak_slab_local_transition(h, s);
}

HAK_EXTERN_C_END

#endif // HAKMEM_SLAB_H
