// Unit test of the introspect box: glibc's mallinfo2 figures computed from a
// statistics snapshot built by hand, mallinfo's saturation, and the hidden
// aliases the override layer calls. (hakmem/tests/introspect_test.cc checks
// the exported calls against a running allocator.)
#include <errno.h>
#include <malloc.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"
#include "hakmem/core/api.h"
#include "hakmem/core/include/hakmem.h"
#include "hakmem/core/introspect.h"
#include "hakmem/core/options.h"

namespace {

// A function's address, hidden from the optimiser so that it cannot fold a
// comparison of two distinct declarations to false.
template <typename F> uintptr_t AddressOf(F *f) {
  uintptr_t a = reinterpret_cast<uintptr_t>(f);
  __asm__ volatile("" : "+r"(a));
  return a;
}

hak_stats Zeroed() {
  hak_stats s;
  std::memset(&s, 0, sizeof s);
  return s;
}

void SetClass(hak_stats *s, unsigned c, uint64_t size, uint64_t capacity, uint64_t allocs,
              uint64_t frees) {
  s->classes[c].block_size = size;
  s->classes[c].capacity = capacity;
  s->classes[c].allocs = allocs;
  s->classes[c].frees = frees;
}

TEST(Mallinfo2Of, EmptySnapshotIsAllZero) {
  const hak_stats s = Zeroed();
  struct mallinfo2 m;
  std::memset(&m, 0xff, sizeof m);
  hak_introspect_mallinfo2_of(&s, &m);
  EXPECT_EQ(m.arena, 0u);
  EXPECT_EQ(m.ordblks, 0u);
  EXPECT_EQ(m.smblks, 0u);
  EXPECT_EQ(m.hblks, 0u);
  EXPECT_EQ(m.hblkhd, 0u);
  EXPECT_EQ(m.usmblks, 0u);
  EXPECT_EQ(m.fsmblks, 0u);
  EXPECT_EQ(m.uordblks, 0u);
  EXPECT_EQ(m.fordblks, 0u);
  EXPECT_EQ(m.keepcost, 0u);
}

// Every field from its definition (README.md, "glibc's introspection calls").
TEST(Mallinfo2Of, FiguresOfAConstructedSnapshot) {
  hak_stats s = Zeroed();
  s.num_classes = 4;
  SetClass(&s, 0, 16, 100, 50, 20); // 30 live, 70 free: fast
  SetClass(&s, 1, 128, 10, 5, 5);   // 0 live, 10 free: fast (128 is the limit)
  SetClass(&s, 2, 160, 40, 12, 2);  // 10 live, 30 free: not fast
  SetClass(&s, 3, 1024, 8, 10, 1);  // 9 live of 8: a racy snapshot, 0 free
  s.classes[5].block_size = 4096;   // beyond num_classes: ignored
  s.classes[5].capacity = 1000;
  s.superslabs = 2;
  s.large_allocs = 5;
  s.large_frees = 2;
  s.large_live_bytes = 12345678;
  s.cached_bytes = 777;
  s.mapped_bytes = 99999999; // not a mallinfo2 figure
  struct mallinfo2 m;
  hak_introspect_mallinfo2_of(&s, &m);
  const uint64_t used = 30 * 16 + 0 * 128 + 10 * 160 + 9 * 1024;
  EXPECT_EQ(m.arena, 2 * HAK_SS_SIZE);
  EXPECT_EQ(m.uordblks, used);
  EXPECT_EQ(m.fordblks, 2 * HAK_SS_SIZE - used);
  EXPECT_EQ(m.smblks, 70u + 10u);
  EXPECT_EQ(m.fsmblks, 70u * 16 + 10u * 128);
  EXPECT_EQ(m.ordblks, 30u);
  EXPECT_EQ(m.hblks, 3u);
  EXPECT_EQ(m.hblkhd, 12345678u);
  EXPECT_EQ(m.usmblks, 0u);
  EXPECT_EQ(m.keepcost, 777u);
}

// Counters read while threads run may disagree; no figure goes below zero.
TEST(Mallinfo2Of, RacySnapshotsFloorAtZero) {
  hak_stats s = Zeroed();
  s.num_classes = 2;
  SetClass(&s, 0, 64, 10, 3, 7);        // more frees than allocations
  SetClass(&s, 1, 8192, 1000, 1000, 0); // 8 MB in use in no SuperSlab
  s.superslabs = 1;
  s.large_allocs = 1;
  s.large_frees = 4;
  struct mallinfo2 m;
  hak_introspect_mallinfo2_of(&s, &m);
  EXPECT_EQ(m.uordblks, 1000u * 8192);
  EXPECT_EQ(m.smblks, 10u) << "no block of class 0 is out";
  EXPECT_EQ(m.ordblks, 0u);
  EXPECT_EQ(m.fordblks, 0u);
  EXPECT_EQ(m.hblks, 0u);
}

TEST(MallinfoClamp, FieldsSaturateAtIntMax) {
  struct mallinfo2 in;
  std::memset(&in, 0, sizeof in);
  in.arena = size_t{INT_MAX} + 1;
  in.ordblks = 5;
  in.smblks = SIZE_MAX;
  in.hblks = INT_MAX;
  in.hblkhd = size_t{1} << 40;
  in.usmblks = 0;
  in.fsmblks = size_t{INT_MAX} - 1;
  in.uordblks = size_t{UINT_MAX};
  in.fordblks = 123456;
  in.keepcost = size_t{INT_MAX} * 2;
  struct mallinfo out;
  std::memset(&out, 0x7f, sizeof out);
  hak_introspect_mallinfo_clamp(&in, &out);
  EXPECT_EQ(out.arena, INT_MAX);
  EXPECT_EQ(out.ordblks, 5);
  EXPECT_EQ(out.smblks, INT_MAX);
  EXPECT_EQ(out.hblks, INT_MAX);
  EXPECT_EQ(out.hblkhd, INT_MAX);
  EXPECT_EQ(out.usmblks, 0);
  EXPECT_EQ(out.fsmblks, INT_MAX - 1);
  EXPECT_EQ(out.uordblks, INT_MAX);
  EXPECT_EQ(out.fordblks, 123456);
  EXPECT_EQ(out.keepcost, INT_MAX);
}

// The live calls are the snapshot's figures.
TEST(Introspect, MallinfoOfTheLiveAllocator) {
  void *blocks[20];
  for (void *&b : blocks)
    b = hak_malloc(48);
  void *large = hak_malloc(3 << 20);
  // The purge thread may move a figure meanwhile: retry until the snapshots
  // before and after the call agree.
  struct mallinfo2 want, after, got;
  for (int attempt = 0; attempt < 20; ++attempt) {
    hak_stats s;
    hak_stats_get(&s);
    hak_introspect_mallinfo2_of(&s, &want);
    got = hak_mallinfo2();
    hak_stats_get(&s);
    hak_introspect_mallinfo2_of(&s, &after);
    if (std::memcmp(&want, &after, sizeof want) == 0)
      break;
  }
  EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0);
  EXPECT_GE(got.uordblks, 20u * 48);
  EXPECT_GE(got.hblks, 1u);
  EXPECT_GE(got.hblkhd, size_t{3} << 20);
  struct mallinfo clamped, old;
  for (int attempt = 0; attempt < 20; ++attempt) {
    const struct mallinfo2 before = hak_mallinfo2();
    old = hak_mallinfo();
    const struct mallinfo2 later = hak_mallinfo2();
    hak_introspect_mallinfo_clamp(&before, &clamped);
    if (std::memcmp(&before, &later, sizeof before) == 0)
      break;
  }
  EXPECT_EQ(std::memcmp(&old, &clamped, sizeof old), 0);
  for (void *b : blocks)
    hak_free(b);
  hak_free(large);
}

