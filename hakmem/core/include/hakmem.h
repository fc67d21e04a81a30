// hakmem: a size-classed slab allocator. The one public header.
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAK_API __attribute__((visibility("default")))

// Allocation API. Semantics follow glibc's malloc family: errors set errno
// (ENOMEM for an impossible size or exhausted memory, EINVAL for a bad
// alignment) and return NULL.
HAK_API void *hak_malloc(size_t size);
HAK_API void hak_free(void *ptr);
HAK_API void *hak_calloc(size_t count, size_t size);
HAK_API void *hak_realloc(void *ptr, size_t size);
HAK_API void *hak_reallocarray(void *ptr, size_t count, size_t size);
// C11 aligned_alloc: alignment must be a power of two, else EINVAL.
HAK_API void *hak_aligned_alloc(size_t alignment, size_t size);
// Returns 0, EINVAL or ENOMEM like posix_memalign; *out untouched on error.
HAK_API int hak_posix_memalign(void **out, size_t alignment, size_t size);
// glibc memalign: a non-power-of-two alignment is rounded up.
HAK_API void *hak_memalign(size_t alignment, size_t size);
HAK_API void *hak_valloc(size_t size);
HAK_API void *hak_pvalloc(size_t size);
// Bytes usable at ptr (>= the size asked for); 0 for NULL or a pointer
// hakmem did not hand out.
HAK_API size_t hak_usable_size(const void *ptr);
// Non-zero when ptr is a live block that hakmem handed out (its start, not
// yet freed); 0 for anything else: NULL, a freed block, an interior pointer,
// another allocator's memory. A query, not a lock: another thread may free
// the block right after.
HAK_API int hak_owns(const void *ptr);

// Returns the calling thread's cached blocks to their slabs; called at
// thread exit automatically, useful before a thread goes idle.
HAK_API void hak_thread_flush(void);
// Flushes the calling thread's caches, releases slabs that exited threads
// left and that are now empty, and returns idle memory to the OS (the
// equivalent of malloc_trim). Returns 1 if memory went back to the OS.
HAK_API int hak_trim(size_t pad);

// ---- heap limit -------------------------------------------------------------

#define HAK_HEAP_LIMIT_SOFT 0
#define HAK_HEAP_LIMIT_HARD 1
// Bounds the bytes hakmem maps (os_mapped_bytes; 0: no bound), as
// HAKMEM_HEAP_LIMIT_MB and HAKMEM_HEAP_LIMIT_MODE do. Before a mapping would
// pass it, idle memory goes back to the OS; then soft mode maps anyway and
// hard mode fails the allocation with ENOMEM. A limit below what is mapped
// now stops growth until frees bring it under. Returns 0, or -1 with EINVAL
// for another mode.
HAK_API int hak_set_heap_limit(size_t bytes, int mode);

// ---- heap profile ----------------------------------------------------------

// Writes the sampled heap profile (HAKMEM_PROF=1) to path, or to
// HAKMEM_PROF_FILE when path is NULL: a gzipped pprof profile.proto with
// alloc_objects, alloc_space, inuse_objects and inuse_space (docs/PROFILING.md).
// Returns 0, or -1 with errno set (ENOTSUP when the profiler is off).
HAK_API int hak_prof_dump(const char *path);

// ---- the build -------------------------------------------------------------
// What the linked library was built as: its variant (libhakmem.so,
// libhakmem_nofastcache.so, libhakmem_hardened.so) and its build mode.

typedef struct hak_build_info {
  const char *build; // "release", or "debug" for every other build (as the statistics report)
  int release;       // 1: a release build (-O2, NDEBUG; HAKMEM_CHECK cheap by default)
  int debug_checks;  // 1: a checked build (HAKMEM_DEBUG): assertions, the overflow trailer
  int fast_cache;    // 1: the per-thread fast cache is compiled in (0: nofastcache)
  int hardened;      // 1: the hardened variant (encoded links, guard pages, poison)
} hak_build_info;

