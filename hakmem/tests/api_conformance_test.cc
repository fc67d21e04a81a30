// The hak_* entry points against glibc's malloc semantics (see
// conformance_cases.h), plus what only the hak_* API can show: how it treats
// memory that it did not hand out.
#include <malloc.h>

#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/tests/conformance_cases.h"

namespace hakmem_test {
namespace {

const AllocApi kHakApi = {
    "hak",        hak_malloc,       hak_free,           hak_calloc,
    hak_realloc,  hak_reallocarray, hak_posix_memalign, hak_aligned_alloc,
    hak_memalign, hak_valloc,       hak_pvalloc,        hak_usable_size,
};

INSTANTIATE_TEST_SUITE_P(HakApi, ConformanceTest, ::testing::Values(kHakApi), ApiName);

// This binary links hakmem without the override, so the C library's malloc
// is a different allocator: hakmem must not claim its blocks.
TEST(HakApiForeignPointers, LibcBlocksAreNotOwned) {
  void *small = std::malloc(48);
  void *large = std::malloc(4 * kMiB);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  EXPECT_FALSE(hak_owns(small));
  EXPECT_FALSE(hak_owns(large));
  EXPECT_EQ(hak_usable_size(small), 0u);
  EXPECT_EQ(hak_usable_size(large), 0u);
  std::free(small);
  std::free(large);
}

TEST(HakApiForeignPointers, StackAndStaticAddressesHaveNoUsableSize) {
  static char in_data[64];
  char on_stack[64] = {};
  EXPECT_EQ(hak_usable_size(in_data), 0u);
  EXPECT_EQ(hak_usable_size(on_stack), 0u);
}

TEST(HakApiThreadFlush, BlocksStayValidAcrossAFlush) {
  std::vector<void *> blocks;
  for (size_t n = 8; n <= 8192; n += 24) {
    void *p = hak_malloc(n);
    ASSERT_NE(p, nullptr);
    FillPattern(p, n, SeedFor(p, n));
    blocks.push_back(p);
  }
  // Free half, flush the cache, allocate again: nothing live may change.
  for (size_t i = 0; i < blocks.size(); i += 2) {
    hak_free(blocks[i]);
    blocks[i] = nullptr;
  }
  hak_thread_flush();
  hak_thread_flush();
  std::vector<void *> fresh;
  for (size_t n = 8; n <= 8192; n += 48) {
    void *p = hak_malloc(n);
    ASSERT_NE(p, nullptr);
    FillPattern(p, n, SeedFor(p, n, 1));
    fresh.push_back(p);
  }
  size_t i = 0;
  for (size_t n = 8; n <= 8192; n += 24, ++i) {
    if (blocks[i] == nullptr)
      continue;
    EXPECT_EQ(FindPatternMismatch(blocks[i], n, SeedFor(blocks[i], n)), kNotFound)
        << "block of " << n << " changed across hak_thread_flush";
    hak_free(blocks[i]);
  }
  i = 0;
  for (size_t n = 8; n <= 8192; n += 48, ++i) {
    EXPECT_EQ(FindPatternMismatch(fresh[i], n, SeedFor(fresh[i], n, 1)), kNotFound);
    hak_free(fresh[i]);
  }
}

} // namespace
} // namespace hakmem_test
