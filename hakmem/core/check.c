#include "check.h"

#include <string.h>

#include "link.h"
#include "log.h"

#define GUARD_BYTE 0xA5
#define POISON_BYTE 0xDB

// The poisoned bytes of a block: after its link and mark, before its trailer.
static size_t poison_end(size_t block_size) {
  size_t end = block_size - HAK_TRAILER;
  return end < HAK_POISON_MAX ? end : HAK_POISON_MAX;
}

#define POISON_WORD (0x0101010101010101ULL * POISON_BYTE)

// Whole words: blocks are 16-byte aligned and the poisoned end is a multiple
// of 8, so the check is a word compare per 8 bytes.
void hak_poison(void *p, size_t block_size) {
  uint64_t *w = p;
  for (size_t i = 2; i < poison_end(block_size) / 8; i++)
    w[i] = POISON_WORD;
}

void hak_poison_check(const void *p, size_t block_size) {
  const uint64_t *w = p;
  for (size_t i = 2; i < poison_end(block_size) / 8; i++) {
    if (hak_unlikely(w[i] != POISON_WORD)) {
      size_t byte = i * 8;
      while (((const uint8_t *)p)[byte] == POISON_BYTE)
        byte++;
      hak_fatal("heap corruption: free block %p was written to after it was freed (byte %zu "
                "changed)",
                p, byte);
    }
  }
}

void hak_check_init(void) {
  hak_link_init();
  int level = hak_opts.check_level;
  if (HAKMEM_HARDENED && level < HAK_CHECK_CHEAP)
    level = HAK_CHECK_CHEAP; // what the hardened build is for cannot be turned off
  hak_check_level = level;
}

void hak_report(const char *what, const void *p, const char *problem) {
  hak_fatal("%s: %s %p", what, problem, p);
}

#if HAK_GUARD
void hak_guard_arm(void *p, size_t block_size, size_t requested) {
  uint8_t *b = p;
  size_t room = block_size - HAK_TRAILER;
  memset(b + requested, GUARD_BYTE, room - requested);
  // Complemented, so that a trailer that shares the second word of a 16-byte
  // block can never look like the free mark.
  uint64_t t = (uint64_t)requested ^ ~(uint64_t)(hak_free_key ^ (uintptr_t)p);
  memcpy(b + room, &t, sizeof t);
}

// A freed block is poisoned where a live one has its guard: guard bytes (past
// the requested size) that all hold poison, with the rest of the poison
// intact, mean free() ran on it since its malloc; its mark is gone only
// because something wrote over it. A block whose guard lies past the
// poisoned part cannot tell, and counts as live.
static bool freed_since(const void *p, size_t block_size, size_t requested) {
  const size_t end = poison_end(block_size);
  if (!HAK_POISON || requested >= end || end / 8 <= 2)
    return false;
  const uint64_t *w = p;
  for (size_t i = 2; i < end / 8; i++)
    if (w[i] != POISON_WORD)
      return false;
  return true;
}

// The guard was damaged: name what happened, an overflow or a freed block
// passed again (poison lies where the guard was).
__attribute__((noreturn, cold)) static void
guard_damaged(const char *what, const void *p, size_t block_size, size_t requested, size_t byte) {
  if (requested != SIZE_MAX && freed_since(p, block_size, requested)) {
    if (strcmp(what, "free()") == 0)
      hak_fatal("free(): double free of %p (its free mark was overwritten after the first free)",
                p);
    hak_fatal("%s: block already freed: %p (its free mark was overwritten after the free)", what,
              p);
  }
  if (requested == SIZE_MAX)
    hak_report(what, p, "write past the end of block (size record damaged):");
  hak_fatal("%s: write past the end of block %p (%zu bytes requested, byte %zu changed)", what, p,
            requested, byte);
}

size_t hak_guard_check(const char *what, const void *p, size_t block_size) {
  const uint8_t *b = p;
  size_t room = block_size - HAK_TRAILER;
  uint64_t t;
  memcpy(&t, b + room, sizeof t);
  size_t requested = (size_t)(t ^ ~(uint64_t)(hak_free_key ^ (uintptr_t)p));
  if (hak_check_level == HAK_CHECK_OFF)
    return requested <= room ? requested : room;
  if (requested > room)
    guard_damaged(what, p, block_size, SIZE_MAX, 0);
  for (size_t i = requested; i < room; i++)
    if (b[i] != GUARD_BYTE)
      guard_damaged(what, p, block_size, requested, i);
  return requested;
}
#endif
