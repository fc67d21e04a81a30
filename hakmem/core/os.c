#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static struct {
  _Atomic uint64_t mapped, mapped_peak, reserved;
  _Atomic uint64_t released_dontneed, released_munmap, thp_advised;
  _Atomic uint64_t limit_givebacks, limit_refusals;
  _Atomic size_t limit; // 0: none
  _Atomic int limit_mode;
  _Atomic int thp;
  _Atomic(hak_os_giveback_fn) giveback;
} g_os;

// Set while this thread runs the give-back, so that a mapping inside it
// (none today) cannot recurse into it.
static HAK_TLS int t_in_giveback;

#define RELAXED memory_order_relaxed

static void raise_peak(uint64_t now) {
  uint64_t p = atomic_load_explicit(&g_os.mapped_peak, RELAXED);
  while (now > p &&
         !atomic_compare_exchange_weak_explicit(&g_os.mapped_peak, &p, now, RELAXED, RELAXED)) {
  }
}

static void charge_anyway(size_t size) {
  raise_peak(atomic_fetch_add_explicit(&g_os.mapped, size, RELAXED) + size);
}

// Adds size to the mapped bytes unless that passes the limit; the check and
// the add are one compare-and-swap, so racing threads never pass it together.
static bool try_charge(size_t size) {
  size_t limit = atomic_load_explicit(&g_os.limit, RELAXED);
  if (limit == 0) {
    charge_anyway(size);
    return true;
  }
  uint64_t cur = atomic_load_explicit(&g_os.mapped, RELAXED);
  do {
    if (cur > limit || size > limit - cur)
      return false;
  } while (
      !atomic_compare_exchange_weak_explicit(&g_os.mapped, &cur, cur + size, RELAXED, RELAXED));
  raise_peak(cur + size);
  return true;
}

static void uncharge(size_t size) { atomic_fetch_sub_explicit(&g_os.mapped, size, RELAXED); }

// Counts size bytes about to be mapped; at the limit, gives idle memory back
// first. -1 with ENOMEM when the hard limit refuses.
static int charge(size_t size) {
  if (try_charge(size))
    return 0;
  hak_os_giveback_fn fn = atomic_load_explicit(&g_os.giveback, memory_order_acquire);
  if (fn != NULL && !t_in_giveback) {
    atomic_fetch_add_explicit(&g_os.limit_givebacks, 1, RELAXED);
    int saved = errno;
    t_in_giveback = 1;
    fn();
    t_in_giveback = 0;
    errno = saved;
    if (try_charge(size))
      return 0;
  }
  if (atomic_load_explicit(&g_os.limit_mode, RELAXED) == HAK_OS_LIMIT_SOFT) {
    charge_anyway(size); // soft: everything idle went back, so grow
    return 0;
  }
  atomic_fetch_add_explicit(&g_os.limit_refusals, 1, RELAXED);
  errno = ENOMEM;
  return -1;
}

