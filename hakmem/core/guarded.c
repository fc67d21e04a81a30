#define _GNU_SOURCE
#include "guarded.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "backtrace.h"
#include "elf_symbols.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "proc_maps.h"
#include "segmap.h"
#include "stats.h"

// ---- the pool ------------------------------------------------------------------
//
// One reserve, aligned to 2 MiB and marked HAK_REGION_GUARDED, every page
// PROT_NONE but the live blocks' own:
//
//   | guard | slot 0 (4 pages) | guard | slot 1 | guard | ... | slot 255 | guard | (unused)
//
// A block lies in its slot's pages, against the slot's end (so the page after
// it is the next guard) or at the slot's start (the page before it is the
// guard before). The bytes of its pages that are not the block's (the slack,
// under 16 bytes at the end for sizes not a multiple of the alignment, the
// rest of the page at the start's side) hold a pattern checked at free.

#define PAGE HAK_PAGE_SIZE
#define STRIDE ((HAK_GUARDED_SLOT_PAGES + 1) * PAGE)
#define SLOTS_BYTES (PAGE + HAK_GUARDED_SLOTS * STRIDE)
#define POOL_BYTES ((SLOTS_BYTES + HAK_SS_SIZE - 1) & ~HAK_SS_MASK)
#define SLACK_BYTE 0xa7

enum {
  SLOT_EMPTY = 0, // never used, or handed back by a failed allocation
  SLOT_ALLOCATING,
  SLOT_LIVE,
  SLOT_FREEING,
  SLOT_FREED, // in quarantine: PROT_NONE until reused
};

typedef struct slot {
  HAK_ATOMIC(uint8_t) state; // SLOT_*; the fields below are written before it
  uint8_t alloc_depth, free_depth;
  uintptr_t start; // the block
  size_t size;     // as requested
  int alloc_tid, free_tid;
  uintptr_t alloc_pc[HAK_GUARDED_DEPTH];
  uintptr_t free_pc[HAK_GUARDED_DEPTH];
} slot;

bool hak_guarded_on;

