// C shim for idle_purge_test.cc: the one option the test switches at run time.
#include "hakmem/core/options.h"
#include "hakmem/core/thread_heap.h"

void ip_set_purge_thread(int on) {
  hak_init(); // options are loaded here: set them only afterwards
  hak_opts.purge_thread = on;
}
