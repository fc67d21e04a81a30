// Allocates from two known call sites in known proportions, for the heap
// profiler's end-to-end test (profile_pprof_test.sh): site_a allocates three
// times the bytes site_b does, then frees two thirds of its blocks, so that
// alloc_space is 3:1 and inuse_space 1:1 between them. Compiled without
// frame pointers: the stacks must still reach main. Writes the profile with
// hak_prof_dump (found with dlsym: hakmem is preloaded) to argv[1]. With a
// second argument, a path, it then raises SIGUSR2 (HAKMEM_PROF_SIGNAL=USR2)
// and checks that the next allocation slow path wrote the profile there.
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNITS 100000

static void *blocks_a[3 * UNITS];
static void *blocks_b[UNITS];

// Sizes cycle through small, medium and large-ish classes; each site gets the
// same mix, so only the count differs.
static size_t size_of(unsigned k) {
  static const size_t sizes[] = {48, 256, 1000, 200, 96, 3000};
  return sizes[k % (sizeof sizes / sizeof sizes[0])];
}

__attribute__((noinline)) void *site_a(unsigned k) {
  void *p = malloc(size_of(k));
  __asm__ volatile("" ::: "memory"); // keep the frame (no tail call)
  return p;
}

__attribute__((noinline)) void *site_b(unsigned k) {
  void *p = malloc(size_of(k));
  __asm__ volatile("" ::: "memory");
  return p;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s PROFILE [SIGNAL-PROFILE]\n", argv[0]);
    return 2;
  }
  // Interleaved, so that both sites see the same state of the bins.
  for (unsigned k = 0; k < UNITS; k++) {
    for (unsigned j = 0; j < 3; j++) {
      blocks_a[3 * k + j] = site_a(k);
      memset(blocks_a[3 * k + j], 1, 16);
    }
    blocks_b[k] = site_b(k);
    memset(blocks_b[k], 2, 16);
  }
  for (unsigned k = 0; k < 3 * UNITS; k++)
    if (k % 3 != 0)
      free(blocks_a[k]);
  int (*dump)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "hak_prof_dump");
  if (dump == NULL) {
    fprintf(stderr, "hak_prof_dump not found (is hakmem preloaded?)\n");
    return 1;
  }
  if (dump(argv[1]) != 0) {
    perror("hak_prof_dump");
    return 1;
  }
  if (argc == 3) {
    unlink(argv[2]);
    raise(SIGUSR2);
    if (access(argv[2], F_OK) == 0) {
      fprintf(stderr, "the signal handler wrote the profile itself\n");
      return 1;
    }
    void *volatile big = malloc(1 << 20); // a large block: a slow path (kept by volatile)
    free(big);
    if (access(argv[2], R_OK) != 0) {
      fprintf(stderr, "no profile at %s after the signal and a slow path\n", argv[2]);
      return 1;
    }
  }
  return 0;
}
