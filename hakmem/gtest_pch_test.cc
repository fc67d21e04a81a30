// This compile loaded the precompiled GoogleTest header (//hakmem:gtest_pch,
// hakmem/pch.bzl) rather than parsing it: it is compiled as every C++ test
// is (HAKMEM_GTEST_COPTS, the hardened variant's defines), and
// hakmem_gtest_pch.h, read first, names the file gcc took it from.
#include <cstring>

#include "gtest/gtest.h"

TEST(GtestPch, CompileLoadedTheGch) {
#if defined(__clang__) || !defined(__GNUC__)
  GTEST_SKIP() << "the .gch is made for gcc only";
#else
  EXPECT_STREQ(hakmem_gtest_pch_parsed_from, "hakmem/hakmem_gtest_pch.h")
      << "the test compiles parse hakmem_gtest_pch.h instead of loading its "
         ".gch; gcc says why with: bazel build --copt=-Winvalid-pch "
         "//hakmem:gtest_pch_test";
#endif
}
