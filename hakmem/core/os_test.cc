// Unit test of the OS box: mappings, aligned mappings, purging, in-place
// resizing and the clock. Failures must come back as NULL / -1, not crashes.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

extern "C" {
void *os_map(size_t size);
void *os_map_aligned(size_t size, size_t align);
void os_unmap(void *addr, size_t size);
void os_purge(void *addr, size_t size);
int os_resize_in_place(void *addr, size_t old_size, size_t new_size);
uint64_t os_now_ms(void);
}

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kMiB = size_t{1} << 20;

bool IsMapped(void *p, size_t size) {
  std::vector<unsigned char> vec((size + kPage - 1) / kPage);
  return mincore(p, size, vec.data()) == 0;
}

size_t FirstNonZero(const void *p, size_t n) {
  auto *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0)
      return i;
  }
  return SIZE_MAX;
}

TEST(Os, MapGivesZeroedWritablePages) {
  for (size_t size : {kPage, 3 * kPage, kMiB, 5 * kMiB}) {
    SCOPED_TRACE(size);
    void *p = os_map(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kPage, 0u);
    EXPECT_EQ(FirstNonZero(p, size), SIZE_MAX);
    std::memset(p, 0x5c, size);
    EXPECT_TRUE(IsMapped(p, size));
    os_unmap(p, size);
    EXPECT_FALSE(IsMapped(p, size));
  }
}

TEST(Os, MapAlignedForSeveralAlignments) {
  for (size_t align = kPage; align <= 64 * kMiB; align *= 4) {
    for (size_t size : {kPage, 2 * kMiB, 6 * kMiB + kPage}) {
      SCOPED_TRACE(testing::Message() << "align " << align << " size " << size);
      void *p = os_map_aligned(size, align);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
      EXPECT_TRUE(IsMapped(p, size));
      auto *b = static_cast<unsigned char *>(p);
      b[0] = 1;
      b[size - 1] = 2;
      os_unmap(p, size);
      EXPECT_FALSE(IsMapped(p, size));
    }
  }
}

// The over-allocation made to find an aligned address is given back. The
// slack after the block is always at least a page (the slack before it may
// be empty), so the page right after the block is no longer mapped.
TEST(Os, MapAlignedTrimsTheSlack) {
  for (size_t align : {64 * 1024 * size_t{1}, 2 * kMiB, 16 * kMiB}) {
    SCOPED_TRACE(align);
    const size_t size = 2 * kMiB;
    void *p = os_map_aligned(size, align);
    ASSERT_NE(p, nullptr);
    auto *b = static_cast<unsigned char *>(p);
    EXPECT_FALSE(IsMapped(b + size, kPage)) << "slack after the block left mapped";
    os_unmap(p, size);
  }
}

TEST(Os, ImpossibleMappingsFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(os_map(size_t{1} << 50), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(os_map_aligned(SIZE_MAX - kPage, 2 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(os_map_aligned(size_t{1} << 49, size_t{1} << 49), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Os, PurgeMakesPagesReadZero) {
  const size_t size = 64 * kPage;
  void *p = os_map(size);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xaa, size);
  os_purge(static_cast<unsigned char *>(p) + 8 * kPage, 16 * kPage);
  auto *b = static_cast<unsigned char *>(p);
  EXPECT_EQ(b[8 * kPage - 1], 0xaa) << "before the purged range";
  EXPECT_EQ(FirstNonZero(b + 8 * kPage, 16 * kPage), SIZE_MAX);
  EXPECT_EQ(b[24 * kPage], 0xaa) << "after the purged range";
  // Still mapped and writable.
  EXPECT_TRUE(IsMapped(p, size));
  b[10 * kPage] = 7;
  EXPECT_EQ(b[10 * kPage], 7);
  os_unmap(p, size);
}

TEST(Os, UnmapAndPurgeKeepErrno) {
  void *p = os_map(kPage);
  ASSERT_NE(p, nullptr);
  errno = 1234;
  os_purge(p, kPage);
  EXPECT_EQ(errno, 1234);
  os_unmap(p, kPage);
  EXPECT_EQ(errno, 1234);
  // A failing munmap (misaligned address) is logged, not fatal.
  errno = 4321;
  os_unmap(reinterpret_cast<void *>(12345), kPage);
  EXPECT_EQ(errno, 4321);
}

TEST(Os, ShrinkInPlaceSucceeds) {
  void *p = os_map(16 * kPage);
  ASSERT_NE(p, nullptr);
  std::memset(p, 3, 16 * kPage);
  ASSERT_EQ(os_resize_in_place(p, 16 * kPage, 4 * kPage), 0);
  EXPECT_TRUE(IsMapped(p, 4 * kPage));
  EXPECT_FALSE(IsMapped(static_cast<unsigned char *>(p) + 4 * kPage, 12 * kPage));
  EXPECT_EQ(static_cast<unsigned char *>(p)[4 * kPage - 1], 3);
  os_unmap(p, 4 * kPage);
}

TEST(Os, GrowInPlaceIntoFreeSpace) {
  void *p = os_map(16 * kPage);
  ASSERT_NE(p, nullptr);
  auto *b = static_cast<unsigned char *>(p);
  os_unmap(b + 8 * kPage, 8 * kPage); // free address space after 8 pages
  std::memset(p, 4, 8 * kPage);
  ASSERT_EQ(os_resize_in_place(p, 8 * kPage, 16 * kPage), 0);
  EXPECT_TRUE(IsMapped(p, 16 * kPage));
  EXPECT_EQ(b[8 * kPage - 1], 4);
  EXPECT_EQ(FirstNonZero(b + 8 * kPage, 8 * kPage), SIZE_MAX) << "new pages read zero";
  b[16 * kPage - 1] = 9;
  os_unmap(p, 16 * kPage);
}

TEST(Os, GrowInPlaceFailsWhenSpaceIsTaken) {
  void *p = os_map(16 * kPage);
  ASSERT_NE(p, nullptr);
  auto *b = static_cast<unsigned char *>(p);
  // Pages 8..15 become a mapping of a different kind: growth cannot merge.
  ASSERT_EQ(mprotect(b + 8 * kPage, 8 * kPage, PROT_NONE), 0);
  std::memset(p, 5, 8 * kPage);
  errno = 77;
  EXPECT_NE(os_resize_in_place(p, 8 * kPage, 16 * kPage), 0);
  EXPECT_EQ(errno, 77) << "errno is left alone";
  EXPECT_EQ(b[8 * kPage - 1], 5) << "the mapping is unchanged";
  os_unmap(p, 16 * kPage);
}

TEST(Os, ClockIsMonotonicMilliseconds) {
  const uint64_t a = os_now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  const uint64_t b = os_now_ms();
  EXPECT_GE(b, a + 40);
  EXPECT_LE(b, a + 5000);
  uint64_t prev = os_now_ms();
  for (int i = 0; i < 10000; ++i) {
    const uint64_t now = os_now_ms();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

} // namespace
