#include "profile.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>
#include <unwind.h>

#include "hakmem.h"
#include "log.h"
#include "options.h"
#include "os.h"

bool hak_prof_enabled;

// ---- tables -----------------------------------------------------------------
// Every table lives in reserved memory (hak_os_reserve: pages are taken only
// when written), sized once at init; nothing here calls malloc.

#define STACK_CAP (1u << 15) // distinct stacks
#define LIVE_MIN (1u << 12)  // live-sample slots at first (open addressing, at most half full)
#define LIVE_MAX (1u << 20)  // and at most: the table doubles as it fills
#define LOC_CAP (1u << 20)   // distinct frame addresses in a dump (hash slots, at most)
#define MAP_CAP 1024u        // executable mappings in a dump
#define ENTRY_CAP 32u

typedef struct prof_stack {
  uint64_t hash;
  uint32_t depth;
  uint32_t pad_;
  double alloc_objs, alloc_bytes; // estimated totals of every sampled allocation
  double inuse_objs, inuse_bytes; // recomputed at each dump from the live table
  uintptr_t pc[HAK_PROF_DEPTH];
} prof_stack;

typedef struct prof_live {
  uintptr_t addr; // 0: empty slot
  uint64_t size;
  double weight;
  uint32_t stack;
  uint32_t pad_;
} prof_live;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static prof_stack *g_stacks;  // g_nstacks used
static uint32_t *g_stack_idx; // hash slots: stack index + 1, 0 empty (2 * STACK_CAP)
static uint32_t g_nstacks;
static prof_live *g_live; // g_live_cap slots
static size_t g_live_cap;
static size_t g_nlive;
static uint64_t g_dropped; // samples not kept: a table was full
static double g_rate;
static const void *g_entries[ENTRY_CAP];
static HAK_ATOMIC(unsigned) g_nentries;
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
static char *g_maps_text; // /proc/self/maps
#define MAPS_TEXT_CAP ((size_t)4 << 20)

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// ---- sampling ---------------------------------------------------------------

static uint64_t next_random(uint64_t *rng) {
  uint64_t x = *rng;
  if (x == 0)
    x = mix((uintptr_t)rng ^ (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32)) | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *rng = x;
  return x;
}

// The two functions of libm sampling needs, written here: linking libm costs
// every program hakmem is preloaded into about 300 KiB of resident pages.
#define PROF_LN2 0.69314718055994530942

// ln(x) for a normal x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and
// ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: 13 odd terms.
static double prof_ln(double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int e = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730950488) {
    m *= 0.5;
    e++;
  }
  double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
  for (int k = 1; k <= 25; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2 * sum + e * PROF_LN2;
}

// 1 - exp(-y) for y >= 0, without cancellation for small y.
static double prof_one_minus_exp_neg(double y) {
  if (y < 0.5) {
    double term = y, sum = 0; // y - y^2/2! + y^3/3! - ...
    for (int n = 1; n <= 20; n++) {
      sum += term;
      term *= -y / (n + 1);
    }
    return sum;
  }
  if (y > 40)
    return 1.0; // exp(-40) is below half an ulp of 1
  // exp(-y) = 2^-k exp(-r), y = k ln 2 + r, 0 <= r < ln 2.
  int k = (int)(y / PROF_LN2);
  double r = y - k * PROF_LN2, term = 1, e = 0;
  for (int n = 1; n <= 22; n++) {
    e += term;
    term *= -r / n;
  }
  uint64_t bits = (uint64_t)(1023 - k) << 52;
  double scale;
  memcpy(&scale, &bits, sizeof scale);
  return 1.0 - e * scale;
}

