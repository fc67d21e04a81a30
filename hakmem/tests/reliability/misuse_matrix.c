// The misuse matrix's program: one misuse of malloc and friends per run, for
// any allocator (preloaded, or glibc's own). tools/misuse_matrix.py runs every
// case under every allocator and classifies how the process ended.
//
//   misuse_matrix CASE        run one case
//   misuse_matrix --list      the case names, one per line
//   misuse_matrix --describe  "name<TAB>what it does", one per line
//
// A case prints "victim 0x..." (the address it misuses) on stderr, does the
// misuse and, if the process is still alive, does what would expose silent
// damage: it allocates blocks of the same size and checks them against each
// other and against the blocks it still holds. Exit status:
//   0   the misuse went unnoticed and no damage showed
//   3   "DUPLICATE" or "OVERLAP" printed: a block was handed out twice, or
//       over memory the program still holds (silent corruption)
//   2   bad arguments
//   77  a precondition of the case failed (say, realloc did not move a block)
// An allocator that catches the misuse ends the process first (abort).
//
// Output goes through write(2) only: stdio may allocate, and the allocator
// may be in any state after a misuse.
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
  kSilent = 0,
  kUsage = 2,
  kDamage = 3,
  kPrecondition = 77,
};

enum {
  kKiB = 1024,
  kMiB = 1024 * 1024,
  kPage = 4096,
};

// ---- output -------------------------------------------------------------------

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

// Formats into a stack buffer: no allocation on this path.
__attribute__((format(printf, 2, 3))) static void say_fd(int fd, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  write_all(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

#define say(...) say_fd(2, __VA_ARGS__)

static void announce(const void *p) { say("victim %p\n", p); }

__attribute__((noreturn)) static void precondition_failed(const char *what) {
  say("precondition failed: %s\n", what);
  _exit(kPrecondition);
}

// Hides where a pointer came from, so that the compiler neither warns about
// the deliberate misuse nor deletes an allocation it sees is unused.
static void *launder(void *p) {
  __asm__ volatile("" : "+r"(p) : : "memory");
  return p;
}

static void *xmalloc(size_t n) {
  void *p = launder(malloc(n));
  if (p == NULL)
    precondition_failed("malloc returned NULL");
  return p;
}

static char *xmalloc_c(size_t n) { return (char *)xmalloc(n); }

static void *map_pages(size_t pages) {
  void *m = mmap(NULL, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    precondition_failed("mmap");
  return launder(m);
}

// ---- looking for damage ---------------------------------------------------------

// Memory the program holds: live blocks, blocks handed out after the misuse,
// and memory the allocator must never hand out (stack, globals, mappings).
// Static, so that recording them allocates nothing.
struct held {
  uintptr_t start;
  size_t size;
};

enum { kMaxHeld = 4096 };
static struct held g_held[kMaxHeld];
static size_t g_nheld;

static void hold(const void *p, size_t n) {
  if (p == NULL || g_nheld == kMaxHeld)
    return;
  g_held[g_nheld].start = (uintptr_t)p;
  g_held[g_nheld].size = n;
  g_nheld++;
}

static int by_start(const void *a, const void *b) {
  uintptr_t x = ((const struct held *)a)->start, y = ((const struct held *)b)->start;
  return x < y ? -1 : x > y;
}

// Any two held ranges that share a byte mean the allocator handed memory out
// twice: say so and exit 3.
static void check_held(void) {
  qsort(g_held, g_nheld, sizeof g_held[0], by_start);
  for (size_t i = 0; i + 1 < g_nheld; i++) {
    const struct held *a = &g_held[i], *b = &g_held[i + 1];
    if (a->start == b->start) {
      say("DUPLICATE %p handed out twice\n", (void *)a->start);
      _exit(kDamage);
    }
    if (a->start + a->size > b->start) {
      say("OVERLAP %p (%zu bytes) and %p (%zu bytes)\n", (void *)a->start, a->size,
          (void *)b->start, b->size);
      _exit(kDamage);
    }
  }
}

// Takes `count` blocks of n bytes and keeps them.
static void take(size_t n, int count) {
  for (int i = 0; i < count; i++)
    hold(launder(malloc(n)), n);
}

static void take_aligned(size_t align, size_t n, int count) {
  for (int i = 0; i < count; i++) {
    void *p = NULL;
    if (posix_memalign(&p, align, n) == 0)
      hold(launder(p), n);
  }
}

// The end of every case the allocator let through. Only after the address
// check (a write into a block handed out twice would break a free-list link
// first) is every held range written at both ends: a block handed out in
// memory that is no longer mapped faults here instead of passing as silent.
__attribute__((noreturn)) static void survived(void) {
  check_held();
  for (size_t i = 0; i < g_nheld; i++) {
    volatile char *p = (volatile char *)g_held[i].start;
    p[0] = 0x5A;
    p[g_held[i].size - 1] = 0x5A;
  }
  say("survived: nothing reported, no damage seen\n");
  _exit(kSilent);
}

// ---- double frees -----------------------------------------------------------------

static void double_free_of(void *p, size_t n) {
  void *again = launder(p);
  announce(p);
  free(p);
  free(again);
  take(n, 3);
}

static void case_double_free(void) {
  double_free_of(xmalloc(48), 48);
  survived();
}

// a, b, a: the block freed twice is not the last one freed.
static void case_double_free_aba(void) {
  void *a = xmalloc(48);
  void *b = xmalloc(48);
  void *again = launder(a);
  announce(a);
  free(a);
  free(b);
  free(again);
  take(48, 4);
  survived();
}

// 2000 blocks of the same size freed after the victim overflow any thread
// cache, so the victim has gone back to its slab (or bin) when freed again.
enum { kFlushBlocks = 2000 };
static void *g_others[kFlushBlocks];

static void case_double_free_flushed(void) {
  void *p = xmalloc(48);
  for (int i = 0; i < kFlushBlocks; i++)
    g_others[i] = xmalloc(48);
  void *again = launder(p);
  free(p);
  for (int i = 0; i < kFlushBlocks; i++)
    free(g_others[i]);
  announce(again);
  free(again);
  // The victim may be anywhere in the free lists now: take them all.
  take(48, kFlushBlocks + 16);
  survived();
}

static void *g_shared_block;

// Frees the block the main thread freed already, then takes blocks here too:
// a duplicate may come out of this thread's cache or the main thread's.
static void *free_again_thread(void *arg) {
  (void)arg;
  void *p = launder(g_shared_block);
  announce(p);
  free(p);
  take(48, 3);
  return NULL;
}

static void run_thread(void *(*fn)(void *)) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, NULL) != 0)
    precondition_failed("pthread_create");
  pthread_join(t, NULL);
}

