#include "large.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "os.h"
#include "page_arena.h"
#include "segment_map.h"
#include "stats.h"

static size_t round_up(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

static void publish(hak_large *hdr) {
  hak_stat_add(&hak_gstats.large_allocs, 1);
  hak_stat_add(&hak_gstats.large_live_bytes, (int64_t)hdr->map_size);
}

void *hak_large_alloc(size_t size, size_t align, bool zero) {
  if (align < 16)
    align = 16;
  if (size == 0)
    size = 1; // a unique block still needs a byte of its own
  size_t offset = align > HAK_LARGE_HEADER_SIZE ? align : HAK_LARGE_HEADER_SIZE;
  if (size > HAK_MAX_REQUEST || offset > HAK_MAX_REQUEST - size) {
    errno = ENOMEM;
    return NULL;
  }
  size_t end = round_up(offset + size, HAK_PAGE_SIZE);
  size_t need = round_up(end, HAK_SS_SIZE);
  uint8_t *base;
  size_t mapped;
  size_t dirty; // bytes from base that may be nonzero; zeros beyond
  if (align <= HAK_SS_SIZE / 2) {
    base = hak_arena_alloc_extent(need, end, &mapped, &dirty);
  } else {
    // Alignments of 2 MiB and more get a mapping of their own, aligned to
    // them; the block then starts one alignment unit in.
    mapped = need;
    dirty = 0;
    base = hak_os_map_aligned(need, align);
    if (base != NULL)
      hak_arena_account((int64_t)need);
  }
  if (base == NULL)
    return NULL;
  hak_large *hdr = (hak_large *)base;
  hdr->magic = HAK_LARGE_MAGIC ^ (uintptr_t)hdr;
  hdr->map_size = mapped;
  hdr->offset = offset;
  hdr->usable = end - offset;
  hdr->touched = dirty > end ? dirty : end;
  if (hak_segmap_set(base, mapped, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL) != 0) {
    hdr->magic = 0;
    hak_arena_free_extent(base, mapped, hdr->touched);
    errno = ENOMEM;
    return NULL;
  }
  void *p = base + offset;
  // Only the part of the block below the dirty extent can be nonzero.
  if (zero && dirty > offset)
    memset(p, 0, dirty - offset < size ? dirty - offset : size);
  publish(hdr);
  return p;
}

void hak_large_free(hak_large *hdr) {
  hak_stat_add(&hak_gstats.large_frees, 1);
  hak_stat_add(&hak_gstats.large_live_bytes, -(int64_t)hdr->map_size);
  size_t mapped = hdr->map_size;
  size_t touched = hdr->touched;
  hak_segmap_clear(hdr, mapped);
  hdr->magic = 0;
  if (hdr->offset > HAK_SS_SIZE / 2) {
    hak_os_unmap(hdr, mapped); // over-aligned: not an arena-sized region
    hak_arena_account(-(int64_t)mapped);
  } else {
    hak_arena_free_extent(hdr, mapped, touched);
  }
  hak_arena_tick();
}

hak_large *hak_large_of(const void *p, uint8_t region_kind) {
  uintptr_t base = (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK;
  if (region_kind == HAK_REGION_LARGE_TAIL) {
    // Only over-aligned blocks start in a later region; walk back to the head.
    while (hak_segmap_kind((void *)(base - HAK_SS_SIZE)) == HAK_REGION_LARGE_TAIL)
      base -= HAK_SS_SIZE;
    base -= HAK_SS_SIZE;
    if (hak_segmap_kind((void *)base) != HAK_REGION_LARGE)
      return NULL;
  }
  hak_large *hdr = (hak_large *)base;
  if (hdr->magic != (HAK_LARGE_MAGIC ^ base))
    return NULL;
  if (base + hdr->offset != (uintptr_t)p)
    return NULL;
  return hdr;
}

int hak_large_resize(hak_large *hdr, void *p, size_t size) {
  (void)p;
  if (size > HAK_MAX_REQUEST - hdr->offset)
    return -1;
  size_t end = round_up(hdr->offset + size, HAK_PAGE_SIZE);
  size_t need = round_up(end, HAK_SS_SIZE);
  if (hdr->offset > HAK_SS_SIZE / 2) {
    if (end > hdr->map_size)
      return -1;
    if (hdr->touched < end)
      hdr->touched = end;
    hdr->usable = end - hdr->offset;
    return 0;
  }
  if (need > hdr->map_size) {
    // Grow the mapping where it stands if the address space after it is free.
    if (hak_os_resize_in_place(hdr, hdr->map_size, need) != 0)
      return -1;
    if (hak_segmap_set((uint8_t *)hdr + hdr->map_size, need - hdr->map_size, HAK_REGION_LARGE_TAIL,
                       HAK_REGION_LARGE_TAIL) != 0) {
      hak_os_resize_in_place(hdr, need, hdr->map_size);
      return -1;
    }
  } else if (need < hdr->map_size) {
    // Shrinking gives whole 2 MiB regions back at once.
    hak_segmap_clear((uint8_t *)hdr + need, hdr->map_size - need);
    hak_os_resize_in_place(hdr, hdr->map_size, need);
  }
  if (need != hdr->map_size) {
    int64_t delta = (int64_t)need - (int64_t)hdr->map_size;
    hak_arena_account(delta);
    hak_stat_add(&hak_gstats.large_live_bytes, delta);
    hdr->map_size = need;
  }
  if (hdr->touched > need)
    hdr->touched = need; // the pages past need went with the unmapped tail
  if (hdr->touched < end)
    hdr->touched = end;
  hdr->usable = end - hdr->offset;
  return 0;
}
