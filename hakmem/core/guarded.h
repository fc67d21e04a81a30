// The guarded pool (HAKMEM_GUARD_SAMPLE, docs/RELIABILITY.md): one allocation
// in many is served from a bounded pool where the block's end (or, on a
// random share, its start) touches a PROT_NONE page, and where a freed
// block's pages stay PROT_NONE while the pool has room. A read or write past
// the block or after its free faults; the box's SIGSEGV/SIGBUS handler names
// the block and prints where it was allocated and freed, then hands the
// signal on (the crash report's handler, the program's, or the default
// action). The pool's 2 MiB regions are HAK_REGION_GUARDED in the segment
// map, so free, realloc and malloc_usable_size of a guarded block come here.
#ifndef HAKMEM_GUARDED_H
#define HAKMEM_GUARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// The pool's slots, the largest block it takes (its slot's pages) and how
// many frames of each stack a slot keeps. 96 slots of 4 pages and a guard
// page, after a first guard page, fill one 2 MiB region (481 of its 512
// pages): the pool costs a program 2 MiB of address space.
#define HAK_GUARDED_SLOTS 96u
#define HAK_GUARDED_SLOT_PAGES 4u
#define HAK_GUARDED_MAX_SIZE (HAK_GUARDED_SLOT_PAGES * HAK_PAGE_SIZE)
#define HAK_GUARDED_DEPTH 16u

// HAKMEM_GUARD_SAMPLE != 0 and the handler installed; set by hak_guarded_init.
extern bool hak_guarded_on HAK_INTERNAL;

// Once, after the options are read (maintenance's init_once, after the
// crash report's handler): installs the fault handler. The pool (every page
// PROT_NONE, its region registered) is reserved at the first guarded
// allocation. Later calls do nothing.
void hak_guarded_init(void) HAK_INTERNAL;

// A guarded block of size bytes aligned to align (a power of two; <= 16
// means malloc's 16), zeroed when zero (fresh pages always are). NULL when
// ineligible (size > HAK_GUARDED_MAX_SIZE, align > the page size, the pool
// off) or when every slot holds a live block (counted as a fallback). Size 0
// gets a block of its own. Records the caller's stack above hakmem.
void *hak_guarded_alloc(size_t size, size_t align, bool zero) HAK_INTERNAL;

// Frees guarded block p (its region is HAK_REGION_GUARDED); what is "free()"
// or "realloc()". A pointer that is no block start is reported as invalid
// and a freed block as a double free (with its stacks), and the process
// aborts; else the block's pages go PROT_NONE and back to the OS, and the
// slot waits in quarantine, the oldest reused first.
void hak_guarded_free(void *p, const char *what) HAK_INTERNAL;

// The size requested for live guarded block p; misuse reported as above.
size_t hak_guarded_usable_size(const void *p, const char *what) HAK_INTERNAL;

// Whether p is the start of a live guarded block (hak_owns).
bool hak_guarded_owns_live(const void *p) HAK_INTERNAL;

// Fork (maintenance's handlers): the pool's lock held across fork, released
// in the parent and re-initialised in the child.
void hak_guarded_fork_prepare(void) HAK_INTERNAL;
void hak_guarded_fork_parent(void) HAK_INTERNAL;
void hak_guarded_fork_child(void) HAK_INTERNAL;

// ---- for tests ---------------------------------------------------------------

// Where the next blocks go: random (the default), always against the page
// after the block (overflow), or always at its page's start (underflow).
enum { HAK_GUARDED_PLACE_RANDOM = 0, HAK_GUARDED_PLACE_END = 1, HAK_GUARDED_PLACE_START = 2 };
void hak_guarded_set_placement(int placement) HAK_INTERNAL;

// Slots holding a live block now, and slots whose block was freed (in
// quarantine).
unsigned hak_guarded_live_slots(void) HAK_INTERNAL;
unsigned hak_guarded_quarantined_slots(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_GUARDED_H
