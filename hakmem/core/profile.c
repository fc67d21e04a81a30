#include "profile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backtrace.h"
#include "elf_symbols.h"
#include "gzip_writer.h"
#include "hakmem.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "proc_maps.h"
#include "prof_sample.h"
#include "prof_table.h"
#include "protobuf_writer.h"

bool hak_profile_enabled;

// ---- tables -----------------------------------------------------------------
// Every table lives in reserved memory (hak_os_reserve: pages are taken only
// when written), sized once at init; nothing here calls malloc.

#define LOC_CAP (1u << 20) // distinct frame addresses in a dump (hash slots, at most)
#define MAP_CAP 1024u      // executable mappings in a dump

hak_static_assert(HAK_PROF_DEPTH == HAK_TABLE_DEPTH, "the table keeps the stacks recorded");

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static hak_table g_table;  // the stacks and the live samples
static uint64_t g_dropped; // samples not kept: a table was full
static double g_rate;
static volatile sig_atomic_t g_dump_wanted;

// Scratch for dumps (under g_lock).
static uintptr_t *g_loc_pc; // g_loc_cap hash slots, mapped for a dump: the address, 0 empty
static uint32_t *g_loc_id;  // its location id
static uint32_t g_loc_cap;
static uintptr_t *g_loc_list; // by id - 1
static uint32_t g_nlocs;
static uint32_t *g_loc_name; // by id - 1: offset + 1 of its function's name in g_names, 0: none
static uint16_t *g_loc_name_len;
static char *g_names;
static size_t g_names_len;
#define NAMES_CAP ((size_t)16 << 20)
static char *g_map_paths; // the paths of g_maps
#define MAP_PATHS_CAP ((size_t)MAP_CAP * 4096)

// ---- sampling ---------------------------------------------------------------

double hak_profile_weight(uint64_t size) { return hak_prof_sample_weight(size, g_rate); }

// ---- samples ----------------------------------------------------------------

void hak_profile_add_entries(const void *const *fns, unsigned n) {
  pthread_mutex_lock(&g_lock);
  hak_backtrace_add_entries(fns, n);
  pthread_mutex_unlock(&g_lock);
}

// Runs before main, outside any hakmem call, so dlopen's mallocs are ordinary
// ones. Without an unwinder, samples are taken without their stacks.
__attribute__((constructor)) static void prof_load_unwinder(void) {
  const char *v = getenv("HAKMEM_PROF");
  if (v != NULL && v[0] != '\0' && strcmp(v, "0") != 0)
    hak_backtrace_init(true);
}

void hak_profile_record(void *p, size_t size, const void *mark, uint16_t *live,
                        hak_profile_slab_fn *slab_changed, void *arg) {
  if (!hak_profile_enabled || p == NULL)
    return;
  uintptr_t pc[HAK_PROF_DEPTH];
  // Outside the lock: unwinding takes the loader's.
  unsigned depth = hak_backtrace_capture(pc, HAK_PROF_DEPTH, mark);
  double w = hak_profile_weight(size);
  pthread_mutex_lock(&g_lock);
  uint32_t s = hak_prof_table_intern(&g_table, pc, depth);
  if (s == UINT32_MAX ||
      (g_table.nlive >= g_table.live_cap / 2 && !hak_prof_table_grow(&g_table))) {
    g_dropped++;
    pthread_mutex_unlock(&g_lock);
    return;
  }
  g_table.stacks[s].alloc_objs += w;
  g_table.stacks[s].alloc_bytes += w * (double)size;
  size_t k = hak_prof_table_find(&g_table, (uintptr_t)p);
  if (g_table.live[k].addr == 0) {
    g_table.nlive++;
    if (live != NULL) {
      // Read without the lock by frees of the slab.
      uint16_t n = __atomic_load_n(live, __ATOMIC_RELAXED);
      __atomic_store_n(live, (uint16_t)(n + 1), __ATOMIC_RELAXED);
      slab_changed(arg, p, n == 0 ? HAK_PROF_SLAB_FIRST : HAK_PROF_SLAB_ADD);
    }
  }
  g_table.live[k] = (hak_table_live){.addr = (uintptr_t)p, .size = size, .weight = w, .stack = s};
  pthread_mutex_unlock(&g_lock);
}

