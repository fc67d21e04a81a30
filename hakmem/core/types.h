// Every data structure shared between hakmem's boxes, with the constants that
// shape them. Boxes include this header; nothing here allocates.
#ifndef HAKMEM_TYPES_H
#define HAKMEM_TYPES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

// The same headers compile as C11 and as C++17, so that tests include the box
// they test: in C++ an atomic is std::atomic<T> (same layout for lock-free T)
// and the C11 generic functions are std's of the same name.
#ifdef __cplusplus
#include <atomic>
#define HAK_ATOMIC(T) std::atomic<T>
#define hak_static_assert static_assert
using std::atomic_compare_exchange_strong_explicit;
using std::atomic_compare_exchange_weak_explicit;
using std::atomic_exchange_explicit;
using std::atomic_fetch_add_explicit;
using std::atomic_fetch_and_explicit;
using std::atomic_fetch_or_explicit;
using std::atomic_fetch_sub_explicit;
using std::atomic_load_explicit;
using std::atomic_signal_fence;
using std::atomic_store_explicit;
using std::atomic_thread_fence;
using std::memory_order_acq_rel;
using std::memory_order_acquire;
using std::memory_order_relaxed;
using std::memory_order_release;
using std::memory_order_seq_cst;
#define HAK_EXTERN_C_BEGIN extern "C" {
#define HAK_EXTERN_C_END }
#else
#include <stdatomic.h>
#include <stdbool.h>
#define HAK_ATOMIC(T) _Atomic(T)
#define hak_static_assert _Static_assert
#define HAK_EXTERN_C_BEGIN
#define HAK_EXTERN_C_END
#endif

#ifndef HAKMEM_FASTCACHE
#define HAKMEM_FASTCACHE 1
#endif
#ifndef HAKMEM_HARDENED
#define HAKMEM_HARDENED 0
#endif
#ifndef HAKMEM_BUILD_RELEASE
#define HAKMEM_BUILD_RELEASE 0
#endif
#ifndef HAKMEM_DEBUG
#define HAKMEM_DEBUG 0
#endif

#define hak_likely(x) __builtin_expect(!!(x), 1)
#define hak_unlikely(x) __builtin_expect(!!(x), 0)
#define HAK_INTERNAL __attribute__((visibility("hidden")))
#define HAK_TLS __thread __attribute__((tls_model("initial-exec")))
#define HAK_CACHELINE 64

// Per-thread statistics counters: plain increments by their thread, read as
// a snapshot by hak_stats_get. Under ThreadSanitizer the increment is an
// atomic store, which tells it the concurrent read is intended.
#if defined(__SANITIZE_THREAD__)
#define HAK_COUNT(c, n) __atomic_store_n(&(c), (c) + (n), __ATOMIC_RELAXED)
#else
#define HAK_COUNT(c, n) ((c) += (n))
#endif

// Slab state is written by its owner (or the abandoned-list lock holder) and
// read by any thread that frees into the slab: relaxed atomics, plain moves.
#define HAK_SLAB_STATE(s) __atomic_load_n(&(s)->state, __ATOMIC_RELAXED)
#define HAK_SLAB_SET_STATE(s, v) __atomic_store_n(&(s)->state, (uint8_t)(v), __ATOMIC_RELAXED)
// The same for the count of blocks out: only its owner changes it, and the
// memory census reads it from any thread (a snapshot).
#define HAK_SLAB_SET_USED(s, v) __atomic_store_n(&(s)->used, (uint16_t)(v), __ATOMIC_RELAXED)

// ---- geometry --------------------------------------------------------------

#define HAK_PAGE_SIZE ((size_t)4096)
#define HAK_SS_SHIFT 21 // a SuperSlab is 2 MiB, aligned to 2 MiB
#define HAK_SS_SIZE ((size_t)1 << HAK_SS_SHIFT)
#define HAK_SS_MASK (HAK_SS_SIZE - 1)
#define HAK_SS_HEADER_SIZE ((size_t)4096) // the header page at the SuperSlab's base
#define HAK_SS_MAX_SLABS 32

