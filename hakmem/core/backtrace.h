// The caller's stack, for the heap profiler: walked with libgcc_s's unwinder
// (_Unwind_Backtrace, which needs no frame pointers), reached through
// pointers and not linked; hakmem's own frames are left out.
#ifndef HAKMEM_BACKTRACE_H
#define HAKMEM_BACKTRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Frames walked at most: the ones kept and up to 32 of hakmem's below them.
#define HAK_BACKTRACE_FRAMES 96u

// Finds the unwinder: the program's own copy of libgcc_s (through weak
// references), or, when may_load, one loaded with dlopen, which calls
// malloc: only from a constructor, never inside hakmem.
void hak_backtrace_init(bool may_load) HAK_INTERNAL;

// The unwinder's first call sets up its tables (pthread_once, no malloc):
// made here, on a thread's first slow path, rather than at a sample.
void hak_backtrace_warm_up(void) HAK_INTERNAL;

// Adds the addresses of the allocation entry points (at most 32 in all):
// frames up to the outermost of them are left out. Callers serialise.
void hak_backtrace_add_entries(const void *const *fns, unsigned n) HAK_INTERNAL;

// The return addresses of the caller's stack above hakmem, leaf first, into
// out (at most max, max <= HAK_BACKTRACE_FRAMES - 32); their number. mark is
// the address of a local variable of hakmem's: the frames up to the one
// holding it, and up to the outermost entry point, are left out. 0 without
// an unwinder.
unsigned hak_backtrace_capture(uintptr_t *out, unsigned max, const void *mark) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_BACKTRACE_H
