#include "foreign.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <unistd.h>

#include "log.h"

// glibc's own allocator, reached under names a preloaded malloc does not take.
extern void __libc_free(void *p);
extern void *__libc_realloc(void *p, size_t n);
extern struct mallinfo __libc_mallinfo(void);

// glibc's chunk header (malloc.c): the size word below the user pointer
// carries three flag bits; chunks are 16-byte aligned and at least 32 bytes.
#define PREV_INUSE ((size_t)1)
#define IS_MMAPPED ((size_t)2)
#define CHUNK_FLAGS ((size_t)7)
#define MIN_CHUNK ((size_t)32)

// The readable mapping holding address a, from /proc/self/maps (read with
// plain system calls into a stack buffer: nothing allocates).
static bool readable_mapping(uintptr_t a, uintptr_t *lo, uintptr_t *hi) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  char buf[4096];
  size_t have = 0;
  bool found = false, done = false;
  while (!found && !done) {
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0)
      done = true;
    else
      have += (size_t)n;
    buf[have] = '\0';
    size_t line = 0;
    for (size_t i = 0; i < have && !found; i++) {
      if (buf[i] != '\n' && !(done && i + 1 == have))
        continue;
      const char *s = buf + line;
      uintptr_t start = hak_parse_hex(&s);
      uintptr_t end = *s == '-' ? (s++, hak_parse_hex(&s)) : 0;
      if (*s == ' ' && s[1] == 'r' && start <= a && a < end) {
        *lo = start;
        *hi = end;
        found = true;
      }
      line = i + 1;
    }
    // Keep the unfinished last line for the next read.
    if (line > 0 && line < have) {
      for (size_t i = line; i < have; i++)
        buf[i - line] = buf[i];
      have -= line;
    } else if (line >= have) {
      have = 0;
    } else if (have >= sizeof buf - 1) {
      have = 0; // a line longer than the buffer: no address range we need
    }
  }
  close(fd);
  return found;
}

bool hak_foreign_is_glibc(const void *p, size_t *usable) {
  uintptr_t a = (uintptr_t)p;
  if (a == 0 || (a & 15) != 0)
    return false;
  // glibc has no block out: whatever p is, it is not glibc's. This is the
  // usual case under LD_PRELOAD, and it reads nothing through p.
  struct mallinfo mi = __libc_mallinfo();
  if (mi.uordblks == 0 && mi.hblks == 0)
    return false;
  uintptr_t chunk = a - 16, lo, hi;
  if (chunk > a || !readable_mapping(chunk, &lo, &hi))
    return false;
  const size_t *hdr = (const size_t *)chunk;
  size_t size = hdr[1] & ~CHUNK_FLAGS;
  if (size < MIN_CHUNK || size % 16 != 0 || size > hi - chunk)
    return false;
  if (hdr[1] & IS_MMAPPED) {
    // A chunk with a mapping of its own: the mapping starts prev_size below
    // it and ends with it, both on page boundaries.
    size_t pad = hdr[0];
    if (pad > chunk - lo || (chunk - pad) % 4096 != 0 || (pad + size) % 4096 != 0)
      return false;
    *usable = size - 16;
    return true;
  }
  // A heap chunk is in use when the next chunk's header says so.
  if (size + 16 > hi - chunk)
    return false;
  if ((((const size_t *)(chunk + size))[1] & PREV_INUSE) == 0)
    return false;
  *usable = size - 8;
  return true;
}

static void __attribute__((noreturn, cold)) report(const char *what, const void *p) {
  hak_fatal("%s: invalid pointer %p (not a live block of hakmem's, nor of glibc's)", what, p);
}

void hak_foreign_free(void *p) {
  size_t usable;
  if (!hak_foreign_is_glibc(p, &usable))
    report("free()", p);
  __libc_free(p);
}

void *hak_foreign_realloc(void *p, size_t size) {
  size_t usable;
  if (!hak_foreign_is_glibc(p, &usable))
    report("realloc()", p);
  return __libc_realloc(p, size);
}

size_t hak_foreign_usable_size(const void *p) {
  size_t usable;
  if (!hak_foreign_is_glibc(p, &usable))
    report("malloc_usable_size()", p);
  return usable;
}
