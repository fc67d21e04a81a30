#include "prof_table.h"

#include <string.h>

#include "os.h"
#include "prof_sample.h"

bool hak_prof_table_init(hak_table *t) {
  t->stacks = hak_os_reserve(HAK_TABLE_STACKS * sizeof(hak_table_stack));
  t->stack_idx = hak_os_reserve(2 * HAK_TABLE_STACKS * sizeof(uint32_t));
  t->nstacks = 0;
  t->live_cap = HAK_TABLE_LIVE_MIN;
  t->live = hak_os_reserve(HAK_TABLE_LIVE_MIN * sizeof(hak_table_live));
  t->nlive = 0;
  return t->stacks != NULL && t->stack_idx != NULL && t->live != NULL;
}

uint32_t hak_prof_table_intern(hak_table *t, const uintptr_t *pc, unsigned depth) {
  uint64_t h = depth;
  for (unsigned i = 0; i < depth; i++)
    h = hak_prof_sample_mix(h ^ pc[i]);
  uint32_t mask = 2 * HAK_TABLE_STACKS - 1;
  for (uint32_t k = (uint32_t)h & mask;; k = (k + 1) & mask) {
    uint32_t s = t->stack_idx[k];
    if (s == 0) {
      if (t->nstacks == HAK_TABLE_STACKS)
        return UINT32_MAX;
      hak_table_stack *st = &t->stacks[t->nstacks];
      st->hash = h;
      st->depth = depth;
      memcpy(st->pc, pc, depth * sizeof pc[0]);
      t->stack_idx[k] = ++t->nstacks;
      return t->nstacks - 1;
    }
    hak_table_stack *st = &t->stacks[s - 1];
    if (st->hash == h && st->depth == depth && memcmp(st->pc, pc, depth * sizeof pc[0]) == 0)
      return s - 1;
  }
}

static size_t live_slot(const hak_table *t, uintptr_t a) {
  return (size_t)hak_prof_sample_mix(a) & (t->live_cap - 1);
}

size_t hak_prof_table_find(const hak_table *t, uintptr_t a) {
  size_t k = live_slot(t, a);
  while (t->live[k].addr != 0 && t->live[k].addr != a)
    k = (k + 1) & (t->live_cap - 1);
  return k;
}

// Moves back later entries of slot k's run (linear probing with no tombstones).
void hak_prof_table_remove(hak_table *t, size_t k) {
  size_t hole = k;
  size_t mask = t->live_cap - 1;
  for (size_t j = (k + 1) & mask; t->live[j].addr != 0; j = (j + 1) & mask) {
    size_t home = live_slot(t, t->live[j].addr);
    // j's entry may fill the hole if its home is not cyclically in (hole, j].
    bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      t->live[hole] = t->live[j];
      hole = j;
    }
  }
  t->live[hole].addr = 0;
  t->nlive--;
}

bool hak_prof_table_grow(hak_table *t) {
  size_t cap = t->live_cap * 2;
  if (cap > HAK_TABLE_LIVE_MAX)
    return false;
  hak_table_live *fresh = hak_os_reserve(cap * sizeof(hak_table_live));
  if (fresh == NULL)
    return false;
  hak_table_live *old = t->live;
  size_t old_cap = t->live_cap;
  t->live = fresh;
  t->live_cap = cap;
  for (size_t k = 0; k < old_cap; k++)
    if (old[k].addr != 0)
      t->live[hak_prof_table_find(t, old[k].addr)] = old[k];
  hak_os_unreserve(old, old_cap * sizeof(hak_table_live));
  return true;
}
