// Pointers that are not hakmem's: glibc's own blocks (allocated before hakmem
// was in charge, or through __libc_malloc) go back to glibc, but only once
// glibc's own bookkeeping vouches for them; anything else is reported. No
// address is read before it is known to be mapped and readable.
#ifndef HAKMEM_FOREIGN_H
#define HAKMEM_FOREIGN_H

#include <stdbool.h>
#include <stddef.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Whether p is a block glibc's malloc handed out and still counts as in use;
// if so, *usable gets its usable size.
bool hak_foreign_is_glibc(const void *p, size_t *usable) HAK_INTERNAL;

// free, realloc and malloc_usable_size of a pointer in no hakmem region
// (what names the call in a report).
void hak_foreign_free(void *p) HAK_INTERNAL;
void *hak_foreign_realloc(void *p, size_t size) HAK_INTERNAL;
size_t hak_foreign_usable_size(const void *p) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_FOREIGN_H
