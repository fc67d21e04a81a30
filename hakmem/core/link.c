#include "link.h"

#include <string.h>
#include <sys/auxv.h>

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

void hak_link_init(void) {
  // The kernel's 16 random bytes at exec: random without a system call.
  // The bytes need not be 8-byte aligned: copy them out.
  const void *at_random = (const void *)getauxval(AT_RANDOM);
  uint64_t r[2] = {0, 0};
  if (at_random != NULL)
    memcpy(r, at_random, sizeof r);
  uint64_t k = r[0] ^ (r[1] << 1);
  k ^= (uint64_t)(uintptr_t)&hak_free_key * 0x9e3779b97f4a7c15ULL;
  hak_free_key = (uintptr_t)(k | 1); // never 0, so a zeroed word never matches
#if HAKMEM_HARDENED
  hak_link_key = (uintptr_t)((k * 0xd6e8feb86659fd93ULL) ^ r[1]);
#endif
}
