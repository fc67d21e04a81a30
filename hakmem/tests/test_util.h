// Helpers shared by the hakmem cross-box tests: byte patterns that let a test
// prove a block kept its contents (and that no two live blocks overlap), and
// summaries of hak_stats snapshots.
#ifndef HAKMEM_TESTS_TEST_UTIL_H_
#define HAKMEM_TESTS_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hakmem.h"

namespace hakmem_test {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kNotFound = ~size_t{0};

// A 64-bit mixer (splitmix64 finaliser) so neighbouring words differ.
inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The pattern word number `k` of a buffer filled with `seed`.
inline uint64_t PatternWord(uint64_t seed, size_t k) {
  return Mix(seed ^ (static_cast<uint64_t>(k) * 0xD6E8FEB86659FD93ull));
}

// Byte `i` of the pattern is byte (i % 8) of PatternWord(seed, i / 8), so a
// prefix of a filled buffer is the pattern of the shorter length: realloc
// tests can verify the kept prefix with the same seed.
inline void FillPattern(void *p, size_t n, uint64_t seed) {
  unsigned char *b = static_cast<unsigned char *>(p);
  size_t words = n / 8;
  for (size_t k = 0; k < words; ++k) {
    uint64_t w = PatternWord(seed, k);
    std::memcpy(b + 8 * k, &w, 8);
  }
  if (n % 8 != 0) {
    uint64_t w = PatternWord(seed, words);
    std::memcpy(b + 8 * words, &w, n % 8);
  }
}

// Offset of the first byte that differs from the pattern, or kNotFound.
inline size_t FindPatternMismatch(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  size_t words = n / 8;
  for (size_t k = 0; k < words; ++k) {
    uint64_t want = PatternWord(seed, k);
    if (std::memcmp(b + 8 * k, &want, 8) != 0) {
      for (size_t i = 0; i < 8; ++i) {
        if (b[8 * k + i] != reinterpret_cast<const unsigned char *>(&want)[i]) {
          return 8 * k + i;
        }
      }
    }
  }
  if (n % 8 != 0) {
    uint64_t want = PatternWord(seed, words);
    for (size_t i = 0; i < n % 8; ++i) {
      if (b[8 * words + i] != reinterpret_cast<const unsigned char *>(&want)[i]) {
        return 8 * words + i;
      }
    }
  }
  return kNotFound;
}

// Offset of the first non-zero byte, or kNotFound.
inline size_t FindNonZero(const void *p, size_t n) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    if (w != 0)
      break;
  }
  for (; i < n; ++i) {
    if (b[i] != 0)
      return i;
  }
  return kNotFound;
}

// A seed that depends on where a block lives and how big it is, so a block
// that is handed out twice, or overlaps another, shows up as a mismatch.
inline uint64_t SeedFor(const void *p, size_t n, uint64_t salt = 0) {
  return Mix(reinterpret_cast<uintptr_t>(p) ^ Mix(n) ^ (salt << 1));
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
  uint64_t t = s.large_allocs;
  for (uint32_t c = 0; c < s.num_classes && c < HAK_STATS_MAX_CLASSES; ++c) {
    t += s.classes[c].allocs;
  }
  return t;
}

// Blocks given back, over all size classes and large mappings.
inline uint64_t TotalFrees(const hak_stats &s) {
  uint64_t t = s.large_frees;
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
