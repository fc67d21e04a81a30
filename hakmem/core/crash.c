#define _GNU_SOURCE
#include "crash.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "segmap.h"

static const int k_signals[] = {SIGSEGV, SIGBUS, SIGABRT};
static struct sigaction g_previous[3];

static const char *region_name(uint8_t kind) {
  switch (kind) {
  case HAK_REGION_SS_SMALL:
    return "yes (small SuperSlab)";
  case HAK_REGION_SS_MEDIUM:
    return "yes (medium SuperSlab)";
  case HAK_REGION_LARGE:
  case HAK_REGION_LARGE_TAIL:
    return "yes (large block mapping)";
  case HAK_REGION_GUARDED:
    return "yes (guarded pool)";
  default:
    return "no";
  }
}

static void on_crash(int sig, siginfo_t *info, void *uctx) {
  int idx = sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : 2;
  const void *addr = info != NULL ? info->si_addr : NULL;
  char buf[256];
  size_t n = hak_log_format(
      buf, sizeof buf,
      "hakmem: crash report: signal %d (%s) at address %p; in a hakmem region: %s\n", sig,
      sig == SIGSEGV  ? "SIGSEGV"
      : sig == SIGBUS ? "SIGBUS"
                      : "SIGABRT",
      sig == SIGABRT ? NULL : addr, sig == SIGABRT ? "n/a" : region_name(hak_segmap_kind(addr)));
  hak_log_write_all(2, buf, n);
  // Hand the signal on as if we had never been here.
  struct sigaction *prev = &g_previous[idx];
  sigaction(sig, prev, NULL);
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction != NULL)
      prev->sa_sigaction(sig, info, uctx);
    return;
  }
  if (prev->sa_handler == SIG_IGN)
    return;
  if (prev->sa_handler != SIG_DFL) {
    prev->sa_handler(sig);
    return;
  }
  // Default action: a fault re-executes and now kills the process; a raised
  // signal is raised again.
  if (info == NULL || info->si_code <= 0)
    raise(sig);
}

void hak_crash_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_crash;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (unsigned i = 0; i < 3; i++)
    sigaction(k_signals[i], &sa, &g_previous[i]);
}
