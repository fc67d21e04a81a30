#include "purge.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include "log.h"
#include "options.h"
#include "os.h"
#include "stats.h"

// Quiet spell after which an idle purge thread exits, so that it never keeps
// a process alive whose main thread called pthread_exit for long.
#define PURGE_LINGER_MS 1000
// The thread's stack: it only sleeps, locks and makes system calls.
#define PURGE_STACK (64u << 10)

enum { PURGE_NONE, PURGE_STARTING, PURGE_RUNNING };

static struct {
  pthread_mutex_t lock; // guards deadline changes and the thread's sleep
  pthread_cond_t wake;
  pthread_mutex_t work;         // held during a purge pass, and across fork
  _Atomic uint64_t deadline;    // earliest pending deadline, 0: nothing pending
  _Atomic int state;            // PURGE_*
  _Atomic uint64_t retry_after; // after a failed pthread_create
  bool cond_ready;              // wake uses CLOCK_MONOTONIC
} g_purge = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_MUTEX_INITIALIZER};

static void cond_init(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&g_purge.wake, &a);
  pthread_condattr_destroy(&a);
  g_purge.cond_ready = true;
}

void hak_purge_wanted(uint64_t deadline_ms) {
  uint64_t d = atomic_load_explicit(&g_purge.deadline, memory_order_relaxed);
  if (d != 0 && d <= deadline_ms)
    return; // the thread (or the next poll) looks no later than that anyway
  hak_stats_mutex_lock(&g_purge.lock);
  d = atomic_load_explicit(&g_purge.deadline, memory_order_relaxed);
  if (d == 0 || deadline_ms < d) {
    atomic_store_explicit(&g_purge.deadline, deadline_ms, memory_order_relaxed);
    if (g_purge.cond_ready)
      pthread_cond_signal(&g_purge.wake);
  }
  pthread_mutex_unlock(&g_purge.lock);
}

uint64_t hak_purge_due(void) {
  return atomic_load_explicit(&g_purge.deadline, memory_order_relaxed);
}

// The pass, registered by the box at the top that knows every holder of idle
// memory (maintenance); NULL until then, when there is nothing to purge.
static hak_purge_pass_fn g_pass;

void hak_purge_set_pass(hak_purge_pass_fn pass) { g_pass = pass; }

// One pass over what is due; the deadline is cleared first, so that memory
// that turns idle meanwhile sets it again, then set to what is left.
static void purge_pass(void) {
  atomic_store_explicit(&g_purge.deadline, 0, memory_order_relaxed);
  uint64_t next = g_pass != NULL ? g_pass() : 0;
  if (next != 0)
    hak_purge_wanted(next);
}

void hak_purge_exclusive(void (*fn)(void)) {
  hak_stats_mutex_lock(&g_purge.work);
  fn();
  pthread_mutex_unlock(&g_purge.work);
}

void hak_purge_try_run(void) {
  if (pthread_mutex_trylock(&g_purge.work) != 0)
    return; // a pass is running
  purge_pass();
  pthread_mutex_unlock(&g_purge.work);
}

static void to_timespec(uint64_t ms, struct timespec *ts) {
  ts->tv_sec = (time_t)(ms / 1000u);
  ts->tv_nsec = (long)(ms % 1000u) * 1000000L;
}

static void *purge_main(void *arg) {
  (void)arg;
  hak_stats_mutex_lock(&g_purge.lock);
  atomic_store_explicit(&g_purge.state, PURGE_RUNNING, memory_order_relaxed);
  uint64_t quiet_since = hak_os_now_ms();
  for (;;) {
    uint64_t now = hak_os_now_ms();
    uint64_t d = atomic_load_explicit(&g_purge.deadline, memory_order_relaxed);
    if (d != 0 && d <= now) {
      pthread_mutex_unlock(&g_purge.lock);
      hak_stats_mutex_lock(&g_purge.work);
      purge_pass();
      pthread_mutex_unlock(&g_purge.work);
      hak_stats_mutex_lock(&g_purge.lock);
      quiet_since = hak_os_now_ms();
      continue;
    }
    if (d == 0 && now - quiet_since >= PURGE_LINGER_MS)
      break;
    // CLOCK_MONOTONIC_COARSE lags CLOCK_MONOTONIC by a tick at most: +1 ms
    // so that the wake-up never comes before the deadline.
    struct timespec ts;
    to_timespec((d != 0 ? d : quiet_since + PURGE_LINGER_MS) + 1, &ts);
    pthread_cond_timedwait(&g_purge.wake, &g_purge.lock, &ts);
  }
  atomic_store_explicit(&g_purge.state, PURGE_NONE, memory_order_relaxed);
  pthread_mutex_unlock(&g_purge.lock);
  return NULL;
}

void hak_purge_poll(void) {
  if (atomic_load_explicit(&g_purge.deadline, memory_order_relaxed) == 0 ||
      atomic_load_explicit(&g_purge.state, memory_order_relaxed) != PURGE_NONE ||
      !hak_options_current.purge_thread)
    return;
  uint64_t now = hak_os_now_ms();
  if (now < atomic_load_explicit(&g_purge.retry_after, memory_order_relaxed))
    return;
  int expected = PURGE_NONE;
  if (!atomic_compare_exchange_strong_explicit(&g_purge.state, &expected, PURGE_STARTING,
                                               memory_order_acq_rel, memory_order_relaxed))
    return;
  hak_stats_mutex_lock(&g_purge.lock);
  if (!g_purge.cond_ready)
    cond_init();
  pthread_mutex_unlock(&g_purge.lock);
  // The thread starts with every signal blocked, so that no handler of the
  // program ever runs on it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, PURGE_STACK);
  pthread_t t;
  int saved = errno;
  int rc = pthread_create(&t, &attr, purge_main, NULL);
  errno = saved;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    HAK_LOG("cannot start the purge thread: error %d\n", rc);
    atomic_store_explicit(&g_purge.retry_after, now + hak_options_current.decay_ms + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&g_purge.state, PURGE_NONE, memory_order_relaxed);
  }
}

// A purge pass in flight would leave slots reserved in the child; fork waits
// for it instead.
void hak_purge_fork_prepare(void) {
  pthread_mutex_lock(&g_purge.work);
  pthread_mutex_lock(&g_purge.lock);
}

void hak_purge_fork_parent(void) {
  pthread_mutex_unlock(&g_purge.lock);
  pthread_mutex_unlock(&g_purge.work);
}

void hak_purge_fork_child(void) {
  // The child has no purge thread; the next poll starts one if memory waits.
  pthread_mutex_init(&g_purge.lock, NULL);
  pthread_mutex_init(&g_purge.work, NULL);
  if (g_purge.cond_ready)
    cond_init();
  atomic_store_explicit(&g_purge.state, PURGE_NONE, memory_order_relaxed);
  atomic_store_explicit(&g_purge.retry_after, 0, memory_order_relaxed);
}