static void case_double_free_other_thread(void) {
  g_shared_block = xmalloc(48);
  free(launder(g_shared_block));
  run_thread(free_again_thread);
  take(48, 3);
  survived();
}

// A thread allocates and frees a block and exits; the main thread frees the
// block again (a remote double free whose owner is gone).
static void *alloc_free_exit_thread(void *arg) {
  (void)arg;
  g_shared_block = xmalloc(48);
  free(launder(g_shared_block));
  return NULL;
}

static void case_double_free_exited_thread(void) {
  run_thread(alloc_free_exit_thread);
  void *p = launder(g_shared_block);
  announce(p);
  free(p);
  take(48, 3);
  survived();
}

static void case_double_free_medium(void) {
  double_free_of(xmalloc(24 * kKiB), 24 * kKiB);
  survived();
}

static void case_double_free_large(void) {
  double_free_of(xmalloc(4 * kMiB), 4 * kMiB);
  survived();
}

static void case_double_free_calloc(void) {
  void *p = launder(calloc(6, 8));
  if (p == NULL)
    precondition_failed("calloc returned NULL");
  double_free_of(p, 48);
  survived();
}

static void double_free_aligned(void *p, size_t align, size_t n) {
  if (p == NULL)
    precondition_failed("aligned allocation returned NULL");
  void *again = launder(p);
  announce(p);
  free(p);
  free(again);
  take_aligned(align, n, 3);
  survived();
}

static void case_double_free_posix_memalign(void) {
  void *p = NULL;
  if (posix_memalign(&p, 64, 48) != 0)
    p = NULL;
  double_free_aligned(launder(p), 64, 48);
}

static void case_double_free_memalign(void) {
  double_free_aligned(launder(memalign(256, 200)), 256, 200);
}

// ---- frees of pointers that are not blocks ---------------------------------------

// Frees p + offset of a live n-byte block (which the program keeps), then
// takes blocks of that size: one over the kept block is an overlap.
static void free_interior(char *p, size_t n, size_t offset) {
  hold(p, n);
  announce(p + offset);
  free(launder(p + offset));
  take(n, 4);
  survived();
}

static void case_free_interior(void) { free_interior(xmalloc_c(256), 256, 64); }

// An off-by-one pointer: not even aligned.
static void case_free_interior_1(void) { free_interior(xmalloc_c(48), 48, 1); }

static void case_free_interior_medium(void) {
  free_interior(xmalloc_c(24 * kKiB), 24 * kKiB, 4096);
}

// A page-aligned interior pointer, which looks like the start of a mapping.
static void case_free_interior_large(void) { free_interior(xmalloc_c(4 * kMiB), 4 * kMiB, 4096); }

