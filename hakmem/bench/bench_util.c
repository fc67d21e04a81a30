/* bench_util.c - see bench_util.h.  No function here allocates. */
#define _GNU_SOURCE
#include "hakmem/bench/bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_stream_seed(uint64_t seed, uint64_t index) {
  return bench_mix64(seed ^ bench_mix64(index + 0x632be59bd9b4e019ull));
}

/* g(s) = k + s / 2^k - 1 for 2^k <= s < 2^(k+1): the position of s on a
 * scale where every octave has length 1. */
static double octave_pos(uint64_t s) {
  int k = 63 - __builtin_clzll(s);
  return (double)k + (double)s / (double)((uint64_t)1 << k) - 1.0;
}

void bench_size_dist_init(bench_size_dist *d, size_t lo, size_t hi) {
  d->lo = lo < 1 ? 1 : lo;
  d->hi = hi < d->lo ? d->lo : hi;
  d->x0 = octave_pos(d->lo);
  d->span = octave_pos((uint64_t)d->hi + 1) - d->x0;
}

size_t bench_first_bad_byte(const void *p, size_t from, size_t to, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = from; i < to; i++)
    if (b[i] != bench_pattern_byte(seed, i))
      return i;
  return BENCH_NO_MISMATCH;
}

BENCH_NO_COVERAGE size_t bench_find_nonzero(const void *p, size_t from, size_t to) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = from;
  for (; i < to && (i & 7) != 0; i++)
    if (b[i] != 0)
      return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w != 0)
      break;
  }
  for (; i < to; i++)
    if (b[i] != 0)
      return i;
  return BENCH_NO_MISMATCH;
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * BENCH_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void bench_sleep_until_ns(uint64_t t) {
  struct timespec ts;
  ts.tv_sec = (time_t)(t / BENCH_NS_PER_SEC);
  ts.tv_nsec = (long)(t % BENCH_NS_PER_SEC);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* Reads a small /proc file into buf (NUL-terminated) with read(2), so that
 * sampling never allocates; 0 if it cannot. */
static int read_proc(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  size_t got = 0;
  while (got < size - 1) {
    ssize_t n = read(fd, buf + got, size - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  return got > 0;
}

/* Parses a decimal number after optional blanks; *end gets the next char. */
static uint64_t parse_decimal(const char *s, const char **end) {
  while (*s == ' ' || *s == '\t')
    s++;
  uint64_t v = 0;
  while (*s >= '0' && *s <= '9')
    v = v * 10 + (uint64_t)(*s++ - '0');
  *end = s;
  return v;
}

int bench_statm(uint64_t *vm_bytes, uint64_t *rss_bytes) {
  char buf[256];
  if (vm_bytes != NULL)
    *vm_bytes = 0;
  if (rss_bytes != NULL)
    *rss_bytes = 0;
  if (!read_proc("/proc/self/statm", buf, sizeof buf))
    return 0;
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  const char *s = buf;
  uint64_t vm = parse_decimal(s, &s);
  uint64_t rss = parse_decimal(s, &s);
  if (vm_bytes != NULL)
    *vm_bytes = vm * page;
  if (rss_bytes != NULL)
    *rss_bytes = rss * page;
  return 1;
}

uint64_t bench_rss_bytes(void) {
  uint64_t rss = 0;
  bench_statm(NULL, &rss);
  return rss;
}

uint64_t bench_peak_rss_bytes(void) {
  char buf[4096];
  if (!read_proc("/proc/self/status", buf, sizeof buf))
    return 0;
  const char *p = strstr(buf, "VmHWM:");
  if (p == NULL)
    return 0;
  const char *end;
  return parse_decimal(p + 6, &end) * 1024u;
}
