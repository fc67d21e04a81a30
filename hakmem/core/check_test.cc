// Unit test of the check box: the checking level taken from HAKMEM_CHECK (never
// below cheap in the hardened variant), the misuse report, the guard trailer
// of debug and hardened builds, and the poison of free blocks.
#include "hakmem/core/check.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"

namespace {

// Sets the level as init does, from HAKMEM_CHECK.
void InitWithCheck(const char *value) {
  ASSERT_EQ(setenv("HAKMEM_CHECK", value, 1), 0);
  hak_options_load();
  hak_check_init();
  unsetenv("HAKMEM_CHECK");
}

class CheckTest : public ::testing::Test {
protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    hak_options_load();
    hak_check_init();
  }
  void TearDown() override {
    hak_options_load();
    hak_check_init();
  }
};

TEST_F(CheckTest, LevelComesFromTheOption) {
  InitWithCheck("full");
  EXPECT_EQ(hak_check_level, HAK_CHECK_FULL);
  EXPECT_TRUE(HAK_CHECK_IS_FULL);
  InitWithCheck("cheap");
  EXPECT_EQ(hak_check_level, HAK_CHECK_CHEAP);
  EXPECT_FALSE(HAK_CHECK_IS_FULL);
  InitWithCheck("off");
  // What the hardened build is for cannot be turned off.
  EXPECT_EQ(hak_check_level, HAKMEM_HARDENED ? HAK_CHECK_CHEAP : HAK_CHECK_OFF);
  // Without the variable, the build's default.
  unsetenv("HAKMEM_CHECK");
  hak_options_load();
  hak_check_init();
  EXPECT_EQ(hak_check_level, HAKMEM_HARDENED && HAKMEM_CHECK_DEFAULT < HAK_CHECK_CHEAP
                                 ? HAK_CHECK_CHEAP
                                 : HAKMEM_CHECK_DEFAULT);
}

// The free key is never 0 (a zeroed word must never look free).
TEST_F(CheckTest, FreeKeyIsNeverZero) {
  EXPECT_NE(hak_free_key, 0u);
  EXPECT_EQ(hak_free_key & 1, 1u);
}

TEST_F(CheckTest, ReportAbortsWithWhatProblemAndPointer) {
  void *p = reinterpret_cast<void *>(uintptr_t{0x7f12345670});
  EXPECT_DEATH(hak_report("free()", p, "invalid pointer"),
               "hakmem: free\\(\\): invalid pointer 0x7f12345670");
  EXPECT_DEATH(hak_report("realloc()", p, "double free of"),
               "hakmem: realloc\\(\\): double free of 0x7f12345670");
}

#if HAK_GUARD
constexpr size_t kBlock = 64;

struct alignas(16) Block {
  unsigned char b[kBlock];
};

TEST_F(CheckTest, GuardKeepsTheRequestedSize) {
  Block blk;
  for (size_t requested : {size_t{0}, size_t{1}, size_t{20}, kBlock - HAK_TRAILER}) {
    SCOPED_TRACE(requested);
    hak_guard_arm(blk.b, kBlock, requested);
    EXPECT_EQ(hak_guard_check("free()", blk.b, kBlock), requested);
  }
}

TEST_F(CheckTest, OverflowIntoTheSlackIsReportedAtCheapAndFull) {
  for (const char *level : {"cheap", "full"}) {
    SCOPED_TRACE(level);
    InitWithCheck(level);
    Block blk;
    hak_guard_arm(blk.b, kBlock, 20);
    blk.b[19] = 0x5a; // its own last byte: fine
    EXPECT_EQ(hak_guard_check("free()", blk.b, kBlock), 20u);
    blk.b[20] = 0; // one past the end
    EXPECT_DEATH(hak_guard_check("free()", blk.b, kBlock),
                 "free\\(\\): write past the end of block 0x[0-9a-f]+ \\(20 bytes requested, byte "
                 "20 changed\\)");
    // An overflow that reaches the size record.
    hak_guard_arm(blk.b, kBlock, 20);
    std::memset(blk.b + 20, 0xff, kBlock - 20);
    EXPECT_DEATH(hak_guard_check("free()", blk.b, kBlock), "size record damaged");
  }
}

