#include "options.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "log.h"

extern char **environ;

hak_options hak_opts;

void hak_options_defaults(hak_options *o) {
  o->stats = HAK_STATS_OFF;
  o->stats_fd = 2;
  o->decay_ms = 500;
  o->arena_cache_bytes = (size_t)256 << 20;
  o->tcache_max = 2048;
  o->verbose = 0;
  o->check_level = HAKMEM_CHECK_DEFAULT;
  o->crash_report = 0;
  o->purge_thread = 1;
  o->stats_signal = 0;
  o->prof = 0;
  o->prof_sample = 512 * 1024;
  strcpy(o->prof_file, "hakmem.%p.heap");
  o->prof_signal = 0;
  o->heap_limit_bytes = 0;
  o->heap_limit_mode = HAK_LIMIT_SOFT;
  o->thp = HAKMEM_THP_DEFAULT;
  o->heap_stash = 0; // opt-in: see docs/PERFORMANCE.md (memory growth under thread churn)
}

// Parses a decimal integer in [lo, hi]; 0 on success.
static int parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (*s == '\0')
    return -1;
  uint64_t v = 0;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    if (v > (UINT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static const struct {
  const char *name;
  int sig;
} k_signal_names[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"USR1", SIGUSR1},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM},
    {"CHLD", SIGCHLD},     {"CONT", SIGCONT}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"PWR", SIGPWR},
};

int hak_parse_signal(const char *value) {
  if (strcmp(value, "0") == 0 || strcasecmp(value, "off") == 0)
    return 0;
  uint64_t v;
  int sig = -1;
  if (parse_uint(value, 1, 64, &v) == 0) {
    sig = (int)v;
  } else {
    const char *name = strncasecmp(value, "SIG", 3) == 0 ? value + 3 : value;
    for (size_t i = 0; i < sizeof k_signal_names / sizeof k_signal_names[0]; i++)
      if (strcasecmp(name, k_signal_names[i].name) == 0)
        sig = k_signal_names[i].sig;
  }
  switch (sig) {
  case SIGKILL:
  case SIGSTOP:
  case SIGSEGV:
  case SIGBUS:
  case SIGFPE:
  case SIGILL:
  case SIGTRAP:
  case SIGSYS:
  case SIGABRT:
  case 32: // glibc's own (thread cancellation, setxid)
  case 33:
    return -1;
  default:
    return sig;
  }
}

