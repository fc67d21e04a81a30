// A main() for the fuzz target when libFuzzer is not linked in (the default
// gcc build): runs each input file named on the command line once, so that
// `bazel test //hakmem/fuzz/...` replays the seed corpus without clang.
// Arguments starting with '-' (libFuzzer's flags) are ignored; a directory
// stands for the files in it. Output lines match libFuzzer's own replay.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *data = malloc(cap);
  size_t n;
  while (data != NULL && (n = fread(data + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap)
      data = realloc(data, cap *= 2);
  }
  fclose(f);
  if (data == NULL) {
    fprintf(stderr, "replay: out of memory reading %s\n", path);
    return 1;
  }
  printf("Running: %s\n", path);
  fflush(stdout);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  LLVMFuzzerTestOneInput(data, len);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  printf("Executed %s in %ld ms\n", path, ms);
  fflush(stdout);
  free(data);
  return 0;
}

// Runs path, or every regular file in it if it is a directory.
static int run_path(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL)
    return run_file(path);
  int rc = 0;
  struct dirent *e;
  char buf[4096];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
    rc |= run_file(buf);
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  int rc = 0, inputs = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-')
      continue;
    rc |= run_path(argv[i]);
    inputs++;
  }
  if (inputs == 0) {
    fprintf(stderr, "usage: %s INPUT... (files or directories; this build has no libFuzzer)\n",
            argv[0]);
    return 2;
  }
  return rc;
}
