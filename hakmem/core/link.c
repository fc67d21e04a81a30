#include "link.h"

#include "log.h"
#include "options.h"

// The keys and the level are set by the check box at initialisation; they
// live here because every inline function of link.h reads them.
uintptr_t hak_free_key;
#if HAKMEM_HARDENED
uintptr_t hak_link_key;

void hak_link_corrupt(const void *block) {
  hak_fatal("heap corruption: the free-list link in block %p was overwritten", block);
}
#else
void hak_link_corrupt(const void *block) { hak_block_written(block); }
#endif
void hak_block_written(const void *b) {
  hak_fatal("heap corruption: free block %p was written to after it was freed", b);
}

int hak_check_level = HAKMEM_CHECK_DEFAULT;