// mmap without the accounting.
static void *map_raw(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *hak_os_map(size_t size) {
  if (charge(size) != 0)
    return NULL;
  void *p = map_raw(size);
  if (p == NULL) {
    uncharge(size);
    errno = ENOMEM;
  }
  return p;
}

void *hak_os_reserve(size_t size) {
  int saved = errno;
  void *p =
      mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  if (p == MAP_FAILED)
    return NULL;
  atomic_fetch_add_explicit(&g_os.reserved, size, RELAXED);
  return p;
}

void hak_os_unreserve(void *addr, size_t size) {
  int saved = errno;
  if (munmap(addr, size) != 0)
    HAK_LOG("munmap(%p, %zu) failed: errno %d\n", addr, size, errno);
  else
    atomic_fetch_sub_explicit(&g_os.reserved, size, RELAXED);
  errno = saved;
}

// Only size is counted: the extra align bytes are address space for a moment,
// never touched, and unmapped before this returns.
void *hak_os_map_aligned(size_t size, size_t align) {
  if (size > SIZE_MAX - align) {
    errno = ENOMEM;
    return NULL;
  }
  if (charge(size) != 0)
    return NULL;
  uint8_t *raw = map_raw(size + align);
  if (raw == NULL) {
    uncharge(size);
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t base = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = base - (uintptr_t)raw;
  size_t tail = align - head;
  int saved = errno;
  if (head > 0)
    munmap(raw, head);
  if (tail > 0)
    munmap((void *)(base + size), tail);
  errno = saved;
  return (void *)base;
}

void hak_os_unmap(void *addr, size_t size) {
  int saved = errno;
  if (munmap(addr, size) != 0) {
    HAK_LOG("munmap(%p, %zu) failed: errno %d\n", addr, size, errno);
  } else {
    uncharge(size);
    atomic_fetch_add_explicit(&g_os.released_munmap, size, RELAXED);
  }
  errno = saved;
}

void hak_os_purge(void *addr, size_t size) {
  int saved = errno;
  if (madvise(addr, size, MADV_DONTNEED) == 0)
    atomic_fetch_add_explicit(&g_os.released_dontneed, size, RELAXED);
  errno = saved;
}

int hak_os_resize_in_place(void *addr, size_t old_size, size_t new_size) {
  int saved = errno;
  if (new_size > old_size && charge(new_size - old_size) != 0) {
    errno = saved; // the caller falls back to a new block, which reports ENOMEM
    return -1;
  }
  void *p = mremap(addr, old_size, new_size, 0);
  errno = saved;
  if (p == MAP_FAILED) {
    if (new_size > old_size)
      uncharge(new_size - old_size);
    return -1;
  }
  if (new_size < old_size) {
    uncharge(old_size - new_size);
    atomic_fetch_add_explicit(&g_os.released_munmap, old_size - new_size, RELAXED);
  }
  return 0;
}

void *hak_os_grow_moving(void *addr, size_t old_size, size_t new_size, size_t align,
                         bool (*record)(void *moved, void *arg), void *arg) {
  if (new_size < old_size || new_size > SIZE_MAX - align)
    return NULL;
  size_t span = new_size + align; // room to align in
  if (charge(span - old_size) != 0)
    return NULL;
  int saved = errno;
  uint8_t *r = mremap(addr, old_size, span, MREMAP_MAYMOVE);
  if (r == MAP_FAILED) {
    uncharge(span - old_size);
    errno = saved;
    return NULL;
  }
  uint8_t *a = (uint8_t *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
  if (a != r)
    memmove(a, r, old_size); // within the new mapping: a + old_size <= r + span
  if (a > r)
    munmap(r, (size_t)(a - r));
  if (a + new_size < r + span)
    munmap(a + new_size, (size_t)(r + span - (a + new_size)));
  uncharge(span - new_size);
  if (!record(a, arg)) {
    // Back to where it was (its address space is free: it was ours), at its
    // old size; its contents are at a.
    if (mremap(a, old_size, old_size, MREMAP_MAYMOVE | MREMAP_FIXED, addr) == MAP_FAILED)
      hak_log_fatal("cannot move a mapping back to %p (errno %d)", addr, errno);
    if (new_size > old_size)
      munmap(a + old_size, new_size - old_size);
    uncharge(new_size - old_size);
    errno = saved;
    return NULL;
  }
  errno = saved;
  return a;
}

int hak_os_move(void *addr, size_t old_size, void *to, size_t new_size) {
  int saved = errno;
  void *p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  errno = saved;
  if (p == MAP_FAILED)
    return -1;
  uncharge(old_size); // the target was counted when it was mapped; no page went back
  return 0;
}

size_t hak_os_resident(void *addr, size_t size) {
  int saved = errno;
  unsigned char vec[512]; // a page each: 2 MiB per call, no allocation
  size_t pages = size / HAK_PAGE_SIZE, resident = 0;
  for (size_t done = 0; done < pages;) {
    size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
    if (mincore((uint8_t *)addr + done * HAK_PAGE_SIZE, n * HAK_PAGE_SIZE, vec) != 0) {
      errno = saved;
      return 0;
    }
    for (size_t k = 0; k < n; k++)
      resident += vec[k] & 1;
    done += n;
  }
  errno = saved;
  return resident * HAK_PAGE_SIZE;
}

int hak_os_protect(void *addr, size_t size, bool writable) {
  return mprotect(addr, size, writable ? PROT_READ | PROT_WRITE : PROT_NONE);
}

uint64_t hak_os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hak_os_set_limit(size_t bytes, int mode) {
  if (mode != HAK_OS_LIMIT_SOFT && mode != HAK_OS_LIMIT_HARD) {
    errno = EINVAL;
    return -1;
  }
  atomic_store_explicit(&g_os.limit_mode, mode, RELAXED);
  atomic_store_explicit(&g_os.limit, bytes, RELAXED);
  return 0;
}

size_t hak_os_limit(int *mode) {
  if (mode != NULL)
    *mode = atomic_load_explicit(&g_os.limit_mode, RELAXED);
  return atomic_load_explicit(&g_os.limit, RELAXED);
}

void hak_os_set_giveback(hak_os_giveback_fn fn) {
  atomic_store_explicit(&g_os.giveback, fn, memory_order_release);
}

void hak_os_set_thp(bool on) { atomic_store_explicit(&g_os.thp, on, RELAXED); }

void hak_os_hugepage(void *addr, size_t size) {
  if (!atomic_load_explicit(&g_os.thp, RELAXED))
    return;
  int saved = errno;
  if (madvise(addr, size, MADV_HUGEPAGE) == 0)
    atomic_fetch_add_explicit(&g_os.thp_advised, size, RELAXED);
  errno = saved;
}

void hak_os_stats_get(hak_os_stats *out) {
  out->mapped = atomic_load_explicit(&g_os.mapped, RELAXED);
  out->mapped_peak = atomic_load_explicit(&g_os.mapped_peak, RELAXED);
  out->reserved = atomic_load_explicit(&g_os.reserved, RELAXED);
  out->released_dontneed = atomic_load_explicit(&g_os.released_dontneed, RELAXED);
  out->released_munmap = atomic_load_explicit(&g_os.released_munmap, RELAXED);
  out->thp_advised = atomic_load_explicit(&g_os.thp_advised, RELAXED);
  out->limit_givebacks = atomic_load_explicit(&g_os.limit_givebacks, RELAXED);
  out->limit_refusals = atomic_load_explicit(&g_os.limit_refusals, RELAXED);
}

uint64_t hak_os_resident_bytes(void) {
  int saved = errno;
  char buf[128];
  ssize_t n = -1;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
  }
  errno = saved;
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  // "size resident shared ...": the second field, in pages.
  const char *s = buf;
  while (*s >= '0' && *s <= '9')
    s++;
  while (*s == ' ')
    s++;
  uint64_t pages = 0;
  for (; *s >= '0' && *s <= '9'; s++)
    pages = pages * 10 + (uint64_t)(*s - '0');
  return pages * HAK_PAGE_SIZE; // statm counts the kernel's pages, 4 KiB as hakmem assumes
}
