// The standard malloc names, as exported by hakmem's override library that
// this test links, against glibc's semantics (see conformance_cases.h); and
// checks that the C library and C++ runtime really hand their allocations to
// hakmem.
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/tests/conformance_cases.h"

namespace hakmem_test {
namespace {

void *StdMalloc(size_t n) { return malloc(n); }
void StdFree(void *p) { free(p); }
void *StdCalloc(size_t a, size_t b) { return calloc(a, b); }
void *StdRealloc(void *p, size_t n) { return realloc(p, n); }
void *StdReallocarray(void *p, size_t a, size_t b) { return reallocarray(p, a, b); }
int StdPosixMemalign(void **out, size_t a, size_t n) { return posix_memalign(out, a, n); }
void *StdAlignedAlloc(size_t a, size_t n) { return aligned_alloc(a, n); }
void *StdMemalign(size_t a, size_t n) { return memalign(a, n); }
void *StdValloc(size_t n) { return valloc(n); }
void *StdPvalloc(size_t n) { return pvalloc(n); }
size_t StdUsableSize(const void *p) { return malloc_usable_size(const_cast<void *>(p)); }

const AllocApi kStdApi = {
    "std",       StdMalloc,       StdFree,          StdCalloc,
    StdRealloc,  StdReallocarray, StdPosixMemalign, StdAlignedAlloc,
    StdMemalign, StdValloc,       StdPvalloc,       StdUsableSize,
};

INSTANTIATE_TEST_SUITE_P(StandardNames, ConformanceTest, ::testing::Values(kStdApi), ApiName);

TEST(OverrideRouting, StandardNamesAreServedByHakmem) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{4096}, size_t{70000}, 3 * kMiB}) {
    void *p = malloc(n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(hak_owns(p)) << "malloc(" << n << ") not from hakmem";
    EXPECT_EQ(malloc_usable_size(p), hak_usable_size(p));
    free(p);
  }
  void *p = calloc(10, 10);
  EXPECT_TRUE(hak_owns(p)) << "calloc";
  p = realloc(p, 50000);
  EXPECT_TRUE(hak_owns(p)) << "realloc";
  free(p);
}

TEST(OverrideRouting, HakmemAndStandardNamesInteroperate) {
  // A block from one set of names can be resized and freed by the other.
  void *p = malloc(200);
  ASSERT_NE(p, nullptr);
  FillPattern(p, 200, 5);
  p = hak_realloc(p, 20000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(FindPatternMismatch(p, 200, 5), kNotFound);
  hak_free(p);
  p = hak_malloc(300);
  ASSERT_NE(p, nullptr);
  FillPattern(p, 300, 6);
  p = realloc(p, 3 * kMiB);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(FindPatternMismatch(p, 300, 6), kNotFound);
  free(p);
}

TEST(OverrideRouting, LibcInternalAllocationsComeFromHakmem) {
  // glibc's own functions call malloc through the interposable symbol.
  char *s = strdup("the quick brown fox");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(hak_owns(s)) << "strdup";
  free(s);
  char *line = nullptr;
  size_t cap = 0;
  FILE *f = fmemopen(const_cast<char *>("a line\n"), 7, "r");
  ASSERT_NE(f, nullptr);
  ASSERT_GT(getline(&line, &cap, f), 0);
  EXPECT_TRUE(hak_owns(line)) << "getline";
  free(line);
  fclose(f);
}

TEST(OverrideRouting, CxxNewIsServedByHakmem) {
  auto one = std::make_unique<int>(7);
  EXPECT_TRUE(hak_owns(one.get())) << "operator new";
  auto many = std::make_unique<char[]>(100000);
  EXPECT_TRUE(hak_owns(many.get())) << "operator new[]";
  std::vector<std::string> v;
  for (int i = 0; i < 1000; ++i)
    v.push_back(std::string(50 + i, 'x'));
  for (const std::string &s : v) {
    ASSERT_TRUE(hak_owns(s.data())) << "std::string storage";
  }
}

} // namespace
} // namespace hakmem_test
