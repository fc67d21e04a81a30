#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"

void *hak_os_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

void *hak_os_reserve(size_t size) {
  int saved = errno;
  void *p =
      mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  errno = saved;
  return p == MAP_FAILED ? NULL : p;
}

void *hak_os_map_aligned(size_t size, size_t align) {
  if (size > SIZE_MAX - align) {
    errno = ENOMEM;
    return NULL;
  }
  uint8_t *raw = hak_os_map(size + align);
  if (raw == NULL)
    return NULL;
  uintptr_t base = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = base - (uintptr_t)raw;
  size_t tail = align - head;
  if (head > 0)
    hak_os_unmap(raw, head);
  if (tail > 0)
    hak_os_unmap((void *)(base + size), tail);
  return (void *)base;
}

void hak_os_unmap(void *addr, size_t size) {
  int saved = errno;
  if (munmap(addr, size) != 0)
    HAK_LOG("munmap(%p, %zu) failed: errno %d\n", addr, size, errno);
  errno = saved;
}

void hak_os_purge(void *addr, size_t size) {
  int saved = errno;
  (void)madvise(addr, size, MADV_DONTNEED);
  errno = saved;
}

int hak_os_resize_in_place(void *addr, size_t old_size, size_t new_size) {
  int saved = errno;
  void *p = mremap(addr, old_size, new_size, 0);
  errno = saved;
  return p == MAP_FAILED ? -1 : 0;
}

int hak_os_move(void *addr, size_t old_size, void *to, size_t new_size) {
  int saved = errno;
  void *p = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  errno = saved;
  return p == MAP_FAILED ? -1 : 0;
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
