/*
 * corrupt_malloc.c - a deliberately broken malloc for mtstress_test.
 *
 * Preloaded into mtstress_system, it forwards malloc, calloc and free to
 * glibc but, on every CORRUPT_EVERY-th malloc or calloc from a thread other
 * than the main one, flips the first byte of the previous such block while
 * that block is still live (an allocator writing into a block it handed
 * out).  mtstress must notice, report "heap corruption" and exit 1.  Only
 * worker threads' blocks are touched: mtstress's bookkeeping is allocated by
 * the main thread.
 *
 * With CORRUPT_MALLOC_MODE=dirty-calloc it flips nothing; instead every
 * CORRUPT_EVERY-th calloc from a worker thread returns a block whose last
 * byte is not zero (a calloc that skipped clearing a recycled block).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CORRUPT_EVERY 7u

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void __libc_free(void *ptr);

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *g_victim; /* live worker block; guarded by g_mu */
static unsigned long g_count;   /* guarded by g_mu */
static int g_dirty_calloc;      /* set before main, read-only after */
static __thread int t_worker = -1;

__attribute__((constructor)) static void read_mode(void) {
  const char *mode = getenv("CORRUPT_MALLOC_MODE");
  g_dirty_calloc = mode != NULL && strcmp(mode, "dirty-calloc") == 0;
}

static int is_worker(void) {
  if (t_worker < 0)
    t_worker = syscall(SYS_gettid) != getpid();
  return t_worker;
}

/* Makes worker block p the victim, now and then corrupting the last one. */
static void *take_victim(unsigned char *p) {
  pthread_mutex_lock(&g_mu);
  if (g_victim != NULL && ++g_count % CORRUPT_EVERY == 0)
    g_victim[0] ^= 0x5a;
  g_victim = p;
  pthread_mutex_unlock(&g_mu);
  return p;
}

__attribute__((visibility("default"))) void *malloc(size_t size) {
  unsigned char *p = __libc_malloc(size);
  if (p == NULL || size == 0 || g_dirty_calloc || !is_worker())
    return p;
  return take_victim(p);
}

__attribute__((visibility("default"))) void *calloc(size_t nmemb, size_t size) {
  /* glibc's calloc returns NULL when nmemb * size overflows. */
  unsigned char *p = __libc_calloc(nmemb, size);
  if (p == NULL || nmemb == 0 || size == 0 || !is_worker())
    return p;
  if (!g_dirty_calloc)
    return take_victim(p);
  pthread_mutex_lock(&g_mu);
  if (++g_count % CORRUPT_EVERY == 0)
    p[nmemb * size - 1] = 0xa5;
  pthread_mutex_unlock(&g_mu);
  return p;
}

__attribute__((visibility("default"))) void free(void *ptr) {
  if (ptr == NULL)
    return;
  /* A freed block is never written: it stops being the victim first. */
  pthread_mutex_lock(&g_mu);
  if (ptr == g_victim)
    g_victim = NULL;
  pthread_mutex_unlock(&g_mu);
  __libc_free(ptr);
}
