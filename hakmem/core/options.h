// HAKMEM_* environment options, read once at initialisation. One table
// (hak_options_table in options.c) gives each its name, field, default, range
// and doc; parsing, the statistics report, the README's table and the man
// page's option list (options_doc) come from it.
#ifndef HAKMEM_OPTIONS_H
#define HAKMEM_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

HAK_EXTERN_C_BEGIN

// The misuse-checking levels (HAKMEM_CHECK); integrity.h says what each runs.
#define HAK_CHECK_OFF 0
#define HAK_CHECK_CHEAP 1
#define HAK_CHECK_FULL 2
// The build's level (copts.bzl: full in debug and default builds, cheap in
// release); HAKMEM_CHECK overrides it at run time.
#ifndef HAKMEM_CHECK_DEFAULT
#define HAKMEM_CHECK_DEFAULT HAK_CHECK_CHEAP
#endif

enum { HAK_STATS_OFF = 0, HAK_STATS_TEXT = 1, HAK_STATS_JSON = 2 };
// HAKMEM_HEAP_LIMIT_MODE (the same values as hakmem.h's HAK_HEAP_LIMIT_*).
enum { HAK_LIMIT_SOFT = 0, HAK_LIMIT_HARD = 1 };
// HAKMEM_THP's default: docs/MEMORY.md has the measurement behind it.
#ifndef HAKMEM_THP_DEFAULT
#define HAKMEM_THP_DEFAULT 0
#endif

// HAKMEM_GUARD_SAMPLE's default, from the measured cost of a guarded block
// (docs/RELIABILITY.md): one allocation in 500000 guarded, one in 200000 in
// the hardened build.
#ifndef HAKMEM_GUARD_SAMPLE_DEFAULT
#if HAKMEM_HARDENED
#define HAKMEM_GUARD_SAMPLE_DEFAULT 200000
#else
#define HAKMEM_GUARD_SAMPLE_DEFAULT 500000
#endif
#endif

typedef struct hak_options {
  int stats;                // HAKMEM_STATS: 0, 1 (text report at exit) or json
  int stats_fd;             // HAKMEM_STATS_FD: where the exit report goes
  uint32_t decay_ms;        // HAKMEM_DECAY_MS: idle time before memory goes back to the OS
  size_t arena_cache_bytes; // HAKMEM_ARENA_CACHE_MB: idle mappings kept for reuse
  uint32_t tcache_max;      // HAKMEM_TCACHE_MAX: per-class fast-cache bound (0 = off)
  int verbose;              // HAKMEM_VERBOSE: debug logging (non-release builds)
  int check_level;          // HAKMEM_CHECK: HAK_CHECK_OFF, _CHEAP or _FULL (see integrity.h)
  int crash_report;         // HAKMEM_CRASH_REPORT: report SIGSEGV/SIGBUS/SIGABRT
  unsigned heap_stash;      // HAKMEM_HEAP_STASH: exited threads' heaps kept for new ones
  int purge_thread;         // HAKMEM_PURGE_THREAD: purge idle memory in the background
  int stats_signal;         // HAKMEM_STATS_SIGNAL: signal that writes the report (0: none)
  int prof;                 // HAKMEM_PROF: sample allocations for a heap profile
  uint64_t prof_sample;     // HAKMEM_PROF_SAMPLE: mean bytes between samples
  char prof_file[256];      // HAKMEM_PROF_FILE: profile written at exit (%p: the pid)
  int prof_signal;          // HAKMEM_PROF_SIGNAL: signal that writes the profile (0: none)
  size_t heap_limit_bytes;  // HAKMEM_HEAP_LIMIT_MB: most bytes mapped (0: no limit)
  int heap_limit_mode;      // HAKMEM_HEAP_LIMIT_MODE: HAK_LIMIT_SOFT or HAK_LIMIT_HARD
  int thp;                  // HAKMEM_THP: MADV_HUGEPAGE on SuperSlab mappings
  uint64_t guard_sample;    // HAKMEM_GUARD_SAMPLE: mean allocations between guarded ones (0: off)
} hak_options;

extern hak_options hak_options_current HAK_INTERNAL;

// How an option's value is read (and printed).
typedef enum {
  HAK_OPT_UINT,   // decimal in [lo, hi]
  HAK_OPT_MIB,    // decimal MiB in [lo, hi], stored as bytes
  HAK_OPT_CHOICE, // one of the '|'-separated words of choices; stored: its index
  HAK_OPT_SIGNAL, // hak_options_parse_signal's syntax
  HAK_OPT_STRING, // 1..width-1 bytes
} hak_option_type;

typedef struct hak_option_def {
  const char *name;     // HAKMEM_...
  hak_option_type type; //
  size_t offset, width; // the field of hak_options
  uint64_t def;         // default: a number, MiB, a choice's index (strings: def_str)
  uint64_t lo, hi;      // HAK_OPT_UINT / HAK_OPT_MIB bounds
  const char *choices;  // HAK_OPT_CHOICE: "off|cheap|full"
  const char *def_str;  // HAK_OPT_STRING: the default
  const char *def_doc;  // the default as the README shows it, when it differs by build
  const char *doc;      // the README's and man page's description (Markdown, one line)
} hak_option_def;

extern const hak_option_def hak_options_table[] HAK_INTERNAL;
extern const size_t hak_options_count HAK_INTERNAL;

// Word i of a HAK_OPT_CHOICE option's choices and its length in *len; NULL
// past the last.
const char *hak_options_choice(const hak_option_def *d, unsigned i, size_t *len) HAK_INTERNAL;

// The value of an option in o as HAKMEM_<name>=<value> would set it; the
// length written (at most size - 1, NUL-terminated when size > 0).
size_t hak_options_format(const hak_option_def *d, const hak_options *o, char *buf,
                          size_t size) HAK_INTERNAL;

void hak_options_defaults(hak_options *o) HAK_INTERNAL;
// The signal HAKMEM_STATS_SIGNAL names: USR1, SIGUSR1 (any case) or a
// number; 0 for "0" or "off"; -1 for anything else, or a signal that cannot
// be caught or that a fault raises (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT),
// or one glibc keeps for itself (32, 33).
int hak_options_parse_signal(const char *value) HAK_INTERNAL;
// Applies every HAKMEM_* entry of envp (NAME=value strings, NULL-terminated).
// Bad values are reported on stderr (unknown names too with HAKMEM_VERBOSE)
// and leave the default;
// returns how many entries were rejected.
int hak_options_parse(hak_options *o, char *const *envp) HAK_INTERNAL;
// Defaults, then the process environment.
void hak_options_load(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_OPTIONS_H
