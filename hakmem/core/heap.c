#include "heap.h"

#include <sched.h>

#include "options.h"
#include "os.h"
#include "purge.h"

HAK_TLS hak_tls_state hak_tls;

static _Atomic uint64_t g_orphan_frees[HAK_NUM_CLASSES];

void hak_heap_lock_wait(hak_heap *h) {
  for (unsigned spins = 0;; spins++) {
    if (hak_heap_trylock(h))
      return;
    if (spins < 100)
      __builtin_ia32_pause();
    else
      sched_yield(); // a trim holds it for microseconds; the owner may be preempted
  }
}

// Half the decay time, as for a stashed heap, since what a trim frees then
// waits the decay time again in the pool and the page arena.
uint64_t hak_heap_idle_ms(void) { return hak_options_current.decay_ms / 2; }

void hak_heap_note_slow(hak_heap *h) {
  if (atomic_load_explicit(&h->idle_trimmed, memory_order_relaxed))
    atomic_store_explicit(&h->idle_trimmed, 0, memory_order_relaxed); // busy again
  uint64_t now = hak_os_now_ms();
  if (atomic_load_explicit(&h->last_slow_ms, memory_order_relaxed) == now)
    return;
  atomic_store_explicit(&h->last_slow_ms, now, memory_order_relaxed);
  hak_purge_wanted(now + hak_heap_idle_ms()); // cheap unless nothing else waits
}

void hak_heap_note_remote(hak_heap *owner) {
  if (!HAKMEM_FASTCACHE || owner == NULL)
    return; // without the fast cache heaps are never trimmed
  // Orders the caller's push before the load: either this sees the trim's
  // mark, or the trim, which marks before it collects, sees the push.
  atomic_thread_fence(memory_order_seq_cst);
  if (!atomic_load_explicit(&owner->idle_trimmed, memory_order_relaxed) ||
      !atomic_exchange_explicit(&owner->idle_trimmed, 0, memory_order_relaxed))
    return;
  atomic_store_explicit(&owner->retrim, 1, memory_order_relaxed);
  hak_purge_wanted(hak_os_now_ms() + hak_heap_idle_ms());
}

void hak_heap_orphan_free(unsigned cls) {
  atomic_fetch_add_explicit(&g_orphan_frees[cls], 1, memory_order_relaxed);
}

uint64_t hak_heap_orphan_frees(unsigned cls) {
  return atomic_load_explicit(&g_orphan_frees[cls], memory_order_relaxed);
}