static uint8_t *g_pool; // POOL_BYTES, NULL until reserved
static uint64_t g_sample;
static slot g_slots[HAK_GUARDED_SLOTS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
// Under g_lock: the empty slots (a stack) and the quarantine (a ring, oldest
// first).
static uint16_t g_empty[HAK_GUARDED_SLOTS];
static unsigned g_nempty;
static uint16_t g_quarantine[HAK_GUARDED_SLOTS];
static unsigned g_qhead, g_nquarantine;
static uint64_t g_rng; // placement choices, under g_lock
static int g_placement;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static struct sigaction g_previous[2]; // SIGSEGV, SIGBUS
static HAK_ATOMIC(int) g_reporting;    // the first report takes the buffers below
static char g_maps_line[8192];
static char g_path[4096];

static uintptr_t slot_start(unsigned i) { return (uintptr_t)g_pool + PAGE + i * STRIDE; }
static uintptr_t slot_end(unsigned i) { return slot_start(i) + HAK_GUARDED_SLOT_PAGES * PAGE; }
static uintptr_t page_down(uintptr_t a) { return a & ~(uintptr_t)(PAGE - 1); }
static uintptr_t page_up(uintptr_t a) { return (a + PAGE - 1) & ~(uintptr_t)(PAGE - 1); }
static int tid(void) { return (int)syscall(SYS_gettid); }

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  if (x == 0)
    x = ((uintptr_t)s ^ hak_os_now_ms() ^ 0x9e3779b97f4a7c15ull) | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

// The slot whose pages or following guard page hold a; -1 outside the slots.
static int slot_at(uintptr_t a) {
  uintptr_t first = (uintptr_t)g_pool + PAGE;
  if (g_pool == NULL || a < first || a >= first + HAK_GUARDED_SLOTS * STRIDE)
    return -1;
  return (int)((a - first) / STRIDE);
}

// ---- symbolised stacks -----------------------------------------------------------

typedef struct find_exec {
  uintptr_t pc;
  hak_proc_maps_entry found; // path copied to g_path
} find_exec;

static bool holds_pc(void *arg, const hak_proc_maps_entry *e) {
  find_exec *f = arg;
  if (!e->executable || f->pc < e->start || f->pc >= e->end)
    return false;
  f->found = *e;
  size_t n = e->path_len < sizeof g_path ? e->path_len : sizeof g_path;
  memcpy(g_path, e->path, n);
  f->found.path = g_path;
  f->found.path_len = n;
  return true;
}

// One frame: "    #i 0x... in name (/path+0xoff)", or without the name when
// the file has no symbol for it; from the return address, so looked up one
// byte before it (inside the call).
static void write_frame(unsigned i, uintptr_t pc) {
  char buf[512];
  size_t n = hak_log_format(buf, sizeof buf, "    #%u %p", i, (void *)pc);
  find_exec f = {.pc = pc - 1};
  if (hak_proc_maps_each(g_maps_line, sizeof g_maps_line, holds_pc, &f)) {
    const hak_proc_maps_entry *m = &f.found;
    hak_elf_symbols syms;
    size_t len = 0;
    const char *name = NULL;
    bool open = m->path_len > 0 && m->path[0] == '/' &&
                hak_elf_symbols_open(&syms, m->path, m->path_len, m->start, m->offset);
    if (open)
      name = hak_elf_symbols_name(&syms, pc - 1, &len);
    if (name != NULL && len > 0) {
      n += hak_log_format(buf + n, sizeof buf - n, " in ");
      size_t k = len < sizeof buf - n - 1 ? len : sizeof buf - n - 1;
      memcpy(buf + n, name, k);
      n += k;
    }
    if (open)
      hak_elf_symbols_close(&syms);
    n += hak_log_format(buf + n, sizeof buf - n, " (");
    size_t k = m->path_len < sizeof buf - n - 1 ? m->path_len : sizeof buf - n - 1;
    memcpy(buf + n, m->path, k);
    n += k;
    n += hak_log_format(buf + n, sizeof buf - n, "+0x%llx)",
                        (unsigned long long)(pc - m->start + m->offset));
  }
  if (n > sizeof buf - 2)
    n = sizeof buf - 2;
  buf[n++] = '\n';
  hak_log_write_all(2, buf, n);
}

static void write_stack(const char *title, int thread, const uintptr_t *pc, unsigned depth) {
  hak_log_write_fmt(2, "  %s by thread %d:\n", title, thread);
  if (depth == 0)
    hak_log_write_fmt(2, "    (no stack: no unwinder in the process)\n");
  for (unsigned i = 0; i < depth; i++)
    write_frame(i, pc[i]);
}

// The report: one line, then the block's stacks (and the stack at hand, for a
// misuse found in a call), all with write(2). Only the first report of the
// process is written in full (the buffers are static); later ones write the
// line only.
static void report(const char *line, size_t len, const slot *s, bool freed, const uintptr_t *now,
                   unsigned now_depth, const char *now_title) {
  hak_stats_add(&hak_stats_global.guarded_faults, 1);
  hak_log_write_all(2, line, len);
  if (atomic_exchange_explicit(&g_reporting, 1, memory_order_acq_rel) != 0)
    return;
  write_stack("allocated", s->alloc_tid, s->alloc_pc, s->alloc_depth);
  if (freed)
    write_stack("freed", s->free_tid, s->free_pc, s->free_depth);
  if (now != NULL)
    write_stack(now_title, tid(), now, now_depth);
}

// ---- the fault handler -----------------------------------------------------------

static bool has_block(const slot *s) {
  uint8_t st = atomic_load_explicit(&s->state, memory_order_acquire);
  return st == SLOT_LIVE || st == SLOT_FREEING || st == SLOT_FREED;
}

// How far a lies from block s (0 inside it; a size-0 block has its byte).
static uintptr_t distance(const slot *s, uintptr_t a) {
  uintptr_t end = s->start + (s->size != 0 ? s->size : 1);
  return a < s->start ? s->start - a : a >= end ? a - end + 1 : 0;
}

// Reports the fault at a if it is the pool's: the nearest block of the slot
// holding a and of its two neighbours.
static bool report_fault(uintptr_t a, void *uctx) {
  int at = slot_at(a);
  if (at < 0 && g_pool != NULL && a >= (uintptr_t)g_pool && a < (uintptr_t)g_pool + PAGE)
    at = 0; // the guard before slot 0
  if (at < 0)
    return false;
  const slot *best = NULL;
  uintptr_t best_d = 0;
  for (int i = at - 1; i <= at + 1; i++) {
    if (i < 0 || i >= (int)HAK_GUARDED_SLOTS || !has_block(&g_slots[i]))
      continue;
    uintptr_t d = distance(&g_slots[i], a);
    if (best == NULL || d < best_d || (d == best_d && i == at)) {
      best = &g_slots[i];
      best_d = d;
    }
  }
  if (best == NULL)
    return false;
  bool freed = atomic_load_explicit(&best->state, memory_order_acquire) != SLOT_LIVE;
  const char *access = "access";
#if defined(__x86_64__)
  // The page fault's error code: bit 1 set for a write.
  if (uctx != NULL)
    access = (((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? "write" : "read";
#else
  (void)uctx;
#endif
  char line[256];
  long long offset = (long long)(a - best->start);
  size_t n;
  if (freed)
    n = hak_log_format(
        line, sizeof line,
        "hakmem: guarded: use-after-free %s at %p: block %p of %zu bytes, offset %lld\n", access,
        (void *)a, (void *)best->start, best->size, offset);
  else
    n = hak_log_format(line, sizeof line,
                       "hakmem: guarded: %s at %p: block %p of %zu bytes, offset %lld (%s)\n",
                       a < best->start ? "heap-buffer-underflow" : "heap-buffer-overflow",
                       (void *)a, (void *)best->start, best->size, offset, access);
  report(line, n, best, freed, NULL, 0, NULL);
  return true;
}

// Hands the signal to the handler installed before ours, as if ours had not
// been there: a handler is called, the default action is restored (a fault
// then happens again and kills; a sent signal is raised again).
static void chain(int sig, siginfo_t *info, void *uctx) {
  struct sigaction *prev = &g_previous[sig == SIGBUS];
  if ((prev->sa_flags & SA_SIGINFO) != 0 && prev->sa_sigaction != NULL) {
    prev->sa_sigaction(sig, info, uctx);
    return;
  }
  if ((prev->sa_flags & SA_SIGINFO) == 0 && prev->sa_handler != SIG_DFL &&
      prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
    return;
  }
  bool sent = info == NULL || info->si_code <= 0;
  if (prev->sa_handler == SIG_IGN && sent)
    return;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  if (sent)
    raise(sig);
}

static void on_fault(int sig, siginfo_t *info, void *uctx) {
  int saved = errno;
  // Faults only (not kill), in the pool, once: a handler after ours that
  // returns would bring the same fault back.
  if (info != NULL && info->si_code > 0 && g_pool != NULL &&
      (uintptr_t)info->si_addr - (uintptr_t)g_pool < POOL_BYTES &&
      atomic_load_explicit(&g_reporting, memory_order_acquire) == 0)
    report_fault((uintptr_t)info->si_addr, uctx);
  errno = saved;
  chain(sig, info, uctx);
}

// ---- initialisation --------------------------------------------------------------

// The unwinder for C programs, which have no libgcc_s of their own: loaded
// (dlopen calls malloc: before main, outside hakmem) only when
// HAKMEM_GUARD_SAMPLE is set, so that the default rate costs a C program no
// library; without it, a C program's reports have no stacks.
__attribute__((constructor)) static void guarded_load_unwinder(void) {
  const char *v = getenv("HAKMEM_GUARD_SAMPLE");
  if (v != NULL && v[0] != '\0' && strcmp(v, "0") != 0)
    hak_backtrace_init(true);
}

// The pool's reserve, made at the first guarded allocation (g_lock held), so
// that a program the sampler never picks pays no address space for it.
// False when it cannot be had; no later call tries again.
static bool g_reserve_failed;
static bool reserve_pool(void) {
  if (g_pool != NULL)
    return true;
  if (g_reserve_failed)
    return false;
  g_reserve_failed = true;
  uint8_t *raw = hak_os_reserve(POOL_BYTES + HAK_SS_SIZE);
  if (raw == NULL)
    return false;
  uintptr_t base = ((uintptr_t)raw + HAK_SS_MASK) & ~HAK_SS_MASK;
  size_t head = base - (uintptr_t)raw;
  if (head > 0)
    hak_os_unreserve(raw, head);
  if (HAK_SS_SIZE - head > 0)
    hak_os_unreserve((void *)(base + POOL_BYTES), HAK_SS_SIZE - head);
  uint8_t *pool = (uint8_t *)base;
  if (hak_os_protect(pool, POOL_BYTES, false) != 0 ||
      hak_segmap_set(pool, POOL_BYTES, HAK_REGION_GUARDED, HAK_REGION_GUARDED) != 0) {
    hak_os_unreserve(pool, POOL_BYTES);
    return false;
  }
  for (unsigned i = 0; i < HAK_GUARDED_SLOTS; i++)
    g_empty[i] = (uint16_t)(HAK_GUARDED_SLOTS - 1 - i); // slot 0 first
  g_nempty = HAK_GUARDED_SLOTS;
  __atomic_store_n(&g_pool, pool, __ATOMIC_RELEASE); // read by the fault handler
  g_reserve_failed = false;
  return true;
}

static void init_once(void) {
  g_sample = hak_options_current.guard_sample;
  if (g_sample == 0)
    return;
  hak_backtrace_init(false);
  hak_backtrace_warm_up();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous[0]);
  sigaction(SIGBUS, &sa, &g_previous[1]);
  __atomic_store_n(&hak_guarded_on, true, __ATOMIC_RELEASE);
}

void hak_guarded_init(void) { pthread_once(&g_once, init_once); }

// ---- allocation and free ---------------------------------------------------------

static bool slack_intact(const slot *s, uintptr_t *bad) {
  uintptr_t lo = page_down(s->start), end = s->start + s->size, hi = page_up(end);
  if (s->size == 0)
    hi = page_up(end + 1);
  for (uintptr_t a = lo; a < s->start; a++)
    if (*(const uint8_t *)a != SLACK_BYTE) {
      *bad = a;
      return false;
    }
  for (uintptr_t a = end; a < hi; a++)
    if (*(const uint8_t *)a != SLACK_BYTE) {
      *bad = a;
      return false;
    }
  return true;
}

void *hak_guarded_alloc(size_t size, size_t align, bool zero) {
  (void)zero; // a block's pages are fresh or were given back: they read as zero
  if (!__atomic_load_n(&hak_guarded_on, __ATOMIC_ACQUIRE) || size > HAK_GUARDED_MAX_SIZE ||
      align > PAGE)
    return NULL;
  if (align < 16)
    align = 16;
  hak_stats_mutex_lock(&g_lock);
  int i = -1;
  if (!reserve_pool()) {
    pthread_mutex_unlock(&g_lock);
    return NULL; // no pool to be had: an ordinary block, not a fallback
  }
  if (g_nempty > 0) {
    i = g_empty[--g_nempty];
  } else if (g_nquarantine > 0) {
    i = g_quarantine[g_qhead];
    g_qhead = (g_qhead + 1) % HAK_GUARDED_SLOTS;
    g_nquarantine--;
  }
  bool at_start = g_placement == HAK_GUARDED_PLACE_START ||
                  (g_placement == HAK_GUARDED_PLACE_RANDOM && (xorshift(&g_rng) & 3) == 0);
  if (i >= 0)
    atomic_store_explicit(&g_slots[i].state, SLOT_ALLOCATING, memory_order_relaxed);
  pthread_mutex_unlock(&g_lock);
  if (i < 0) {
    hak_stats_add(&hak_stats_global.guarded_fallbacks, 1);
    return NULL;
  }
  // Once a slot is had (a full pool falls back without the cost), and outside
  // the lock: the unwinder takes the loader's.
  int mark = 0;
  uintptr_t pc[HAK_GUARDED_DEPTH];
  unsigned depth = hak_backtrace_capture(pc, HAK_GUARDED_DEPTH, &mark);
  slot *s = &g_slots[i];
  size_t bytes = size != 0 ? size : 1;
  uintptr_t start = at_start ? slot_start(i) : (slot_end(i) - bytes) & ~(uintptr_t)(align - 1);
  uintptr_t lo = page_down(start), hi = page_up(start + bytes);
  if (hak_os_protect((void *)lo, hi - lo, true) != 0) {
    hak_stats_mutex_lock(&g_lock);
    atomic_store_explicit(&s->state, SLOT_EMPTY, memory_order_relaxed);
    g_empty[g_nempty++] = (uint16_t)i;
    pthread_mutex_unlock(&g_lock);
    hak_stats_add(&hak_stats_global.guarded_fallbacks, 1);
    return NULL;
  }
  memset((void *)lo, SLACK_BYTE, start - lo);
  memset((void *)(start + size), SLACK_BYTE, hi - (start + size));
  s->start = start;
  s->size = size;
  s->alloc_tid = tid();
  s->alloc_depth = (uint8_t)depth;
  memcpy(s->alloc_pc, pc, depth * sizeof pc[0]);
  s->free_depth = 0;
  s->free_tid = 0;
  atomic_store_explicit(&s->state, SLOT_LIVE, memory_order_release);
  hak_stats_add(&hak_stats_global.guarded_allocs, 1);
  hak_stats_add(&hak_stats_global.guarded_in_use, 1);
  return (void *)start;
}

static void __attribute__((noreturn, cold)) report_invalid(const char *what, const void *p) {
  hak_log_fatal("%s: invalid pointer %p (not a block hakmem handed out)", what, p);
}

// A free (or realloc, or malloc_usable_size) of a block already freed.
static void __attribute__((noreturn, cold))
report_freed(const char *what, const slot *s, const uintptr_t *pc, unsigned depth) {
  char line[256];
  size_t n = hak_log_format(line, sizeof line,
                            "hakmem: guarded: %s at %p: block %p of %zu bytes, offset 0 (%s)\n",
                            what[0] == 'f' ? "double free" : "use-after-free", (void *)s->start,
                            (void *)s->start, s->size, what);
  report(line, n, s, true, pc, depth, what[0] == 'f' ? "freed again" : "used again");
  abort();
}

void hak_guarded_free(void *p, const char *what) {
  int mark = 0;
  uintptr_t pc[HAK_GUARDED_DEPTH];
  unsigned depth = hak_backtrace_capture(pc, HAK_GUARDED_DEPTH, &mark);
  int i = slot_at((uintptr_t)p);
  if (i < 0)
    report_invalid(what, p);
  slot *s = &g_slots[i];
  hak_stats_mutex_lock(&g_lock);
  uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
  bool mine = s->start == (uintptr_t)p;
  if (st == SLOT_LIVE && mine)
    atomic_store_explicit(&s->state, SLOT_FREEING, memory_order_relaxed);
  pthread_mutex_unlock(&g_lock);
  if ((st == SLOT_FREEING || st == SLOT_FREED) && mine)
    report_freed(what, s, pc, depth);
  if (st != SLOT_LIVE || !mine)
    report_invalid(what, p);
  s->free_tid = tid();
  s->free_depth = (uint8_t)depth;
  memcpy(s->free_pc, pc, depth * sizeof pc[0]);
  uintptr_t bad;
  if (!slack_intact(s, &bad)) {
    char line[256];
    size_t n =
        hak_log_format(line, sizeof line,
                       "hakmem: guarded: heap-buffer-%s at %p: block %p of %zu bytes, offset "
                       "%lld (found by %s)\n",
                       bad < s->start ? "underflow" : "overflow", (void *)bad, (void *)s->start,
                       s->size, (long long)(bad - s->start), what);
    report(line, n, s, true, NULL, 0, NULL);
    abort();
  }
  uintptr_t lo = page_down(s->start), hi = page_up(s->start + (s->size != 0 ? s->size : 1));
  hak_os_protect((void *)lo, hi - lo, false);
  hak_os_purge((void *)lo, hi - lo);
  hak_stats_mutex_lock(&g_lock);
  atomic_store_explicit(&s->state, SLOT_FREED, memory_order_release);
  g_quarantine[(g_qhead + g_nquarantine) % HAK_GUARDED_SLOTS] = (uint16_t)i;
  g_nquarantine++;
  pthread_mutex_unlock(&g_lock);
  hak_stats_add(&hak_stats_global.guarded_in_use, -1);
}

// The state of slot i and whether its block starts at p, read under the lock
// (a slot may be reused meanwhile), with the block's size.
static uint8_t state_of(unsigned i, const void *p, bool *mine, size_t *size) {
  hak_stats_mutex_lock(&g_lock);
  const slot *s = &g_slots[i];
  uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
  *mine = s->start == (uintptr_t)p;
  *size = s->size;
  pthread_mutex_unlock(&g_lock);
  return st;
}

size_t hak_guarded_usable_size(const void *p, const char *what) {
  int i = slot_at((uintptr_t)p);
  if (i < 0)
    report_invalid(what, p);
  const slot *s = &g_slots[i];
  bool mine;
  size_t size;
  uint8_t st = state_of((unsigned)i, p, &mine, &size);
  if (st == SLOT_LIVE && mine)
    return size;
  if ((st == SLOT_FREEING || st == SLOT_FREED) && mine) {
    int mark = 0;
    uintptr_t pc[HAK_GUARDED_DEPTH];
    unsigned depth = hak_backtrace_capture(pc, HAK_GUARDED_DEPTH, &mark);
    report_freed(what, s, pc, depth);
  }
  report_invalid(what, p);
}

bool hak_guarded_owns_live(const void *p) {
  int i = slot_at((uintptr_t)p);
  if (i < 0)
    return false;
  bool mine;
  size_t size;
  return state_of((unsigned)i, p, &mine, &size) == SLOT_LIVE && mine;
}

// ---- fork and tests --------------------------------------------------------------

void hak_guarded_fork_prepare(void) { hak_stats_mutex_lock(&g_lock); }
void hak_guarded_fork_parent(void) { pthread_mutex_unlock(&g_lock); }
void hak_guarded_fork_child(void) { pthread_mutex_init(&g_lock, NULL); }

void hak_guarded_set_placement(int placement) {
  hak_stats_mutex_lock(&g_lock);
  g_placement = placement;
  pthread_mutex_unlock(&g_lock);
}

unsigned hak_guarded_live_slots(void) {
  unsigned n = 0;
  for (unsigned i = 0; i < HAK_GUARDED_SLOTS; i++)
    n += atomic_load_explicit(&g_slots[i].state, memory_order_acquire) == SLOT_LIVE;
  return n;
}

unsigned hak_guarded_quarantined_slots(void) {
  hak_stats_mutex_lock(&g_lock);
  unsigned n = g_nquarantine;
  pthread_mutex_unlock(&g_lock);
  return n;
}
