// Logging, assertions and error reports written with write(2): no stdio, no
// malloc, usable from any path including a signal handler.
#ifndef HAKMEM_LOG_H
#define HAKMEM_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// Formats into buf (always NUL-terminated), supporting %s %c %d %i %u %x %p %%
// with the l, ll and z length modifiers and a field width. Returns the length.
size_t hak_log_format(char *buf, size_t cap, const char *fmt, ...) HAK_INTERNAL
    __attribute__((format(printf, 3, 4)));
size_t hak_log_vformat(char *buf, size_t cap, const char *fmt, va_list ap) HAK_INTERNAL;

// Writes a formatted message to fd; long messages are cut at 1 KiB.
void hak_log_write_fmt(int fd, const char *fmt, ...) HAK_INTERNAL
    __attribute__((format(printf, 2, 3)));
// Writes all of buf to fd, retrying short writes.
void hak_log_write_all(int fd, const char *buf, size_t len) HAK_INTERNAL;

// Text gathered line by line in a stack buffer and handed to a sink in
// pieces: the one formatter of the statistics reports and of malloc_info.
typedef struct hak_text {
  void (*sink)(void *ctx, const char *s, size_t n);
  void *ctx;
  size_t len;
  char buf[2048];
} hak_text;
// Appends a formatted line (cut at 256 bytes), handing the buffer on first
// when it is full; hak_log_text_flush hands on what is left.
void hak_log_text_add(hak_text *t, const char *fmt, ...) HAK_INTERNAL
    __attribute__((format(printf, 2, 3)));
void hak_log_text_flush(hak_text *t) HAK_INTERNAL;
// A sink writing to the file descriptor ctx holds ((void *)(intptr_t)fd).
void hak_log_text_fd_sink(void *ctx, const char *s, size_t n) HAK_INTERNAL;

// Reports misuse ("hakmem: <message>") on stderr and aborts.
void hak_log_fatal(const char *fmt, ...) HAK_INTERNAL
    __attribute__((noreturn, format(printf, 1, 2)));

#if HAKMEM_DEBUG
#define HAK_ASSERT(cond)                                                                           \
  do {                                                                                             \
    if (hak_unlikely(!(cond)))                                                                     \
      hak_log_fatal("assertion failed: %s (%s:%d)", #cond, __FILE__, __LINE__);                    \
  } while (0)
#else
#define HAK_ASSERT(cond) ((void)0)
#endif

#if HAKMEM_BUILD_RELEASE
#define HAK_LOG(...) ((void)0)
#else
extern int hak_log_level HAK_INTERNAL;
// Debug logging, enabled at run time by HAKMEM_VERBOSE; compiled out in release.
#define HAK_LOG(...)                                                                               \
  do {                                                                                             \
    if (hak_unlikely(hak_log_level > 0))                                                           \
      hak_log_write_fmt(2, "hakmem: " __VA_ARGS__);                                                \
  } while (0)
#endif

HAK_EXTERN_C_END

#endif // HAKMEM_LOG_H
