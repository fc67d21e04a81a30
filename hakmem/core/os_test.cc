// Unit test of the OS box: mappings, aligned mappings, reservations, purging,
// guards, in-place resizing and the clock. Failures must come back as NULL
// or -1, not crashes.
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <atomic>
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
  // Pages, not folios: a kernel set to multi-size THP (64 KiB anonymous
  // folios, as one CI machine was) makes a written byte's whole folio resident.
  ASSERT_EQ(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
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
  hak_os_unreserve(p, size);

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

// ---- counters, the heap limit, huge pages -------------------------------------

hak_os_stats Stats() {
  hak_os_stats s;
  hak_os_stats_get(&s);
  return s;
}

// Every test below leaves no limit and no give-back behind.
class OsLimit : public ::testing::Test {
protected:
  void TearDown() override {
    hak_os_set_limit(0, HAK_OS_LIMIT_SOFT);
    hak_os_set_giveback(nullptr);
    hak_os_set_thp(false);
  }
};

TEST_F(OsLimit, CountersFollowMapsPurgesUnmapsAndResizes) {
  const hak_os_stats a = Stats();
  void *p = hak_os_map(4 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_os_stats b = Stats();
  EXPECT_EQ(b.mapped, a.mapped + 4 * kMiB);
  EXPECT_GE(b.mapped_peak, b.mapped);
  hak_os_purge(p, kMiB);
  EXPECT_EQ(Stats().released_dontneed, a.released_dontneed + kMiB);
  // An aligned mapping counts its size, not the slack trimmed off it.
  void *q = hak_os_map_aligned(2 * kMiB, 2 * kMiB);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(Stats().mapped, a.mapped + 6 * kMiB);
  hak_os_unmap(q, 2 * kMiB);
  b = Stats();
  EXPECT_EQ(b.mapped, a.mapped + 4 * kMiB);
  EXPECT_EQ(b.released_munmap, a.released_munmap + 2 * kMiB);
  // Shrinking in place gives the tail back by munmap; growing counts again.
  ASSERT_EQ(hak_os_resize_in_place(p, 4 * kMiB, 2 * kMiB), 0);
  b = Stats();
  EXPECT_EQ(b.mapped, a.mapped + 2 * kMiB);
  EXPECT_EQ(b.released_munmap, a.released_munmap + 4 * kMiB);
  if (hak_os_resize_in_place(p, 2 * kMiB, 3 * kMiB) == 0) {
    EXPECT_EQ(Stats().mapped, a.mapped + 3 * kMiB);
    hak_os_unmap(p, 3 * kMiB);
  } else {
    EXPECT_EQ(Stats().mapped, a.mapped + 2 * kMiB) << "a failed growth is not counted";
    hak_os_unmap(p, 2 * kMiB);
  }
  EXPECT_EQ(Stats().mapped, a.mapped);
  // A failed unmap changes nothing.
  hak_os_unmap(reinterpret_cast<void *>(12345), kPage);
  EXPECT_EQ(Stats().mapped, a.mapped);
  // Reserves are counted apart and never as mapped.
  void *r = hak_os_reserve(64 * kMiB);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(Stats().reserved, a.reserved + 64 * kMiB);
  EXPECT_EQ(Stats().mapped, a.mapped);
  hak_os_unreserve(r, 64 * kMiB);
  EXPECT_EQ(Stats().reserved, a.reserved);
}

TEST_F(OsLimit, ResidentBytesFollowTouchedPages) {
  const uint64_t before = hak_os_resident_bytes();
  ASSERT_GT(before, 0u) << "/proc/self/statm unreadable";
  void *p = hak_os_map(64 * kMiB);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 64 * kMiB);
  const uint64_t touched = hak_os_resident_bytes();
  EXPECT_GE(touched, before + 60 * kMiB);
  hak_os_purge(p, 64 * kMiB);
  EXPECT_LE(hak_os_resident_bytes(), touched - 60 * kMiB) << "MADV_DONTNEED lowers RSS at once";
  hak_os_unmap(p, 64 * kMiB);
}

TEST_F(OsLimit, HardLimitRefusesWithEnomemAndCountsIt) {
  const hak_os_stats a = Stats();
  ASSERT_EQ(hak_os_set_limit(a.mapped + 8 * kMiB, HAK_OS_LIMIT_HARD), 0);
  void *p = hak_os_map(6 * kMiB);
  ASSERT_NE(p, nullptr);
  errno = 0;
  EXPECT_EQ(hak_os_map(4 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(hak_os_map_aligned(4 * kMiB, 2 * kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_NE(hak_os_resize_in_place(p, 6 * kMiB, 10 * kMiB), 0);
  EXPECT_EQ(Stats().limit_refusals, a.limit_refusals + 3);
  EXPECT_EQ(Stats().mapped, a.mapped + 6 * kMiB) << "refusals are not counted as mapped";
  void *q = hak_os_map(2 * kMiB); // exactly up to the limit
  ASSERT_NE(q, nullptr);
  hak_os_unmap(q, 2 * kMiB);
  hak_os_unmap(p, 6 * kMiB);
  void *r = hak_os_map(8 * kMiB); // freeing made room
  ASSERT_NE(r, nullptr);
  hak_os_unmap(r, 8 * kMiB);
  EXPECT_EQ(hak_os_set_limit(kMiB, 7), -1);
  EXPECT_EQ(errno, EINVAL);
  int mode = -1;
  EXPECT_EQ(hak_os_limit(&mode), a.mapped + 8 * kMiB) << "a bad mode changes nothing";
  EXPECT_EQ(mode, HAK_OS_LIMIT_HARD);
}

// The give-back runs before a mapping would pass the limit; what it frees
// lets the mapping through in either mode.
void *g_held;
size_t g_held_size;
int g_givebacks;
void GiveBackHeld() {
  ++g_givebacks;
  if (g_held != nullptr)
    hak_os_unmap(g_held, g_held_size);
  g_held = nullptr;
}

TEST_F(OsLimit, GiveBackRunsAtTheLimitInBothModes) {
  for (int mode : {HAK_OS_LIMIT_SOFT, HAK_OS_LIMIT_HARD}) {
    SCOPED_TRACE(mode);
    const hak_os_stats a = Stats();
    hak_os_set_giveback(GiveBackHeld);
    ASSERT_EQ(hak_os_set_limit(a.mapped + 8 * kMiB, mode), 0);
    g_held_size = 6 * kMiB;
    g_held = hak_os_map(g_held_size);
    ASSERT_NE(g_held, nullptr);
    g_givebacks = 0;
    void *p = hak_os_map(2 * kMiB); // fits: no give-back
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(g_givebacks, 0);
    void *q = hak_os_map(4 * kMiB); // would pass: the held mapping goes first
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(g_givebacks, 1);
    EXPECT_EQ(g_held, nullptr);
    EXPECT_LE(Stats().mapped_peak, std::max(a.mapped_peak, a.mapped + 8 * kMiB));
    EXPECT_EQ(Stats().limit_givebacks, a.limit_givebacks + 1);
    hak_os_unmap(p, 2 * kMiB);
    hak_os_unmap(q, 4 * kMiB);
  }
}

TEST_F(OsLimit, SoftLimitGrowsPastWhenNothingIsIdle) {
  const hak_os_stats a = Stats();
  g_held = nullptr;
  g_givebacks = 0;
  hak_os_set_giveback(GiveBackHeld);
  ASSERT_EQ(hak_os_set_limit(a.mapped + 2 * kMiB, HAK_OS_LIMIT_SOFT), 0);
  void *p = hak_os_map(4 * kMiB);
  ASSERT_NE(p, nullptr) << "soft: past the limit once nothing idle is left";
  EXPECT_EQ(g_givebacks, 1);
  EXPECT_EQ(Stats().limit_refusals, a.limit_refusals);
  hak_os_unmap(p, 4 * kMiB);
}

// Eight threads map 1 MiB at a time until the hard limit refuses: the
// mapped bytes never pass it, every mapping is usable, and unmapping lets
// mapping succeed again.
TEST_F(OsLimit, ThreadsRacingAtTheHardLimitNeverPassIt) {
  const hak_os_stats a = Stats();
  const size_t limit = a.mapped + 40 * kMiB;
  ASSERT_EQ(hak_os_set_limit(limit, HAK_OS_LIMIT_HARD), 0);
  std::atomic<uint64_t> seen_max{0};
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!stop.load()) {
      uint64_t m = Stats().mapped, prev = seen_max.load();
      while (m > prev && !seen_max.compare_exchange_weak(prev, m)) {
      }
    }
  });
  constexpr int kThreads = 8;
  std::vector<std::vector<void *>> got(kThreads);
  std::vector<int> enomem(kThreads, 0);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        errno = 0;
        void *p = hak_os_map(kMiB);
        if (p == nullptr) {
          enomem[t] = errno == ENOMEM;
          return;
        }
        std::memset(p, t + 1, kMiB);
        got[t].push_back(p);
      }
    });
  for (auto &t : ts)
    t.join();
  stop = true;
  watcher.join();
  size_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(enomem[t], 1) << "thread " << t << " stopped with ENOMEM";
    for (void *p : got[t]) {
      EXPECT_EQ(FirstNonZero(p, kMiB), 0u);
      EXPECT_EQ(static_cast<unsigned char *>(p)[kMiB - 1], t + 1);
      ++total;
    }
  }
  EXPECT_EQ(total, 40u) << "the limit is filled exactly";
  EXPECT_LE(seen_max.load(), limit);
  EXPECT_LE(Stats().mapped, limit);
  for (int t = 0; t < kThreads; ++t)
    for (void *p : got[t])
      hak_os_unmap(p, kMiB);
  void *p = hak_os_map(8 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_os_unmap(p, 8 * kMiB);
  EXPECT_EQ(Stats().mapped, a.mapped);
}