// Fills *out; the strings are static. No allocation, async-signal-safe.
HAK_API void hak_build_info_get(hak_build_info *out);

// ---- statistics ----------------------------------------------------------

#define HAK_STATS_MAX_CLASSES 128

typedef struct hak_class_stats {
  uint64_t block_size;   // bytes per block of this class
  uint64_t allocs;       // blocks handed out
  uint64_t frees;        // blocks given back
  uint64_t fast_hits;    // allocations served by the per-thread fast cache
  uint64_t refills;      // fast-cache or slab refills from the slab layer
  uint64_t remote_frees; // frees of blocks owned by another thread
  uint64_t slabs;        // slabs currently holding this class
  uint64_t capacity;     // blocks those slabs hold in all, handed out or free
} hak_class_stats;

typedef struct hak_stats {
  uint32_t num_classes;
  hak_class_stats classes[HAK_STATS_MAX_CLASSES];
  uint64_t large_allocs; // blocks served by their own mapping
  uint64_t large_frees;
  uint64_t large_live_bytes; // bytes in live large mappings
  uint64_t superslabs;       // SuperSlabs in use now
  uint64_t superslabs_peak;
  uint64_t superslabs_total; // SuperSlabs ever created
  uint64_t mapped_bytes;     // bytes hakmem has mapped from the OS now
  uint64_t mapped_peak;      // highest mapped_bytes seen
  uint64_t cached_bytes;     // mapped but idle in the page arena
  uint64_t purged_bytes;     // bytes given back to the OS by decay
  uint64_t abandoned_slabs;  // slabs left by exited threads, not yet adopted
  uint64_t adopted_slabs;    // slabs taken over from exited threads
  uint64_t threads_live;
  uint64_t threads_exited;
  uint64_t mutex_acquires; // every hakmem mutex: pool, arena, heap registry, purge
  uint64_t mutex_contended;
  uint64_t heaps_reused;  // new threads that took over an exited thread's heap
  uint64_t slabs_trimmed; // slabs idle threads' heaps gave back (see HAKMEM_DECAY_MS)
  // What explains RSS (docs/MEMORY.md). os_mapped_bytes counts every mapping
  // hakmem holds, metadata included (what the heap limit counts); mapped_bytes
  // above counts SuperSlabs and large blocks only.
  uint64_t os_mapped_bytes;
  uint64_t os_mapped_peak;
  uint64_t reserved_bytes;          // sparse tables (class map, profiler): address space
  uint64_t resident_bytes;          // the process's RSS (/proc/self/statm) when collected
  uint64_t released_dontneed_bytes; // given back by MADV_DONTNEED: RSS drops at once
  uint64_t released_munmap_bytes;   // given back by munmap: RSS drops at once
  uint64_t thp_advised_bytes;       // advised MADV_HUGEPAGE (HAKMEM_THP)
  uint64_t heap_limit_bytes;        // HAKMEM_HEAP_LIMIT_MB / hak_set_heap_limit (0: none)
  uint64_t limit_givebacks;         // mappings at the limit that first gave idle memory back
  uint64_t limit_refusals;          // mappings the hard limit refused (ENOMEM)
  // The guarded pool (HAKMEM_GUARD_SAMPLE, docs/RELIABILITY.md).
  uint64_t guarded_allocs;    // blocks served guarded
  uint64_t guarded_fallbacks; // sampled allocations served unguarded: every slot held a live block
  uint64_t guarded_in_use;    // slots holding a live block now
  uint64_t guarded_faults;    // misuses of guarded blocks reported (faults, double frees)
} hak_stats;

// Fills *out with process-wide totals, including threads that exited.
HAK_API void hak_stats_get(hak_stats *out);
// Writes a readable report to fd with write(2); no stdio, no malloc.
HAK_API void hak_stats_print(int fd);
// Writes the same figures as one JSON object to fd.
HAK_API void hak_stats_print_json(int fd);

