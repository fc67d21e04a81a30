#include "proc_maps.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

// Reads lowercase hex digits at *s, advancing *s past them.
static uint64_t parse_hex(const char **s) {
  uint64_t v = 0;
  for (;; (*s)++) {
    char c = **s;
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else
      return v;
    v = v << 4 | d;
  }
}

// The line [s, eol), NUL-terminated at eol.
static void parse_line(const char *s, const char *eol, hak_proc_maps_entry *e) {
  e->start = parse_hex(&s);
  e->end = 0;
  if (*s == '-') {
    s++;
    e->end = parse_hex(&s);
  }
  // " rwxp offset dev inode path"
  e->readable = *s == ' ' && s[1] == 'r';
  e->executable = s + 4 < eol && s[3] == 'x';
  s = s + 6 <= eol ? s + 6 : eol;
  e->offset = parse_hex(&s);
  const char *path = s;
  for (int field = 0; field < 2 && path < eol; field++) { // dev, inode
    while (path < eol && *path == ' ')
      path++;
    while (path < eol && *path != ' ')
      path++;
  }
  while (path < eol && *path == ' ')
    path++;
  e->path = path;
  e->path_len = (size_t)(eol - path);
}

bool hak_proc_maps_each(char *buf, size_t cap, hak_proc_maps_fn *fn, void *arg) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  size_t have = 0;
  bool stopped = false, done = false, skip = false;
  while (!stopped && !done) {
    ssize_t n = read(fd, buf + have, cap - 1 - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      done = true;
    else
      have += (size_t)n;
    size_t line = 0;
    for (size_t i = 0; i < have && !stopped; i++) {
      if (buf[i] != '\n' && !(done && i + 1 == have))
        continue;
      size_t eol = buf[i] == '\n' ? i : i + 1;
      buf[eol] = '\0';
      if (!skip) {
        hak_proc_maps_entry e;
        parse_line(buf + line, buf + eol, &e);
        stopped = fn(arg, &e);
      }
      skip = false;
      line = i + 1;
    }
    // Keep the unfinished last line for the next read.
    if (line > 0) {
      for (size_t i = line; i < have; i++)
        buf[i - line] = buf[i];
      have -= line;
    } else if (have >= cap - 1) {
      have = 0; // a line longer than the buffer: its rest is skipped too
      skip = true;
    }
  }
  close(fd);
  return stopped;
}

typedef struct find_arg {
  uintptr_t a, lo, hi;
} find_arg;

static bool holds(void *arg, const hak_proc_maps_entry *e) {
  find_arg *f = arg;
  if (!e->readable || e->start > f->a || f->a >= e->end)
    return false;
  f->lo = e->start;
  f->hi = e->end;
  return true;
}

bool hak_proc_maps_find_readable(uintptr_t a, uintptr_t *lo, uintptr_t *hi) {
  char buf[4096];
  find_arg f = {a, 0, 0};
  if (!hak_proc_maps_each(buf, sizeof buf, holds, &f))
    return false;
  *lo = f.lo;
  *hi = f.hi;
  return true;
}