void hak_profile_free(const void *p, uint16_t *live, hak_profile_slab_fn *slab_changed, void *arg) {
  if (!hak_profile_enabled)
    return;
  pthread_mutex_lock(&g_lock);
  size_t k = hak_prof_table_find(&g_table, (uintptr_t)p);
  if (g_table.live[k].addr != 0) {
    hak_prof_table_remove(&g_table, k);
    uint16_t n = live != NULL ? __atomic_load_n(live, __ATOMIC_RELAXED) : 0;
    if (n > 0) {
      __atomic_store_n(live, (uint16_t)(n - 1), __ATOMIC_RELAXED);
      if (n == 1)
        slab_changed(arg, NULL, HAK_PROF_SLAB_CLEAR);
    }
  }
  pthread_mutex_unlock(&g_lock);
}

size_t hak_profile_live_count(void) {
  pthread_mutex_lock(&g_lock);
  size_t n = g_table.nlive;
  pthread_mutex_unlock(&g_lock);
  return n;
}

size_t hak_profile_stack_count(void) {
  pthread_mutex_lock(&g_lock);
  size_t n = g_table.nstacks;
  pthread_mutex_unlock(&g_lock);
  return n;
}

unsigned hak_profile_stack_depth(size_t i) {
  pthread_mutex_lock(&g_lock);
  unsigned d = i < g_table.nstacks ? g_table.stacks[i].depth : 0;
  pthread_mutex_unlock(&g_lock);
  return d;
}

uintptr_t hak_profile_stack_frame(size_t i, unsigned j) {
  pthread_mutex_lock(&g_lock);
  uintptr_t pc = i < g_table.nstacks && j < g_table.stacks[i].depth ? g_table.stacks[i].pc[j] : 0;
  pthread_mutex_unlock(&g_lock);
  return pc;
}

void hak_profile_fork_prepare(void) { pthread_mutex_lock(&g_lock); }
void hak_profile_fork_parent(void) { pthread_mutex_unlock(&g_lock); }
void hak_profile_fork_child(void) { pthread_mutex_init(&g_lock, NULL); }

// ---- the pprof messages -----------------------------------------------------
// profile.proto (github.com/google/pprof/proto/profile.proto): every message
// is encoded into a small buffer on the stack, then written as a
// length-delimited field of the Profile.

// Writes the message m as field `field` of the Profile.
static void emit(hak_gzip *z, unsigned field, const hak_pb *m) {
  uint8_t head[16];
  hak_pb h = {head, 0, sizeof head};
  hak_protobuf_writer_varint(&h, (uint64_t)field << 3 | 2);
  hak_protobuf_writer_varint(&h, m->len);
  hak_gzip_writer_put(z, head, h.len);
  hak_gzip_writer_put(z, m->b, m->len);
}

// Profile field numbers.
enum {
  P_SAMPLE_TYPE = 1,
  P_SAMPLE = 2,
  P_MAPPING = 3,
  P_LOCATION = 4,
  P_FUNCTION = 5,
  P_STRING = 6,
  P_TIME = 9,
  P_PERIOD_TYPE = 11,
  P_PERIOD = 12,
  P_DEFAULT_TYPE = 14,
};

// The fixed strings, in string-table order (index 0 must be "").
static const char *const k_strings[] = {
    "", "alloc_objects", "count", "alloc_space", "bytes", "inuse_objects", "inuse_space", "space",
};
enum {
  S_ALLOC_OBJECTS = 1,
  S_COUNT,
  S_ALLOC_SPACE,
  S_BYTES,
  S_INUSE_OBJECTS,
  S_INUSE_SPACE,
  S_SPACE
};

static void emit_value_type(hak_gzip *z, unsigned field, uint64_t type, uint64_t unit) {
  uint8_t buf[32];
  hak_pb m = {buf, 0, sizeof buf};
  hak_protobuf_writer_uint(&m, 1, type);
  hak_protobuf_writer_uint(&m, 2, unit);
  emit(z, field, &m);
}

// ---- mappings ---------------------------------------------------------------

typedef struct prof_mapping {
  uintptr_t start, limit, offset;
  const char *path;
  size_t path_len;
} prof_mapping;

static prof_mapping *g_maps; // MAP_CAP
static unsigned g_nmaps;
static size_t g_map_paths_len;

// Keeps an executable mapping of a file (its path copied), until MAP_CAP.
static bool keep_mapping(void *arg, const hak_proc_maps_entry *e) {
  (void)arg;
  if (!e->executable || e->path_len == 0 || e->path[0] != '/')
    return false;
  if (g_map_paths_len + e->path_len > MAP_PATHS_CAP)
    return true;
  char *path = g_map_paths + g_map_paths_len;
  memcpy(path, e->path, e->path_len);
  g_map_paths_len += e->path_len;
  g_maps[g_nmaps++] = (prof_mapping){e->start, e->end, e->offset, path, e->path_len};
  return g_nmaps == MAP_CAP;
}

