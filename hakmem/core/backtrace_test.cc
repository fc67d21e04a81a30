// Unit test of the stack capture: the frames kept start above the one holding
// the mark, or above the outermost registered entry point, and are the
// callers' return addresses.
#include "hakmem/core/backtrace.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace {

uintptr_t g_into_outer;  // Inner's return address: in Outer
uintptr_t g_into_caller; // Outer's: in the test body

extern "C" __attribute__((noinline)) unsigned backtrace_test_inner(uintptr_t *out, unsigned max) {
  volatile int mark = 0;
  g_into_outer = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  unsigned n = hak_backtrace_capture(out, max, const_cast<int *>(&mark));
  asm volatile("" ::: "memory"); // not a tail call
  return n;
}

extern "C" __attribute__((noinline)) unsigned backtrace_test_outer(uintptr_t *out, unsigned max) {
  g_into_caller = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  unsigned n = backtrace_test_inner(out, max);
  asm volatile("" ::: "memory");
  return n;
}

TEST(Backtrace, FramesStartAboveTheMark) {
  hak_backtrace_init(true);
  hak_backtrace_warm_up();
  uintptr_t out[64];
  unsigned n = backtrace_test_outer(out, 64);
  ASSERT_GE(n, 3u) << "Outer, the test body, gtest's frames";
  EXPECT_EQ(out[0], g_into_outer);
  EXPECT_EQ(out[1], g_into_caller);
  EXPECT_EQ(backtrace_test_outer(out, 1), 1u) << "at most max";
  EXPECT_EQ(out[0], g_into_outer);
}

// Last: an entry point stays registered.
TEST(Backtrace, FramesUpToAnEntryPointAreLeftOut) {
  hak_backtrace_init(true);
  const void *entries[] = {reinterpret_cast<const void *>(&backtrace_test_outer)};
  hak_backtrace_add_entries(entries, 1);
  hak_backtrace_add_entries(entries, 1); // a second time: no change
  uintptr_t out[64];
  unsigned n = backtrace_test_outer(out, 64);
  ASSERT_GE(n, 1u);
  EXPECT_EQ(out[0], g_into_caller);
}

} // namespace