TEST(Introspect, MalloptSetsTheArenaCacheBound) {
  EXPECT_EQ(hak_mallopt(M_TRIM_THRESHOLD, 8 << 20), 1);
  EXPECT_EQ(hak_options_current.arena_cache_bytes, size_t{8} << 20);
  EXPECT_EQ(hak_mallopt(M_TRIM_THRESHOLD, -1), 1);
  EXPECT_EQ(hak_options_current.arena_cache_bytes, SIZE_MAX)
      << "as glibc converts a negative value";
  EXPECT_EQ(hak_mallopt(M_MXFAST, 0), 1);
  EXPECT_EQ(hak_mallopt(M_MXFAST, HAK_INTROSPECT_MXFAST_MAX), 1);
  EXPECT_EQ(hak_mallopt(M_MXFAST, HAK_INTROSPECT_MXFAST_MAX + 1), 0);
  EXPECT_EQ(hak_mallopt(M_MXFAST, -1), 0);
  EXPECT_EQ(hak_mallopt(M_MMAP_THRESHOLD, 4096), 1);
  EXPECT_EQ(hak_mallopt(12345, 1), 1) << "unknown parameters are accepted, as glibc does";
  hak_options d;
  hak_options_defaults(&d);
  EXPECT_EQ(hak_mallopt(M_TRIM_THRESHOLD, static_cast<int>(d.arena_cache_bytes)), 1);
}

TEST(Introspect, MallocInfoRefusesOptionsAndNoStream) {
  errno = 0;
  EXPECT_EQ(hak_malloc_info(1, stdout), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(hak_malloc_info(0, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Introspect, AliasesAreThePublicFunctions) {
  EXPECT_EQ(AddressOf(&hak_api_mallinfo2), AddressOf(&hak_mallinfo2));
  EXPECT_EQ(AddressOf(&hak_api_mallinfo), AddressOf(&hak_mallinfo));
  EXPECT_EQ(AddressOf(&hak_api_malloc_stats), AddressOf(&hak_malloc_stats));
  EXPECT_EQ(AddressOf(&hak_api_malloc_info), AddressOf(&hak_malloc_info));
  EXPECT_EQ(AddressOf(&hak_api_mallopt), AddressOf(&hak_mallopt));
}

} // namespace