// Hardened: a freed block (poisoned) whose first 16 bytes the program wiped,
// link and free mark with them, then freed again, is reported as the double
// free it is, not as an overflow of the guard the poison covers.
TEST_F(CheckTest, DoubleFreeAfterAWipeIsNamed) {
  if (!HAK_POISON)
    GTEST_SKIP() << "only the hardened variant poisons freed blocks";
  Block blk;
  hak_guard_arm(blk.b, kBlock, 20);
  hak_poison(blk.b, kBlock); // what its free did
  std::memset(blk.b, 0, 16); // the program's write after free
  EXPECT_DEATH(hak_guard_check("free()", blk.b, kBlock),
               "free\\(\\): double free of 0x[0-9a-f]+ \\(its free mark was overwritten after "
               "the first free\\)");
  EXPECT_DEATH(hak_guard_check("realloc()", blk.b, kBlock),
               "realloc\\(\\): block already freed: 0x[0-9a-f]+");
  // A block handed out again keeps its old poison where the program has not
  // written; with its guard past the poisoned part, an overflow is one.
  struct alignas(16) {
    unsigned char b[1024];
  } big;
  hak_poison(big.b, sizeof big.b);
  hak_guard_arm(big.b, sizeof big.b, 600);
  big.b[600] = 0;
  EXPECT_DEATH(
      hak_guard_check("free()", big.b, sizeof big.b),
      "write past the end of block 0x[0-9a-f]+ \\(600 bytes requested, byte 600 changed\\)");
  // A live block that overflows with the poison's own byte is an overflow.
  hak_guard_arm(blk.b, kBlock, 20);
  std::memset(blk.b + 20, 0xDB, 8);
  EXPECT_DEATH(hak_guard_check("free()", blk.b, kBlock),
               "write past the end of block 0x[0-9a-f]+ \\(20 bytes requested, byte 20 changed\\)");
}

TEST_F(CheckTest, OverflowIsNotReportedAtOff) {
  if (HAKMEM_HARDENED)
    GTEST_SKIP() << "the hardened variant never checks less than cheap";
  InitWithCheck("off");
  ASSERT_EQ(hak_check_level, HAK_CHECK_OFF);
  Block blk;
  hak_guard_arm(blk.b, kBlock, 20);
  blk.b[20] = 0;
  EXPECT_EQ(hak_guard_check("free()", blk.b, kBlock), 20u);
  // A damaged size record still yields a size within the block.
  std::memset(blk.b + 20, 0xff, kBlock - 20);
  EXPECT_LE(hak_guard_check("free()", blk.b, kBlock), kBlock - HAK_TRAILER);
}
#endif

// Poison fills a free block past its link and mark, up to HAK_POISON_MAX and
// short of the trailer; a write there is reported when the block is checked.
// Used by the hardened variant (HAK_POISON), callable in all.
TEST_F(CheckTest, PoisonCatchesAWriteAfterFree) {
  for (size_t size : {size_t{32}, size_t{128}, size_t{1024}}) {
    SCOPED_TRACE(size);
    std::string mem(size + 16, '\x11');
    auto *b = reinterpret_cast<unsigned char *>((reinterpret_cast<uintptr_t>(&mem[0]) + 15) &
                                                ~uintptr_t{15});
    hak_poison(b, size);
    const size_t end = std::min(size - HAK_TRAILER, HAK_POISON_MAX) / 8 * 8;
    for (size_t i = 0; i < size; ++i) {
      const bool poisoned = i >= 16 && i < end;
      ASSERT_EQ(b[i] != 0x11, poisoned) << "byte " << i;
    }
    hak_poison_check(b, size);
    b[16] = 0x11;
    EXPECT_DEATH(hak_poison_check(b, size),
                 "heap corruption: free block 0x[0-9a-f]+ was written to after it was freed "
                 "\\(byte 16 changed\\)");
    hak_poison(b, size);
    b[end - 1] ^= 1;
    EXPECT_DEATH(hak_poison_check(b, size), "byte " + std::to_string(end - 1) + " changed");
    // Past the poisoned part, anything goes.
    hak_poison(b, size);
    b[0] = b[8] = 0;
    if (end < size)
      b[size - 1] = 0;
    hak_poison_check(b, size);
  }
}

} // namespace
