/*
 * fastpath_count.c - the workload that fastpath_count.sh runs under
 * callgrind to count the instructions of malloc and free on their hit path.
 *
 *   fastpath_count_prog [CALLS]
 *
 * Warms up (so that the thread's caches hold blocks of the size class), then
 * calls fastpath_marked_loop(), which does exactly CALLS (default 100000)
 * malloc(32) + free pairs and nothing else that calls into the allocator.
 * The script collects only inside that function
 * (valgrind --tool=callgrind --toggle-collect=fastpath_marked_loop).
 *
 * Linked against the system allocator; the script preloads hakmem.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE 32
#define WARMUP_BATCH 64
#define WARMUP_ROUNDS 100
#define MAX_CALLS 100000000ul

/* Makes p escape, so the compiler keeps every malloc/free pair. */
static inline void escape(void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

/* Exactly `calls` malloc(32) + free(p) pairs.  noinline and an external
 * name, so callgrind's --toggle-collect can find it. */
__attribute__((noinline, visibility("default"))) void fastpath_marked_loop(unsigned long calls);

__attribute__((noinline, visibility("default"))) void fastpath_marked_loop(unsigned long calls) {
  for (unsigned long i = 0; i < calls; i++) {
    void *p = malloc(BLOCK_SIZE);
    escape(p);
    free(p);
  }
}

int main(int argc, char **argv) {
  unsigned long calls = 100000;
  if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
    FILE *out = argc == 2 ? stdout : stderr;
    fprintf(out, "usage: %s [CALLS]   (1..%lu malloc(%d)+free pairs, default %lu)\n", argv[0],
            MAX_CALLS, BLOCK_SIZE, calls);
    return argc == 2 ? 0 : 2;
  }
  if (argc == 2) {
    char *end = NULL;
    calls = strtoul(argv[1], &end, 10);
    if (argv[1][0] < '0' || argv[1][0] > '9' || *end != '\0' || calls == 0 || calls > MAX_CALLS) {
      fprintf(stderr, "%s: CALLS must be 1..%lu, got '%s'\n", argv[0], MAX_CALLS, argv[1]);
      return 2;
    }
  }

  /* Warm-up: fill and drain the size class a few times so that the slab,
   * the thread's heap and its cache all exist and the cache holds blocks. */
  void *blocks[WARMUP_BATCH];
  for (int r = 0; r < WARMUP_ROUNDS; r++) {
    for (int i = 0; i < WARMUP_BATCH; i++) {
      blocks[i] = malloc(BLOCK_SIZE);
      if (blocks[i] == NULL) {
        fprintf(stderr, "%s: malloc returned NULL during warm-up\n", argv[0]);
        return 1;
      }
      memset(blocks[i], 0, BLOCK_SIZE);
    }
    for (int i = 0; i < WARMUP_BATCH; i++)
      free(blocks[i]);
  }

  fastpath_marked_loop(calls);
  printf("fastpath_marked_loop: %lu malloc(%d)+free pairs\n", calls, BLOCK_SIZE);
  return 0;
}
