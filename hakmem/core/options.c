#include "options.h"

#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "log.h"

extern char **environ;

hak_options hak_options_current;

#define FIELD(f) .offset = offsetof(hak_options, f), .width = sizeof(((hak_options *)0)->f)

// Every option, in the README's order. Bounds and defaults are here only.
const hak_option_def hak_options_table[] = {
    {.name = "HAKMEM_STATS",
     .type = HAK_OPT_CHOICE,
     FIELD(stats),
     .def = HAK_STATS_OFF,
     .choices = "0|1|json",
     .doc = "`1`: print a readable statistics report at exit; `json`: print it as one JSON object"},
    {.name = "HAKMEM_STATS_FD",
     .type = HAK_OPT_UINT,
     FIELD(stats_fd),
     .def = 2,
     .lo = 0,
     .hi = 1 << 20,
     .doc = "file descriptor the exit report and the `HAKMEM_STATS_SIGNAL` report are written to"},
    {.name = "HAKMEM_STATS_SIGNAL",
     .type = HAK_OPT_SIGNAL,
     FIELD(stats_signal),
     .def = 0,
     .doc =
         "a signal on which the statistics report (text, or JSON with `HAKMEM_STATS=json`) is "
         "written to `HAKMEM_STATS_FD`: a name with or without `SIG` in any case (`USR1`, "
         "`SIGUSR2`, `hup`) or a number (`1`..`64`); `0` or `off`: none. Refused: `KILL`, `STOP`, "
         "the fault signals (`SEGV`, `BUS`, `FPE`, `ILL`, `TRAP`, `SYS`, `ABRT`) and glibc's own "
         "32 and 33"},
    {.name = "HAKMEM_DECAY_MS",
     .type = HAK_OPT_UINT,
     FIELD(decay_ms),
     .def = 500,
     .lo = 0,
     .hi = 3600u * 1000u,
     .doc =
         "idle milliseconds before cached SuperSlabs and large mappings go back to the OS (`0`: "
         "at once); a thread with no slow path for half of it has its empty slabs and free pages "
         "given back (trim of an idle heap)"},
    {.name = "HAKMEM_PURGE_THREAD",
     .type = HAK_OPT_UINT,
     FIELD(purge_thread),
     .def = 1,
     .lo = 0,
     .hi = 1,
     .doc =
         "`1`: a background thread, started when idle memory first waits, returns it to the OS "
         "once due, even while the program sleeps; `0`: only slow paths (refills, flushes, large "
         "blocks) do"},
    {.name = "HAKMEM_PROF",
     .type = HAK_OPT_UINT,
     FIELD(prof),
     .def = 0,
     .lo = 0,
     .hi = 1,
     .doc = "`1`: the sampled heap profiler (`docs/PROFILING.md`): a pprof profile of sampled "
            "allocations, their stacks and what is still in use, written at exit to "
            "`HAKMEM_PROF_FILE`"},
    {.name = "HAKMEM_PROF_SAMPLE",
     .type = HAK_OPT_UINT,
     FIELD(prof_sample),
     .def = 512 * 1024,
     .lo = 1,
     .hi = (uint64_t)1 << 40,
     .doc = "mean bytes allocated between two samples (exponentially distributed intervals)"},
    {.name = "HAKMEM_PROF_FILE",
     .type = HAK_OPT_STRING,
     FIELD(prof_file),
     .def_str = "hakmem.%p.heap",
     .doc =
         "where the profile is written at exit and on `HAKMEM_PROF_SIGNAL` (`%p`: the process id)"},
    {.name = "HAKMEM_PROF_SIGNAL",
     .type = HAK_OPT_SIGNAL,
     FIELD(prof_signal),
     .def = 0,
     .doc = "a signal on which the profile is written (at the next allocation slow path of any "
            "thread); names and refusals as for `HAKMEM_STATS_SIGNAL`"},
    {.name = "HAKMEM_ARENA_CACHE_MB",
     .type = HAK_OPT_MIB,
     FIELD(arena_cache_bytes),
     .def = 256,
     .lo = 0,
     .hi = 1u << 20,
     .doc = "most idle mapped memory kept for reuse; `mallopt(M_TRIM_THRESHOLD, bytes)` sets it at "
            "run time"},
    {.name = "HAKMEM_HEAP_LIMIT_MB",
     .type = HAK_OPT_MIB,
     FIELD(heap_limit_bytes),
     .def = 0,
     .lo = 0,
     .hi = (uint64_t)1 << 30,
     .doc = "most MiB hakmem keeps mapped (`os_mapped_bytes`: data and metadata), `0`: no limit; "
            "before a mapping would pass it, idle memory goes back to the OS first, then "
            "`HAKMEM_HEAP_LIMIT_MODE` decides. `hak_set_heap_limit(bytes, mode)` sets both at run "
            "time (`docs/MEMORY.md`)"},
    {.name = "HAKMEM_HEAP_LIMIT_MODE",
     .type = HAK_OPT_CHOICE,
     FIELD(heap_limit_mode),
     .def = HAK_LIMIT_SOFT,
     .choices = "soft|hard",
     .doc =
         "`soft`: past the limit once nothing idle is left (a ceiling on waste, never a failure); "
         "`hard`: an allocation that would pass it returns `NULL` with `ENOMEM`, and the program "
         "goes on"},
    {.name = "HAKMEM_THP",
     .type = HAK_OPT_UINT,
     FIELD(thp),
     .def = HAKMEM_THP_DEFAULT,
     .lo = 0,
     .hi = 1,
     .doc = "`1`: `MADV_HUGEPAGE` on each SuperSlab mapping (never anything process-wide); takes "
            "effect only where `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` or "
            "`always` (the measurements behind the default: `docs/MEMORY.md`)"},
    // Opt-in: see docs/PERFORMANCE.md (memory growth under thread churn).
    {.name = "HAKMEM_HEAP_STASH",
     .type = HAK_OPT_UINT,
     FIELD(heap_stash),
     .def = 0,
     .lo = 0,
     .hi = HAK_HEAP_STASH_MAX,
     .doc = "heaps of exited threads kept whole (slabs and all) for the next new threads; an "
            "unclaimed one is given up after half of `HAKMEM_DECAY_MS`; `0`: a thread's slabs are "
            "abandoned at exit"},
    {.name = "HAKMEM_TCACHE_MAX",
     .type = HAK_OPT_UINT,
     FIELD(tcache_max),
     .def = 2048,
     .lo = 0,
     .hi = 65535,
     .doc =
         "bound on blocks per size class in a thread's fast cache. A bin starts at about 32 KiB "
         "of blocks (at most 256); a thread that keeps allocating and freeing more than that "
         "(batches) grows it by half that per cycle, to at most 128 KiB of blocks, until its next "
         "trim or exit; neither the start nor the growth passes this bound. `0` turns the cache "
         "off at run time"},
    {.name = "HAKMEM_CHECK",
     .type = HAK_OPT_CHOICE,
     FIELD(check_level),
     .def = HAKMEM_CHECK_DEFAULT,
     .choices = "off|cheap|full",
     .def_doc = "`full` in the default and debug builds, `cheap` in release",
     .doc =
         "the misuse-checking level. `cheap`: the O(1) checks on every path (every double and "
         "invalid free, every link a slow path follows, the overflow trailer and poison where the "
         "build has them). `full`: also the mark at every hand-out; in a release build the fast "
         "cache is bypassed so every call is vetted. `off`: only the checks built into the fast "
         "paths (not in the hardened variant, which stays at `cheap` or above)"},
    {.name = "HAKMEM_GUARD_SAMPLE",
     .type = HAK_OPT_UINT,
     FIELD(guard_sample),
     .def = HAKMEM_GUARD_SAMPLE_DEFAULT,
     .lo = 0,
     .hi = (uint64_t)1 << 40,
     .def_doc = "`500000`; `200000` in the hardened build",
     .doc = "mean allocations between two guarded ones (`docs/RELIABILITY.md`): a guarded block of "
            "up to 16 KiB lies against an inaccessible page and stays inaccessible for a while "
            "after its free, so an overflow, underflow or use after free faults and is reported "
            "with the block's allocation and free stacks; `0`: off"},
    {.name = "HAKMEM_CRASH_REPORT",
     .type = HAK_OPT_UINT,
     FIELD(crash_report),
     .def = 0,
     .lo = 0,
     .hi = 1,
     .doc =
         "`1`: on SIGSEGV, SIGBUS or SIGABRT write a short report (signal, address, whether it is "
         "in a hakmem region), then hand the signal on unchanged"},
    {.name = "HAKMEM_VERBOSE",
     .type = HAK_OPT_UINT,
     FIELD(verbose),
     .def = 0,
     .lo = 0,
     .hi = 9,
     .doc = "debug logging on stderr (non-release builds only); also reports unknown `HAKMEM_*` "
            "names"},
};
const size_t hak_options_count = sizeof hak_options_table / sizeof hak_options_table[0];

