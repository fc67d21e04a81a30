// Helpers for hakmem's reliability tests (misuse, hardening, faults).
//
// - What the allocator under test was built as. The build mode
//   (HAKMEM_DEBUG, HAKMEM_BUILD_RELEASE) comes from the defines, which the
//   tests share with the library they link (//hakmem:variants.bzl); the
//   variant (FastCache(), Hardened()) is asked of the linked library
//   (hak_build_info_get), so that one compiled source serves every variant
//   (compile_once).
// - Death tests in the "threadsafe" style: the child re-executes the test
//   binary, so hakmem initialises afresh in it and reads its HAKMEM_*
//   options from the environment the parent set (ScopedEnv).
// - Launder(): hides where a pointer came from, so the compiler neither warns
//   about a deliberate misuse (-Wfree-nonheap-object, -Wuse-after-free) nor
//   optimises it away.
// - Announce(): a child prints the address it is about to misuse, and the
//   death-test regex refers back to it (\2), since the parent cannot know
//   the child's addresses.
//
// Only write(2) is used for output from children: a forked child of a
// multithreaded program, or one whose memory is exhausted, cannot rely on
// stdio.
#ifndef HAKMEM_TESTS_RELIABILITY_RELIABILITY_UTIL_H_
#define HAKMEM_TESTS_RELIABILITY_RELIABILITY_UTIL_H_

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/bench/bench_util.h"

#ifndef HAKMEM_DEBUG
#define HAKMEM_DEBUG 0
#endif
#ifndef HAKMEM_BUILD_RELEASE
#define HAKMEM_BUILD_RELEASE 0
#endif

namespace hakmem_reliability {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kSuperSlabSize = 2 * kMiB; // also the alignment of every hakmem region
constexpr size_t kPageSize = 4096;

// The build mode the test was compiled for: the same in every variant.
constexpr bool kDebugChecks = HAKMEM_DEBUG != 0; // checking level full by default, overflow trailer
constexpr bool kReleaseBuild = HAKMEM_BUILD_RELEASE != 0;

// The variant of the linked library, asked at run time: a define would make
// the source differ between variants.
inline hak_build_info LinkedBuild() {
  hak_build_info b;
  hak_build_info_get(&b);
  return b;
}
inline bool FastCache() { return LinkedBuild().fast_cache != 0; }
inline bool Hardened() { return LinkedBuild().hardened != 0; }

inline const char *BuildName() {
  if (kReleaseBuild)
    return "release";
#ifdef __OPTIMIZE__
  return "default (-O1, HAKMEM_DEBUG=1)";
#else
  return "debug (-O0, HAKMEM_DEBUG=1)";
#endif
}

// Sets the death-test style for every test in the binary (in the parent and
// in re-executed children alike). Registered from a static initialiser; the
// environment's SetUp runs after gtest parsed its flags.
class ThreadsafeDeathTests : public testing::Environment {
public:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

inline bool RegisterThreadsafeDeathTests() {
  testing::AddGlobalTestEnvironment(new ThreadsafeDeathTests);
  return true;
}

template <typename T> inline T *Launder(T *p) {
  asm volatile("" : "+r"(p) : : "memory");
  return p;
}

// The allocation functions, with results the compiler must treat as used.
// GCC removes an allocation it sees is never used (with its free) and then
// folds `malloc(n) == nullptr` to false; at -O2 that deletes the very calls a
// test is about.
inline void *Malloc(size_t n) { return Launder(malloc(n)); }
inline void *Calloc(size_t count, size_t n) { return Launder(calloc(count, n)); }
inline void *Realloc(void *p, size_t n) { return Launder(realloc(p, n)); }
inline void *AlignedAlloc(size_t align, size_t n) { return Launder(aligned_alloc(align, n)); }

inline uintptr_t Addr(const void *p) { return reinterpret_cast<uintptr_t>(p); }

// Writes everything, retrying short writes; no allocation.
inline void WriteAll(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// Formats into a stack buffer and writes it to stderr in one write(2).
__attribute__((format(printf, 1, 2))) inline void Say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  WriteAll(2, buf, static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1);
}

// "<tag> 0x...\n" on stderr: the address a child is about to misuse.
inline void Announce(const char *tag, const void *p) { Say("%s %p\n", tag, p); }

// Regex fragment matching Announce(tag, p), to start a death-test regex; the
// address is group 2, so later parts refer to it as \2. (Group 1 is the tag:
// gtest also compiles every regex wrapped as "^(...)$", where a \1 would
// point into its own unclosed group and the regex would be rejected.)
inline std::string Announced(const std::string &tag) { return "(" + tag + ") (0x[0-9a-f]+)\n"; }

// Escapes ERE metacharacters so that a literal message can go into a regex.
inline std::string Literal(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (std::strchr(".[]()*+?{}|^$\\", c) != nullptr)
      out += '\\';
    out += c;
  }
  return out;
}

// Sets (or, with nullopt, removes) an environment variable for the life of
// the object, restoring the old value afterwards. Set before EXPECT_DEATH /
// EXPECT_EXIT, it is in the environment of the re-executed child when hakmem
// initialises there; the parent's hakmem read its options long ago and is
// unaffected.
class ScopedEnv {
public:
  ScopedEnv(const char *name, std::optional<std::string> value) : name_(name) {
    const char *old = getenv(name);
    if (old != nullptr)
      old_ = std::string(old);
    if (value.has_value()) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

private:
  std::string name_;
  std::optional<std::string> old_;
};

// /proc/self/statm: total virtual size and resident size, in bytes.
struct Statm {
  size_t vm_bytes = 0;
  size_t rss_bytes = 0;
};

inline Statm ReadStatm() {
  uint64_t vm = 0, rss = 0;
  bench_statm(&vm, &rss);
  Statm m;
  m.vm_bytes = static_cast<size_t>(vm);
  m.rss_bytes = static_cast<size_t>(rss);
  return m;
}

inline hak_stats StatsNow() {
  hak_stats s;
  std::memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  return s;
}

// bench_util.h's generator, for sizes and fill patterns.
class Rng {
public:
  explicit Rng(uint64_t seed) { bench_rng_init(&r_, seed); }
  uint64_t Next() { return bench_rng_next(&r_); }
  // Uniform enough in [0, n).
  size_t Below(size_t n) { return static_cast<size_t>(bench_rng_below(&r_, n)); }

private:
  bench_rng r_;
};

// Fills n bytes with bench_util.h's pattern for seed; Intact() checks it.
inline void Fill(void *p, size_t n, uint64_t seed) { bench_fill(p, 0, n, seed); }

inline bool Intact(const void *p, size_t n, uint64_t seed) {
  return bench_check(p, 0, n, seed) == BENCH_NO_MISMATCH;
}

// For large blocks, where filling every byte would only cost time: the first
// and last 4 KiB and one word in every page.
constexpr bench_coverage kSparse = {8 * kKiB, 4 * kKiB, kPageSize, 8};

inline void FillSparse(void *p, size_t n, uint64_t seed) { bench_fill_block(p, n, seed, &kSparse); }

inline bool IntactSparse(const void *p, size_t n, uint64_t seed) {
  return bench_check_block(p, n, n, seed, &kSparse) == BENCH_NO_MISMATCH;
}

} // namespace hakmem_reliability

#endif // HAKMEM_TESTS_RELIABILITY_RELIABILITY_UTIL_H_
