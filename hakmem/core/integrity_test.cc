// Unit test of the integrity box: the free mark, free-list links (encoded in
// the hardened variant) and the vetting of every link a slow path follows;
// the checking level taken from HAKMEM_CHECK (never below cheap in the
// hardened variant), the misuse reports, the guard trailer of debug and
// hardened builds, the poison of free blocks and the carving order. Blocks
// whose links are followed live in a 2 MiB region the test maps and
// registers as a SuperSlab's, which is all a link's plausibility asks.
#include "hakmem/core/integrity.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"
#include "hakmem/core/segmap.h"

namespace {

class LinkTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // The free key, the link key and the checking level, as init sets them.
    hak_options_load();
    hak_integrity_link_init();
    region_ = static_cast<unsigned char *>(hak_os_map_aligned(HAK_SS_SIZE, HAK_SS_SIZE));
    ASSERT_NE(region_, nullptr);
    ASSERT_EQ(hak_segmap_set(region_, HAK_SS_SIZE, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  }
  static void TearDownTestSuite() {
    hak_segmap_clear(region_, HAK_SS_SIZE);
    hak_os_unmap(region_, HAK_SS_SIZE);
  }
  void SetUp() override { saved_level_ = hak_integrity_level; }
  void TearDown() override { hak_integrity_level = saved_level_; }

  // Block i of 64 bytes, past the header page.
  static void *Block(unsigned i) { return region_ + HAK_SS_HEADER_SIZE + 64 * i; }

  static unsigned char *region_;
  int saved_level_ = 0;
};

unsigned char *LinkTest::region_ = nullptr;

TEST_F(LinkTest, FreeMark) {
  void *b = Block(0);
  hak_integrity_mark_clear(b);
  EXPECT_FALSE(hak_integrity_is_marked_free(b));
  hak_integrity_mark_free(b);
  EXPECT_TRUE(hak_integrity_is_marked_free(b));
  EXPECT_EQ(static_cast<uintptr_t *>(b)[1], hak_integrity_free_key)
      << "the mark is the second word";
  hak_integrity_mark_clear(b);
  EXPECT_FALSE(hak_integrity_is_marked_free(b));
  EXPECT_EQ(static_cast<uintptr_t *>(b)[1], 0u);
}

TEST_F(LinkTest, TakeClearsTheMarkAndChecksIt) {
  void *b = Block(1);
  hak_integrity_mark_free(b);
  hak_integrity_block_take(b, true);
  EXPECT_FALSE(hak_integrity_is_marked_free(b));
  // Taken again, checked: the mark is gone, so b was written to (or is no
  // free block at all).
  EXPECT_DEATH(hak_integrity_block_take(b, true),
               "heap corruption: free block 0x[0-9a-f]+ was written to");
  hak_integrity_block_take(b, false); // unchecked: no questions
  EXPECT_FALSE(hak_integrity_is_marked_free(b));
}

TEST_F(LinkTest, SetGetRoundTrip) {
  void *a = Block(2), *b = Block(3);
  hak_integrity_link_set(a, b);
  EXPECT_EQ(hak_integrity_link_get(a), b);
  const uintptr_t raw = *static_cast<uintptr_t *>(a);
#if HAKMEM_HARDENED
  EXPECT_NE(raw, reinterpret_cast<uintptr_t>(b)) << "stored encoded";
  EXPECT_EQ(raw, reinterpret_cast<uintptr_t>(b) ^ hak_integrity_link_key ^
                     reinterpret_cast<uintptr_t>(a));
#else
  EXPECT_EQ(raw, reinterpret_cast<uintptr_t>(b)) << "stored as is";
#endif
  hak_integrity_link_set(a, nullptr);
  EXPECT_EQ(hak_integrity_link_get(a), nullptr);
}

TEST_F(LinkTest, NextFollowsALinkToAFreeBlock) {
  void *a = Block(4), *b = Block(5);
  hak_integrity_mark_free(a);
  hak_integrity_mark_free(b);
  hak_integrity_link_set(a, b);
  hak_integrity_link_set(b, nullptr);
  EXPECT_EQ(hak_integrity_link_next(a), b);
  EXPECT_EQ(hak_integrity_link_next(b), nullptr);
}

// A link to a block without the free mark means a's first word was written
// after a was freed (here: pointed at a live block).
TEST_F(LinkTest, NextRejectsALinkToAnUnmarkedBlock) {
  void *a = Block(6), *b = Block(7);
  hak_integrity_mark_free(a);
  hak_integrity_mark_clear(b);
  hak_integrity_link_set(a, b);
  EXPECT_DEATH(hak_integrity_link_next(a), "heap corruption");
}

// Links must stay in SuperSlabs and be 16-byte aligned.
TEST_F(LinkTest, NextRejectsImplausibleLinks) {
  void *a = Block(8);
  hak_integrity_mark_free(a);
  alignas(16) static uintptr_t outside[2];
  outside[1] = hak_integrity_free_key; // marked, but not in a SuperSlab
  hak_integrity_link_set(a, outside);
  EXPECT_DEATH(hak_integrity_link_next(a), "heap corruption");
  unsigned char *misaligned = static_cast<unsigned char *>(Block(9)) + 8;
  hak_integrity_link_set(a, misaligned);
  EXPECT_DEATH(hak_integrity_link_next(a), "heap corruption");
}

// At HAKMEM_CHECK=off the slow paths follow links unvetted; the hardened
// variant vets them whatever the level.
TEST_F(LinkTest, CheckingOffFollowsUnmarkedLinks) {
  void *a = Block(10), *b = Block(11);
  hak_integrity_mark_free(a);
  hak_integrity_mark_clear(b);
  hak_integrity_link_set(a, b);
  hak_integrity_level = HAK_CHECK_OFF;
  if (HAKMEM_HARDENED)
    EXPECT_DEATH(hak_integrity_link_next(a), "heap corruption");
  else
    EXPECT_EQ(hak_integrity_link_next(a), b);
}

// In the hardened variant a link overwritten with a plain pointer decodes to
// garbage, which is caught before anyone follows it.
TEST_F(LinkTest, HardenedRejectsAForgedLink) {
  if (!HAKMEM_HARDENED)
    GTEST_SKIP() << "links are stored as is";
  void *a = Block(12), *b = Block(13);
  hak_integrity_mark_free(b);
  *static_cast<void **>(a) = b; // a heap overflow writes a raw pointer
  EXPECT_DEATH(hak_integrity_link_get(a),
               "heap corruption: the free-list link in block 0x[0-9a-f]+ was "
               "overwritten");
}

// Sets the level as init does, from HAKMEM_CHECK.
void InitWithCheck(const char *value) {
  ASSERT_EQ(setenv("HAKMEM_CHECK", value, 1), 0);
  hak_options_load();
  hak_integrity_init();
  unsetenv("HAKMEM_CHECK");
}

class CheckTest : public ::testing::Test {
protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    hak_options_load();
    hak_integrity_init();
  }
  void TearDown() override {
    hak_options_load();
    hak_integrity_init();
  }
};