static void case_free_interior_aligned(void) {
  char *p = (char *)launder(aligned_alloc(64, 256));
  if (p == NULL)
    precondition_failed("aligned_alloc returned NULL");
  free_interior(p, 256, 64);
}

// glibc reads the word before a pointer as its chunk size: these words make
// it 0, so its verdict does not depend on what the stack held.
static _Alignas(16) uint64_t g_global_words[4];

static void case_free_stack(void) {
  _Alignas(16) uint64_t words[4] = {0, 0, 0, 0};
  hold(words, sizeof words);
  void *p = launder((void *)&words[2]);
  announce(p);
  free(p);
  take(16, 4);
  take(32, 4);
  survived();
}

static void case_free_global(void) {
  hold(g_global_words, sizeof g_global_words);
  void *p = launder(&g_global_words[2]);
  announce(p);
  free(p);
  take(16, 4);
  take(32, 4);
  survived();
}

static void case_free_unmapped(void) {
  void *m = map_pages(1);
  munmap(m, kPage);
  announce(m);
  free(m);
  take(16, 4);
  survived();
}

// The second page of a mapping of the program's own (the word before it is
// mapped and 0).
static void case_free_mmapped(void) {
  char *m = (char *)map_pages(2);
  hold(m, 2 * kPage);
  announce(m + kPage);
  free(launder(m + kPage));
  take(16, 4);
  take(kPage, 2);
  survived();
}

// ---- realloc ------------------------------------------------------------------------

static void case_realloc_interior(void) {
  char *p = xmalloc_c(256);
  hold(p, 256);
  announce(p + 32);
  void *q = launder(realloc(launder(p + 32), 512));
  say("realloc returned %p\n", q);
  hold(q, 512);
  take(256, 4);
  survived();
}

static void case_realloc_freed(void) {
  void *p = xmalloc(48);
  void *again = launder(p);
  announce(p);
  free(p);
  void *q = launder(realloc(again, 96));
  say("realloc returned %p\n", q);
  hold(q, 96);
  take(48, 4);
  survived();
}

static void case_realloc_stack(void) {
  _Alignas(16) uint64_t words[4] = {0, 0, 0, 0};
  hold(words, sizeof words);
  void *p = launder((void *)&words[2]);
  announce(p);
  void *q = launder(realloc(p, 100));
  say("realloc returned %p\n", q);
  hold(q, 100);
  take(16, 4);
  survived();
}

// realloc moved the block (and freed the old one); the old pointer is freed.
// A live block allocated right after the victim keeps it from growing in
// place.
static void case_free_after_realloc(void) {
  void *p = xmalloc(48);
  hold(xmalloc(48), 48);
  void *old = launder(p);
  void *q = launder(realloc(p, 4096));
  if (q == NULL || q == old)
    precondition_failed("realloc did not move the block");
  hold(q, 4096);
  announce(old);
  free(old);
  take(48, 4);
  survived();
}

// ---- malloc_usable_size -------------------------------------------------------------

static void usable_size_of(void *p) {
  announce(p);
  size_t n = malloc_usable_size(launder(p));
  say("malloc_usable_size returned %zu\n", n);
  survived();
}

static void case_usable_size_mmapped(void) { usable_size_of((char *)map_pages(2) + kPage); }

static void case_usable_size_freed(void) {
  void *p = xmalloc(48);
  void *again = launder(p);
  free(p);
  usable_size_of(again);
}

static void case_usable_size_interior(void) {
  char *p = xmalloc_c(256);
  hold(p, 256);
  usable_size_of(p + 64);
}

// ---- writes into freed blocks and past the end ---------------------------------------

// A stale pointer stored into a freed block's first word, where most
// allocators keep the free-list link: the pointer is a live block's, so an
// allocator that follows it hands the live block out again. Four blocks freed
// before the victim keep the free list going past it (an allocator that
// counts its cached blocks follows the link only if more are left).
static void case_uaf_write_link(void) {
  void *before[4];
  for (int i = 0; i < 4; i++)
    before[i] = xmalloc(48);
  void *p = xmalloc(48);
  void *live = xmalloc(48);
  hold(live, 48);
  for (int i = 0; i < 4; i++)
    free(before[i]);
  void *alias = launder(p);
  announce(p);
  free(p);
  memcpy(alias, &live, sizeof live);
  take(48, 8);
  survived();
}

// Bytes 24..31 of a freed 64-byte block: past any link or free mark.
static void case_uaf_write_middle(void) {
  char *p = xmalloc_c(64);
  char *alias = (char *)launder(p);
  announce(p);
  free(p);
  memset(alias + 24, 0x5A, 8);
  take(64, 8);
  survived();
}

