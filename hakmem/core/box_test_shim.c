// C shim shared by the box tests: internal settings a test changes.
#include "options.h"
#include "thread_heap.h"

unsigned box_set_heap_stash(unsigned n) {
  hak_init();
  unsigned old = hak_opts.heap_stash;
  hak_opts.heap_stash = n;
  return old;
}