TEST_F(CheckTest, LevelComesFromTheOption) {
  InitWithCheck("full");
  EXPECT_EQ(hak_integrity_level, HAK_CHECK_FULL);
  EXPECT_TRUE(HAK_CHECK_IS_FULL);
  InitWithCheck("cheap");
  EXPECT_EQ(hak_integrity_level, HAK_CHECK_CHEAP);
  EXPECT_FALSE(HAK_CHECK_IS_FULL);
  InitWithCheck("off");
  // What the hardened build is for cannot be turned off.
  EXPECT_EQ(hak_integrity_level, HAKMEM_HARDENED ? HAK_CHECK_CHEAP : HAK_CHECK_OFF);
  // Without the variable, the build's default.
  unsetenv("HAKMEM_CHECK");
  hak_options_load();
  hak_integrity_init();
  EXPECT_EQ(hak_integrity_level, HAKMEM_HARDENED && HAKMEM_CHECK_DEFAULT < HAK_CHECK_CHEAP
                                     ? HAK_CHECK_CHEAP
                                     : HAKMEM_CHECK_DEFAULT);
}

// The free key is never 0 (a zeroed word must never look free).
TEST_F(CheckTest, FreeKeyIsNeverZero) {
  EXPECT_NE(hak_integrity_free_key, 0u);
  EXPECT_EQ(hak_integrity_free_key & 1, 1u);
}

TEST_F(CheckTest, ReportAbortsWithWhatProblemAndPointer) {
  void *p = reinterpret_cast<void *>(uintptr_t{0x7f12345670});
  EXPECT_DEATH(hak_integrity_report_invalid("free()", p),
               "hakmem: free\\(\\): invalid pointer 0x7f12345670");
  EXPECT_DEATH(hak_integrity_report_freed("free()", p),
               "hakmem: free\\(\\): double free of 0x7f12345670");
  EXPECT_DEATH(hak_integrity_report_freed("realloc()", p),
               "hakmem: realloc\\(\\): block already freed: 0x7f12345670");
  EXPECT_DEATH(hak_integrity_misuse("heap corruption", "block %p: %zu", p, size_t{3}),
               "hakmem: heap corruption: block 0x7f12345670: 3");
}

TEST_F(CheckTest, CarveOrderIsAPermutationShuffledOnlyWhenHardened) {
  uint16_t order[256];
  hak_integrity_carve_order(order, 256);
  bool seen[256] = {};
  bool identity = true;
  for (unsigned i = 0; i < 256; i++) {
    ASSERT_LT(order[i], 256u);
    EXPECT_FALSE(seen[order[i]]) << "twice: " << order[i];
    seen[order[i]] = true;
    identity = identity && order[i] == i;
  }
  EXPECT_EQ(identity, !HAK_CARVE_SHUFFLED);
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
    hak_integrity_guard_arm(blk.b, kBlock, requested);
    EXPECT_EQ(hak_integrity_guard_check("free()", blk.b, kBlock), requested);
  }
}

