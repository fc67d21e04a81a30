#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#if !HAKMEM_BUILD_RELEASE
int hak_log_level = 0;
#endif

typedef struct {
  char *buf;
  size_t cap;
  size_t len;
} out_buf;

static void put(out_buf *o, char c) {
  if (o->len + 1 < o->cap)
    o->buf[o->len] = c;
  o->len++;
}

// As printf: the sign counts toward the width, and goes before zero padding
// but after space padding.
static void put_num(out_buf *o, unsigned long long v, bool neg, unsigned base, int width,
                    char pad) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  if (neg && pad == '0')
    put(o, '-');
  for (int i = n + (neg ? 1 : 0); i < width; i++)
    put(o, pad);
  if (neg && pad != '0')
    put(o, '-');
  while (n > 0)
    put(o, tmp[--n]);
}

size_t hak_log_vformat(char *buf, size_t cap, const char *fmt, va_list ap) {
  out_buf o = {buf, cap, 0};
  for (const char *p = fmt; *p != '\0'; p++) {
    if (*p != '%') {
      put(&o, *p);
      continue;
    }
    p++;
    char pad = ' ';
    int width = 0;
    if (*p == '0') {
      pad = '0';
      p++;
    }
    while (*p >= '0' && *p <= '9')
      width = width * 10 + (*p++ - '0');
    int lng = 0;
    while (*p == 'l' || *p == 'z') {
      lng = (*p == 'z') ? 2 : lng + 1;
      p++;
    }
    switch (*p) {
    case 'd':
    case 'i': {
      long long v = lng >= 2   ? va_arg(ap, long long)
                    : lng == 1 ? va_arg(ap, long)
                               : va_arg(ap, int);
      unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
      put_num(&o, mag, v < 0, 10, width, pad);
      break;
    }
    case 'u':
    case 'x': {
      unsigned long long v = lng >= 2   ? va_arg(ap, unsigned long long)
                             : lng == 1 ? va_arg(ap, unsigned long)
                                        : va_arg(ap, unsigned int);
      put_num(&o, v, false, *p == 'x' ? 16 : 10, width, pad);
      break;
    }
    case 'p':
      put(&o, '0');
      put(&o, 'x');
      put_num(&o, (uintptr_t)va_arg(ap, void *), false, 16, 0, '0');
      break;
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (s == NULL)
        s = "(null)";
      size_t n = 0;
      while (s[n] != '\0')
        n++;
      for (int i = (int)n; i < width; i++)
        put(&o, ' '); // right-aligned, as printf does
      for (size_t i = 0; i < n; i++)
        put(&o, s[i]);
      break;
    }
    case 'c':
      put(&o, (char)va_arg(ap, int));
      break;
    case '%':
      put(&o, '%');
      break;
    case '\0':
      p--;
      break;
    default:
      put(&o, '%');
      put(&o, *p);
      break;
    }
  }
  if (cap > 0)
    buf[o.len < cap ? o.len : cap - 1] = '\0';
  return o.len < cap ? o.len : (cap > 0 ? cap - 1 : 0);
}

size_t hak_log_format(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = hak_log_vformat(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}

void hak_log_write_all(int fd, const char *buf, size_t len) {
  int saved = errno;
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    buf += w;
    len -= (size_t)w;
  }
  errno = saved;
}

void hak_log_write_fmt(int fd, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  size_t n = hak_log_vformat(buf, sizeof buf, fmt, ap);
  va_end(ap);
  hak_log_write_all(fd, buf, n);
}

void hak_log_fatal(const char *fmt, ...) {
  char buf[1024];
  size_t n = hak_log_format(buf, sizeof buf, "hakmem: ");
  va_list ap;
  va_start(ap, fmt);
  n += hak_log_vformat(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  buf[n++] = '\n';
  hak_log_write_all(2, buf, n);
  abort();
}

void hak_log_text_add(hak_text *t, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  size_t n = hak_log_vformat(line, sizeof line, fmt, ap);
  va_end(ap);
  if (t->len + n > sizeof t->buf)
    hak_log_text_flush(t);
  __builtin_memcpy(t->buf + t->len, line, n);
  t->len += n;
}

void hak_log_text_flush(hak_text *t) {
  if (t->len > 0)
    t->sink(t->ctx, t->buf, t->len);
  t->len = 0;
}

void hak_log_text_fd_sink(void *ctx, const char *s, size_t n) {
  hak_log_write_all((int)(intptr_t)ctx, s, n);
}