int64_t hak_prof_interval(uint64_t *rng) {
  // u in (0, 1]: -ln(u) is exponential with mean 1.
  double u = (double)((next_random(rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
  double bytes = -prof_ln(u) * g_rate;
  if (bytes < 1)
    return 1;
  if (bytes > 1e15)
    return (int64_t)1e15;
  return (int64_t)bytes;
}

bool hak_prof_count(int64_t *left, uint64_t *rng, uint64_t size) {
  if (*left == 0)
    *left = hak_prof_interval(rng);
  *left -= (int64_t)size;
  if (*left > 0)
    return false;
  *left = hak_prof_interval(rng);
  return true;
}

// A block of size bytes is sampled with probability 1 - exp(-size / rate):
// each sample stands for the inverse of that many allocations.
double hak_prof_weight(uint64_t size) {
  double p = prof_one_minus_exp_neg((double)size / g_rate);
  return p > 0 ? 1.0 / p : 1.0;
}

// ---- stacks -----------------------------------------------------------------

// The unwinder is libgcc_s's, reached through pointers and not linked: most C
// programs never load libgcc_s, and it would cost each of them about 90 KiB
// resident. A program that has it (C++) lends its copy through the weak
// references; otherwise the constructor below loads it when HAKMEM_PROF asks.
#pragma weak _Unwind_Backtrace
#pragma weak _Unwind_GetIP
#pragma weak _Unwind_GetRegionStart
#pragma weak _Unwind_GetCFA

static struct {
  _Unwind_Ptr (*get_ip)(struct _Unwind_Context *);
  _Unwind_Ptr (*region_start)(struct _Unwind_Context *);
  _Unwind_Word (*get_cfa)(struct _Unwind_Context *);
  // Set last (release): not NULL means all four are there.
  HAK_ATOMIC(_Unwind_Reason_Code (*)(_Unwind_Trace_Fn, void *)) backtrace;
} g_unwind;

static void unwinder_find(bool may_load) {
  if (atomic_load_explicit(&g_unwind.backtrace, memory_order_acquire) != NULL)
    return;
  _Unwind_Reason_Code (*bt)(_Unwind_Trace_Fn, void *) = _Unwind_Backtrace;
  if (bt != NULL && _Unwind_GetIP != NULL && _Unwind_GetRegionStart != NULL &&
      _Unwind_GetCFA != NULL) {
    g_unwind.get_ip = _Unwind_GetIP;
    g_unwind.region_start = _Unwind_GetRegionStart;
    g_unwind.get_cfa = _Unwind_GetCFA;
  } else {
    if (!may_load)
      return;
    // dlopen calls malloc: only from the constructor, never inside hakmem.
    void *lib = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
      return;
    bt = (_Unwind_Reason_Code(*)(_Unwind_Trace_Fn, void *))dlsym(lib, "_Unwind_Backtrace");
    g_unwind.get_ip = (_Unwind_Ptr(*)(struct _Unwind_Context *))dlsym(lib, "_Unwind_GetIP");
    g_unwind.region_start =
        (_Unwind_Ptr(*)(struct _Unwind_Context *))dlsym(lib, "_Unwind_GetRegionStart");
    g_unwind.get_cfa = (_Unwind_Word(*)(struct _Unwind_Context *))dlsym(lib, "_Unwind_GetCFA");
    if (bt == NULL || g_unwind.get_ip == NULL || g_unwind.region_start == NULL ||
        g_unwind.get_cfa == NULL)
      return;
  }
  atomic_store_explicit(&g_unwind.backtrace, bt, memory_order_release);
}

// Runs before main, outside any hakmem call, so dlopen's mallocs are ordinary
// ones. Without an unwinder, samples are taken without their stacks.
__attribute__((constructor)) static void prof_load_unwinder(void) {
  const char *v = getenv("HAKMEM_PROF");
  if (v != NULL && v[0] != '\0' && strcmp(v, "0") != 0)
    unwinder_find(true);
}

typedef struct walk {
  uintptr_t pc[HAK_PROF_DEPTH + 32];
  uintptr_t fn[HAK_PROF_DEPTH + 32];
  uintptr_t cfa[HAK_PROF_DEPTH + 32];
  unsigned n;
} walk;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg) {
  walk *w = arg;
  if (w->n >= sizeof w->pc / sizeof w->pc[0])
    return _URC_END_OF_STACK;
  uintptr_t ip = g_unwind.get_ip(ctx);
  if (ip == 0)
    return _URC_END_OF_STACK;
  w->pc[w->n] = ip;
  w->fn[w->n] = g_unwind.region_start(ctx);
  w->cfa[w->n] = g_unwind.get_cfa(ctx);
  w->n++;
  return _URC_NO_REASON;
}

void hak_prof_add_entries(const void *const *fns, unsigned n) {
  pthread_mutex_lock(&g_lock);
  unsigned have = atomic_load_explicit(&g_nentries, memory_order_relaxed);
  for (unsigned i = 0; i < n; i++) {
    bool known = false;
    for (unsigned j = 0; j < have; j++)
      known |= g_entries[j] == fns[i];
    if (!known && have < ENTRY_CAP)
      g_entries[have++] = fns[i];
  }
  atomic_store_explicit(&g_nentries, have, memory_order_release);
  pthread_mutex_unlock(&g_lock);
}

static bool is_entry(uintptr_t fn) {
  unsigned n = atomic_load_explicit(&g_nentries, memory_order_acquire);
  for (unsigned i = 0; i < n; i++)
    if ((uintptr_t)g_entries[i] == fn)
      return true;
  return false;
}

// The caller's stack above hakmem: the frames up to the one whose stack holds
// mark (a tail call leaves no frame for the entry point, and a cold part of
// a function has a region start of its own, so the stack says best where
// hakmem ends), and up to the outermost entry point, are dropped.
static unsigned capture(uintptr_t *out, const void *mark) {
  walk w;
  w.n = 0;
  _Unwind_Reason_Code (*bt)(_Unwind_Trace_Fn, void *) =
      atomic_load_explicit(&g_unwind.backtrace, memory_order_acquire);
  if (bt != NULL)
    bt(walk_frame, &w);
  unsigned first = w.n > 0 ? 1 : 0;
  // In _Unwind_Backtrace's callback the CFA is still that of the frame below
  // (the callee): the stack pointer of frame i at its call. The caller's
  // frames are the ones whose stack pointer lies above the mark.
  for (unsigned i = 0; i < w.n; i++)
    if (w.cfa[i] > (uintptr_t)mark) {
      first = i;
      break;
    }
  for (unsigned i = first; i < w.n; i++)
    if (is_entry(w.fn[i]))
      first = i + 1;
  unsigned n = 0;
  for (unsigned i = first; i < w.n && n < HAK_PROF_DEPTH; i++)
    out[n++] = w.pc[i];
  return n;
}

// Under g_lock. The index of the stack, added if new; UINT32_MAX when full.
static uint32_t intern_stack(const uintptr_t *pc, unsigned depth) {
  uint64_t h = depth;
  for (unsigned i = 0; i < depth; i++)
    h = mix(h ^ pc[i]);
  uint32_t mask = 2 * STACK_CAP - 1;
  for (uint32_t k = (uint32_t)h & mask;; k = (k + 1) & mask) {
    uint32_t s = g_stack_idx[k];
    if (s == 0) {
      if (g_nstacks == STACK_CAP)
        return UINT32_MAX;
      prof_stack *st = &g_stacks[g_nstacks];
      st->hash = h;
      st->depth = depth;
      memcpy(st->pc, pc, depth * sizeof pc[0]);
      g_stack_idx[k] = ++g_nstacks;
      return g_nstacks - 1;
    }
    prof_stack *st = &g_stacks[s - 1];
    if (st->hash == h && st->depth == depth && memcmp(st->pc, pc, depth * sizeof pc[0]) == 0)
      return s - 1;
  }
}

// ---- live samples -----------------------------------------------------------

static size_t live_slot(uintptr_t a) { return (size_t)mix(a) & (g_live_cap - 1); }

// Under g_lock: the slot holding a, or the empty slot where it would go.
static size_t live_find(uintptr_t a) {
  size_t k = live_slot(a);
  while (g_live[k].addr != 0 && g_live[k].addr != a)
    k = (k + 1) & (g_live_cap - 1);
  return k;
}

// Under g_lock: empties slot k, moving back later entries of its run
// (linear probing with no tombstones).
static void live_remove(size_t k) {
  size_t hole = k;
  size_t mask = g_live_cap - 1;
  for (size_t j = (k + 1) & mask; g_live[j].addr != 0; j = (j + 1) & mask) {
    size_t home = live_slot(g_live[j].addr);
    // j's entry may fill the hole if its home is not cyclically in (hole, j].
    bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      g_live[hole] = g_live[j];
      hole = j;
    }
  }
  g_live[hole].addr = 0;
  g_nlive--;
}

// Under g_lock: doubles the live table (false when it cannot).
static bool live_grow(void) {
  size_t cap = g_live_cap * 2;
  if (cap > LIVE_MAX)
    return false;
  prof_live *t = hak_os_reserve(cap * sizeof(prof_live));
  if (t == NULL)
    return false;
  prof_live *old = g_live;
  size_t old_cap = g_live_cap;
  g_live = t;
  g_live_cap = cap;
  for (size_t k = 0; k < old_cap; k++)
    if (old[k].addr != 0)
      g_live[live_find(old[k].addr)] = old[k];
  hak_os_unreserve(old, old_cap * sizeof(prof_live));
  return true;
}

void hak_prof_record(void *p, size_t size, const void *mark, uint16_t *live,
                     hak_prof_slab_fn *slab_changed, void *arg) {
  if (!hak_prof_enabled || p == NULL)
    return;
  uintptr_t pc[HAK_PROF_DEPTH];
  unsigned depth = capture(pc, mark); // outside the lock: unwinding takes the loader's
  double w = hak_prof_weight(size);
  pthread_mutex_lock(&g_lock);
  uint32_t s = intern_stack(pc, depth);
  if (s == UINT32_MAX || (g_nlive >= g_live_cap / 2 && !live_grow())) {
    g_dropped++;
    pthread_mutex_unlock(&g_lock);
    return;
  }
  g_stacks[s].alloc_objs += w;
  g_stacks[s].alloc_bytes += w * (double)size;
  size_t k = live_find((uintptr_t)p);
  if (g_live[k].addr == 0) {
    g_nlive++;
    if (live != NULL) {
      // Read without the lock by frees of the slab.
      uint16_t n = __atomic_load_n(live, __ATOMIC_RELAXED);
      __atomic_store_n(live, (uint16_t)(n + 1), __ATOMIC_RELAXED);
      slab_changed(arg, p, n == 0 ? HAK_PROF_SLAB_FIRST : HAK_PROF_SLAB_ADD);
    }
  }
  g_live[k] = (prof_live){.addr = (uintptr_t)p, .size = size, .weight = w, .stack = s};
  pthread_mutex_unlock(&g_lock);
}

void hak_prof_free(const void *p, uint16_t *live, hak_prof_slab_fn *slab_changed, void *arg) {
  if (!hak_prof_enabled)
    return;
  pthread_mutex_lock(&g_lock);
  size_t k = live_find((uintptr_t)p);
  if (g_live[k].addr != 0) {
    live_remove(k);
    uint16_t n = live != NULL ? __atomic_load_n(live, __ATOMIC_RELAXED) : 0;
    if (n > 0) {
      __atomic_store_n(live, (uint16_t)(n - 1), __ATOMIC_RELAXED);
      if (n == 1)
        slab_changed(arg, NULL, HAK_PROF_SLAB_CLEAR);
    }
  }
  pthread_mutex_unlock(&g_lock);
}

size_t hak_prof_live_count(void) {
  pthread_mutex_lock(&g_lock);
  size_t n = g_nlive;
  pthread_mutex_unlock(&g_lock);
  return n;
}

size_t hak_prof_stack_count(void) {
  pthread_mutex_lock(&g_lock);
  size_t n = g_nstacks;
  pthread_mutex_unlock(&g_lock);
  return n;
}

unsigned hak_prof_stack_depth(size_t i) {
  pthread_mutex_lock(&g_lock);
  unsigned d = i < g_nstacks ? g_stacks[i].depth : 0;
  pthread_mutex_unlock(&g_lock);
  return d;
}

uintptr_t hak_prof_stack_frame(size_t i, unsigned j) {
  pthread_mutex_lock(&g_lock);
  uintptr_t pc = i < g_nstacks && j < g_stacks[i].depth ? g_stacks[i].pc[j] : 0;
  pthread_mutex_unlock(&g_lock);
  return pc;
}

void hak_prof_fork_prepare(void) { pthread_mutex_lock(&g_lock); }
void hak_prof_fork_parent(void) { pthread_mutex_unlock(&g_lock); }
void hak_prof_fork_child(void) { pthread_mutex_init(&g_lock, NULL); }

// ---- gzip (stored deflate blocks) -------------------------------------------
// The profile goes out as it is encoded, through a 64 KiB buffer; each full
// buffer is one stored block. Stored blocks make the file a little larger
// than compressed ones but need no compressor and no allocation.

#define GZ_BLOCK 65535u

typedef struct gz {
  int fd;
  int err; // an errno
  uint32_t crc;
  uint32_t total;
  uint32_t len;
  uint8_t buf[GZ_BLOCK];
} gz;

static uint32_t g_crc_table[256];

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    g_crc_table[i] = c;
  }
}