static int apply(hak_options *o, const char *name, size_t name_len, const char *value) {
#define IS(lit) (name_len == sizeof(lit) - 1 && memcmp(name, lit, name_len) == 0)
  uint64_t v;
  if (IS("HAKMEM_STATS")) {
    if (strcmp(value, "json") == 0) {
      o->stats = HAK_STATS_JSON;
      return 0;
    }
    if (parse_uint(value, 0, 1, &v) != 0)
      return -1;
    o->stats = (int)v;
  } else if (IS("HAKMEM_STATS_FD")) {
    if (parse_uint(value, 0, 1 << 20, &v) != 0)
      return -1;
    o->stats_fd = (int)v;
  } else if (IS("HAKMEM_STATS_SIGNAL")) {
    int sig = hak_parse_signal(value);
    if (sig < 0)
      return -1;
    o->stats_signal = sig;
  } else if (IS("HAKMEM_DECAY_MS")) {
    if (parse_uint(value, 0, 3600u * 1000u, &v) != 0)
      return -1;
    o->decay_ms = (uint32_t)v;
  } else if (IS("HAKMEM_ARENA_CACHE_MB")) {
    if (parse_uint(value, 0, 1u << 20, &v) != 0)
      return -1;
    o->arena_cache_bytes = (size_t)v << 20;
  } else if (IS("HAKMEM_TCACHE_MAX")) {
    if (parse_uint(value, 0, 65535, &v) != 0)
      return -1;
    o->tcache_max = (uint32_t)v;
  } else if (IS("HAKMEM_CHECK")) {
    if (strcmp(value, "off") == 0)
      o->check_level = HAK_CHECK_OFF;
    else if (strcmp(value, "cheap") == 0)
      o->check_level = HAK_CHECK_CHEAP;
    else if (strcmp(value, "full") == 0)
      o->check_level = HAK_CHECK_FULL;
    else
      return -1;
  } else if (IS("HAKMEM_CRASH_REPORT")) {
    if (parse_uint(value, 0, 1, &v) != 0)
      return -1;
    o->crash_report = (int)v;
  } else if (IS("HAKMEM_HEAP_STASH")) {
    if (parse_uint(value, 0, HAK_HEAP_STASH_MAX, &v) != 0)
      return -1;
    o->heap_stash = (unsigned)v;
  } else if (IS("HAKMEM_PURGE_THREAD")) {
    if (parse_uint(value, 0, 1, &v) != 0)
      return -1;
    o->purge_thread = (int)v;
  } else if (IS("HAKMEM_PROF")) {
    if (parse_uint(value, 0, 1, &v) != 0)
      return -1;
    o->prof = (int)v;
  } else if (IS("HAKMEM_PROF_SAMPLE")) {
    if (parse_uint(value, 1, (uint64_t)1 << 40, &v) != 0)
      return -1;
    o->prof_sample = v;
  } else if (IS("HAKMEM_PROF_FILE")) {
    size_t n = strlen(value);
    if (n == 0 || n >= sizeof o->prof_file)
      return -1;
    memcpy(o->prof_file, value, n + 1);
  } else if (IS("HAKMEM_PROF_SIGNAL")) {
    int sig = hak_parse_signal(value);
    if (sig < 0)
      return -1;
    o->prof_signal = sig;
  } else if (IS("HAKMEM_HEAP_LIMIT_MB")) {
    if (parse_uint(value, 0, (uint64_t)1 << 30, &v) != 0) // up to 1 PiB
      return -1;
    o->heap_limit_bytes = (size_t)v << 20;
  } else if (IS("HAKMEM_HEAP_LIMIT_MODE")) {
    if (strcmp(value, "soft") == 0)
      o->heap_limit_mode = HAK_LIMIT_SOFT;
    else if (strcmp(value, "hard") == 0)
      o->heap_limit_mode = HAK_LIMIT_HARD;
    else
      return -1;
  } else if (IS("HAKMEM_THP")) {
    if (parse_uint(value, 0, 1, &v) != 0)
      return -1;
    o->thp = (int)v;
  } else if (IS("HAKMEM_VERBOSE")) {
    if (parse_uint(value, 0, 9, &v) != 0)
      return -1;
    o->verbose = (int)v;
  } else {
    return -2;
  }
  return 0;
#undef IS
}

int hak_options_parse(hak_options *o, char *const *envp) {
  int rejected = 0;
  for (; envp != NULL && *envp != NULL; envp++) {
    const char *e = *envp;
    if (strncmp(e, "HAKMEM_", 7) != 0)
      continue;
    const char *eq = strchr(e, '=');
    if (eq == NULL)
      continue;
    int r = apply(o, e, (size_t)(eq - e), eq + 1);
    if (r == -2) {
      // Other tools share the HAKMEM_ prefix (test harnesses, scripts), so an
      // unknown name is only mentioned when asked for.
      if (o->verbose)
        hak_write_fmt(2, "hakmem: unknown option %s (ignored)\n", e);
      rejected++;
    } else if (r != 0) {
      hak_write_fmt(2, "hakmem: bad value in %s (default kept)\n", e);
      rejected++;
    }
  }
  return rejected;
}

void hak_options_load(void) {
  hak_options_defaults(&hak_opts);
  hak_options_parse(&hak_opts, environ);
  if (hak_opts.stats != HAK_STATS_OFF) {
    // Programs such as coreutils close stderr before exit; a private copy of
    // the descriptor keeps the exit report deliverable.
    int fd = fcntl(hak_opts.stats_fd, F_DUPFD_CLOEXEC, 64);
    if (fd >= 0)
      hak_opts.stats_fd = fd;
  }
#if !HAKMEM_BUILD_RELEASE
  hak_log_level = hak_opts.verbose;
#endif
}
