// A program with its own SIGSEGV handler, installed in main before the first
// malloc, so before hakmem initialises (hakmem initialises on its first slow
// path). With HAKMEM_CRASH_REPORT=1 hakmem then installs its crash handler
// over it, remembering it; a fault must give hakmem's report and then still
// reach this program's handler.
//
//   crash_helper siginfo   a handler with SA_SIGINFO
//   crash_helper plain     a plain handler (sa_handler)
//
// Output on stderr: "fault <address>" before the fault; the handler writes
// "user handler: signal 11 at <address>" (siginfo) or "user handler: signal
// 11" (plain) and exits with status 3. Other statuses: 2 usage, 10 a SIGSEGV
// handler existed before main, 11 hakmem did not install its handler although
// HAKMEM_CRASH_REPORT=1, 12 mmap failed, 13 the fault did not happen.
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"

enum { kHandled = 3 };

// Async-signal-safe output: no stdio.
static void put(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

static void put_hex(uintptr_t v) {
  char buf[2 + 16 + 1];
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  int i = 0;
  buf[i++] = '0';
  buf[i++] = 'x';
  while (n > 0)
    buf[i++] = tmp[--n];
  buf[i] = '\0';
  put(buf);
}

static void on_segv_siginfo(int sig, siginfo_t *info, void *uctx) {
  (void)uctx;
  put(sig == SIGSEGV ? "user handler: signal 11 at " : "user handler: unexpected signal at ");
  put_hex((uintptr_t)info->si_addr);
  put("\n");
  _exit(kHandled);
}

static void on_segv_plain(int sig) {
  put(sig == SIGSEGV ? "user handler: signal 11\n" : "user handler: unexpected signal\n");
  _exit(kHandled);
}

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "siginfo") != 0 && strcmp(argv[1], "plain") != 0)) {
    put("usage: crash_helper siginfo|plain\n");
    return 2;
  }
  int siginfo = strcmp(argv[1], "siginfo") == 0;

  struct sigaction cur;
  sigaction(SIGSEGV, NULL, &cur);
  if ((cur.sa_flags & SA_SIGINFO) != 0 || cur.sa_handler != SIG_DFL) {
    put("a SIGSEGV handler was installed before main (hakmem initialised early?)\n");
    return 10;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  if (siginfo) {
    sa.sa_flags = SA_SIGINFO;
    sa.sa_sigaction = on_segv_siginfo;
  } else {
    sa.sa_handler = on_segv_plain;
  }
  sigaction(SIGSEGV, &sa, NULL);

  // hakmem initialises here.
  char *volatile block = malloc(32);
  block[0] = 1;

  const char *opt = getenv("HAKMEM_CRASH_REPORT");
  if (opt != NULL && strcmp(opt, "1") == 0) {
    sigaction(SIGSEGV, NULL, &cur);
    int still_ours = siginfo ? ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_segv_siginfo)
                             : (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_segv_plain);
    if (still_ours) {
      put("HAKMEM_CRASH_REPORT=1 but hakmem did not install its handler at initialisation\n");
      return 11;
    }
  }

  void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED)
    return 12;
  put("fault ");
  put_hex((uintptr_t)page);
  put("\n");
  *(volatile char *)page = 1;
  put("the fault did not happen\n");
  free(block);
  return 13;
}