// Small SuperSlabs hold 31 slabs of 64 KiB (slot 0's granule is the header's:
// only its first page is ever touched), medium ones 4 slabs of 512 KiB (slot 0
// starts after the header page).
#define HAK_SLAB_SHIFT_SMALL 16
#define HAK_SLAB_SHIFT_MEDIUM 19
#define HAK_SLAB_MAX_PAGES (((size_t)1 << HAK_SLAB_SHIFT_MEDIUM) / HAK_PAGE_SIZE)

#define HAK_NUM_CLASSES 48
#define HAK_HEAP_STASH_MAX 16         // bound of HAKMEM_HEAP_STASH
#define HAK_SMALL_MAX ((size_t)16384) // largest block in a small slab (size_class.h)
hak_static_assert(HAK_SMALL_MAX + HAK_SS_HEADER_SIZE <= ((size_t)1 << HAK_SLAB_SHIFT_SMALL),
                  "a small slab's largest block fits slot 0 after the header page");
#define HAK_MEDIUM_MAX ((size_t)128 * 1024) // largest block in any slab
#define HAK_LOOKUP_MAX ((size_t)1024)       // sizes resolved by one table load

// Sizes beyond this can never be satisfied (glibc's limit too).
#define HAK_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * HAK_SS_SIZE)

// ---- segment map kinds ------------------------------------------------------
// One byte per 2 MiB region of the address space. The two SuperSlab kinds are
// chosen so that the slab shift is 13 + 3 * kind.
enum {
  HAK_REGION_NONE = 0,
  HAK_REGION_SS_SMALL = 1,
  HAK_REGION_SS_MEDIUM = 2,
  HAK_REGION_LARGE = 3,      // a large mapping whose header is at the region base
  HAK_REGION_LARGE_TAIL = 4, // a later region of a large mapping
  HAK_REGION_GUARDED = 5,    // the guarded pool (guarded.c)
};

// ---- slabs ------------------------------------------------------------------

enum {
  HAK_SLAB_FREE = 0,  // slot not in use, owned by the shared pool
  HAK_SLAB_ACTIVE,    // the heap's current allocation slab for its class
  HAK_SLAB_PARTIAL,   // owned, has local free blocks, on the partial list
  HAK_SLAB_FULL,      // owned, no local free blocks (remote ones may wait)
  HAK_SLAB_ABANDONED, // its thread exited; waits in the shared pool to be adopted
};

// Low bit of a slab's remote word: the slab is abandoned, so a remote free
// into it tells the shared pool there is something to sweep.
#define HAK_REMOTE_ABANDONED ((uintptr_t)1)

struct hak_heap;

// Per-slab metadata, one cache line, kept in the SuperSlab header.
// Fields marked (owner) are touched only by the owning heap's thread, or by the
// holder of the abandoned-list lock while the slab is abandoned.
typedef struct hak_slab {
  void *free;                          // (owner) local free list
  HAK_ATOMIC(uintptr_t) remote;        // MPSC stack of blocks freed by other threads
  HAK_ATOMIC(struct hak_heap *) owner; // heap that allocates from it, NULL when abandoned
  struct hak_slab *next;               // (owner) heap list or abandoned list links
  struct hak_slab *prev;
  uint8_t *start; // first block
  uint32_t block_size;
  uint16_t capacity; // blocks that fit
  uint16_t carved;   // blocks ever handed to the free list or out
  uint16_t used;     // (owner) blocks out, including ones in caches
  uint8_t class_idx;
  uint8_t state;   // HAK_SLAB_*
  uint8_t slot;    // index in its SuperSlab
  uint8_t trimmed; // (owner) some free blocks sit in purged pages, off the free list
  // (profiler's lock) sampled blocks live in the slab: while not 0 the class
  // map names bin 0 here, so that every free of the slab takes the slow path
  uint16_t prof_live;
} hak_slab;

hak_static_assert(sizeof(hak_slab) == 64, "slab metadata is one cache line");

