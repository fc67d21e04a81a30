/*
 * thp_bench.c - a large live set of small blocks read and written in random
 * order, for HAKMEM_THP (docs/MEMORY.md has the figures).
 *
 * Written for this repository.
 *
 *   thp_bench [--mib M] [--accesses N] [--seed X]
 *
 * 1. Allocates blocks of 16..512 B (uniform) until about M MiB (1024) are
 *    live, writing each whole.
 * 2. N (20 000 000) dependent accesses: each picks a block from a hash of
 *    the previous block's first word, reads it and writes it back plus one,
 *    so that every access waits for the previous one (latency, which the
 *    TLB misses of a 4 KiB-page heap dominate).
 * 3. Frees everything.
 *
 * Output, one line: build seconds, million accesses per second, RSS after
 * the build and AnonHugePages (from /proc/self/smaps_rollup), in KiB.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem/bench/bench_util.h"

// AnonHugePages of the whole process in KiB, 0 if unreadable.
static uint64_t anon_huge_kib(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (f == NULL)
    return 0;
  char line[256];
  uint64_t kib = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "AnonHugePages: %lu kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

int main(int argc, char **argv) {
  uint64_t mib = 1024, accesses = 20000000, seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--mib") == 0)
      mib = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--accesses") == 0)
      accesses = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0)
      seed = strtoull(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "usage: thp_bench [--mib M] [--accesses N] [--seed X]\n");
      return 2;
    }
  }
  const uint64_t target = mib << 20;
  // The mean block is 264 B: room for the blocks' pointers at that mean.
  size_t cap = (size_t)(target / 264) + 1024, n = 0;
  uint64_t **blocks = malloc(cap * sizeof *blocks);
  if (blocks == NULL)
    return 1;
  bench_rng r;
  bench_rng_init(&r, seed);
  uint64_t t0 = bench_now_ns(), live = 0;
  while (live < target && n < cap) {
    size_t size = (size_t)bench_rng_range(&r, 16, 512) & ~(size_t)7;
    uint64_t *b = malloc(size);
    if (b == NULL)
      return 1;
    memset(b, (int)(n & 0x7f), size);
    b[0] = n;
    blocks[n++] = b;
    live += size;
  }
  uint64_t t1 = bench_now_ns();
  uint64_t rss = bench_rss_bytes();
  uint64_t x = seed;
  for (uint64_t i = 0; i < accesses; i++) {
    uint64_t *b = blocks[bench_mix64(x + i) % n];
    x = b[0];
    b[0] = x + 1;
  }
  uint64_t t2 = bench_now_ns();
  uint64_t huge = anon_huge_kib();
  for (size_t i = 0; i < n; i++)
    free(blocks[i]);
  free(blocks);
  printf("build_s %.3f maccess_per_s %.2f rss_kib %llu anon_huge_kib %llu blocks %zu check %llu\n",
         (double)(t1 - t0) / 1e9, (double)accesses * 1e3 / (double)(t2 - t1),
         (unsigned long long)(rss >> 10), (unsigned long long)huge, n, (unsigned long long)x);
  return 0;
}