static void write_raw(gz *z, const void *buf, size_t len) {
  const uint8_t *b = buf;
  while (len > 0 && z->err == 0) {
    ssize_t w = write(z->fd, b, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      z->err = errno;
      return;
    }
    b += w;
    len -= (size_t)w;
  }
}

static void gz_block(gz *z, bool final) {
  uint8_t h[5] = {final ? 1 : 0, (uint8_t)z->len, (uint8_t)(z->len >> 8), (uint8_t)~z->len,
                  (uint8_t)(~z->len >> 8)};
  write_raw(z, h, sizeof h);
  write_raw(z, z->buf, z->len);
  z->len = 0;
}

static void gz_put(gz *z, const void *data, size_t len) {
  const uint8_t *b = data;
  for (size_t i = 0; i < len; i++) {
    z->crc = g_crc_table[(z->crc ^ b[i]) & 0xff] ^ (z->crc >> 8);
    z->buf[z->len++] = b[i];
    if (z->len == GZ_BLOCK)
      gz_block(z, false);
  }
  z->total += (uint32_t)len;
}

static void gz_start(gz *z, int fd) {
  z->fd = fd;
  z->err = 0;
  z->crc = 0xffffffffu;
  z->total = 0;
  z->len = 0;
  static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  write_raw(z, header, sizeof header);
}

