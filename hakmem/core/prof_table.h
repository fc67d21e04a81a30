// The heap profiler's two tables: the distinct stacks of the samples, with
// their estimated totals, and the live samples by address. Both live in
// reserved memory (hak_os_reserve: pages are taken only when written); no
// malloc. Not locked: the profiler holds its lock around every call.
#ifndef HAKMEM_PROF_TABLE_H
#define HAKMEM_PROF_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

#define HAK_TABLE_DEPTH 64          // deepest stack kept (HAK_PROF_DEPTH)
#define HAK_TABLE_STACKS (1u << 15) // distinct stacks
// Live-sample slots at first (open addressing, at most half full), and at
// most: the table doubles as it fills.
#define HAK_TABLE_LIVE_MIN (1u << 12)
#define HAK_TABLE_LIVE_MAX (1u << 20)

typedef struct hak_table_stack {
  uint64_t hash;
  uint32_t depth;
  uint32_t pad_;
  double alloc_objs, alloc_bytes; // estimated totals of every sampled allocation
  double inuse_objs, inuse_bytes; // recomputed at each dump from the live table
  uintptr_t pc[HAK_TABLE_DEPTH];
} hak_table_stack;

typedef struct hak_table_live {
  uintptr_t addr; // 0: empty slot
  uint64_t size;
  double weight;
  uint32_t stack;
  uint32_t pad_;
} hak_table_live;

typedef struct hak_table {
  hak_table_stack *stacks; // nstacks used
  uint32_t *stack_idx;     // hash slots: stack index + 1, 0 empty (2 * HAK_TABLE_STACKS)
  uint32_t nstacks;
  hak_table_live *live; // live_cap slots
  size_t live_cap;
  size_t nlive;
} hak_table;

// Maps both tables at their first sizes; false when it cannot.
bool hak_prof_table_init(hak_table *t) HAK_INTERNAL;

// The index of the stack pc[0..depth), added if new; UINT32_MAX when full.
uint32_t hak_prof_table_intern(hak_table *t, const uintptr_t *pc, unsigned depth) HAK_INTERNAL;

// The live slot holding address a, or the empty slot where it would go.
size_t hak_prof_table_find(const hak_table *t, uintptr_t a) HAK_INTERNAL;
// Empties live slot k, counting one live sample less.
void hak_prof_table_remove(hak_table *t, size_t k) HAK_INTERNAL;
// Doubles the live table (false when it cannot).
bool hak_prof_table_grow(hak_table *t) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PROF_TABLE_H
