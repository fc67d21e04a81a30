#include "integrity.h"

#include <stdarg.h>
#include <string.h>
#include <sys/auxv.h>

#include "log.h"

// ---- the report ---------------------------------------------------------------

void hak_integrity_misuse(const char *what, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  hak_log_vformat(msg, sizeof msg, fmt, ap);
  va_end(ap);
  hak_log_fatal("%s: %s", what, msg);
}

void hak_integrity_report_invalid(const char *what, const void *p) {
  hak_integrity_misuse(what, "invalid pointer %p (not a block hakmem handed out)", p);
}

void hak_integrity_report_freed(const char *what, const void *p) {
  if (strcmp(what, "free()") == 0)
    hak_integrity_misuse(what, "double free of %p", p);
  hak_integrity_misuse(what, "block already freed: %p", p);
}

// ---- keys and level -------------------------------------------------------------

uintptr_t hak_integrity_free_key;
#if HAKMEM_HARDENED
uintptr_t hak_integrity_link_key;
#endif
int hak_integrity_level = HAKMEM_CHECK_DEFAULT;

void hak_integrity_link_init(void) {
  // The kernel's 16 random bytes at exec: random without a system call.
  // The bytes need not be 8-byte aligned: copy them out.
  const void *at_random = (const void *)getauxval(AT_RANDOM);
  uint64_t r[2] = {0, 0};
  if (at_random != NULL)
    memcpy(r, at_random, sizeof r);
  uint64_t k = r[0] ^ (r[1] << 1);
  k ^= (uint64_t)(uintptr_t)&hak_integrity_free_key * 0x9e3779b97f4a7c15ULL;
  hak_integrity_free_key = (uintptr_t)(k | 1); // never 0, so a zeroed word never matches
#if HAKMEM_HARDENED
  hak_integrity_link_key = (uintptr_t)((k * 0xd6e8feb86659fd93ULL) ^ r[1]);
#endif
}

void hak_integrity_init(void) {
  hak_integrity_link_init();
  int level = hak_options_current.check_level;
  if (HAKMEM_HARDENED && level < HAK_CHECK_CHEAP)
    level = HAK_CHECK_CHEAP; // what the hardened build is for cannot be turned off
  hak_integrity_level = level;
}

// ---- links and marks -----------------------------------------------------------

void hak_integrity_link_corrupt(const void *block) {
  if (HAKMEM_HARDENED)
    hak_integrity_misuse("heap corruption", "the free-list link in block %p was overwritten",
                         block);
  hak_integrity_block_written(block);
}

void hak_integrity_block_written(const void *b) {
  hak_integrity_misuse("heap corruption", "free block %p was written to after it was freed", b);
}

// ---- poison ---------------------------------------------------------------------

#define GUARD_BYTE 0xA5
#define POISON_BYTE 0xDB
#define POISON_WORD (0x0101010101010101ULL * POISON_BYTE)

// The poisoned bytes of a block: after its link and mark, before its trailer.
static size_t poison_end(size_t block_size) {
  size_t end = block_size - HAK_TRAILER;
  return end < HAK_POISON_MAX ? end : HAK_POISON_MAX;
}

// Whole words: blocks are 16-byte aligned and the poisoned end is a multiple
// of 8, so the check is a word compare per 8 bytes.
void hak_integrity_poison(void *p, size_t block_size) {
  uint64_t *w = p;
  for (size_t i = 2; i < poison_end(block_size) / 8; i++)
    w[i] = POISON_WORD;
}

void hak_integrity_poison_check(const void *p, size_t block_size) {
  const uint64_t *w = p;
  for (size_t i = 2; i < poison_end(block_size) / 8; i++) {
    if (hak_unlikely(w[i] != POISON_WORD)) {
      size_t byte = i * 8;
      while (((const uint8_t *)p)[byte] == POISON_BYTE)
        byte++;
      hak_integrity_misuse("heap corruption",
                           "free block %p was written to after it was freed (byte %zu changed)", p,
                           byte);
    }
  }
}

// ---- the guard trailer ----------------------------------------------------------

#if HAK_GUARD
void hak_integrity_guard_arm_(void *p, size_t block_size, size_t requested) {
  uint8_t *b = p;
  size_t room = block_size - HAK_TRAILER;
  memset(b + requested, GUARD_BYTE, room - requested);
  // Complemented, so that a trailer that shares the second word of a 16-byte
  // block can never look like the free mark.
  uint64_t t = (uint64_t)requested ^ ~(uint64_t)(hak_integrity_free_key ^ (uintptr_t)p);
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
      hak_integrity_misuse(
          what, "double free of %p (its free mark was overwritten after the first free)", p);
    hak_integrity_misuse(
        what, "block already freed: %p (its free mark was overwritten after the free)", p);
  }
  if (requested == SIZE_MAX)
    hak_integrity_misuse(what, "write past the end of block (size record damaged): %p", p);
  hak_integrity_misuse(what,
                       "write past the end of block %p (%zu bytes requested, byte %zu changed)", p,
                       requested, byte);
}

size_t hak_integrity_guard_check_(const char *what, const void *p, size_t block_size) {
  const uint8_t *b = p;
  size_t room = block_size - HAK_TRAILER;
  uint64_t t;
  memcpy(&t, b + room, sizeof t);
  size_t requested = (size_t)(t ^ ~(uint64_t)(hak_integrity_free_key ^ (uintptr_t)p));
  if (hak_integrity_level == HAK_CHECK_OFF)
    return requested <= room ? requested : room;
  if (requested > room)
    guard_damaged(what, p, block_size, SIZE_MAX, 0);
  for (size_t i = requested; i < room; i++)
    if (b[i] != GUARD_BYTE)
      guard_damaged(what, p, block_size, requested, i);
  return requested;
}
#endif

// ---- carving order --------------------------------------------------------------

#if HAK_CARVE_SHUFFLED
static HAK_TLS uint64_t g_carve_rng; // xorshift state, per thread

static uint32_t rng_below(uint32_t bound) {
  uint64_t x = g_carve_rng;
  if (x == 0)
    x = hak_integrity_free_key ^ (uintptr_t)&g_carve_rng; // per-thread seed
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  g_carve_rng = x;
  return (uint32_t)(((x >> 32) * bound) >> 32);
}
#endif

void hak_integrity_carve_order(uint16_t *order, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    order[i] = (uint16_t)i;
#if HAK_CARVE_SHUFFLED
  for (uint32_t i = n; i > 1; i--) {
    uint32_t j = rng_below(i);
    uint16_t t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
#endif
}