// Reads /proc/self/maps: the executable mappings of files.
static void read_maps(void) {
  g_nmaps = 0;
  g_map_paths_len = 0;
  char line[8192]; // a line with the longest path, PATH_MAX bytes
  hak_proc_maps_each(line, sizeof line, keep_mapping, NULL);
}

static unsigned mapping_of(uintptr_t pc) {
  for (unsigned i = 0; i < g_nmaps; i++)
    if (pc >= g_maps[i].start && pc < g_maps[i].limit)
      return i + 1;
  return 0;
}

// ---- locations --------------------------------------------------------------

// Under g_lock: the location id of pc, added if new; 0 when the table is full.
static uint32_t location_of(uintptr_t pc) {
  uint32_t mask = g_loc_cap - 1;
  for (uint32_t k = (uint32_t)hak_prof_sample_mix(pc) & mask;; k = (k + 1) & mask) {
    if (g_loc_pc[k] == pc)
      return g_loc_id[k];
    if (g_loc_pc[k] == 0) {
      if (g_nlocs >= g_loc_cap / 2)
        return 0;
      g_loc_pc[k] = pc;
      g_loc_id[k] = ++g_nlocs;
      g_loc_list[g_nlocs - 1] = pc;
      return g_nlocs;
    }
  }
}

// ---- function names ---------------------------------------------------------

// Names the locations (ids 1..g_nlocs) that lie in mapping m (index mi).
static void name_locations_in(unsigned mi) {
  const prof_mapping *m = &g_maps[mi];
  hak_elf_symbols syms;
  if (!hak_elf_symbols_open(&syms, m->path, m->path_len, m->start, m->offset))
    return;
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    uintptr_t pc = g_loc_list[id - 1];
    if (g_loc_name[id - 1] != 0 || pc < m->start || pc >= m->limit)
      continue;
    size_t len;
    const char *name = hak_elf_symbols_name(&syms, pc, &len);
    if (name == NULL || len == 0 || len > 0xffff || g_names_len + len > NAMES_CAP)
      continue;
    memcpy(g_names + g_names_len, name, len);
    g_loc_name[id - 1] = (uint32_t)g_names_len + 1;
    g_loc_name_len[id - 1] = (uint16_t)len;
    g_names_len += len;
  }
  hak_elf_symbols_close(&syms);
}

// ---- the dump ---------------------------------------------------------------

// A frame's address as pprof wants it: inside the call instruction, not the
// return address after it (the leaf, frame 0, is a caller too here).
static uintptr_t call_site(uintptr_t pc) { return pc - 1; }

