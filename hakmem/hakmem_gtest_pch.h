// What hakmem's C++ tests read before their own first line (-include, see
// HAKMEM_GTEST_COPTS in copts.bzl): GoogleTest and the standard headers most
// tests include. //hakmem:gtest_pch precompiles it (hakmem/pch.bzl); a test
// compile loads the .gch when it fits and parses this text otherwise.
#ifndef HAKMEM_HAKMEM_GTEST_PCH_H_
#define HAKMEM_HAKMEM_GTEST_PCH_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "gtest/gtest.h"

// The file this was parsed from: "hakmem/hakmem_gtest_pch.h" when it came
// from the .gch (precompiled from the source tree), the copy beside the .gch
// when the compile parsed it. //hakmem:gtest_pch_test checks it.
inline constexpr char hakmem_gtest_pch_parsed_from[] = __FILE__;

#endif // HAKMEM_HAKMEM_GTEST_PCH_H_
