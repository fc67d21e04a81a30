/*
 * corrupt_malloc.c - a deliberately broken malloc for mtstress_test.
 *
 * Preloaded into mtstress_system, it forwards malloc and free to glibc but,
 * on every CORRUPT_EVERY-th malloc from a thread other than the main one,
 * flips the first byte of the previous such block while that block is still
 * live (an allocator writing into a block it handed out).  mtstress must
 * notice, report "heap corruption" and exit 1.  Only worker threads'
 * blocks are touched: mtstress's bookkeeping is allocated by the main thread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CORRUPT_EVERY 7u

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *g_victim; /* live worker block; guarded by g_mu */
static unsigned long g_count;   /* guarded by g_mu */
static __thread int t_worker = -1;

static int is_worker(void) {
  if (t_worker < 0)
    t_worker = syscall(SYS_gettid) != getpid();
  return t_worker;
}

__attribute__((visibility("default"))) void *malloc(size_t size) {
  unsigned char *p = __libc_malloc(size);
  if (p == NULL || size == 0 || !is_worker())
    return p;
  pthread_mutex_lock(&g_mu);
  if (g_victim != NULL && ++g_count % CORRUPT_EVERY == 0)
    g_victim[0] ^= 0x5a;
  g_victim = p;
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
