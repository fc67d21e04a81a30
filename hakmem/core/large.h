// Blocks too big for slabs: each in its own mapping from the page arena,
// starting on a 2 MiB boundary with a header there that masking finds, and
// ending at a 2 MiB boundary, or under a limit on address space at the
// block's last page (the rest of its last region is then not ours).
#ifndef HAKMEM_LARGE_H
#define HAKMEM_LARGE_H

#include <stdbool.h>
#include <stddef.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// A block of at least size bytes aligned to align (a power of two; 0 means
// 16). Zeroed when zero is set. NULL with ENOMEM on failure.
void *hak_large_alloc(size_t size, size_t align, bool zero) HAK_INTERNAL;
void hak_large_free(hak_large *hdr) HAK_INTERNAL;
// The header of large block p given its region kind, or NULL when p is not
// the start of a live large block.
hak_large *hak_large_of(const void *p, uint8_t region_kind) HAK_INTERNAL;
// Whether p, in a region the segment map marks large, lies in the mapping:
// the end of the last region may hold another program's memory.
bool hak_large_maps(const void *p, uint8_t region_kind) HAK_INTERNAL;
// Resizes block p to hold size bytes: in place, or (may_move) by moving its
// pages to a new mapping, which copies nothing. The block's address, or NULL
// when it must be copied (the block is unchanged).
void *hak_large_resize(hak_large *hdr, void *p, size_t size, bool may_move) HAK_INTERNAL;

// What large mappings are rounded to: HAK_SS_SIZE, or HAK_PAGE_SIZE under a
// limit on address space (decided at the first large block; see large.c).
// Tests set it.
void hak_large_set_granule(size_t bytes) HAK_INTERNAL;

static inline void *hak_large_ptr(hak_large *hdr) { return (uint8_t *)hdr + hdr->offset; }

HAK_EXTERN_C_END

#endif // HAKMEM_LARGE_H
