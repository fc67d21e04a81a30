// C shim for slab_test.cc: a thread's heap, the slab functions, and the state
// of slabs and class heaps, through plain functions.
#include "link.h"
#include "segment_map.h"
#include "size_class.h"
#include "slab.h"
#include "stats.h"
#include "superslab.h"
#include "thread_heap.h"

void *sl_heap(void) { return hak_heap_get(); }
void *sl_current_heap(void) { return hak_heap_current(); }

uint32_t sl_take(void *h, unsigned cls, uint32_t n, void **list) {
  return hak_slab_take(h, cls, n, list);
}
int sl_refill(void *h, unsigned cls) { return hak_slab_refill(h, cls, hak_classes[cls].batch); }

void *sl_slab_of(const void *p) {
  unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return NULL;
  return hak_slab_of(p, kind);
}

// Frees p from the calling thread through the slab layer (local when the
// calling thread's heap h owns the slab, remote otherwise).
void sl_free(void *h, void *p) { hak_slab_free_any(h, sl_slab_of(p), p); }

unsigned sl_state(const void *s) { return ((const hak_slab *)s)->state; }
unsigned sl_used(const void *s) { return ((const hak_slab *)s)->used; }
unsigned sl_carved(const void *s) { return ((const hak_slab *)s)->carved; }
unsigned sl_capacity(const void *s) { return ((const hak_slab *)s)->capacity; }
unsigned sl_block_size(const void *s) { return ((const hak_slab *)s)->block_size; }
unsigned sl_slot(const void *s) { return ((const hak_slab *)s)->slot; }
void *sl_start(const void *s) { return ((const hak_slab *)s)->start; }
void *sl_owner(const void *s) { return atomic_load(&((hak_slab *)s)->owner); }

// The next block of a free-list chain (links are encoded in the hardened
// variant).
void *sl_next(const void *p) { return hak_link_get(p); }
int sl_hardened(void) { return HAKMEM_HARDENED; }

static unsigned chain_len(void *p) {
  unsigned n = 0;
  for (; p != NULL; p = hak_link_get(p))
    n++;
  return n;
}
unsigned sl_local_free_len(const void *s) { return chain_len(((const hak_slab *)s)->free); }
uintptr_t sl_remote_word(const void *s) { return atomic_load(&((hak_slab *)s)->remote); }
unsigned sl_remote_len(const void *s) {
  uintptr_t v = atomic_load(&((hak_slab *)s)->remote) & ~HAK_REMOTE_ABANDONED;
  return chain_len((void *)v);
}
// Whether p is on the slab's remote chain.
int sl_remote_has(const void *s, const void *p) {
  uintptr_t v = atomic_load(&((hak_slab *)s)->remote) & ~HAK_REMOTE_ABANDONED;
  for (void *q = (void *)v; q != NULL; q = hak_link_get(q))
    if (q == p)
      return 1;
  return 0;
}

static hak_class_heap *ch(void *h, unsigned cls) { return &((hak_heap *)h)->cls[cls]; }
void *sl_active(void *h, unsigned cls) {
  hak_slab *s = ch(h, cls)->active;
  return s == &hak_empty_slab ? NULL : s;
}
static int list_has(const hak_slab *head, const void *s) {
  for (; head != NULL; head = head->next)
    if (head == s)
      return 1;
  return 0;
}
static unsigned list_len(const hak_slab *head) {
  unsigned n = 0;
  for (; head != NULL; head = head->next)
    n++;
  return n;
}
int sl_in_partial(void *h, unsigned cls, const void *s) { return list_has(ch(h, cls)->partial, s); }
int sl_in_full(void *h, unsigned cls, const void *s) { return list_has(ch(h, cls)->full, s); }
unsigned sl_partial_len(void *h, unsigned cls) { return list_len(ch(h, cls)->partial); }
unsigned sl_full_len(void *h, unsigned cls) { return list_len(ch(h, cls)->full); }
unsigned sl_nfull(void *h, unsigned cls) { return ch(h, cls)->nfull; }
unsigned sl_nslabs(void *h, unsigned cls) { return ch(h, cls)->nslabs; }

uint64_t sl_gslabs(unsigned cls) { return atomic_load(&hak_gstats.slabs[cls]); }
unsigned sl_class_of(size_t size) { return hak_size_class(size); }
size_t sl_class_size(unsigned cls) { return hak_classes[cls].size; }
unsigned sl_batch(unsigned cls) { return hak_classes[cls].batch; }
int sl_fastcache(void) { return HAKMEM_FASTCACHE; }

unsigned sl_state_free(void) { return HAK_SLAB_FREE; }
unsigned sl_state_active(void) { return HAK_SLAB_ACTIVE; }
unsigned sl_state_partial(void) { return HAK_SLAB_PARTIAL; }
unsigned sl_state_full(void) { return HAK_SLAB_FULL; }
