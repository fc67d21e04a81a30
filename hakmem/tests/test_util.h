// Helpers shared by the hakmem cross-box tests: names for bench_util.h's byte
// patterns (a test proves a block kept its contents, and that no two live
// blocks overlap), and summaries of hak_stats snapshots.
#ifndef HAKMEM_TESTS_TEST_UTIL_H_
#define HAKMEM_TESTS_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hakmem.h"
#include "hakmem/bench/bench_util.h"

namespace hakmem_test {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kNotFound = BENCH_NO_MISMATCH;

// The fill patterns are bench_util.h's; these names read better in tests.
// Byte `i` of a pattern does not depend on the length, so a prefix of a
// filled buffer is the pattern of the shorter length: realloc tests verify
// the kept prefix with the same seed.
inline void FillPattern(void *p, size_t n, uint64_t seed) { bench_fill(p, 0, n, seed); }

// Offset of the first byte that differs from the pattern, or kNotFound.
inline size_t FindPatternMismatch(const void *p, size_t n, uint64_t seed) {
  return bench_check(p, 0, n, seed);
}

// Offset of the first non-zero byte, or kNotFound.
inline size_t FindNonZero(const void *p, size_t n) { return bench_find_nonzero(p, 0, n); }

// A seed that depends on where a block lives and how big it is, so a block
// that is handed out twice, or overlaps another, shows up as a mismatch.
inline uint64_t SeedFor(const void *p, size_t n, uint64_t salt = 0) {
  return bench_pattern_seed(p, n, salt);
}

inline bool IsAligned(const void *p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

// ---- statistics summaries -------------------------------------------------

inline hak_stats StatsNow() {
  hak_stats s;
  std::memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  return s;
}

// Blocks handed out, over all size classes and large mappings.
inline uint64_t TotalAllocs(const hak_stats &s) {
  uint64_t t = s.large_allocs + s.guarded_allocs;
  for (uint32_t c = 0; c < s.num_classes && c < HAK_STATS_MAX_CLASSES; ++c) {
    t += s.classes[c].allocs;
  }
  return t;
}

// Blocks given back, over all size classes, large mappings and the guarded
// pool.
inline uint64_t TotalFrees(const hak_stats &s) {
  uint64_t t = s.large_frees + (s.guarded_allocs - s.guarded_in_use);
  for (uint32_t c = 0; c < s.num_classes && c < HAK_STATS_MAX_CLASSES; ++c) {
    t += s.classes[c].frees;
  }
  return t;
}

inline uint64_t TotalRemoteFrees(const hak_stats &s) {
  uint64_t t = 0;
  for (uint32_t c = 0; c < s.num_classes && c < HAK_STATS_MAX_CLASSES; ++c) {
    t += s.classes[c].remote_frees;
  }
  return t;
}

// Blocks live now according to the counters (allocations minus frees).
inline int64_t LiveBlocks(const hak_stats &s) {
  return static_cast<int64_t>(TotalAllocs(s)) - static_cast<int64_t>(TotalFrees(s));
}

} // namespace hakmem_test

#endif // HAKMEM_TESTS_TEST_UTIL_H_
