#include "foreign.h"

#include <malloc.h>
#include <stdint.h>

#include "integrity.h"
#include "proc_maps.h"

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
  if (chunk > a || !hak_proc_maps_find_readable(chunk, &lo, &hi))
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
  hak_integrity_misuse(what, "invalid pointer %p (not a live block of hakmem's, nor of glibc's)",
                       p);
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