// ---- the memory census ------------------------------------------------------
// Where the memory goes, per class (docs/MEMORY.md, "Where the memory goes").
// Computed on demand by walking every SuperSlab and asking the kernel which
// pages are resident (mincore): milliseconds, not for a hot loop. Figures of
// live threads are read while they run: a snapshot, exact when they are quiet.

typedef struct hak_class_memory {
  uint64_t block_size;     // bytes per block of this class
  uint64_t slabs;          // slabs holding this class, as the census found them
  uint64_t slab_bytes;     // bytes of those slabs (mapped)
  uint64_t resident_bytes; // of slab_bytes, resident now (mincore)
  uint64_t live_bytes;     // (allocs - frees) * block_size: what the program holds
  uint64_t bin_bytes;      // blocks in live threads' fast-cache bins
  uint64_t remote_bytes;   // blocks out of their slabs, neither live nor in bins: freed by
                           // another thread, waiting in a remote list (0 if negative)
  uint64_t free_bytes;     // blocks carved and back on their slab's free list
  uint64_t carved_bytes;   // blocks ever carved: live + bins + remote + free
} hak_class_memory;

typedef struct hak_memory {
  uint32_t num_classes;
  uint32_t partial; // 1: bins and live threads' counters left out (a signal, the registry busy)
  hak_class_memory classes[HAK_STATS_MAX_CLASSES];
  uint64_t superslabs;               // SuperSlabs the census walked
  uint64_t slab_bytes;               // sum of the classes' slab_bytes
  uint64_t slab_resident_bytes;      // sum of the classes' resident_bytes
  uint64_t header_resident_bytes;    // SuperSlab header pages resident
  uint64_t free_slots_dirty;         // free slots released but not yet purged
  uint64_t free_slot_resident_bytes; // their pages still resident (until the purge)
  uint64_t large_live_bytes;         // mapped bytes of live large blocks (hak_stats)
  uint64_t cached_bytes;             // idle mappings in the page arena (hak_stats)
  uint64_t metadata_bytes;           // os_mapped_bytes - mapped_bytes: heap structs, tables
  uint64_t os_mapped_bytes;          // every mapping hakmem holds (hak_stats)
  uint64_t resident_bytes;           // the process's RSS, all of it (hak_stats)
} hak_memory;

// Takes the census into *out. No allocation.
HAK_API void hak_memory_get(hak_memory *out);

// ---- glibc's introspection calls ------------------------------------------
// What the exported mallinfo2, mallinfo, malloc_stats, malloc_info and
// mallopt of the override library do (README.md defines every figure).
// Include <malloc.h> for the structures and the M_* constants.

struct mallinfo;
struct mallinfo2;
// glibc's fields from a statistics snapshot: arena = bytes of SuperSlabs in
// use, uordblks = bytes of slab blocks handed out, fordblks = arena -
// uordblks, smblks/fsmblks and ordblks = free blocks in slabs of classes up
// to / over 128 bytes, hblks/hblkhd = large blocks and their mappings'
// bytes, keepcost = idle mapped bytes malloc_trim would return, usmblks = 0.
HAK_API struct mallinfo2 hak_mallinfo2(void);
// The same with each field saturated at INT_MAX.
HAK_API struct mallinfo hak_mallinfo(void);
// glibc's malloc_stats report on stderr, with write(2); no allocation.
HAK_API void hak_malloc_stats(void);
// glibc's malloc_info XML on fp; options != 0 (or fp NULL): -1 with EINVAL.
HAK_API int hak_malloc_info(int options, FILE *fp);
// glibc's mallopt: its return values; M_TRIM_THRESHOLD sets the arena cache
// bound (HAKMEM_ARENA_CACHE_MB), other parameters are accepted and ignored.
HAK_API int hak_mallopt(int param, int value);

#ifdef __cplusplus
}
#endif

#endif // HAKMEM_H
