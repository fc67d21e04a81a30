// Blocks too big for slabs: each in its own 2 MiB-aligned mapping from the
// page arena, with a header at the mapping's base that masking finds.
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
// Resizes block p in place to hold size bytes; 0 on success, -1 if it must move.
int hak_large_resize(hak_large *hdr, void *p, size_t size) HAK_INTERNAL;

static inline void *hak_large_ptr(hak_large *hdr) { return (uint8_t *)hdr + hdr->offset; }

HAK_EXTERN_C_END

#endif // HAKMEM_LARGE_H