// "hg" in the mapping's VmFlags (/proc/self/smaps) when it was advised.
bool HasHugepageFlag(const void *p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    // A mapping's first line ("lo-hi perms ..."); field lines fail the scan.
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2)
      inside = lo <= a && a < hi;
    if (inside && line.rfind("VmFlags:", 0) == 0)
      return (line + " ").find(" hg ") != std::string::npos;
  }
  return false;
}

TEST_F(OsLimit, HugepageAdviceReachesTheMappingOnlyWhenOn) {
  const hak_os_stats a = Stats();
  void *p = hak_os_map_aligned(4 * kMiB, 2 * kMiB);
  ASSERT_NE(p, nullptr);
  hak_os_hugepage(p, 4 * kMiB); // off: nothing
  EXPECT_FALSE(HasHugepageFlag(p));
  EXPECT_EQ(Stats().thp_advised, a.thp_advised);
  hak_os_set_thp(true);
  hak_os_hugepage(p, 2 * kMiB);
  EXPECT_TRUE(HasHugepageFlag(p));
  EXPECT_FALSE(HasHugepageFlag(static_cast<char *>(p) + 2 * kMiB)) << "this mapping only";
  EXPECT_EQ(Stats().thp_advised, a.thp_advised + 2 * kMiB);
  hak_os_unmap(p, 4 * kMiB);
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
  hak_os_stats before;
  hak_os_stats_get(&before);
  ASSERT_EQ(hak_os_move(from, 16 * kPage, to, 32 * kPage), 0);
  hak_os_stats after;
  hak_os_stats_get(&after);
  EXPECT_EQ(after.mapped, before.mapped - 16 * kPage) << "the source's bytes left the count";
  EXPECT_EQ(after.released_munmap, before.released_munmap) << "no page went back";
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
