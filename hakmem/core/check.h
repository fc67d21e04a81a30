// Misuse detection: double frees, invalid pointers, writes past the end of a
// block and writes into freed blocks. Debug builds check every call; release
// builds keep the cheap checks and run the rest when HAKMEM_CHECK=full.
#ifndef HAKMEM_CHECK_H
#define HAKMEM_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "link.h"
#include "options.h"
#include "types.h"

HAK_EXTERN_C_BEGIN

// The checking level in force (HAK_CHECK_*, options.h), set at init from
// HAKMEM_CHECK or the build's default; hardened builds never go below cheap.
//   off:   only the checks built into the fast paths (the free mark, the
//          block-start proof); slow paths follow links unvetted, and the
//          guard trailer of debug builds is not checked.
//   cheap: also every link a slow path follows, every hand-out from a bin,
//          and the guard trailer and poison where the build has them.
//   full:  also every block handed out by any path; in release builds the
//          fast cache is bypassed, so every free and malloc is vetted.
// (hak_check_level itself is declared in link.h, whose slow-path vetting
// reads it.)
#define HAK_CHECK_IS_FULL (hak_check_level == HAK_CHECK_FULL)

// Debug and hardened builds keep the requested size, masked with the key, in
// the last 8 bytes of each slab block (the canary) and fill the slack before
// it with a pattern, checked when the block is freed: a write past the end.
#define HAK_GUARD (HAKMEM_DEBUG || HAKMEM_HARDENED)
#if HAK_GUARD
#define HAK_TRAILER ((size_t)8)
#else
#define HAK_TRAILER ((size_t)0)
#endif

void hak_check_init(void) HAK_INTERNAL;

// Hardened builds fill a free block past its link and mark, up to
// HAK_POISON_MAX bytes from its start, with a pattern, and check it when the
// block is handed out again: a write after free there is reported then.
#define HAK_POISON HAKMEM_HARDENED
#define HAK_POISON_MAX ((size_t)256)
void hak_poison(void *p, size_t block_size) HAK_INTERNAL;
void hak_poison_check(const void *p, size_t block_size) HAK_INTERNAL;

// Reports misuse of p by what (e.g. "free()") and aborts.
void hak_report(const char *what, const void *p, const char *problem) HAK_INTERNAL
    __attribute__((noreturn, cold));

#if HAK_GUARD
void hak_guard_arm(void *p, size_t block_size, size_t requested) HAK_INTERNAL;
// The size requested for p, after checking that nothing wrote past it.
size_t hak_guard_check(const char *what, const void *p, size_t block_size) HAK_INTERNAL;
#endif

HAK_EXTERN_C_END

#endif // HAKMEM_CHECK_H
