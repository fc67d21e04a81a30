// Exports the C library's allocation functions, forwarding each to hakmem.
// Linked (alwayslink) into programs or into the preloadable libhakmem.so.
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

#include "api.h"
#include "fastpath.h"
#include "profile.h"

#define EXPORT __attribute__((visibility("default")))

#if HAK_INLINE_FAST_PATHS
EXPORT void *malloc(size_t n) { return hak_fastpath_malloc(n); }
EXPORT void free(void *p) { hak_fastpath_free(p); }
#else
EXPORT void *malloc(size_t n) { return hak_api_malloc(n); }
EXPORT void free(void *p) { hak_api_free(p); }
#endif
EXPORT void *calloc(size_t n, size_t s) { return hak_api_calloc(n, s); }
EXPORT void *realloc(void *p, size_t n) { return hak_api_realloc(p, n); }
EXPORT void *reallocarray(void *p, size_t n, size_t s) { return hak_api_reallocarray(p, n, s); }
EXPORT int posix_memalign(void **out, size_t a, size_t n) {
  return hak_api_posix_memalign(out, a, n);
}
EXPORT void *aligned_alloc(size_t a, size_t n) { return hak_api_aligned_alloc(a, n); }
EXPORT void *memalign(size_t a, size_t n) { return hak_api_memalign(a, n); }
EXPORT void *valloc(size_t n) { return hak_api_valloc(n); }
EXPORT void *pvalloc(size_t n) { return hak_api_pvalloc(n); }
EXPORT size_t malloc_usable_size(void *p) { return hak_api_malloc_usable_size(p); }
EXPORT int malloc_trim(size_t pad) { return hak_api_trim(pad); }
// glibc's introspection calls, from hakmem's statistics (introspect.c).
EXPORT struct mallinfo2 mallinfo2(void) { return hak_api_mallinfo2(); }
EXPORT struct mallinfo mallinfo(void) { return hak_api_mallinfo(); }
EXPORT void malloc_stats(void) { hak_api_malloc_stats(); }
EXPORT int malloc_info(int options, FILE *fp) { return hak_api_malloc_info(options, fp); }
EXPORT int mallopt(int param, int value) { return hak_api_mallopt(param, value); }
// Old names some programs still call.
EXPORT void cfree(void *p) { hak_api_free(p); }

// The heap profiler and the guarded pool leave these frames, and hakmem's
// below them, out of their stacks.
__attribute__((constructor)) static void register_profile_entries(void) {
  const void *const fns[] = {
      (const void *)malloc,       (const void *)calloc,         (const void *)realloc,
      (const void *)reallocarray, (const void *)posix_memalign, (const void *)aligned_alloc,
      (const void *)memalign,     (const void *)valloc,         (const void *)pvalloc,
      (const void *)free,         (const void *)cfree,
  };
  hak_profile_add_entries(fns, sizeof fns / sizeof fns[0]);
}
