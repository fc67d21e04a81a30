// Unit test of the OS box: mappings, aligned mappings, reservations, purging,
// guards, in-place resizing and the clock. Failures must come back as NULL
// or -1, not crashes.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/core/os.h"

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kMiB = size_t{1} << 20;

bool IsMapped(void *p, size_t size) {
  std::vector<unsigned char> vec((size + kPage - 1) / kPage);
  return mincore(p, size, vec.data()) == 0;
}

// The permissions ("rw-p", "---p", ...) of the mapping holding p, from
// /proc/self/maps; "" if none holds it.
std::string PermsOf(const void *p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    uintptr_t lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %4s", &lo, &hi, perms) == 3 &&
        lo <= a && a < hi)
      return perms;
  }
  return "";
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
    void *p = hak_os_map(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kPage, 0u);
    EXPECT_EQ(FirstNonZero(p, size), SIZE_MAX);
    std::memset(p, 0x5c, size);
    EXPECT_TRUE(IsMapped(p, size));
    hak_os_unmap(p, size);
    EXPECT_FALSE(IsMapped(p, size));
  }
}

TEST(Os, MapAlignedForSeveralAlignments) {
  for (size_t align = kPage; align <= 64 * kMiB; align *= 4) {
    for (size_t size : {kPage, 2 * kMiB, 6 * kMiB + kPage}) {
      SCOPED_TRACE(testing::Message() << "align " << align << " size " << size);
      void *p = hak_os_map_aligned(size, align);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
      EXPECT_TRUE(IsMapped(p, size));
      auto *b = static_cast<unsigned char *>(p);
      b[0] = 1;
      b[size - 1] = 2;
      hak_os_unmap(p, size);
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
    void *p = hak_os_map_aligned(size, align);
    ASSERT_NE(p, nullptr);
    auto *b = static_cast<unsigned char *>(p);
    EXPECT_FALSE(IsMapped(b + size, kPage)) << "slack after the block left mapped";
    hak_os_unmap(p, size);
  }
}

TEST(Os, ImpossibleMappingsFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(hak_os_map(size_t{1} << 50), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_os_map_aligned(SIZE_MAX - kPage, 2 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_os_map_aligned(size_t{1} << 49, size_t{1} << 49), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Os, PurgeMakesPagesReadZero) {
  const size_t size = 64 * kPage;
  void *p = hak_os_map(size);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xaa, size);
  hak_os_purge(static_cast<unsigned char *>(p) + 8 * kPage, 16 * kPage);
  auto *b = static_cast<unsigned char *>(p);
  EXPECT_EQ(b[8 * kPage - 1], 0xaa) << "before the purged range";
  EXPECT_EQ(FirstNonZero(b + 8 * kPage, 16 * kPage), SIZE_MAX);
  EXPECT_EQ(b[24 * kPage], 0xaa) << "after the purged range";
  // Still mapped and writable.
  EXPECT_TRUE(IsMapped(p, size));
  b[10 * kPage] = 7;
  EXPECT_EQ(b[10 * kPage], 7);
  hak_os_unmap(p, size);
}

TEST(Os, UnmapAndPurgeKeepErrno) {
  void *p = hak_os_map(kPage);
  ASSERT_NE(p, nullptr);
  errno = 1234;
  hak_os_purge(p, kPage);
  EXPECT_EQ(errno, 1234);
  hak_os_unmap(p, kPage);
  EXPECT_EQ(errno, 1234);
  // A failing munmap (misaligned address) is logged, not fatal.
  errno = 4321;
  hak_os_unmap(reinterpret_cast<void *>(12345), kPage);
  EXPECT_EQ(errno, 4321);
}

TEST(Os, ShrinkInPlaceSucceeds) {
  void *p = hak_os_map(16 * kPage);
  ASSERT_NE(p, nullptr);
  std::memset(p, 3, 16 * kPage);
  ASSERT_EQ(hak_os_resize_in_place(p, 16 * kPage, 4 * kPage), 0);
  EXPECT_TRUE(IsMapped(p, 4 * kPage));
  EXPECT_FALSE(IsMapped(static_cast<unsigned char *>(p) + 4 * kPage, 12 * kPage));
  EXPECT_EQ(static_cast<unsigned char *>(p)[4 * kPage - 1], 3);
  hak_os_unmap(p, 4 * kPage);
}

TEST(Os, GrowInPlaceIntoFreeSpace) {
  void *p = hak_os_map(16 * kPage);
  ASSERT_NE(p, nullptr);
  auto *b = static_cast<unsigned char *>(p);
  hak_os_unmap(b + 8 * kPage, 8 * kPage); // free address space after 8 pages
  std::memset(p, 4, 8 * kPage);
  ASSERT_EQ(hak_os_resize_in_place(p, 8 * kPage, 16 * kPage), 0);
  EXPECT_TRUE(IsMapped(p, 16 * kPage));
  EXPECT_EQ(b[8 * kPage - 1], 4);
  EXPECT_EQ(FirstNonZero(b + 8 * kPage, 8 * kPage), SIZE_MAX) << "new pages read zero";
  b[16 * kPage - 1] = 9;
  hak_os_unmap(p, 16 * kPage);
}

TEST(Os, GrowInPlaceFailsWhenSpaceIsTaken) {
  void *p = hak_os_map(16 * kPage);
  ASSERT_NE(p, nullptr);
  auto *b = static_cast<unsigned char *>(p);
  // Pages 8..15 become a mapping of a different kind: growth cannot merge.
  ASSERT_EQ(mprotect(b + 8 * kPage, 8 * kPage, PROT_NONE), 0);
  std::memset(p, 5, 8 * kPage);
  errno = 77;
  EXPECT_NE(hak_os_resize_in_place(p, 8 * kPage, 16 * kPage), 0);
  EXPECT_EQ(errno, 77) << "errno is left alone";
  EXPECT_EQ(b[8 * kPage - 1], 5) << "the mapping is unchanged";
  hak_os_unmap(p, 16 * kPage);
}

// A reservation reads as zero, is writable where touched, and takes memory
// only there; a failure leaves errno alone (the class map's reservation may
// fail quietly).
TEST(Os, ReserveReadsZeroAndIsWritable) {
  const size_t size = 64 * kMiB;
  void *p = hak_os_reserve(size);
  ASSERT_NE(p, nullptr);
  auto *b = static_cast<unsigned char *>(p);
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[size / 2], 0);
  EXPECT_EQ(b[size - 1], 0);
  b[size / 3] = 42;
  EXPECT_EQ(b[size / 3], 42);
  EXPECT_EQ(PermsOf(b + size / 3), "rw-p");
  // Only the pages touched above are resident.
  std::vector<unsigned char> vec(size / kPage);
  ASSERT_EQ(mincore(p, size, vec.data()), 0);
  size_t resident = 0;
  for (unsigned char v : vec)
    resident += v & 1;
  EXPECT_LE(resident, 4u);
  hak_os_unmap(p, size);

  errno = 99;
  EXPECT_EQ(hak_os_reserve(size_t{1} << 50), nullptr);
  EXPECT_EQ(errno, 99);
}

// A guard page is unreachable; made writable again, it holds data.
TEST(Os, ProtectMakesGuardsAndUndoesThem) {
  void *p = hak_os_map(4 * kPage);
  ASSERT_NE(p, nullptr);
  auto *b = static_cast<unsigned char *>(p);
  std::memset(b, 6, 4 * kPage);
  ASSERT_EQ(hak_os_protect(b + kPage, 2 * kPage, false), 0);
  EXPECT_EQ(PermsOf(b), "rw-p");
  EXPECT_EQ(PermsOf(b + kPage), "---p");
  EXPECT_EQ(PermsOf(b + 3 * kPage - 1), "---p");
  EXPECT_EQ(PermsOf(b + 3 * kPage), "rw-p");
  EXPECT_DEATH(static_cast<volatile unsigned char *>(b)[kPage + 5] = 1, "");
  ASSERT_EQ(hak_os_protect(b + kPage, 2 * kPage, true), 0);
  EXPECT_EQ(PermsOf(b + kPage), "rw-p");
  EXPECT_EQ(b[kPage + 5], 6) << "contents survive a guard";
  b[kPage + 5] = 1;
  EXPECT_EQ(b[kPage + 5], 1);
  // A range that is not page aligned is refused.
  EXPECT_NE(hak_os_protect(b + 1, kPage, false), 0);
  hak_os_unmap(p, 4 * kPage);
}

TEST(Os, ClockIsMonotonicMilliseconds) {
  const uint64_t a = hak_os_now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  const uint64_t b = hak_os_now_ms();
  EXPECT_GE(b, a + 40);
  EXPECT_LE(b, a + 5000);
  uint64_t prev = hak_os_now_ms();
  for (int i = 0; i < 10000; ++i) {
    const uint64_t now = hak_os_now_ms();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

} // namespace

// A move carries the pages, contents and all, to the new place, whose size
// it takes; the old range is gone. Resident counts what was touched.
TEST(Os, MoveCarriesResidentPagesAndResidentCountsThem) {
  constexpr size_t kPage = 4096;
  auto *from = static_cast<unsigned char *>(hak_os_map(16 * kPage));
  ASSERT_NE(from, nullptr);
  EXPECT_EQ(hak_os_resident(from, 16 * kPage), 0u);
  for (size_t k = 0; k < 5; ++k)
    from[k * 3 * kPage] = static_cast<unsigned char>(k + 1); // pages 0, 3, 6, 9, 12
  EXPECT_EQ(hak_os_resident(from, 16 * kPage), 5 * kPage);
  auto *to = static_cast<unsigned char *>(hak_os_map(32 * kPage));
  ASSERT_NE(to, nullptr);
  ASSERT_EQ(hak_os_move(from, 16 * kPage, to, 32 * kPage), 0);
  for (size_t k = 0; k < 5; ++k)
    EXPECT_EQ(to[k * 3 * kPage], k + 1);
  EXPECT_EQ(hak_os_resident(to, 32 * kPage), 5 * kPage) << "no page faulted anew";
  EXPECT_EQ(to[31 * kPage], 0) << "the grown part reads as zeros";
  std::vector<unsigned char> vec(16);
  errno = 0;
  EXPECT_NE(mincore(from, 16 * kPage, vec.data()), 0) << "the old range is unmapped";
  EXPECT_EQ(errno, ENOMEM);
  // A failed move (the source is gone) reports it and keeps errno.
  errno = 1234;
  EXPECT_NE(hak_os_move(from, 16 * kPage, to, 16 * kPage), 0);
  EXPECT_EQ(errno, 1234);
  EXPECT_EQ(to[0], 1) << "the target is untouched";
  EXPECT_EQ(hak_os_resident(from, 16 * kPage), 0u) << "unmapped: nothing resident";
  hak_os_unmap(to, 32 * kPage);
}
