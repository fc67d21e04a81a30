// The only box that asks the OS for memory. Failures return NULL with errno
// set to ENOMEM; nothing here crashes or allocates.
#ifndef HAKMEM_OS_H
#define HAKMEM_OS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Maps size bytes (a page multiple) of zeroed, read-write memory.
void *hak_os_map(size_t size) HAK_INTERNAL;
// Reserves size bytes that read as zero and take memory only where written
// (no commit charge); NULL on failure, errno unchanged.
void *hak_os_reserve(size_t size) HAK_INTERNAL;
// Maps size bytes aligned to align (a power of two >= the page size).
void *hak_os_map_aligned(size_t size, size_t align) HAK_INTERNAL;
void hak_os_unmap(void *addr, size_t size) HAK_INTERNAL;
// Gives the pages back to the OS; the range stays mapped and reads as zero.
void hak_os_purge(void *addr, size_t size) HAK_INTERNAL;
// Grows or shrinks a mapping without moving it; 0 on success.
int hak_os_resize_in_place(void *addr, size_t old_size, size_t new_size) HAK_INTERNAL;
// Moves the pages of mapping addr (old_size bytes) to the start of mapping to,
// which is new_size bytes and replaced: resident pages keep their contents
// and need no fault; addr is unmapped. 0 on success (else both stay as they
// were).
int hak_os_move(void *addr, size_t old_size, void *to, size_t new_size) HAK_INTERNAL;
// Bytes of [addr, addr + size) that are resident (mincore), both page
// aligned; 0 if the kernel cannot say.
size_t hak_os_resident(void *addr, size_t size) HAK_INTERNAL;
// Makes the pages unreachable (a guard, writable false) or read-write again; 0
// on success.
int hak_os_protect(void *addr, size_t size, bool writable) HAK_INTERNAL;
// Monotonic milliseconds from the vDSO clock (no system call).
uint64_t hak_os_now_ms(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_OS_H