static void write_profile(hak_gzip *z) {
  emit_value_type(z, P_SAMPLE_TYPE, S_ALLOC_OBJECTS, S_COUNT);
  emit_value_type(z, P_SAMPLE_TYPE, S_ALLOC_SPACE, S_BYTES);
  emit_value_type(z, P_SAMPLE_TYPE, S_INUSE_OBJECTS, S_COUNT);
  emit_value_type(z, P_SAMPLE_TYPE, S_INUSE_SPACE, S_BYTES);

  for (uint32_t s = 0; s < g_table.nstacks; s++)
    g_table.stacks[s].inuse_objs = g_table.stacks[s].inuse_bytes = 0;
  for (size_t k = 0; k < g_table.live_cap; k++) {
    if (g_table.live[k].addr == 0)
      continue;
    hak_table_stack *st = &g_table.stacks[g_table.live[k].stack];
    st->inuse_objs += g_table.live[k].weight;
    st->inuse_bytes += g_table.live[k].weight * (double)g_table.live[k].size;
  }

  // The address table, for this dump: twice the frames there are.
  size_t frames = 0;
  for (uint32_t st = 0; st < g_table.nstacks; st++)
    frames += g_table.stacks[st].depth;
  g_loc_cap = 1024;
  while (g_loc_cap < 2 * frames && g_loc_cap < LOC_CAP)
    g_loc_cap *= 2;
  g_loc_pc = hak_os_reserve(g_loc_cap * sizeof(uintptr_t));
  g_loc_id = hak_os_reserve(g_loc_cap * sizeof(uint32_t));
  if (g_loc_pc == NULL || g_loc_id == NULL)
    g_loc_cap = 0; // no locations: the samples go out without stacks
  g_nlocs = 0;
  for (uint32_t s = 0; s < g_table.nstacks; s++) {
    hak_table_stack *st = &g_table.stacks[s];
    uint8_t locs[HAK_PROF_DEPTH * 10];
    hak_pb l = {locs, 0, sizeof locs};
    for (unsigned i = 0; i < st->depth && g_loc_cap != 0; i++) {
      uint32_t id = location_of(call_site(st->pc[i]));
      if (id != 0)
        hak_protobuf_writer_varint(&l, id);
    }
    uint8_t vals[4 * 10];
    hak_pb v = {vals, 0, sizeof vals};
    hak_protobuf_writer_varint(&v, (uint64_t)(st->alloc_objs + 0.5));
    hak_protobuf_writer_varint(&v, (uint64_t)(st->alloc_bytes + 0.5));
    hak_protobuf_writer_varint(&v, (uint64_t)(st->inuse_objs + 0.5));
    hak_protobuf_writer_varint(&v, (uint64_t)(st->inuse_bytes + 0.5));
    uint8_t buf[sizeof locs + sizeof vals + 16];
    hak_pb m = {buf, 0, sizeof buf};
    hak_protobuf_writer_field(&m, 1, locs, l.len);
    hak_protobuf_writer_field(&m, 2, vals, v.len);
    emit(z, P_SAMPLE, &m);
  }

  read_maps();
  memset(g_loc_name, 0, g_nlocs * sizeof g_loc_name[0]);
  g_names_len = 0;
  for (unsigned i = 0; i < g_nmaps; i++)
    name_locations_in(i);
  // String indices: the fixed strings, the mappings' paths, then one name per
  // named location (function id = location id).
  uint64_t first_name = sizeof k_strings / sizeof k_strings[0] + g_nmaps;
  for (unsigned i = 0; i < g_nmaps; i++) {
    uint8_t buf[64];
    hak_pb m = {buf, 0, sizeof buf};
    hak_protobuf_writer_uint(&m, 1, i + 1);
    hak_protobuf_writer_uint(&m, 2, g_maps[i].start);
    hak_protobuf_writer_uint(&m, 3, g_maps[i].limit);
    hak_protobuf_writer_uint(&m, 4, g_maps[i].offset);
    hak_protobuf_writer_uint(&m, 5, sizeof k_strings / sizeof k_strings[0] + i); // its path, below
    emit(z, P_MAPPING, &m);
  }
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    uintptr_t pc = g_loc_list[id - 1];
    uint8_t buf[48];
    hak_pb m = {buf, 0, sizeof buf};
    hak_protobuf_writer_uint(&m, 1, id);
    unsigned map = mapping_of(pc);
    if (map != 0)
      hak_protobuf_writer_uint(&m, 2, map);
    hak_protobuf_writer_uint(&m, 3, pc);
    if (g_loc_name[id - 1] != 0) {
      uint8_t line[16];
      hak_pb l = {line, 0, sizeof line};
      hak_protobuf_writer_uint(&l, 1, id); // Line.function_id
      hak_protobuf_writer_field(&m, 4, line, l.len);
    }
    emit(z, P_LOCATION, &m);
  }
  uint64_t next_name = first_name;
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    if (g_loc_name[id - 1] == 0)
      continue;
    uint8_t buf[40];
    hak_pb m = {buf, 0, sizeof buf};
    hak_protobuf_writer_uint(&m, 1, id);        // Function.id
    hak_protobuf_writer_uint(&m, 2, next_name); // name
    hak_protobuf_writer_uint(&m, 3, next_name); // system_name
    next_name++;
    emit(z, P_FUNCTION, &m);
  }

  for (size_t k = 0; k < sizeof k_strings / sizeof k_strings[0]; k++) {
    uint8_t buf[32];
    hak_pb m = {buf, 0, sizeof buf};
    hak_protobuf_writer_bytes(&m, k_strings[k], strlen(k_strings[k]));
    emit(z, P_STRING, &m);
  }
  for (unsigned i = 0; i < g_nmaps; i++) {
    hak_pb m = {(uint8_t *)g_maps[i].path, g_maps[i].path_len, g_maps[i].path_len};
    emit(z, P_STRING, &m);
  }
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    if (g_loc_name[id - 1] == 0)
      continue;
    size_t len = g_loc_name_len[id - 1];
    hak_pb m = {(uint8_t *)g_names + g_loc_name[id - 1] - 1, len, len};
    emit(z, P_STRING, &m);
  }

  uint8_t buf[64];
  hak_pb m = {buf, 0, sizeof buf};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  hak_protobuf_writer_uint(&m, P_TIME, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
  hak_protobuf_writer_uint(&m, P_PERIOD, (uint64_t)g_rate);
  hak_protobuf_writer_uint(&m, P_DEFAULT_TYPE, S_INUSE_SPACE);
  hak_gzip_writer_put(z, m.b, m.len);
  emit_value_type(z, P_PERIOD_TYPE, S_SPACE, S_BYTES);
  if (g_loc_pc != NULL)
    hak_os_unreserve(g_loc_pc, g_loc_cap * sizeof(uintptr_t));
  if (g_loc_id != NULL)
    hak_os_unreserve(g_loc_id, g_loc_cap * sizeof(uint32_t));
  g_loc_pc = NULL;
  g_loc_id = NULL;
}