static void store(const hak_option_def *d, hak_options *o, uint64_t v) {
  char *field = (char *)o + d->offset;
  if (d->width == sizeof(uint32_t)) {
    uint32_t w = (uint32_t)v;
    memcpy(field, &w, sizeof w);
  } else {
    memcpy(field, &v, sizeof v);
  }
}

static uint64_t load(const hak_option_def *d, const hak_options *o) {
  const char *field = (const char *)o + d->offset;
  if (d->width == sizeof(uint32_t)) {
    uint32_t w;
    memcpy(&w, field, sizeof w);
    return w;
  }
  uint64_t v;
  memcpy(&v, field, sizeof v);
  return v;
}

void hak_options_defaults(hak_options *o) {
  memset(o, 0, sizeof *o);
  for (size_t i = 0; i < hak_options_count; i++) {
    const hak_option_def *d = &hak_options_table[i];
    if (d->type == HAK_OPT_STRING)
      memcpy((char *)o + d->offset, d->def_str, strlen(d->def_str) + 1);
    else
      store(d, o, d->type == HAK_OPT_MIB ? d->def << 20 : d->def);
  }
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

int hak_options_parse_signal(const char *value) {
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

const char *hak_options_choice(const hak_option_def *d, unsigned i, size_t *len) {
  const char *w = d->choices;
  for (; i > 0 && w != NULL; i--) {
    w = strchr(w, '|');
    w = w != NULL ? w + 1 : NULL;
  }
  if (w != NULL) {
    const char *bar = strchr(w, '|');
    *len = bar != NULL ? (size_t)(bar - w) : strlen(w);
  }
  return w;
}

static int apply(hak_options *o, const char *name, size_t name_len, const char *value) {
  for (size_t i = 0; i < hak_options_count; i++) {
    const hak_option_def *d = &hak_options_table[i];
    if (strlen(d->name) != name_len || memcmp(d->name, name, name_len) != 0)
      continue;
    uint64_t v;
    switch (d->type) {
    case HAK_OPT_UINT:
    case HAK_OPT_MIB:
      if (parse_uint(value, d->lo, d->hi, &v) != 0)
        return -1;
      store(d, o, d->type == HAK_OPT_MIB ? v << 20 : v);
      return 0;
    case HAK_OPT_CHOICE: {
      size_t len, n = strlen(value);
      const char *w;
      for (unsigned idx = 0; (w = hak_options_choice(d, idx, &len)) != NULL; idx++) {
        if (len == n && memcmp(w, value, n) == 0) {
          store(d, o, idx);
          return 0;
        }
      }
      return -1;
    }
    case HAK_OPT_SIGNAL: {
      int sig = hak_options_parse_signal(value);
      if (sig < 0)
        return -1;
      store(d, o, (uint64_t)sig);
      return 0;
    }
    case HAK_OPT_STRING: {
      size_t n = strlen(value);
      if (n == 0 || n >= d->width)
        return -1;
      memcpy((char *)o + d->offset, value, n + 1);
      return 0;
    }
    }
    return -1;
  }
  return -2;
}

size_t hak_options_format(const hak_option_def *d, const hak_options *o, char *buf, size_t size) {
  uint64_t v = d->type == HAK_OPT_STRING ? 0 : load(d, o);
  switch (d->type) {
  case HAK_OPT_MIB:
    v >>= 20;
    break;
  case HAK_OPT_STRING:
    return hak_log_format(buf, size, "%s", (const char *)o + d->offset);
  case HAK_OPT_CHOICE: {
    size_t n = 0;
    const char *w = hak_options_choice(d, (unsigned)v, &n);
    if (w == NULL) // a stored index is always one of the choices
      w = "";
    if (size == 0)
      return 0;
    n = n < size - 1 ? n : size - 1;
    memcpy(buf, w, n);
    buf[n] = '\0';
    return n;
  }
  default:
    break;
  }
  return hak_log_format(buf, size, "%llu", (unsigned long long)v);
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
        hak_log_write_fmt(2, "hakmem: unknown option %s (ignored)\n", e);
      rejected++;
    } else if (r != 0) {
      hak_log_write_fmt(2, "hakmem: bad value in %s (default kept)\n", e);
      rejected++;
    }
  }
  return rejected;
}

void hak_options_load(void) {
  hak_options_defaults(&hak_options_current);
  hak_options_parse(&hak_options_current, environ);
  if (hak_options_current.stats != HAK_STATS_OFF) {
    // Programs such as coreutils close stderr before exit; a private copy of
    // the descriptor keeps the exit report deliverable.
    int fd = fcntl(hak_options_current.stats_fd, F_DUPFD_CLOEXEC, 64);
    if (fd >= 0)
      hak_options_current.stats_fd = fd;
  }
#if !HAKMEM_BUILD_RELEASE
  hak_log_level = hak_options_current.verbose;
#endif
}
