// How much memory malloc hands out before the address-space limit (ulimit -v,
// RLIMIT_AS) stops it, and whether it hands memory out again once everything
// is freed. address_space_test.sh runs it under a limit with glibc's malloc and
// with libhakmem*.so preloaded, and compares the counts. It links no allocator:
// it gets glibc's, or whichever one is preloaded.
//
//   address_space_probe MODE
//     malloc-1m    malloc(1 MiB) until NULL
//     malloc-64k   malloc(64 KiB - 64) until NULL: a medium block that fits
//                  the 64 KiB class in every build (the checked builds keep
//                  an 8-byte trailer in each block, which an exact 64 KiB
//                  request would push into the 80 KiB class)
//     realloc-1m   one block grown by realloc in 1 MiB steps until NULL
//
// Two rounds. A round allocates until the allocator returns NULL, checks that
// errno is ENOMEM, then checks the bytes it wrote (the first and last byte of
// each block; of each new MiB for realloc, whose failure must leave the old
// block as it was) and frees everything. Running out is an ordinary result:
// the second round must get memory again, at least one block.
//
// Prints "count N again M" on stdout: blocks (MiB for realloc-1m) in the first
// and in the second round. Exit status: 0 done; 1 a check failed (a line on
// stderr says which); 2 bad usage or no limit set.
//
// Output goes through snprintf and write(2): stdio's buffers come from malloc
// and would take part in the count.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
  for (size_t off = 0; off < len;) {
    ssize_t w = write(fd, buf + off, len - off);
    if (w <= 0)
      return;
    off += (size_t)w;
  }
}

static const char *g_mode = "?";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  say(2, "address_space_probe %s: FAIL: %s\n", g_mode, msg);
  exit(1);
}

// The byte written at position `i` (a block's index, or a MiB's).
static unsigned char tag(size_t i) { return (unsigned char)(i * 131 + 17); }

// The allocator returned NULL: it must say why as malloc does.
static void expect_enomem(int err, const char *call, size_t size, size_t count) {
  if (err != ENOMEM)
    fail("%s(%zu) returned NULL after %zu successes with errno %d (%s), not ENOMEM", call, size,
         count, err, strerror(err));
}

// The pointer table for the malloc modes, outside malloc (it must not take
// part in the count). Enough entries for every block the limit allows.
static void **g_blocks;
static size_t g_capacity;

static void map_table(size_t limit, size_t block) {
  g_capacity = limit / block + 1;
  void *p = mmap(NULL, g_capacity * sizeof(void *), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    fail("mmap of a %zu-entry pointer table: errno %d", g_capacity, errno);
  g_blocks = p;
}

// One round of malloc(block) until NULL; returns the number of blocks.
static size_t malloc_round(size_t block) {
  size_t n = 0;
  for (;;) {
    errno = 0;
    unsigned char *p = malloc(block);
    if (p == NULL) {
      expect_enomem(errno, "malloc", block, n);
      break;
    }
    if (n == g_capacity)
      fail("%zu blocks of %zu bytes and still no NULL: more than the limit holds", n, block);
    p[0] = tag(n);
    p[block - 1] = tag(n + 1);
    g_blocks[n++] = p;
  }
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = g_blocks[i];
    if (p[0] != tag(i) || p[block - 1] != tag(i + 1))
      fail("block %zu of %zu (%p) changed after malloc ran out", i, n, (const void *)p);
  }
  for (size_t i = 0; i < n; i++)
    free(g_blocks[i]);
  return n;
}

// One round of realloc growth in 1 MiB steps; returns the MiB reached.
static size_t realloc_round(void) {
  unsigned char *p = NULL;
  size_t mib = 0;
  for (;;) {
    size_t size = (mib + 1) * MIB;
    errno = 0;
    unsigned char *q = realloc(p, size);
    if (q == NULL) {
      expect_enomem(errno, "realloc", size, mib);
      break;
    }
    p = q;
    p[mib * MIB] = tag(mib);
    p[size - 1] = tag(mib + 1);
    mib++;
  }
  // A failed realloc leaves the old block allocated and unchanged.
  for (size_t i = 0; i < mib; i++)
    if (p[i * MIB] != tag(i) || p[(i + 1) * MIB - 1] != tag(i + 1))
      fail("MiB %zu of the %zu MiB block changed (moved by realloc, or after it failed)", i, mib);
  free(p);
  return mib;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    say(2, "usage: %s malloc-1m|malloc-64k|realloc-1m  (under ulimit -v)\n", argv[0]);
    return 2;
  }
  g_mode = argv[1];
  size_t block = 0;
  if (strcmp(g_mode, "malloc-1m") == 0) {
    block = MIB;
  } else if (strcmp(g_mode, "malloc-64k") == 0) {
    block = 64 * KIB - 64;
  } else if (strcmp(g_mode, "realloc-1m") != 0) {
    say(2, "address_space_probe: unknown mode '%s'\n", g_mode);
    return 2;
  }

  struct rlimit lim;
  if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) {
    say(2, "address_space_probe: no address-space limit: run it under ulimit -v\n");
    return 2;
  }

  size_t first, again;
  if (block != 0) {
    map_table((size_t)lim.rlim_cur, block);
    first = malloc_round(block);
    again = malloc_round(block);
  } else {
    first = realloc_round();
    again = realloc_round();
  }
  if (again == 0)
    fail("after freeing everything, no allocation succeeds again (first round: %zu)", first);
  say(1, "count %zu again %zu\n", first, again);
  return 0;
}