static void gz_finish(gz *z) {
  gz_block(z, true);
  uint32_t crc = ~z->crc;
  uint8_t t[8] = {(uint8_t)crc,
                  (uint8_t)(crc >> 8),
                  (uint8_t)(crc >> 16),
                  (uint8_t)(crc >> 24),
                  (uint8_t)z->total,
                  (uint8_t)(z->total >> 8),
                  (uint8_t)(z->total >> 16),
                  (uint8_t)(z->total >> 24)};
  write_raw(z, t, sizeof t);
}

// ---- protobuf ---------------------------------------------------------------
// profile.proto (github.com/google/pprof/proto/profile.proto): every message
// is encoded into a small buffer on the stack, then written as a
// length-delimited field of the Profile.

typedef struct pb {
  uint8_t *b;
  size_t len, cap;
} pb;

static void pb_varint(pb *m, uint64_t v) {
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    if (v != 0)
      byte |= 0x80;
    if (m->len < m->cap)
      m->b[m->len] = byte;
    m->len++;
  } while (v != 0);
}

static void pb_bytes(pb *m, const void *data, size_t len) {
  if (m->len + len <= m->cap)
    memcpy(m->b + m->len, data, len);
  m->len += len;
}

static void pb_uint(pb *m, unsigned field, uint64_t v) {
  pb_varint(m, (uint64_t)field << 3);
  pb_varint(m, v);
}

