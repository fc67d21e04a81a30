#include "large.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "os.h"
#include "page_arena.h"
#include "segmap.h"
#include "stats.h"

static size_t round_up(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

// What a large mapping is rounded to. Address space is plentiful (47 bits)
// unless the process has a limit on it (RLIMIT_AS, `ulimit -v`): then every
// byte counts and a mapping ends at its block's last page. Otherwise whole
// 2 MiB regions, so that idle mappings fit later blocks of other sizes (a
// cached 2 MiB region serves any block up to it) and realloc grows in place.
// A mapping that fails switches to pages for good (a limit set later).
static size_t g_granule; // 0 until decided

static size_t granule(void) {
  size_t g = __atomic_load_n(&g_granule, __ATOMIC_RELAXED);
  if (hak_likely(g != 0))
    return g;
  struct rlimit as;
  g = getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY ? HAK_PAGE_SIZE : HAK_SS_SIZE;
  __atomic_store_n(&g_granule, g, __ATOMIC_RELAXED);
  return g;
}

void hak_large_set_granule(size_t bytes) { __atomic_store_n(&g_granule, bytes, __ATOMIC_RELAXED); }

static void publish(hak_large *hdr) {
  hak_stats_add(&hak_stats_global.large_allocs, 1);
  hak_stats_add(&hak_stats_global.large_live_bytes, (int64_t)hdr->map_size);
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
  // The mapping starts on a 2 MiB boundary (masking finds the header) and
  // ends at the granule (see granule()).
  size_t end = round_up(offset + size, HAK_PAGE_SIZE);
  size_t need = round_up(end, granule());
  uint8_t *base;
  size_t mapped;
  size_t dirty; // bytes from base that may be nonzero; zeros beyond
  if (align <= HAK_SS_SIZE / 2) {
    base = hak_page_arena_alloc_extent(need, end, &mapped, &dirty);
    if (base == NULL && need != end) {
      hak_large_set_granule(HAK_PAGE_SIZE); // out of address space: every byte counts now
      need = end;
      base = hak_page_arena_alloc_extent(need, end, &mapped, &dirty);
    }
  } else {
    // Alignments of 2 MiB and more get a mapping of their own, aligned to
    // them; the block then starts one alignment unit in.
    mapped = need;
    dirty = 0;
    base = hak_os_map_aligned(need, align);
    if (base != NULL)
      hak_page_arena_account((int64_t)need);
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
    hak_page_arena_free_extent(base, mapped, hdr->touched);
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
  hak_stats_add(&hak_stats_global.large_frees, 1);
  hak_stats_add(&hak_stats_global.large_live_bytes, -(int64_t)hdr->map_size);
  size_t mapped = hdr->map_size;
  size_t touched = hdr->touched;
  hak_segmap_clear(hdr, mapped);
  hdr->magic = 0;
  if (hdr->offset > HAK_SS_SIZE / 2) {
    hak_os_unmap(hdr, mapped); // over-aligned: not an arena-sized region
    hak_page_arena_account(-(int64_t)mapped);
  } else {
    hak_page_arena_free_extent(hdr, mapped, touched);
  }
  hak_page_arena_tick();
}

// The header of the large mapping whose regions hold p, or NULL. Its last
// region may be only partly mapped: the caller checks p against map_size.
static hak_large *head_of(const void *p, uint8_t region_kind) {
  uintptr_t base = (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK;
  if (region_kind == HAK_REGION_LARGE_TAIL) {
    // Blocks start in the head region unless over-aligned; walk back to it.
    while (hak_segmap_kind((void *)(base - HAK_SS_SIZE)) == HAK_REGION_LARGE_TAIL)
      base -= HAK_SS_SIZE;
    base -= HAK_SS_SIZE;
    if (hak_segmap_kind((void *)base) != HAK_REGION_LARGE)
      return NULL;
  }
  hak_large *hdr = (hak_large *)base;
  if (hdr->magic != (HAK_LARGE_MAGIC ^ base))
    return NULL;
  return hdr;
}

hak_large *hak_large_of(const void *p, uint8_t region_kind) {
  hak_large *hdr = head_of(p, region_kind);
  if (hdr == NULL || (uintptr_t)hdr + hdr->offset != (uintptr_t)p)
    return NULL;
  return hdr;
}

bool hak_large_maps(const void *p, uint8_t region_kind) {
  hak_large *hdr = head_of(p, region_kind);
  return hdr != NULL && (uintptr_t)p - (uintptr_t)hdr < hdr->map_size;
}

// Marks the regions that [from, to) of hdr's mapping adds beyond its first
// `mapped` bytes (regions it already reached are marked).
static int mark_growth(hak_large *hdr, size_t mapped, size_t to) {
  size_t first = round_up(mapped, HAK_SS_SIZE);
  if (to <= first)
    return 0;
  return hak_segmap_set((uint8_t *)hdr + first, to - first, HAK_REGION_LARGE_TAIL,
                        HAK_REGION_LARGE_TAIL);
}

// The header of a block whose mapping (map bytes) now stands at nh with
// to_size bytes: its magic names the new address, the counts follow.
static hak_large *moved(hak_large *nh, size_t map, size_t to_size) {
  nh->magic = HAK_LARGE_MAGIC ^ (uintptr_t)nh;
  hak_page_arena_account((int64_t)to_size - (int64_t)map);
  hak_stats_add(&hak_stats_global.large_live_bytes, (int64_t)to_size - (int64_t)map);
  nh->map_size = to_size;
  return nh;
}

static bool record_moved(void *moved, void *arg) {
  return hak_segmap_set(moved, *(size_t *)arg, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL) == 0;
}

// No address space for a second mapping beside the block's (a limit on it):
// the kernel moves the mapping, which counts only the growth.
static hak_large *grow_moving(hak_large *hdr, size_t to_size) {
  size_t map = hdr->map_size;
  hak_segmap_clear(hdr, map); // as in move_to: unmarked before it moves
  hak_large *nh = hak_os_grow_moving(hdr, map, to_size, HAK_SS_SIZE, record_moved, &to_size);
  if (nh == NULL) {
    hak_segmap_set(hdr, map, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL); // its tables exist
    return NULL;
  }
  return moved(nh, map, to_size);
}

// Moves the block's pages (no copy) into a fresh mapping of to_size bytes,
// which starts on a 2 MiB boundary as every large mapping must. The new
// header, or NULL with the block where it was.
static hak_large *move_to(hak_large *hdr, size_t to_size) {
  size_t map = hdr->map_size;
  uint8_t *to = hak_os_map_aligned(to_size, HAK_SS_SIZE);
  if (to == NULL) {
    hak_page_arena_decay(true); // idle mappings may hold the address space
    to = hak_os_map_aligned(to_size, HAK_SS_SIZE);
  }
  if (to == NULL)
    return grow_moving(hdr, to_size);
  if (hak_segmap_set(to, to_size, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL) != 0) {
    hak_os_unmap(to, to_size);
    return NULL;
  }
  // The old regions are unmarked first: once moved, their address space is
  // free for anyone's mapping, which must not look like ours.
  hak_segmap_clear(hdr, map);
  // Moved at the new size: one mapping (a later mremap cannot span two).
  if (hak_os_move(hdr, map, to, to_size) != 0) {
    hak_segmap_set(hdr, map, HAK_REGION_LARGE, HAK_REGION_LARGE_TAIL); // was set before
    hak_segmap_clear(to, to_size);
    hak_os_unmap(to, to_size);
    return NULL;
  }
  hak_large *nh = (hak_large *)to;
  return moved(nh, map, to_size);
}

void *hak_large_resize(hak_large *hdr, void *p, size_t size, bool may_move) {
  if (size > HAK_MAX_REQUEST - hdr->offset)
    return NULL;
  size_t end = round_up(hdr->offset + size, HAK_PAGE_SIZE);
  if (hdr->offset > HAK_SS_SIZE / 2) {
    if (end > hdr->map_size)
      return NULL;
    if (hdr->touched < end)
      hdr->touched = end;
    hdr->usable = end - hdr->offset;
    return p;
  }
  size_t map = hdr->map_size;
  if (end > map) {
    // Grow where the mapping stands if the address space after it is free,
    // else move its pages; by a quarter more than asked when it can, so that
    // a block grown a little at a time (an array appended to) does not pay a
    // system call per page.
    size_t g = granule();
    size_t to = round_up(end + end / 4, g);
    if (hak_os_resize_in_place(hdr, map, to) != 0) {
      to = round_up(end, g);
      if (hak_os_resize_in_place(hdr, map, to) != 0) {
        hak_large *nh = NULL;
        if (may_move) {
          nh = move_to(hdr, round_up(end + end / 4, g));
          if (nh == NULL)
            nh = move_to(hdr, end); // near a limit on address space: no more than asked
        }
        if (nh == NULL)
          return NULL;
        hdr = nh;
        map = to = nh->map_size;
      }
    }
    if (to != map && mark_growth(hdr, map, to) != 0) {
      hak_os_resize_in_place(hdr, to, map);
      return NULL;
    }
    map = to;
  } else if (round_up(end, granule()) < map && map - round_up(end, granule()) > map / 4) {
    // Much smaller: the pages past the end go back, with the regions that
    // no longer hold any of the mapping.
    // Unmarked first: once unmapped, the address space is anyone's.
    size_t keep = round_up(end, granule());
    size_t keep_regions = round_up(keep, HAK_SS_SIZE);
    if (keep_regions < map)
      hak_segmap_clear((uint8_t *)hdr + keep_regions, map - keep_regions);
    if (hak_os_resize_in_place(hdr, map, keep) == 0)
      map = keep;
    else if (keep_regions < map)
      hak_segmap_set((uint8_t *)hdr + keep_regions, map - keep_regions, HAK_REGION_LARGE_TAIL,
                     HAK_REGION_LARGE_TAIL);
  }
  if (map != hdr->map_size) {
    int64_t delta = (int64_t)map - (int64_t)hdr->map_size;
    hak_page_arena_account(delta);
    hak_stats_add(&hak_stats_global.large_live_bytes, delta);
    hdr->map_size = map;
  }
  if (hdr->touched > map)
    hdr->touched = map; // the pages past map went with the unmapped tail
  if (hdr->touched < end)
    hdr->touched = end;
  hdr->usable = end - hdr->offset;
  return (uint8_t *)hdr + hdr->offset;
}
