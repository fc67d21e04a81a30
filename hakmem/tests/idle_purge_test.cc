// Target 4b: once a program has freed everything, RSS falls back to within
// max(10%, 4 MiB) of where it started while the program sleeps (the purge
// thread), in a fork child too; with HAKMEM_PURGE_THREAD=0 only a later slow
// path gives the memory back. Each case runs in a fork child so that it
// starts from a quiet heap and measures its own RSS.
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/core/maintenance.h"
#include "hakmem/core/options.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;
// The target is one second; the rest is room for a loaded 2-core machine.
constexpr int kIdleLimitMs = 1500;

uint64_t RssBytes() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  unsigned long long size = 0, resident = 0;
  if (f == nullptr)
    return 0;
  if (std::fscanf(f, "%llu %llu", &size, &resident) != 2)
    resident = 0;
  std::fclose(f);
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// ThreadSanitizer's own bookkeeping for the threads and blocks of a case.
#if defined(__SANITIZE_THREAD__)
constexpr uint64_t kSanitizerSlack = 8 * kMiB;
} // namespace
// The fork case starts a purge thread in a child of a threaded process, which
// ThreadSanitizer refuses unless told otherwise (--config=tsan sets
// TSAN_OPTIONS itself, so the default is given here).
extern "C" const char *__tsan_default_options() { return "die_after_fork=0"; }
namespace {
#elif defined(__SANITIZE_ADDRESS__)
// AddressSanitizer writes the shadow of every mapping hakmem makes (its mmap
// and munmap interceptors), one byte per eight, and that shadow stays
// resident after hakmem unmaps the memory: the cases here map about 125 MiB
// and ended 15.7 MiB (125/8) above their start, the same before and after
// issue 20's changes. The bound still catches hakmem keeping the blocks
// (RSS would stay near the peak).
constexpr uint64_t kSanitizerSlack = 20 * kMiB;
#else
constexpr uint64_t kSanitizerSlack = 0;
#endif

uint64_t Bound(uint64_t start) {
  uint64_t slack = start / 10 > 4 * kMiB ? start / 10 : 4 * kMiB;
  return start + slack + kSanitizerSlack;
}

void SleepMs(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

uint64_t Rng(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Allocates and touches about `mib` MiB of 1..8 MiB blocks, then frees them.
void LargeRoundTrip(size_t mib) {
  std::vector<void *> blocks;
  blocks.reserve(256);
  uint64_t rng = 7;
  for (size_t got = 0; got < mib * kMiB;) {
    size_t n = kMiB + Rng(&rng) % (7 * kMiB);
    void *p = hak_malloc(n);
    if (p == nullptr)
      _exit(90);
    std::memset(p, 1, n);
    blocks.push_back(p);
    got += n;
  }
  for (void *p : blocks)
    hak_free(p);
}

// A mix of 16 B..64 KiB blocks (three quarters) and 1..8 MiB ones, ~mib MiB.
void *MixedRoundTrip(void *arg) {
  size_t mib = reinterpret_cast<uintptr_t>(arg);
  std::vector<void *> blocks;
  blocks.reserve(1 << 16);
  uint64_t rng = 11;
  size_t small = mib * kMiB / 4 * 3;
  for (size_t got = 0; got < small;) {
    unsigned k = 4 + static_cast<unsigned>(Rng(&rng) % 12); // octaves 16 B..64 KiB
    size_t n = (size_t{1} << k) + Rng(&rng) % (size_t{1} << k);
    void *p = hak_malloc(n);
    if (p == nullptr)
      _exit(91);
    std::memset(p, 2, n);
    blocks.push_back(p);
    got += n;
  }
  for (size_t i = blocks.size(); i > 1; i--) // free in a random order
    std::swap(blocks[i - 1], blocks[Rng(&rng) % i]);
  for (void *p : blocks)
    hak_free(p);
  LargeRoundTrip(mib / 4);
  return nullptr;
}

// Polls RSS without calling the allocator; returns the idle milliseconds it
// took to get within the bound, or -1 (and the last RSS in *last).
int MsUntilWithin(uint64_t bound, int limit_ms, uint64_t *last) {
  for (int ms = 0;; ms += 20) {
    *last = RssBytes();
    if (*last <= bound)
      return ms;
    if (ms >= limit_ms)
      return -1;
    SleepMs(20);
  }
}

// Runs fn in a fork child; the child's exit status is the test's verdict.
int InChild(int (*fn)()) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0)
    _exit(fn());
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int Report(const char *what, uint64_t start, uint64_t peak, uint64_t last, int ms) {
  std::fprintf(stderr, "%s: start %.1f MiB, peak %.1f MiB, last %.1f MiB, %d ms\n", what,
               start / 1048576.0, peak / 1048576.0, last / 1048576.0, ms);
  return ms < 0 ? 1 : 0;
}

int LargeBlocksCase() {
  uint64_t start = RssBytes();
  LargeRoundTrip(100);
  uint64_t peak = RssBytes(), last = 0;
  if (peak < start + 50 * kMiB) // the memory really was resident
    return 2;
  int ms = MsUntilWithin(Bound(start), kIdleLimitMs, &last);
  return Report("large blocks", start, peak, last, ms);
}

int MixedExitedThreadCase() {
  uint64_t start = RssBytes();
  pthread_t t;
  if (pthread_create(&t, nullptr, MixedRoundTrip, reinterpret_cast<void *>(uintptr_t{100})) != 0)
    return 3;
  pthread_join(t, nullptr);
  uint64_t last = 0;
  int ms = MsUntilWithin(Bound(start), kIdleLimitMs, &last);
  return Report("mixed, thread exited", start, 0, last, ms);
}

// A thread that frees everything it allocated and then parks, as the
// threads of a pool do: its heap is trimmed once it has been idle.
struct Parked {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  bool done = false, release = false;
};

void *MixedThenPark(void *arg) {
  Parked *k = static_cast<Parked *>(arg);
  MixedRoundTrip(reinterpret_cast<void *>(uintptr_t{100}));
  pthread_mutex_lock(&k->mu);
  k->done = true;
  pthread_cond_broadcast(&k->cv);
  while (!k->release)
    pthread_cond_wait(&k->cv, &k->mu);
  pthread_mutex_unlock(&k->mu);
  return nullptr;
}

int MixedParkedThreadCase() {
  uint64_t start = RssBytes();
  Parked k;
  pthread_t t;
  if (pthread_create(&t, nullptr, MixedThenPark, &k) != 0)
    return 3;
  pthread_mutex_lock(&k.mu);
  while (!k.done)
    pthread_cond_wait(&k.cv, &k.mu);
  pthread_mutex_unlock(&k.mu);
  uint64_t last = 0;
  int ms = MsUntilWithin(Bound(start), kIdleLimitMs, &last);
  pthread_mutex_lock(&k.mu);
  k.release = true;
  pthread_cond_broadcast(&k.cv);
  pthread_mutex_unlock(&k.mu);
  pthread_join(t, nullptr);
  return Report("mixed, thread parked", start, 0, last, ms);
}

int ForkChildCase() {
  // This child's parent had a purge thread; the child must start its own.
  return LargeBlocksCase();
}

int SlowPathOnlyCase() {
  hak_maintenance_init(); // loads the options: switch this one only afterwards
  hak_options_current.purge_thread = 0;
  uint64_t start = RssBytes();
  LargeRoundTrip(100);
  SleepMs(kIdleLimitMs);
  uint64_t idle = RssBytes();
  std::fprintf(stderr, "purge thread off: start %.1f MiB, after idle %.1f MiB\n", start / 1048576.0,
               idle / 1048576.0);
  if (idle < start + 50 * kMiB) // nobody purged while the program slept
    return 4;
  hak_free(hak_malloc(256 << 10)); // a large block: a slow path that decays
  uint64_t after = RssBytes();
  std::fprintf(stderr, "purge thread off: after a slow path %.1f MiB\n", after / 1048576.0);
  return after <= Bound(start) ? 0 : 5;
}

TEST(IdlePurgeTest, LargeBlocksGoBackWhileTheProgramSleeps) {
  EXPECT_EQ(InChild(LargeBlocksCase), 0);
}

TEST(IdlePurgeTest, EverythingOfAnExitedThreadGoesBackWhileTheProgramSleeps) {
  EXPECT_EQ(InChild(MixedExitedThreadCase), 0);
}

TEST(IdlePurgeTest, EverythingOfAParkedThreadGoesBackWhileTheProgramSleeps) {
  hak_build_info build;
  hak_build_info_get(&build); // the linked variant: this source is compiled once for all
  if (!build.fast_cache)
    GTEST_SKIP() << "idle heaps are trimmed only with the fast cache";
#if defined(__SANITIZE_THREAD__)
  // A trim gives pages back with MADV_DONTNEED inside SuperSlabs that stay
  // mapped; ThreadSanitizer keeps its shadow of those pages (about 140 MiB
  // here) until they are unmapped, so RSS says nothing about hakmem.
  GTEST_SKIP() << "ThreadSanitizer's shadow of purged pages stays resident";
#endif
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's own malloc (the test's vectors) keeps freed blocks in
  // its quarantine and a live thread's caches resident; with the parked
  // thread still alive RSS ended just over the bound (9.1 MiB against 8.8),
  // so RSS says nothing about hakmem here either.
  GTEST_SKIP() << "AddressSanitizer's per-thread state stays resident";
#endif
  EXPECT_EQ(InChild(MixedParkedThreadCase), 0);
}

TEST(IdlePurgeTest, ForkChildOfAProcessWithAPurgeThreadStillPurges) {
  // Give this process a purge thread first, so that the child inherits the
  // state of a process that had one.
  LargeRoundTrip(8);
  SleepMs(50);
  EXPECT_EQ(InChild(ForkChildCase), 0);
}

TEST(IdlePurgeTest, WithoutThePurgeThreadOnlyASlowPathGivesMemoryBack) {
  EXPECT_EQ(InChild(SlowPathOnlyCase), 0);
}

} // namespace
