#include "backtrace.h"

#include <dlfcn.h>
#include <stddef.h>
#include <unwind.h>

#define ENTRY_CAP 32u

// The unwinder is libgcc_s's, reached through pointers and not linked: most C
// programs never load libgcc_s, and it would cost each of them about 90 KiB
// resident. A program that has it (C++) lends its copy through the weak
// references; otherwise the profiler's constructor loads it when HAKMEM_PROF
// asks.
#pragma weak _Unwind_Backtrace
#pragma weak _Unwind_GetIP
#pragma weak _Unwind_GetRegionStart
#pragma weak _Unwind_GetCFA

static struct {
  _Unwind_Ptr (*get_ip)(struct _Unwind_Context *);
  _Unwind_Ptr (*region_start)(struct _Unwind_Context *);
  _Unwind_Word (*get_cfa)(struct _Unwind_Context *);
  // Set last (release): not NULL means all four are there.
  HAK_ATOMIC(_Unwind_Reason_Code (*)(_Unwind_Trace_Fn, void *)) backtrace;
} g_unwind;

static const void *g_entries[ENTRY_CAP];
static HAK_ATOMIC(unsigned) g_nentries;

void hak_backtrace_init(bool may_load) {
  if (atomic_load_explicit(&g_unwind.backtrace, memory_order_acquire) != NULL)
    return;
  _Unwind_Reason_Code (*bt)(_Unwind_Trace_Fn, void *) = _Unwind_Backtrace;
  if (bt != NULL && _Unwind_GetIP != NULL && _Unwind_GetRegionStart != NULL &&
      _Unwind_GetCFA != NULL) {
    g_unwind.get_ip = _Unwind_GetIP;
    g_unwind.region_start = _Unwind_GetRegionStart;
    g_unwind.get_cfa = _Unwind_GetCFA;
  } else {
    if (!may_load)
      return;
    // dlopen calls malloc: only from the constructor, never inside hakmem.
    void *lib = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
      return;
    bt = (_Unwind_Reason_Code(*)(_Unwind_Trace_Fn, void *))dlsym(lib, "_Unwind_Backtrace");
    g_unwind.get_ip = (_Unwind_Ptr(*)(struct _Unwind_Context *))dlsym(lib, "_Unwind_GetIP");
    g_unwind.region_start =
        (_Unwind_Ptr(*)(struct _Unwind_Context *))dlsym(lib, "_Unwind_GetRegionStart");
    g_unwind.get_cfa = (_Unwind_Word(*)(struct _Unwind_Context *))dlsym(lib, "_Unwind_GetCFA");
    if (bt == NULL || g_unwind.get_ip == NULL || g_unwind.region_start == NULL ||
        g_unwind.get_cfa == NULL)
      return;
  }
  atomic_store_explicit(&g_unwind.backtrace, bt, memory_order_release);
}

static _Unwind_Reason_Code count_frame(struct _Unwind_Context *ctx, void *arg) {
  (void)ctx;
  ++*(unsigned *)arg;
  return _URC_NO_REASON;
}

void hak_backtrace_warm_up(void) {
  _Unwind_Reason_Code (*bt)(_Unwind_Trace_Fn, void *) =
      atomic_load_explicit(&g_unwind.backtrace, memory_order_acquire);
  unsigned frames = 0;
  if (bt != NULL)
    bt(count_frame, &frames);
}

typedef struct walk {
  uintptr_t pc[HAK_BACKTRACE_FRAMES];
  uintptr_t fn[HAK_BACKTRACE_FRAMES];
  uintptr_t cfa[HAK_BACKTRACE_FRAMES];
  unsigned n;
} walk;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg) {
  walk *w = arg;
  if (w->n >= sizeof w->pc / sizeof w->pc[0])
    return _URC_END_OF_STACK;
  uintptr_t ip = g_unwind.get_ip(ctx);
  if (ip == 0)
    return _URC_END_OF_STACK;
  w->pc[w->n] = ip;
  w->fn[w->n] = g_unwind.region_start(ctx);
  w->cfa[w->n] = g_unwind.get_cfa(ctx);
  w->n++;
  return _URC_NO_REASON;
}

void hak_backtrace_add_entries(const void *const *fns, unsigned n) {
  unsigned have = atomic_load_explicit(&g_nentries, memory_order_relaxed);
  for (unsigned i = 0; i < n; i++) {
    bool known = false;
    for (unsigned j = 0; j < have; j++)
      known |= g_entries[j] == fns[i];
    if (!known && have < ENTRY_CAP)
      g_entries[have++] = fns[i];
  }
  atomic_store_explicit(&g_nentries, have, memory_order_release);
}

static bool is_entry(uintptr_t fn) {
  unsigned n = atomic_load_explicit(&g_nentries, memory_order_acquire);
  for (unsigned i = 0; i < n; i++)
    if ((uintptr_t)g_entries[i] == fn)
      return true;
  return false;
}

// The caller's stack above hakmem: the frames up to the one whose stack holds
// mark (a tail call leaves no frame for the entry point, and a cold part of
// a function has a region start of its own, so the stack says best where
// hakmem ends), and up to the outermost entry point, are dropped.
unsigned hak_backtrace_capture(uintptr_t *out, unsigned max, const void *mark) {
  walk w;
  w.n = 0;
  _Unwind_Reason_Code (*bt)(_Unwind_Trace_Fn, void *) =
      atomic_load_explicit(&g_unwind.backtrace, memory_order_acquire);
  if (bt != NULL)
    bt(walk_frame, &w);
  unsigned first = w.n > 0 ? 1 : 0;
  // In _Unwind_Backtrace's callback the CFA is still that of the frame below
  // (the callee): the stack pointer of frame i at its call. The caller's
  // frames are the ones whose stack pointer lies above the mark.
  for (unsigned i = 0; i < w.n; i++)
    if (w.cfa[i] > (uintptr_t)mark) {
      first = i;
      break;
    }
  for (unsigned i = first; i < w.n; i++)
    if (is_entry(w.fn[i]))
      first = i + 1;
  unsigned n = 0;
  for (unsigned i = first; i < w.n && n < max; i++)
    out[n++] = w.pc[i];
  return n;
}