// 16 bytes past the end of a 48-byte block, into whatever follows it (the
// next block, or the allocator's header of it).
static void case_overflow_neighbour(void) {
  char *a = xmalloc_c(48);
  char *b = xmalloc_c(48);
  say("neighbour %p\n", (void *)b);
  announce(a);
  memset(launder(a) + 48, 0x5A, 16);
  free(a);
  free(b);
  take(48, 8);
  survived();
}

// ---- the cases ----------------------------------------------------------------------

struct misuse {
  const char *name;
  void (*run)(void);
  const char *what;
};

static const struct misuse kCases[] = {
    {"double-free", case_double_free, "free(p); free(p), 48 B"},
    {"double-free-aba", case_double_free_aba, "free(a); free(b); free(a), 48 B"},
    {"double-free-flushed", case_double_free_flushed,
     "48 B freed, 2000 more freed (thread cache flushed), freed again"},
    {"double-free-other-thread", case_double_free_other_thread,
     "freed by the main thread, freed again by a second thread, 48 B"},
    {"double-free-exited-thread", case_double_free_exited_thread,
     "allocated and freed by a thread that exited, freed again by the main thread, 48 B"},
    {"double-free-medium", case_double_free_medium, "free(p); free(p), 24 KiB"},
    {"double-free-large", case_double_free_large, "free(p); free(p), 4 MiB"},
    {"double-free-calloc", case_double_free_calloc, "free(p); free(p), calloc(6, 8)"},
    {"double-free-posix-memalign", case_double_free_posix_memalign,
     "free(p); free(p), posix_memalign(64, 48)"},
    {"double-free-memalign", case_double_free_memalign, "free(p); free(p), memalign(256, 200)"},
    {"free-interior", case_free_interior, "free(p + 64), 256 B block"},
    {"free-interior-1", case_free_interior_1, "free(p + 1), 48 B block"},
    {"free-interior-medium", case_free_interior_medium, "free(p + 4096), 24 KiB block"},
    {"free-interior-large", case_free_interior_large, "free(p + 4096), 4 MiB block"},
    {"free-interior-aligned", case_free_interior_aligned, "free(p + 64), aligned_alloc(64, 256)"},
    {"realloc-interior", case_realloc_interior, "realloc(p + 32, 512), 256 B block"},
    {"realloc-freed", case_realloc_freed, "free(p); realloc(p, 96), 48 B"},
    {"realloc-stack", case_realloc_stack, "realloc of a stack address"},
    {"free-after-realloc", case_free_after_realloc,
     "q = realloc(p, 4096) moved the block; free(p), 48 B"},
    {"free-stack", case_free_stack, "free of a stack address"},
    {"free-global", case_free_global, "free of a global"},
    {"free-unmapped", case_free_unmapped, "free of a page that was munmapped"},
    {"free-mmapped", case_free_mmapped, "free of a page the program mapped with mmap"},
    {"usable-size-mmapped", case_usable_size_mmapped,
     "malloc_usable_size of a page the program mapped"},
    {"usable-size-freed", case_usable_size_freed, "malloc_usable_size of a freed 48 B block"},
    {"usable-size-interior", case_usable_size_interior, "malloc_usable_size(p + 64), 256 B block"},
    {"uaf-write-link", case_uaf_write_link,
     "a live block's address written into the first word of a freed 48 B block; malloc(48) x8"},
    {"uaf-write-middle", case_uaf_write_middle,
     "bytes 24..31 of a freed 64 B block written; malloc(64) x8"},
    {"overflow-neighbour", case_overflow_neighbour,
     "16 bytes written past the end of a 48 B block; both blocks freed"},
};

enum { kNumCases = sizeof kCases / sizeof kCases[0] };

static int usage(void) {
  say("usage: misuse_matrix CASE | --list | --describe\n");
  return kUsage;
}

int main(int argc, char **argv) {
  if (argc != 2)
    return usage();
  const char *arg = argv[1];
  if (strcmp(arg, "--list") == 0 || strcmp(arg, "--describe") == 0) {
    int describe = strcmp(arg, "--describe") == 0;
    for (int i = 0; i < kNumCases; i++) {
      if (describe) {
        say_fd(1, "%s\t%s\n", kCases[i].name, kCases[i].what);
      } else {
        say_fd(1, "%s\n", kCases[i].name);
      }
    }
    return 0;
  }
  for (int i = 0; i < kNumCases; i++) {
    if (strcmp(arg, kCases[i].name) == 0) {
      kCases[i].run();
      return kSilent; // every case ends in survived() or dies before
    }
  }
  say("misuse_matrix: unknown case '%s' (see --list)\n", arg);
  return usage();
}
