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
bool hak_integrity_wide;

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
#if HAK_WIDE_PATTERNS
  __builtin_cpu_init(); // init may run before the constructors
  __atomic_store_n(&hak_integrity_wide, __builtin_cpu_supports("avx2") != 0, __ATOMIC_RELAXED);
#endif
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

// ---- poison and guard reports ------------------------------------------------------

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "a guard span shorter than a word is masked by byte order");

// Long guard spans are compared with this run, a piece at a time.
static const uint8_t guard_run[1024] = {[0 ... 1023] = HAK_GUARD_BYTE};

bool hak_integrity_guard_run_holds(const uint8_t *b, size_t n) {
  for (; n > sizeof guard_run; b += sizeof guard_run, n -= sizeof guard_run)
    if (memcmp(b, guard_run, sizeof guard_run) != 0)
      return false;
  return memcmp(b, guard_run, n) == 0;
}

void *hak_integrity_guard_arm_long(void *p, size_t block_size, size_t requested) {
  uint8_t *b = p;
  size_t room = block_size - HAK_TRAILER;
  memset(b + requested, HAK_GUARD_BYTE, room - requested);
  // The record as hak_integrity_guard_arm_short lays it.
  hak_integrity_store8(b + room,
                       (uint64_t)requested ^ ~(uint64_t)(hak_integrity_free_key ^ (uintptr_t)p));
  return p;
}

// The first byte from from on of block p that does not hold byte.
static size_t first_changed(const void *p, size_t from, uint8_t byte) {
  while (((const uint8_t *)p)[from] == byte)
    from++;
  return from;
}

void hak_integrity_poison_damaged(const void *p) {
  hak_integrity_misuse("heap corruption",
                       "free block %p was written to after it was freed (byte %zu changed)", p,
                       first_changed(p, 16, HAK_POISON_BYTE));
}

// A freed block is poisoned where a live one has its guard: guard bytes (past
// the requested size) that all hold poison, with the rest of the poison
// intact, mean free() ran on it since its malloc; its mark is gone only
// because something wrote over it. A block whose guard lies past the
// poisoned part cannot tell, and counts as live.
static bool freed_since(const void *p, size_t block_size, size_t requested) {
  const size_t end = hak_integrity_poison_end(block_size);
  if (!HAK_POISON || requested >= end || end / 8 <= 2)
    return false;
  return hak_integrity_poison_intact(p, block_size);
}

// The guard was damaged: name what happened, an overflow or a freed block
// passed again (poison lies where the guard was).
void hak_integrity_guard_damaged(const char *what, const void *p, size_t block_size,
                                 size_t requested) {
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
                       requested, first_changed(p, requested, HAK_GUARD_BYTE));
}

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
