// Hidden aliases of the public entry points, so the override layer reaches
// them with a direct jump instead of through the PLT.
#ifndef HAKMEM_API_H
#define HAKMEM_API_H

#include "hakmem.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

extern __typeof(hak_malloc) hak_api_malloc HAK_INTERNAL;
extern __typeof(hak_free) hak_api_free HAK_INTERNAL;
extern __typeof(hak_calloc) hak_api_calloc HAK_INTERNAL;
extern __typeof(hak_realloc) hak_api_realloc HAK_INTERNAL;
extern __typeof(hak_reallocarray) hak_api_reallocarray HAK_INTERNAL;
extern __typeof(hak_aligned_alloc) hak_api_aligned_alloc HAK_INTERNAL;
extern __typeof(hak_posix_memalign) hak_api_posix_memalign HAK_INTERNAL;
extern __typeof(hak_memalign) hak_api_memalign HAK_INTERNAL;
extern __typeof(hak_valloc) hak_api_valloc HAK_INTERNAL;
extern __typeof(hak_pvalloc) hak_api_pvalloc HAK_INTERNAL;
extern __typeof(hak_usable_size) hak_api_usable_size HAK_INTERNAL;
extern __typeof(hak_trim) hak_api_trim HAK_INTERNAL;
// The exported malloc_usable_size(): like hak_usable_size, but a pointer in
// no hakmem region must be one of glibc's, or it is reported.
size_t hak_api_malloc_usable_size(const void *p) HAK_INTERNAL;
// Defined in introspect.c.
extern __typeof(hak_mallinfo2) hak_api_mallinfo2 HAK_INTERNAL;
extern __typeof(hak_mallinfo) hak_api_mallinfo HAK_INTERNAL;
extern __typeof(hak_malloc_stats) hak_api_malloc_stats HAK_INTERNAL;
extern __typeof(hak_malloc_info) hak_api_malloc_info HAK_INTERNAL;
extern __typeof(hak_mallopt) hak_api_mallopt HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_API_H
