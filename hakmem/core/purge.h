// The purge thread: returns idle memory to the OS while the program sleeps.
// Boxes that hold idle memory (the page arena, free slots of SuperSlabs, idle
// heaps) say when it becomes purgeable; the thread is started lazily from a
// safe point, sleeps until the earliest deadline, runs the pass that the top
// box registered, and exits after a quiet spell. This box knows no holder.
#ifndef HAKMEM_PURGE_H
#define HAKMEM_PURGE_H

#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Something becomes purgeable at deadline_ms (hak_os_now_ms time). Never
// allocates; callable with hakmem locks held. Cheap when the thread already
// wakes up no later than deadline_ms.
void hak_purge_wanted(uint64_t deadline_ms) HAK_INTERNAL;
// Starts the purge thread if memory is waiting and none runs. Call only where
// a nested malloc/free from this thread is harmless (pthread_create allocates)
// and no hakmem lock is held.
void hak_purge_poll(void) HAK_INTERNAL;
// The earliest pending deadline, 0 when nothing waits.
uint64_t hak_purge_due(void) HAK_INTERNAL;
// The pass: returns what is due and when the next thing falls due (0: none).
typedef uint64_t (*hak_purge_pass_fn)(void);
void hak_purge_set_pass(hak_purge_pass_fn pass) HAK_INTERNAL;
// Runs fn as a pass would (malloc_trim's work): a slab that fn releases may
// run the arena's tick, which must not start a nested pass.
void hak_purge_exclusive(void (*fn)(void)) HAK_INTERNAL;
// Purges what is due now, unless a pass is already running.
void hak_purge_try_run(void) HAK_INTERNAL;

void hak_purge_fork_prepare(void) HAK_INTERNAL;
void hak_purge_fork_parent(void) HAK_INTERNAL;
void hak_purge_fork_child(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_PURGE_H