#define HAK_SS_MAGIC 0x68616b6d53534c42ULL // "hakmSSLB"

typedef struct hak_superslab {
  uint64_t magic; // HAK_SS_MAGIC ^ address
  uint8_t kind;   // HAK_REGION_SS_SMALL or _MEDIUM
  uint8_t slab_shift;
  uint8_t nslabs;
  uint8_t pad_[5];
  uint32_t free_mask; // (pool lock) free slots
  uint32_t pad2_;
  struct hak_superslab *next, *prev; // (pool lock) SuperSlabs with free slots
  uint8_t pad3_[HAK_CACHELINE - 40];
  hak_slab slabs[HAK_SS_MAX_SLABS];
  // (owner) per slab, its pages a trim gave back to the OS (bit i: page i
  // from the slab's start); the free blocks that start in them are off the
  // free list until the owner uses the slab again.
  uint64_t purged_pages[HAK_SS_MAX_SLABS][HAK_SLAB_MAX_PAGES / 64];
  // (profiler's lock; read by any free) per slab, a one-word filter of its
  // sampled blocks (hak_superslab_prof_bit): a free in a slab with sampled blocks
  // asks the profiler's table only when its bit is set.
  uint64_t prof_filter[HAK_SS_MAX_SLABS];
} hak_superslab;

hak_static_assert(sizeof(hak_superslab) <= HAK_SS_HEADER_SIZE, "header fits its page");

// ---- large blocks -----------------------------------------------------------

#define HAK_LARGE_MAGIC 0x68616b6d4c415247ULL // "hakmLARG"
#define HAK_LARGE_HEADER_SIZE ((size_t)64)

typedef struct hak_large {
  uint64_t magic;  // HAK_LARGE_MAGIC ^ address
  size_t map_size; // bytes mapped from the base (2 MiB-aligned), a multiple of the page
  size_t offset;   // user pointer = base + offset
  size_t usable;   // bytes usable at the user pointer
  size_t touched;  // bytes from the base that may be resident (arena-backed)
} hak_large;

// ---- per-thread -------------------------------------------------------------

// A thread's fast-cache bins: for each class a bounded stack of free blocks.
// Bin i is class i - 1; bin 0 never holds blocks nor room, so that the
// class map's 0 (no slab) names a bin every free misses.
// The hit paths touch two fields per bin, its head and its packed word; they
// sit side by side (one cache line per hit) in `hot`, at its slot
// HAK_BIN_SLOT(i) = 2 * i: the head at hot.head[slot] and the word at
// hot.w.word[slot], 8 bytes on. The size table and the class map hold slots,
// so that a hit addresses both fields as %fs:offset(tls, slot, 8), with no
// shift to scale the index and displacements small enough that GCC does not
// spend an instruction on a shared base. The other fields are plain arrays by
// bin. The type keeps the name hak_tcache_bin: thread_heap.c passes a
// thread's bins around as a hak_tcache_bin *.
// `word` packs the free room (low 16 bits) under the count of fast
// allocations, so that a pop updates both with one add and a push is one
// subtract. Fast frees are not counted but derived, exactly: a pop and a push
// each leave room - allocs + frees unchanged, so frees = bias + allocs - room,
// where `bias` changes only when a slow path moves blocks in or out (refill,
// flush, drain, new bounds). Those moves make `seq` odd while under way, so
// that another thread reads a word and its bias as one.
#define HAK_NUM_BINS (HAK_NUM_CLASSES + 1)
#define HAK_BIN_SLOT(i) (2u * (i))
#define HAK_BIN_ROOM_BITS 16
#define HAK_BIN_ROOM_MASK ((1u << HAK_BIN_ROOM_BITS) - 1u)
#define HAK_BIN_POP ((1ull << HAK_BIN_ROOM_BITS) + 1u) // one more alloc, one more room