static hak_gzip *g_gz; // mapped at init: 64 KiB is too much for some threads' stacks

// HAKMEM_PROF_FILE with %p replaced by the pid (%% by %).
static int expand_path(char *out, size_t cap, const char *pattern) {
  size_t n = 0;
  for (const char *s = pattern; *s != '\0'; s++) {
    char tmp[24];
    const char *add = tmp;
    size_t len;
    if (s[0] == '%' && s[1] == 'p') {
      len = hak_log_format(tmp, sizeof tmp, "%d", (int)getpid());
      s++;
    } else if (s[0] == '%' && s[1] == '%') {
      tmp[0] = '%';
      len = 1;
      s++;
    } else {
      add = s;
      len = 1;
    }
    if (n + len >= cap)
      return -1;
    memcpy(out + n, add, len);
    n += len;
  }
  out[n] = '\0';
  return 0;
}

int hak_prof_dump(const char *path) {
  if (!hak_profile_enabled) {
    errno = ENOTSUP;
    return -1;
  }
  char name[512];
  if (path == NULL) {
    if (expand_path(name, sizeof name, hak_options_current.prof_file) != 0) {
      errno = ENAMETOOLONG;
      return -1;
    }
    path = name;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  pthread_mutex_lock(&g_lock);
  hak_gzip *z = g_gz;
  hak_gzip_writer_start(z, fd);
  write_profile(z);
  hak_gzip_writer_finish(z);
  int err = z->err;
  pthread_mutex_unlock(&g_lock);
  if (close(fd) != 0 && err == 0)
    err = errno;
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

// ---- the signal -------------------------------------------------------------
// The handler only sets a flag: the next allocation slow path of any thread
// writes the profile (it holds no hakmem lock there, and may call open and
// write, which a handler interrupting malloc could not safely do).

static void on_signal(int sig) {
  (void)sig;
  g_dump_wanted = 1;
}

void hak_profile_poll(void) {
  if (hak_likely(!g_dump_wanted))
    return;
  g_dump_wanted = 0;
  if (hak_prof_dump(NULL) != 0)
    hak_log_write_fmt(2, "hakmem: cannot write the heap profile (errno %d)\n", errno);
}

// ---- init and exit ----------------------------------------------------------

void hak_profile_init(void) {
  if (!hak_options_current.prof || hak_profile_enabled)
    return;
  g_rate = (double)hak_options_current.prof_sample;
  bool tables = hak_prof_table_init(&g_table);
  g_loc_list = hak_os_reserve(LOC_CAP / 2 * sizeof(uintptr_t));
  g_map_paths = hak_os_reserve(MAP_PATHS_CAP);
  g_loc_name = hak_os_reserve(LOC_CAP / 2 * sizeof(uint32_t));
  g_loc_name_len = hak_os_reserve(LOC_CAP / 2 * sizeof(uint16_t));
  g_names = hak_os_reserve(NAMES_CAP);
  g_maps = hak_os_reserve(MAP_CAP * sizeof(prof_mapping));
  g_gz = hak_os_reserve(sizeof(hak_gzip));
  if (!tables || g_loc_list == NULL || g_map_paths == NULL || g_maps == NULL ||
      g_loc_name == NULL || g_loc_name_len == NULL || g_names == NULL || g_gz == NULL) {
    hak_log_write_fmt(2, "hakmem: cannot map the heap profiler's tables (HAKMEM_PROF off)\n");
    return;
  }
  hak_gzip_writer_init();
  hak_backtrace_init(false);
  hak_backtrace_warm_up();
  if (hak_options_current.prof_signal != 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(hak_options_current.prof_signal, &sa, NULL) != 0)
      hak_log_write_fmt(2, "hakmem: cannot install the HAKMEM_PROF_SIGNAL handler\n");
  }
  hak_profile_enabled = true;
}

__attribute__((destructor)) static void prof_at_exit(void) {
  if (hak_profile_enabled && hak_prof_dump(NULL) != 0)
    hak_log_write_fmt(2, "hakmem: cannot write the heap profile (errno %d)\n", errno);
}