TEST_F(CheckTest, OverflowIntoTheSlackIsReportedAtCheapAndFull) {
  for (const char *level : {"cheap", "full"}) {
    SCOPED_TRACE(level);
    InitWithCheck(level);
    Block blk;
    hak_integrity_guard_arm(blk.b, kBlock, 20);
    blk.b[19] = 0x5a; // its own last byte: fine
    EXPECT_EQ(hak_integrity_guard_check("free()", blk.b, kBlock), 20u);
    blk.b[20] = 0; // one past the end
    EXPECT_DEATH(hak_integrity_guard_check("free()", blk.b, kBlock),
                 "free\\(\\): write past the end of block 0x[0-9a-f]+ \\(20 bytes requested, byte "
                 "20 changed\\)");
    // An overflow that reaches the size record.
    hak_integrity_guard_arm(blk.b, kBlock, 20);
    std::memset(blk.b + 20, 0xff, kBlock - 20);
    EXPECT_DEATH(hak_integrity_guard_check("free()", blk.b, kBlock), "size record damaged");
  }
}

// Hardened: a freed block (poisoned) whose first 16 bytes the program wiped,
// link and free mark with them, then freed again, is reported as the double
// free it is, not as an overflow of the guard the poison covers.
TEST_F(CheckTest, DoubleFreeAfterAWipeIsNamed) {
  if (!HAK_POISON)
    GTEST_SKIP() << "only the hardened variant poisons freed blocks";
  Block blk;
  hak_integrity_guard_arm(blk.b, kBlock, 20);
  hak_integrity_poison(blk.b, kBlock); // what its free did
  std::memset(blk.b, 0, 16);           // the program's write after free
  EXPECT_DEATH(hak_integrity_guard_check("free()", blk.b, kBlock),
               "free\\(\\): double free of 0x[0-9a-f]+ \\(its free mark was overwritten after "
               "the first free\\)");
  EXPECT_DEATH(hak_integrity_guard_check("realloc()", blk.b, kBlock),
               "realloc\\(\\): block already freed: 0x[0-9a-f]+");
  // A block handed out again keeps its old poison where the program has not
  // written; with its guard past the poisoned part, an overflow is one.
  struct alignas(16) {
    unsigned char b[1024];
  } big;
  hak_integrity_poison(big.b, sizeof big.b);
  hak_integrity_guard_arm(big.b, sizeof big.b, 600);
  big.b[600] = 0;
  EXPECT_DEATH(
      hak_integrity_guard_check("free()", big.b, sizeof big.b),
      "write past the end of block 0x[0-9a-f]+ \\(600 bytes requested, byte 600 changed\\)");
  // A live block that overflows with the poison's own byte is an overflow.
  hak_integrity_guard_arm(blk.b, kBlock, 20);
  std::memset(blk.b + 20, 0xDB, 8);
  EXPECT_DEATH(hak_integrity_guard_check("free()", blk.b, kBlock),
               "write past the end of block 0x[0-9a-f]+ \\(20 bytes requested, byte 20 changed\\)");
}

TEST_F(CheckTest, OverflowIsNotReportedAtOff) {
  if (HAKMEM_HARDENED)
    GTEST_SKIP() << "the hardened variant never checks less than cheap";
  InitWithCheck("off");
  ASSERT_EQ(hak_integrity_level, HAK_CHECK_OFF);
  Block blk;
  hak_integrity_guard_arm(blk.b, kBlock, 20);
  blk.b[20] = 0;
  EXPECT_EQ(hak_integrity_guard_check("free()", blk.b, kBlock), 20u);
  // A damaged size record still yields a size within the block.
  std::memset(blk.b + 20, 0xff, kBlock - 20);
  EXPECT_LE(hak_integrity_guard_check("free()", blk.b, kBlock), kBlock - HAK_TRAILER);
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
    hak_integrity_poison(b, size);
    const size_t end = std::min(size - HAK_TRAILER, HAK_POISON_MAX) / 8 * 8;
    for (size_t i = 0; i < size; ++i) {
      const bool poisoned = i >= 16 && i < end;
      ASSERT_EQ(b[i] != 0x11, poisoned) << "byte " << i;
    }
    hak_integrity_poison_check(b, size);
    b[16] = 0x11;
    EXPECT_DEATH(hak_integrity_poison_check(b, size),
                 "heap corruption: free block 0x[0-9a-f]+ was written to after it was freed "
                 "\\(byte 16 changed\\)");
    hak_integrity_poison(b, size);
    b[end - 1] ^= 1;
    EXPECT_DEATH(hak_integrity_poison_check(b, size),
                 "byte " + std::to_string(end - 1) + " changed");
    // Past the poisoned part, anything goes.
    hak_integrity_poison(b, size);
    b[0] = b[8] = 0;
    if (end < size)
      b[size - 1] = 0;
    hak_integrity_poison_check(b, size);
  }
}

} // namespace