static void pb_field(pb *m, unsigned field, const void *data, size_t len) {
  pb_varint(m, (uint64_t)field << 3 | 2);
  pb_varint(m, len);
  pb_bytes(m, data, len);
}

// Writes the message m as field `field` of the Profile.
static void emit(gz *z, unsigned field, const pb *m) {
  uint8_t head[16];
  pb h = {head, 0, sizeof head};
  pb_varint(&h, (uint64_t)field << 3 | 2);
  pb_varint(&h, m->len);
  gz_put(z, head, h.len);
  gz_put(z, m->b, m->len);
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

static void emit_value_type(gz *z, unsigned field, uint64_t type, uint64_t unit) {
  uint8_t buf[32];
  pb m = {buf, 0, sizeof buf};
  pb_uint(&m, 1, type);
  pb_uint(&m, 2, unit);
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

// Reads /proc/self/maps: the executable mappings of files.
static void read_maps(void) {
  g_nmaps = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, g_maps_text + len, MAPS_TEXT_CAP - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  g_maps_text[len] = '\0';
  for (const char *s = g_maps_text; *s != '\0' && g_nmaps < MAP_CAP;) {
    const char *eol = strchr(s, '\n');
    if (eol == NULL)
      eol = s + strlen(s);
    // start-limit perms offset dev inode path
    prof_mapping m;
    m.start = hak_parse_hex(&s);
    if (*s == '-')
      s++;
    m.limit = hak_parse_hex(&s);
    bool exec = s + 4 < eol && s[3] == 'x';
    s += 6;
    m.offset = hak_parse_hex(&s);
    const char *path = s;
    for (int field = 0; field < 2 && path < eol; field++) { // dev, inode
      while (path < eol && *path == ' ')
        path++;
      while (path < eol && *path != ' ')
        path++;
    }
    while (path < eol && *path == ' ')
      path++;
    if (exec && path < eol && *path == '/') {
      m.path = path;
      m.path_len = (size_t)(eol - path);
      g_maps[g_nmaps++] = m;
    }
    s = *eol == '\n' ? eol + 1 : eol;
  }
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
  for (uint32_t k = (uint32_t)mix(pc) & mask;; k = (k + 1) & mask) {
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
// Go's own pprof (go tool pprof) names C functions from DWARF only, which
// release binaries rarely carry; so the profile names each frame itself,
// from the symbol table (.symtab, else .dynsym) of the file mapped there.

static bool read_at(int fd, void *buf, size_t len, uint64_t off) {
  uint8_t *b = buf;
  while (len > 0) {
    ssize_t r = pread(fd, b, len, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    b += r;
    len -= (size_t)r;
    off += (uint64_t)r;
  }
  return true;
}

// Reads size bytes at off into fresh memory (*out, *mapped to unmap); false on failure.
static bool read_section(int fd, uint64_t off, uint64_t size, void **out, size_t *mapped) {
  size_t len = (size_t)((size + 4095) & ~(uint64_t)4095);
  if (len == 0 || size > ((uint64_t)1 << 32))
    return false;
  void *p = hak_os_reserve(len);
  if (p == NULL)
    return false;
  if (!read_at(fd, p, (size_t)size, off)) {
    hak_os_unreserve(p, len);
    return false;
  }
  *out = p;
  *mapped = len;
  return true;
}

// Names the locations (ids 1..g_nlocs) that lie in mapping m (index mi).
static void name_locations_in(unsigned mi) {
  const prof_mapping *m = &g_maps[mi];
  char path[4096];
  if (m->path_len >= sizeof path)
    return;
  memcpy(path, m->path, m->path_len);
  path[m->path_len] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  Elf64_Ehdr eh;
  Elf64_Shdr sh[256];
  Elf64_Phdr ph[64];
  if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shnum == 0 || eh.e_shnum > 256 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
      eh.e_phnum > 64 || !read_at(fd, sh, eh.e_shnum * sizeof sh[0], eh.e_shoff) ||
      !read_at(fd, ph, eh.e_phnum * sizeof ph[0], eh.e_phoff)) {
    close(fd);
    return;
  }
  // The load segment this mapping's file offset lies in gives the bias
  // between file offsets and the symbols' addresses.
  int64_t bias = 0;
  bool found = false;
  for (unsigned i = 0; i < eh.e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && m->offset >= ph[i].p_offset &&
        m->offset < ph[i].p_offset + (ph[i].p_filesz ? ph[i].p_filesz : 1)) {
      bias = (int64_t)ph[i].p_vaddr - (int64_t)ph[i].p_offset;
      found = true;
      break;
    }
  int symi = -1;
  for (unsigned i = 0; i < eh.e_shnum; i++)
    if (sh[i].sh_type == SHT_SYMTAB)
      symi = (int)i;
  if (symi < 0)
    for (unsigned i = 0; i < eh.e_shnum; i++)
      if (sh[i].sh_type == SHT_DYNSYM)
        symi = (int)i;
  if (!found || symi < 0 || sh[symi].sh_link >= eh.e_shnum ||
      sh[symi].sh_entsize != sizeof(Elf64_Sym)) {
    close(fd);
    return;
  }
  const Elf64_Shdr *st = &sh[sh[symi].sh_link];
  void *syms_raw = NULL, *strs_raw = NULL;
  size_t syms_len = 0, strs_len = 0;
  if (!read_section(fd, sh[symi].sh_offset, sh[symi].sh_size, &syms_raw, &syms_len) ||
      !read_section(fd, st->sh_offset, st->sh_size, &strs_raw, &strs_len)) {
    if (syms_raw != NULL)
      hak_os_unreserve(syms_raw, syms_len);
    close(fd);
    return;
  }
  close(fd);
  const Elf64_Sym *syms = syms_raw;
  const char *strs = strs_raw;
  size_t nsyms = sh[symi].sh_size / sizeof(Elf64_Sym);
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    uintptr_t pc = g_loc_list[id - 1];
    if (g_loc_name[id - 1] != 0 || pc < m->start || pc >= m->limit)
      continue;
    uint64_t addr = (uint64_t)((int64_t)(pc - m->start + m->offset) + bias);
    const Elf64_Sym *best = NULL;
    for (size_t k = 0; k < nsyms; k++) {
      const Elf64_Sym *y = &syms[k];
      if (ELF64_ST_TYPE(y->st_info) != STT_FUNC || y->st_shndx == SHN_UNDEF ||
          y->st_name >= st->sh_size)
        continue;
      if (addr >= y->st_value && addr < y->st_value + (y->st_size ? y->st_size : 1) &&
          (best == NULL || y->st_value > best->st_value ||
           (y->st_value == best->st_value && ELF64_ST_BIND(y->st_info) == STB_GLOBAL)))
        best = y;
    }
    if (best == NULL)
      continue;
    const char *name = strs + best->st_name;
    size_t len = strnlen(name, st->sh_size - best->st_name);
    if (len == 0 || len > 0xffff || g_names_len + len > NAMES_CAP)
      continue;
    memcpy(g_names + g_names_len, name, len);
    g_loc_name[id - 1] = (uint32_t)g_names_len + 1;
    g_loc_name_len[id - 1] = (uint16_t)len;
    g_names_len += len;
  }
  hak_os_unreserve(syms_raw, syms_len);
  hak_os_unreserve(strs_raw, strs_len);
}

// ---- the dump ---------------------------------------------------------------

// A frame's address as pprof wants it: inside the call instruction, not the
// return address after it (the leaf, frame 0, is a caller too here).
static uintptr_t call_site(uintptr_t pc) { return pc - 1; }

static void write_profile(gz *z) {
  emit_value_type(z, P_SAMPLE_TYPE, S_ALLOC_OBJECTS, S_COUNT);
  emit_value_type(z, P_SAMPLE_TYPE, S_ALLOC_SPACE, S_BYTES);
  emit_value_type(z, P_SAMPLE_TYPE, S_INUSE_OBJECTS, S_COUNT);
  emit_value_type(z, P_SAMPLE_TYPE, S_INUSE_SPACE, S_BYTES);

  for (uint32_t s = 0; s < g_nstacks; s++)
    g_stacks[s].inuse_objs = g_stacks[s].inuse_bytes = 0;
  for (size_t k = 0; k < g_live_cap; k++) {
    if (g_live[k].addr == 0)
      continue;
    prof_stack *st = &g_stacks[g_live[k].stack];
    st->inuse_objs += g_live[k].weight;
    st->inuse_bytes += g_live[k].weight * (double)g_live[k].size;
  }

  // The address table, for this dump: twice the frames there are.
  size_t frames = 0;
  for (uint32_t st = 0; st < g_nstacks; st++)
    frames += g_stacks[st].depth;
  g_loc_cap = 1024;
  while (g_loc_cap < 2 * frames && g_loc_cap < LOC_CAP)
    g_loc_cap *= 2;
  g_loc_pc = hak_os_reserve(g_loc_cap * sizeof(uintptr_t));
  g_loc_id = hak_os_reserve(g_loc_cap * sizeof(uint32_t));
  if (g_loc_pc == NULL || g_loc_id == NULL)
    g_loc_cap = 0; // no locations: the samples go out without stacks
  g_nlocs = 0;
  for (uint32_t s = 0; s < g_nstacks; s++) {
    prof_stack *st = &g_stacks[s];
    uint8_t locs[HAK_PROF_DEPTH * 10];
    pb l = {locs, 0, sizeof locs};
    for (unsigned i = 0; i < st->depth && g_loc_cap != 0; i++) {
      uint32_t id = location_of(call_site(st->pc[i]));
      if (id != 0)
        pb_varint(&l, id);
    }
    uint8_t vals[4 * 10];
    pb v = {vals, 0, sizeof vals};
    pb_varint(&v, (uint64_t)(st->alloc_objs + 0.5));
    pb_varint(&v, (uint64_t)(st->alloc_bytes + 0.5));
    pb_varint(&v, (uint64_t)(st->inuse_objs + 0.5));
    pb_varint(&v, (uint64_t)(st->inuse_bytes + 0.5));
    uint8_t buf[sizeof locs + sizeof vals + 16];
    pb m = {buf, 0, sizeof buf};
    pb_field(&m, 1, locs, l.len);
    pb_field(&m, 2, vals, v.len);
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
    pb m = {buf, 0, sizeof buf};
    pb_uint(&m, 1, i + 1);
    pb_uint(&m, 2, g_maps[i].start);
    pb_uint(&m, 3, g_maps[i].limit);
    pb_uint(&m, 4, g_maps[i].offset);
    pb_uint(&m, 5, sizeof k_strings / sizeof k_strings[0] + i); // its path, below
    emit(z, P_MAPPING, &m);
  }
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    uintptr_t pc = g_loc_list[id - 1];
    uint8_t buf[48];
    pb m = {buf, 0, sizeof buf};
    pb_uint(&m, 1, id);
    unsigned map = mapping_of(pc);
    if (map != 0)
      pb_uint(&m, 2, map);
    pb_uint(&m, 3, pc);
    if (g_loc_name[id - 1] != 0) {
      uint8_t line[16];
      pb l = {line, 0, sizeof line};
      pb_uint(&l, 1, id); // Line.function_id
      pb_field(&m, 4, line, l.len);
    }
    emit(z, P_LOCATION, &m);
  }
  uint64_t next_name = first_name;
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    if (g_loc_name[id - 1] == 0)
      continue;
    uint8_t buf[40];
    pb m = {buf, 0, sizeof buf};
    pb_uint(&m, 1, id);        // Function.id
    pb_uint(&m, 2, next_name); // name
    pb_uint(&m, 3, next_name); // system_name
    next_name++;
    emit(z, P_FUNCTION, &m);
  }

  for (size_t k = 0; k < sizeof k_strings / sizeof k_strings[0]; k++) {
    uint8_t buf[32];
    pb m = {buf, 0, sizeof buf};
    pb_bytes(&m, k_strings[k], strlen(k_strings[k]));
    emit(z, P_STRING, &m);
  }
  for (unsigned i = 0; i < g_nmaps; i++) {
    pb m = {(uint8_t *)g_maps[i].path, g_maps[i].path_len, g_maps[i].path_len};
    emit(z, P_STRING, &m);
  }
  for (uint32_t id = 1; id <= g_nlocs; id++) {
    if (g_loc_name[id - 1] == 0)
      continue;
    size_t len = g_loc_name_len[id - 1];
    pb m = {(uint8_t *)g_names + g_loc_name[id - 1] - 1, len, len};
    emit(z, P_STRING, &m);
  }

  uint8_t buf[64];
  pb m = {buf, 0, sizeof buf};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  pb_uint(&m, P_TIME, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
  pb_uint(&m, P_PERIOD, (uint64_t)g_rate);
  pb_uint(&m, P_DEFAULT_TYPE, S_INUSE_SPACE);
  gz_put(z, m.b, m.len);
  emit_value_type(z, P_PERIOD_TYPE, S_SPACE, S_BYTES);
  if (g_loc_pc != NULL)
    hak_os_unreserve(g_loc_pc, g_loc_cap * sizeof(uintptr_t));
  if (g_loc_id != NULL)
    hak_os_unreserve(g_loc_id, g_loc_cap * sizeof(uint32_t));
  g_loc_pc = NULL;
  g_loc_id = NULL;
}

static gz *g_gz; // mapped at init: 64 KiB is too much for some threads' stacks

// HAKMEM_PROF_FILE with %p replaced by the pid (%% by %).
static int expand_path(char *out, size_t cap, const char *pattern) {
  size_t n = 0;
  for (const char *s = pattern; *s != '\0'; s++) {
    char tmp[24];
    const char *add = tmp;
    size_t len;
    if (s[0] == '%' && s[1] == 'p') {
      len = hak_format(tmp, sizeof tmp, "%d", (int)getpid());
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
  if (!hak_prof_enabled) {
    errno = ENOTSUP;
    return -1;
  }
  char name[512];
  if (path == NULL) {
    if (expand_path(name, sizeof name, hak_opts.prof_file) != 0) {
      errno = ENAMETOOLONG;
      return -1;
    }
    path = name;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  pthread_mutex_lock(&g_lock);
  gz *z = g_gz;
  gz_start(z, fd);
  write_profile(z);
  gz_finish(z);
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

void hak_prof_poll(void) {
  if (hak_likely(!g_dump_wanted))
    return;
  g_dump_wanted = 0;
  if (hak_prof_dump(NULL) != 0)
    hak_write_fmt(2, "hakmem: cannot write the heap profile (errno %d)\n", errno);
}

// ---- init and exit ----------------------------------------------------------

static _Unwind_Reason_Code count_frame(struct _Unwind_Context *ctx, void *arg) {
  (void)ctx;
  ++*(unsigned *)arg;
  return _URC_NO_REASON;
}

void hak_prof_init(void) {
  if (!hak_opts.prof || hak_prof_enabled)
    return;
  g_rate = (double)hak_opts.prof_sample;
  g_stacks = hak_os_reserve(STACK_CAP * sizeof(prof_stack));
  g_stack_idx = hak_os_reserve(2 * STACK_CAP * sizeof(uint32_t));
  g_live_cap = LIVE_MIN;
  g_live = hak_os_reserve(LIVE_MIN * sizeof(prof_live));
  g_loc_list = hak_os_reserve(LOC_CAP / 2 * sizeof(uintptr_t));
  g_maps_text = hak_os_reserve(MAPS_TEXT_CAP);
  g_loc_name = hak_os_reserve(LOC_CAP / 2 * sizeof(uint32_t));
  g_loc_name_len = hak_os_reserve(LOC_CAP / 2 * sizeof(uint16_t));
  g_names = hak_os_reserve(NAMES_CAP);
  g_maps = hak_os_reserve(MAP_CAP * sizeof(prof_mapping));
  g_gz = hak_os_reserve(sizeof(gz));
  if (g_stacks == NULL || g_stack_idx == NULL || g_live == NULL || g_loc_list == NULL ||
      g_maps_text == NULL || g_maps == NULL || g_loc_name == NULL || g_loc_name_len == NULL ||
      g_names == NULL || g_gz == NULL) {
    hak_write_fmt(2, "hakmem: cannot map the heap profiler's tables (HAKMEM_PROF off)\n");
    return;
  }
  crc_init();
  // The unwinder's first call sets up its tables (pthread_once, no malloc);
  // do it here, on a thread's first slow path, rather than at a sample.
  unwinder_find(false);
  _Unwind_Reason_Code (*bt)(_Unwind_Trace_Fn, void *) =
      atomic_load_explicit(&g_unwind.backtrace, memory_order_acquire);
  unsigned frames = 0;
  if (bt != NULL)
    bt(count_frame, &frames);
  if (hak_opts.prof_signal != 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(hak_opts.prof_signal, &sa, NULL) != 0)
      hak_write_fmt(2, "hakmem: cannot install the HAKMEM_PROF_SIGNAL handler\n");
  }
  hak_prof_enabled = true;
}

__attribute__((destructor)) static void prof_at_exit(void) {
  if (hak_prof_enabled && hak_prof_dump(NULL) != 0)
    hak_write_fmt(2, "hakmem: cannot write the heap profile (errno %d)\n", errno);
}
