#include "sampler.h"

#include "prof_sample.h"

bool hak_sampler_on;

static uint64_t g_prof_rate;  // mean bytes between two profiler samples; 0: off
static uint64_t g_guard_rate; // mean allocations between two guarded ones; 0: off

// A thread's countdowns: per bin, and its own for blocks no bin counts. A
// countdown of 0 has not been drawn yet; once drawn it stays above 0 between
// two calls (an event draws the next interval at once).
typedef struct sampler_state {
  int64_t prof_left[HAK_NUM_BINS];  // bytes to the next profiler sample
  int64_t guard_left[HAK_NUM_BINS]; // allocations to the next guarded one (1: the next)
  uint64_t seen[HAK_NUM_BINS];      // the bin's allocation count at its last miss
  int64_t prof_own, guard_own;
  uint64_t rng;
} sampler_state;

static HAK_TLS sampler_state g_st;

void hak_sampler_set(uint64_t prof_bytes, uint64_t guard_allocs) {
  g_prof_rate = prof_bytes;
  g_guard_rate = guard_allocs;
  hak_sampler_on = prof_bytes != 0 || guard_allocs != 0;
}

// The profiler's intervals are exponential (its weights assume so); the
// guarded pool's uniform in [1, 2N - 1], so that N = 1 guards every
// allocation.
static int64_t draw(uint64_t rate) { return hak_prof_sample_interval(&g_st.rng, (double)rate); }
static int64_t draw_guard(uint64_t n) {
  return n <= 1 ? 1 : (int64_t)(1 + hak_prof_sample_random(&g_st.rng) % (2 * n - 1));
}

// Counts n allocations of size bytes against the countdowns *prof and
// *guard (of the clients in allow), the last of them the current one; its
// events.
static unsigned count(int64_t *prof, int64_t *guard, uint64_t n, uint64_t size, unsigned allow) {
  unsigned ev = 0;
  if (g_prof_rate != 0 && (allow & HAK_SAMPLE_PROF)) {
    if (*prof == 0)
      *prof = draw(g_prof_rate);
    *prof -= (int64_t)(n * size);
    if (*prof <= 0) {
      ev |= HAK_SAMPLE_PROF;
      *prof = draw(g_prof_rate);
    }
  }
  if (g_guard_rate != 0 && (allow & HAK_SAMPLE_GUARD)) {
    if (*guard == 0)
      *guard = draw_guard(g_guard_rate);
    *guard -= (int64_t)n;
    if (*guard <= 0) {
      ev |= HAK_SAMPLE_GUARD;
      *guard = draw_guard(g_guard_rate);
    }
  }
  return ev;
}

unsigned hak_sampler_miss(unsigned bin, uint64_t size, uint64_t allocs, uint32_t *limit) {
  // The fast allocations since the last miss (a sample point they crossed
  // falls on this one), then this one.
  uint64_t n = allocs - g_st.seen[bin] + 1;
  g_st.seen[bin] = allocs;
  unsigned ev = count(&g_st.prof_left[bin], &g_st.guard_left[bin], n, size, HAK_SAMPLE_ALL);
  // This block and those before the one that crosses the next sample point.
  uint64_t most = UINT32_MAX;
  if (g_prof_rate != 0) {
    uint64_t blocks = ((uint64_t)g_st.prof_left[bin] + size - 1) / size;
    most = blocks < most ? blocks : most;
  }
  if (g_guard_rate != 0 && (uint64_t)g_st.guard_left[bin] < most)
    most = (uint64_t)g_st.guard_left[bin];
  *limit = (uint32_t)most;
  return ev;
}

void hak_sampler_reset_bins(void) {
  for (unsigned i = 0; i < HAK_NUM_BINS; i++)
    g_st.seen[i] = 0;
}

unsigned hak_sampler_count(uint64_t size, unsigned allow) {
  return count(&g_st.prof_own, &g_st.guard_own, 1, size, allow);
}
