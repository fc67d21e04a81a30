// Unit test of the /proc/self/maps reader: the readable mapping holding a
// function's address and a stack variable's, none for unmapped or unreadable
// memory; every line's fields; lines longer than the buffer left out; the
// callback stopping the reading.
#include "hakmem/core/proc_maps.h"

#include <sys/mman.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

constexpr size_t kPage = 4096;

extern "C" __attribute__((noinline)) int proc_maps_test_function(int x) { return x * 3 + 1; }

TEST(ProcMaps, FindsTheMappingOfAFunctionAndOfAStackVariable) {
  uintptr_t lo = 0, hi = 0;
  uintptr_t fn = reinterpret_cast<uintptr_t>(&proc_maps_test_function);
  ASSERT_TRUE(hak_proc_maps_find_readable(fn, &lo, &hi));
  EXPECT_LE(lo, fn);
  EXPECT_LT(fn, hi);
  EXPECT_EQ(lo % kPage, 0u);
  EXPECT_EQ(hi % kPage, 0u);

  volatile int local = 7;
  uintptr_t a = reinterpret_cast<uintptr_t>(&local);
  ASSERT_TRUE(hak_proc_maps_find_readable(a, &lo, &hi));
  EXPECT_LE(lo, a);
  EXPECT_LT(a, hi);
}

TEST(ProcMaps, NoneForUnmappedOrUnreadableMemory) {
  // Pages: unreadable, readable, unreadable, unmapped, unreadable. Fenced by
  // unreadable pages, the readable one cannot merge with a neighbouring
  // read-write mapping (ASan's, for one), so its bounds are exactly known.
  char *m =
      static_cast<char *>(mmap(nullptr, 5 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(m, MAP_FAILED);
  char *p = m + kPage;
  ASSERT_EQ(mprotect(p, kPage, PROT_READ | PROT_WRITE), 0);
  ASSERT_EQ(munmap(p + 2 * kPage, kPage), 0);
  uintptr_t lo = 0, hi = 0;
  ASSERT_TRUE(hak_proc_maps_find_readable(reinterpret_cast<uintptr_t>(p) + 5, &lo, &hi));
  EXPECT_EQ(lo, reinterpret_cast<uintptr_t>(p));
  EXPECT_EQ(hi, reinterpret_cast<uintptr_t>(p) + kPage);
  EXPECT_FALSE(hak_proc_maps_find_readable(reinterpret_cast<uintptr_t>(m), &lo, &hi));
  EXPECT_FALSE(hak_proc_maps_find_readable(reinterpret_cast<uintptr_t>(p) + kPage, &lo, &hi));
  EXPECT_FALSE(hak_proc_maps_find_readable(reinterpret_cast<uintptr_t>(p) + 2 * kPage, &lo, &hi));
  EXPECT_FALSE(hak_proc_maps_find_readable(0, &lo, &hi));
  munmap(m, 3 * kPage);
  munmap(p + 3 * kPage, kPage);
}

struct Seen {
  uintptr_t want;
  int lines = 0;
  int holding = 0;
  uintptr_t prev_end = 0;
  bool ordered = true;
  std::string path;
  bool executable = false;
  size_t longest = 0;
};

bool Collect(void *arg, const hak_proc_maps_entry *e) {
  Seen *s = static_cast<Seen *>(arg);
  s->lines++;
  s->ordered &= e->start < e->end && e->start >= s->prev_end;
  s->prev_end = e->end;
  s->longest = std::max(s->longest, e->path_len);
  if (e->start <= s->want && s->want < e->end) {
    s->holding++;
    s->path.assign(e->path, e->path_len);
    s->executable = e->executable;
  }
  return false;
}

std::string ThisExecutable() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(ProcMaps, EveryLineParsed) {
  char buf[8192];
  Seen s;
  s.want = reinterpret_cast<uintptr_t>(&proc_maps_test_function);
  EXPECT_FALSE(hak_proc_maps_each(buf, sizeof buf, Collect, &s)) << "read to the end";
  EXPECT_GT(s.lines, 5);
  EXPECT_TRUE(s.ordered) << "ascending, non-overlapping ranges";
  EXPECT_EQ(s.holding, 1);
  EXPECT_TRUE(s.executable);
  EXPECT_EQ(s.path, ThisExecutable());
}

TEST(ProcMaps, ASmallBufferLeavesLongLinesOut) {
  Seen all, some;
  char big[8192];
  all.want = some.want = reinterpret_cast<uintptr_t>(&proc_maps_test_function);
  hak_proc_maps_each(big, sizeof big, Collect, &all);
  // The executable's line holds its path, longer than 64 bytes with the
  // address fields: left out, and the lines after it still read.
  char small[64];
  hak_proc_maps_each(small, sizeof small, Collect, &some);
  EXPECT_EQ(some.holding, 0);
  EXPECT_GT(some.lines, 0);
  EXPECT_LT(some.lines, all.lines);
  EXPECT_TRUE(some.ordered);
  EXPECT_LT(some.longest, sizeof small);
}

bool StopAtFirst(void *arg, const hak_proc_maps_entry *e) {
  (void)e;
  ++*static_cast<int *>(arg);
  return true;
}

TEST(ProcMaps, TheCallbackStopsTheReading) {
  char buf[4096];
  int calls = 0;
  EXPECT_TRUE(hak_proc_maps_each(buf, sizeof buf, StopAtFirst, &calls));
  EXPECT_EQ(calls, 1);
}

} // namespace