typedef struct hak_tcache_bin {
  union {
    void *head[2 * HAK_NUM_BINS]; // even entries: the heads
    struct {
      void *pad_;
      uint64_t word[2 * HAK_NUM_BINS - 1]; // even entries: fast allocs << 16 | room left
    } w;
    // The words' low 16 bits (the room), for the free hit path's subtract:
    // word[slot]'s is r.e[slot].room (x86-64 is little-endian).
    struct {
      void *pad_;
      struct {
        uint16_t room;
        uint16_t rest_[3];
      } e[2 * HAK_NUM_BINS - 1];
    } r;
  } hot;
  uint64_t bias[HAK_NUM_BINS];   // room - fast allocations + fast frees (mod 2^64)
  uint32_t cap[HAK_NUM_BINS];    // 0 until the thread's heap exists: every push goes slow
  uint32_t refill[HAK_NUM_BINS]; // blocks the next refill asks for; grows from a page's worth
  uint32_t seq;                  // odd while a slow path changes words and biases together
  // The free hit path's block check, at chk[HAK_BIN_SLOT(i)] and the entry
  // after it (scale 4 from the slot): a pointer p of a small slab is the start
  // of a block iff (uint32_t)((p & 0xffff) * chk[slot]) < chk[slot + 1]. Both
  // 0 (every free goes slow) until the bin is enabled, for bin 0 and for
  // medium classes, whose blocks span 64 KiB granules. See size_class.h.
  uint32_t chk[2 * HAK_NUM_BINS];
  // Whether the bin is armed for the sampler's next event (see sampler.h):
  // it holds exactly the blocks before the sampled one, with its room lowered
  // by its bound, so that frees go to the slow path until the sampled miss.
  uint8_t armed[HAK_NUM_BINS];
  // A miss since the bin last overflowed: a thread that keeps filling and
  // emptying it needs a larger bound (see hak_tcache_free_slow).
  uint8_t missed[HAK_NUM_BINS];
  uint32_t grown_bytes; // what the bins may hold beyond their base bounds, in bytes
} hak_tcache_bin;

// Per-class counters kept by a heap; merged into the totals at thread exit.
typedef struct hak_class_counters {
  uint64_t allocs;
  uint64_t frees;
  uint64_t slow_allocs; // allocations that missed the fast cache
  uint64_t refills;
  uint64_t remote_frees;
} hak_class_counters;

typedef struct hak_class_heap {
  hak_slab *active;  // never NULL: an empty sentinel when there is none
  hak_slab *partial; // doubly linked, NULL-terminated
  hak_slab *full;
  uint32_t nfull;
  uint32_t grown_since_scan; // slabs acquired since the full list was last swept
  uint32_t nslabs;
} hak_class_heap;

typedef struct hak_heap {
  hak_class_heap cls[HAK_NUM_CLASSES];
  hak_class_counters counters[HAK_NUM_CLASSES];
  hak_tcache_bin *tcache;       // the owning thread's bins (NULL once it exits)
  struct hak_heap *next, *prev; // registry of live heaps
  pthread_t thread;
  bool live;
  // Guards cls[] (the slab layer) against the purge thread's trim of an idle
  // heap; the owner takes it on its slow paths only, never for a bin hit.
  HAK_ATOMIC(int) lock;
  HAK_ATOMIC(uint64_t) last_slow_ms; // when the owner last refilled or flushed
  uint64_t trimmed_ms;               // (registry lock) last_slow_ms as of the last trim
  // Set by a trim: the next remote free into the heap asks for another
  // (retrim), since nobody else would collect it while the owner stays idle.
  HAK_ATOMIC(int) idle_trimmed;
  HAK_ATOMIC(int) retrim;
} hak_heap;

// Thread-local state, in the initial-exec TLS model so that reaching it never
// calls into the dynamic loader.
typedef struct hak_tls_state {
  hak_heap *heap;
  hak_tcache_bin bins[1]; // one set of bins: an array so that hak_tls.bins is their address
  int exiting;            // set while the thread's heap is torn down
} hak_tls_state;

HAK_EXTERN_C_BEGIN
extern HAK_TLS hak_tls_state hak_tls HAK_INTERNAL;
HAK_EXTERN_C_END

#endif // HAKMEM_TYPES_H
