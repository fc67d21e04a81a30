#include "segmap.h"

#include <sys/resource.h>

#include "os.h"

static const uint8_t zero_entry;
hak_classmap_t hak_segmap_class = {.mask = 0, .map = &zero_entry};
static uint8_t *g_classmap_table;

// The map is address space, and a process under a limit on it (RLIMIT_AS,
// `ulimit -v`) would lose that much of what it may allocate: it is reserved
// only when it takes at most this share of the limit.
#define CMAP_LIMIT_SHARE 16

void hak_segmap_class_init(void) {
  if (g_classmap_table != NULL)
    return;
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY &&
      as.rlim_cur / CMAP_LIMIT_SHARE < HAK_CMAP_ENTRIES)
    return; // frees find their blocks through the segment map (a slow path)
  uint8_t *t = hak_os_reserve(HAK_CMAP_ENTRIES);
  if (t == NULL)
    return; // the slow paths find blocks through the segment map instead
  g_classmap_table = t;
  __atomic_store_n(&hak_segmap_class.map, t, __ATOMIC_RELAXED);
  __atomic_store_n(&hak_segmap_class.mask, HAK_CMAP_ENTRIES - 1, __ATOMIC_RELEASE);
}

void hak_segmap_class_set(const void *start, size_t size, unsigned bin) {
  uint8_t *t = g_classmap_table;
  if (t == NULL)
    return;
  uintptr_t first = (uintptr_t)start >> HAK_CMAP_SHIFT;
  uintptr_t last = ((uintptr_t)start + size - 1) >> HAK_CMAP_SHIFT;
  for (uintptr_t i = first; i <= last; i++)
    __atomic_store_n(&t[i], (uint8_t)HAK_BIN_SLOT(bin), __ATOMIC_RELEASE);
}

_Atomic(uint8_t *) hak_segmap_l1[HAK_SEGMAP_L1_SIZE];

#define L2_SIZE ((size_t)1 << HAK_SEGMAP_L2_BITS)

static uint8_t *l2_for(uintptr_t region, int create) {
  _Atomic(uint8_t *) *slot = &hak_segmap_l1[region >> HAK_SEGMAP_L2_BITS];
  uint8_t *l2 = atomic_load_explicit(slot, memory_order_acquire);
  if (l2 != NULL || !create)
    return l2;
  uint8_t *fresh = hak_os_map(L2_SIZE);
  if (fresh == NULL)
    return NULL;
  if (atomic_compare_exchange_strong_explicit(slot, &l2, fresh, memory_order_acq_rel,
                                              memory_order_acquire))
    return fresh;
  hak_os_unmap(fresh, L2_SIZE); // another thread installed it first
  return l2;
}

static int set_range(void *base, size_t size, uint8_t first_kind, uint8_t kind, int create) {
  uintptr_t first = (uintptr_t)base >> HAK_SS_SHIFT;
  uintptr_t last = ((uintptr_t)base + size - 1) >> HAK_SS_SHIFT;
  for (uintptr_t r = first; r <= last; r++) {
    uint8_t *l2 = l2_for(r, create);
    if (l2 == NULL) {
      if (create)
        return -1;
      continue;
    }
    __atomic_store_n(&l2[r & (L2_SIZE - 1)], r == first ? first_kind : kind, __ATOMIC_RELEASE);
  }
  return 0;
}

int hak_segmap_set(void *base, size_t size, uint8_t first_kind, uint8_t kind) {
  if (set_range(base, size, first_kind, kind, 1) == 0)
    return 0;
  set_range(base, size, HAK_REGION_NONE, HAK_REGION_NONE, 0);
  return -1;
}

void hak_segmap_clear(void *base, size_t size) {
  set_range(base, size, HAK_REGION_NONE, HAK_REGION_NONE, 0);
}

bool hak_segmap_next(uint8_t kind, uintptr_t *cursor) {
  uintptr_t r = *cursor >> HAK_SS_SHIFT;
  for (uintptr_t l1 = r >> HAK_SEGMAP_L2_BITS; l1 < HAK_SEGMAP_L1_SIZE; l1++) {
    uint8_t *l2 = atomic_load_explicit(&hak_segmap_l1[l1], memory_order_acquire);
    uintptr_t first = l1 == r >> HAK_SEGMAP_L2_BITS ? r & (L2_SIZE - 1) : 0;
    if (l2 == NULL)
      continue;
    for (uintptr_t i = first; i < L2_SIZE; i++) {
      if (__atomic_load_n(&l2[i], __ATOMIC_RELAXED) == kind) {
        *cursor = ((l1 << HAK_SEGMAP_L2_BITS) | i) << HAK_SS_SHIFT;
        return true;
      }
    }
  }
  return false;
}
