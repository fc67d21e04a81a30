// The only box that asks the OS for memory. Failures return NULL with errno
// set to ENOMEM; nothing here crashes or allocates.
//
// It also keeps the memory counters that explain RSS, and the heap limit:
// every byte of hak_os_map, hak_os_map_aligned and hak_os_resize_in_place is
// counted as mapped (data and metadata alike) until it is unmapped; reserves
// (hak_os_reserve, touched piecemeal) are counted apart and not limited.
#ifndef HAKMEM_OS_H
#define HAKMEM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Maps size bytes (a page multiple) of zeroed, read-write memory.
void *hak_os_map(size_t size) HAK_INTERNAL;
// Reserves size bytes that read as zero and take memory only where written
// (no commit charge); NULL on failure, errno unchanged.
void *hak_os_reserve(size_t size) HAK_INTERNAL;
// Unmaps (part of) a reserve from hak_os_reserve.
void hak_os_unreserve(void *addr, size_t size) HAK_INTERNAL;
// Maps size bytes aligned to align (a power of two >= the page size).
void *hak_os_map_aligned(size_t size, size_t align) HAK_INTERNAL;
// Unmaps (part of) a mapping from hak_os_map or hak_os_map_aligned.
void hak_os_unmap(void *addr, size_t size) HAK_INTERNAL;
// Gives the pages back to the OS; the range stays mapped and reads as zero.
void hak_os_purge(void *addr, size_t size) HAK_INTERNAL;
// Grows or shrinks a mapping without moving it; 0 on success. Growth counts
// against the heap limit like a new mapping.
int hak_os_resize_in_place(void *addr, size_t old_size, size_t new_size) HAK_INTERNAL;
// Moves the pages of mapping addr (old_size bytes) to the start of mapping to,
// which is new_size bytes and replaced: resident pages keep their contents
// and need no fault; addr is unmapped. 0 on success (else both stay as they
// were).
int hak_os_move(void *addr, size_t old_size, void *to, size_t new_size) HAK_INTERNAL;
// Grows mapping addr (old_size bytes) to new_size bytes at a new address
// aligned to align, when there is no address space for a second mapping
// beside it (a limit on it, RLIMIT_AS): the kernel moves it anywhere
// (mremap MREMAP_MAYMOVE counts only the growth), and if it landed
// unaligned its contents are moved up within the new mapping (a copy) and
// the slack unmapped. Then record(new address, arg) must record it; if it
// cannot, the mapping goes back where it was. The new address, or NULL with
// the old mapping intact.
void *hak_os_grow_moving(void *addr, size_t old_size, size_t new_size, size_t align,
                         bool (*record)(void *moved, void *arg), void *arg) HAK_INTERNAL;
// Bytes of [addr, addr + size) that are resident (mincore), both page
// aligned; 0 if the kernel cannot say.
size_t hak_os_resident(void *addr, size_t size) HAK_INTERNAL;
// Makes the pages unreachable (a guard, writable false) or read-write again; 0
// on success.
int hak_os_protect(void *addr, size_t size, bool writable) HAK_INTERNAL;
// Monotonic milliseconds from the vDSO clock (no system call).
uint64_t hak_os_now_ms(void) HAK_INTERNAL;

// ---- the heap limit ---------------------------------------------------------

// Soft: past the limit only after giving back every idle page; hard: a
// mapping that would pass it fails with ENOMEM (after the same give-back).
enum { HAK_OS_LIMIT_SOFT = 0, HAK_OS_LIMIT_HARD = 1 };
// Sets the limit on mapped bytes (0: none); -1 with EINVAL for a bad mode.
int hak_os_set_limit(size_t bytes, int mode) HAK_INTERNAL;
size_t hak_os_limit(int *mode) HAK_INTERNAL;
// What the os box calls when a mapping would pass the limit: returns idle
// memory. It runs on the mapping thread, which may hold any hakmem lock that
// is ever held across a map (the heap registry's, the thread's own heap's),
// so it must take none of those (maintenance registers it).
typedef void (*hak_os_giveback_fn)(void);
void hak_os_set_giveback(hak_os_giveback_fn fn) HAK_INTERNAL;

// ---- transparent huge pages -------------------------------------------------

// HAKMEM_THP: whether hak_os_hugepage advises at all.
void hak_os_set_thp(bool on) HAK_INTERNAL;
// MADV_HUGEPAGE on this range only (never anything process-wide).
void hak_os_hugepage(void *addr, size_t size) HAK_INTERNAL;

// ---- counters ---------------------------------------------------------------

typedef struct hak_os_stats {
  uint64_t mapped;            // bytes mapped now (what the limit counts)
  uint64_t mapped_peak;       // highest mapped
  uint64_t reserved;          // bytes of reserves now (address space)
  uint64_t released_dontneed; // bytes given back by MADV_DONTNEED (RSS drops at once)
  uint64_t released_munmap;   // bytes given back by munmap (RSS drops at once)
  uint64_t thp_advised;       // bytes advised MADV_HUGEPAGE
  uint64_t limit_givebacks;   // times a mapping at the limit ran the give-back
  uint64_t limit_refusals;    // mappings the hard limit refused
} hak_os_stats;

void hak_os_stats_get(hak_os_stats *out) HAK_INTERNAL;
// The process's resident bytes from /proc/self/statm (0 if unreadable):
// open/read/close only, so async-signal-safe and malloc-free.
uint64_t hak_os_resident_bytes(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_OS_H
