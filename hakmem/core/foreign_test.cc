// Unit test of the foreign box: a live block of glibc's malloc is recognised
// from glibc's own chunk headers and goes back to glibc; anything else (a
// static or stack address, an interior pointer, unmapped or unreadable
// memory) is reported without being read where it is not readable.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "hakmem/core/foreign.h"

// glibc's allocator under the names a replaced malloc (or a sanitizer) leaves
// to glibc, as foreign.c reaches it.
extern "C" void *__libc_malloc(size_t n);
extern "C" void __libc_free(void *p);

namespace {

constexpr size_t kPage = 4096;

// A block of glibc's stays out throughout: with none out, hak_foreign_is_glibc
// answers no without looking (the usual case under LD_PRELOAD, and this
// test's under a sanitizer, whose malloc is not glibc's).
class Foreign : public ::testing::Test {
protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    keep_ = __libc_malloc(64);
  }
  void TearDown() override { __libc_free(keep_); }
  void *keep_ = nullptr;
};

// An address nothing maps: a page mapped and given back.
void *Unmapped() {
  void *p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(p, kPage);
  return static_cast<char *>(p) + 16;
}

// The report's text for call what ("free()") and any pointer.
std::string Report(const char *what) {
  return std::string("hakmem: ") + what +
         " invalid pointer 0x[0-9a-f]+ \\(not a live block of hakmem's, nor of glibc's\\)";
}

TEST_F(Foreign, GlibcHeapBlocksAreRecognised) {
  for (size_t size : {size_t{1}, size_t{24}, size_t{100}, size_t{1000}, size_t{60000}}) {
    SCOPED_TRACE(size);
    void *p = __libc_malloc(size);
    ASSERT_NE(p, nullptr);
    size_t usable = 0;
    ASSERT_TRUE(hak_foreign_is_glibc(p, &usable));
    EXPECT_GE(usable, size);
    EXPECT_LT(usable, size + 32) << "a chunk is at most 16 bytes of rounding beyond it";
    EXPECT_EQ(hak_foreign_usable_size(p), usable);
    std::memset(p, 0x5a, usable); // all of it is the block's
    hak_foreign_free(p);
  }
}

// A block big enough for a mapping of its own (glibc's mmap threshold is
// 128 KiB by default).
TEST_F(Foreign, GlibcMappedBlocksAreRecognised) {
  const size_t size = 4 << 20;
  void *p = __libc_malloc(size);
  ASSERT_NE(p, nullptr);
  size_t usable = 0;
  ASSERT_TRUE(hak_foreign_is_glibc(p, &usable));
  EXPECT_GE(usable, size);
  EXPECT_LT(usable, size + 4096);
  static_cast<char *>(p)[usable - 1] = 1;
  hak_foreign_free(p);
}

TEST_F(Foreign, ReallocGoesToGlibc) {
  auto *p = static_cast<unsigned char *>(__libc_malloc(40));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 40; ++i)
    p[i] = static_cast<unsigned char>(i);
  auto *q = static_cast<unsigned char *>(hak_foreign_realloc(p, 100000));
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 40; ++i)
    ASSERT_EQ(q[i], i);
  size_t usable = 0;
  ASSERT_TRUE(hak_foreign_is_glibc(q, &usable)) << "the new block is glibc's too";
  EXPECT_GE(usable, 100000u);
  __libc_free(q);
}

// What is not a live glibc block is refused, and nothing unreadable is read.
TEST_F(Foreign, EverythingElseIsRefused) {
  size_t usable = 12345;
  alignas(16) static unsigned char static_area[256];
  alignas(16) unsigned char stack_area[256] = {};
  EXPECT_FALSE(hak_foreign_is_glibc(nullptr, &usable));
  EXPECT_FALSE(hak_foreign_is_glibc(static_area + 64, &usable));
  EXPECT_FALSE(hak_foreign_is_glibc(stack_area + 64, &usable));
  // Interior and misaligned pointers into a live block.
  auto *p = static_cast<unsigned char *>(__libc_malloc(200));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0, 200);
  EXPECT_FALSE(hak_foreign_is_glibc(p + 32, &usable));
  EXPECT_FALSE(hak_foreign_is_glibc(p + 8, &usable));
  EXPECT_FALSE(hak_foreign_is_glibc(p + 1, &usable));
  __libc_free(p);
  // The first page of a mapping whose preceding page is gone: the header
  // would lie in unmapped memory.
  auto *m = static_cast<unsigned char *>(
      mmap(nullptr, 3 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(m, MAP_FAILED);
  ASSERT_EQ(munmap(m, kPage), 0);
  EXPECT_FALSE(hak_foreign_is_glibc(m + kPage, &usable));
  // Unreadable memory, with what would pass for a live chunk inside it.
  size_t *chunk = reinterpret_cast<size_t *>(m + 2 * kPage);
  chunk[1] = 48 | 1;
  chunk[7] = 32 | 1;
  ASSERT_EQ(mprotect(m + 2 * kPage, kPage, PROT_NONE), 0);
  EXPECT_FALSE(hak_foreign_is_glibc(chunk + 2, &usable));
  munmap(m + kPage, 2 * kPage);
  // Addresses nothing maps, up to the top of user space.
  EXPECT_FALSE(hak_foreign_is_glibc(reinterpret_cast<void *>(uintptr_t{0x10}), &usable));
  EXPECT_FALSE(hak_foreign_is_glibc(Unmapped(), &usable));
  EXPECT_FALSE(hak_foreign_is_glibc(reinterpret_cast<void *>(~uintptr_t{15}), &usable));
  EXPECT_EQ(usable, 12345u) << "untouched when the answer is no";
}

// A block that looks like a glibc chunk but whose next chunk says it is free.
TEST_F(Foreign, AFakeChunkMarkedFreeIsRefused) {
  alignas(16) static size_t fake[16];
  fake[1] = 48 | 1;     // size 48, previous in use
  fake[6 + 1] = 32 | 0; // the next chunk: previous (ours) not in use
  size_t usable = 0;
  EXPECT_FALSE(hak_foreign_is_glibc(&fake[2], &usable));
  fake[6 + 1] = 32 | 1; // now in use, as glibc would mark it
  EXPECT_TRUE(hak_foreign_is_glibc(&fake[2], &usable));
  EXPECT_EQ(usable, 40u);
}

TEST_F(Foreign, GarbageIsReportedByTheCallThatMetIt) {
  alignas(16) static unsigned char garbage[256];
  EXPECT_DEATH(hak_foreign_free(garbage + 64), Report("free\\(\\):"));
  EXPECT_DEATH(hak_foreign_realloc(garbage + 64, 10), Report("realloc\\(\\):"));
  EXPECT_DEATH(hak_foreign_usable_size(garbage + 64), Report("malloc_usable_size\\(\\):"));
  EXPECT_DEATH(hak_foreign_free(Unmapped()), Report("free\\(\\):"));
  EXPECT_DEATH(hak_foreign_free(garbage + 3), Report("free\\(\\):"));
}

} // namespace
