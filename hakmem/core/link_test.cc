// Unit test of the link box: the free mark, free-list links (encoded in the
// hardened variant) and the vetting of every link a slow path follows. Blocks
// live in a 2 MiB region the test maps and registers as a SuperSlab's, which
// is all a link's plausibility asks.
#include "hakmem/core/link.h"

#include <cstdint>
#include <mutex>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"
#include "hakmem/core/segment_map.h"

namespace {

class LinkTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // The free key, the link key and the checking level, as init sets them.
    hak_options_load();
    hak_link_init();
    region_ = static_cast<unsigned char *>(hak_os_map_aligned(HAK_SS_SIZE, HAK_SS_SIZE));
    ASSERT_NE(region_, nullptr);
    ASSERT_EQ(hak_segmap_set(region_, HAK_SS_SIZE, HAK_REGION_SS_SMALL, HAK_REGION_SS_SMALL), 0);
  }
  static void TearDownTestSuite() {
    hak_segmap_clear(region_, HAK_SS_SIZE);
    hak_os_unmap(region_, HAK_SS_SIZE);
  }
  void SetUp() override { saved_level_ = hak_check_level; }
  void TearDown() override { hak_check_level = saved_level_; }

  // Block i of 64 bytes, past the header page.
  static void *Block(unsigned i) { return region_ + HAK_SS_HEADER_SIZE + 64 * i; }

  static unsigned char *region_;
  int saved_level_ = 0;
};

unsigned char *LinkTest::region_ = nullptr;

TEST_F(LinkTest, FreeMark) {
  void *b = Block(0);
  hak_mark_clear(b);
  EXPECT_FALSE(hak_is_marked_free(b));
  hak_mark_free(b);
  EXPECT_TRUE(hak_is_marked_free(b));
  EXPECT_EQ(static_cast<uintptr_t *>(b)[1], hak_free_key) << "the mark is the second word";
  hak_mark_clear(b);
  EXPECT_FALSE(hak_is_marked_free(b));
  EXPECT_EQ(static_cast<uintptr_t *>(b)[1], 0u);
}

TEST_F(LinkTest, TakeClearsTheMarkAndChecksIt) {
  void *b = Block(1);
  hak_mark_free(b);
  hak_block_take(b, true);
  EXPECT_FALSE(hak_is_marked_free(b));
  // Taken again, checked: the mark is gone, so b was written to (or is no
  // free block at all).
  EXPECT_DEATH(hak_block_take(b, true), "heap corruption: free block 0x[0-9a-f]+ was written to");
  hak_block_take(b, false); // unchecked: no questions
  EXPECT_FALSE(hak_is_marked_free(b));
}

TEST_F(LinkTest, SetGetRoundTrip) {
  void *a = Block(2), *b = Block(3);
  hak_link_set(a, b);
  EXPECT_EQ(hak_link_get(a), b);
  const uintptr_t raw = *static_cast<uintptr_t *>(a);
#if HAKMEM_HARDENED
  EXPECT_NE(raw, reinterpret_cast<uintptr_t>(b)) << "stored encoded";
  EXPECT_EQ(raw, reinterpret_cast<uintptr_t>(b) ^ hak_link_key ^ reinterpret_cast<uintptr_t>(a));
#else
  EXPECT_EQ(raw, reinterpret_cast<uintptr_t>(b)) << "stored as is";
#endif
  hak_link_set(a, nullptr);
  EXPECT_EQ(hak_link_get(a), nullptr);
}

TEST_F(LinkTest, NextFollowsALinkToAFreeBlock) {
  void *a = Block(4), *b = Block(5);
  hak_mark_free(a);
  hak_mark_free(b);
  hak_link_set(a, b);
  hak_link_set(b, nullptr);
  EXPECT_EQ(hak_link_next(a), b);
  EXPECT_EQ(hak_link_next(b), nullptr);
}

// A link to a block without the free mark means a's first word was written
// after a was freed (here: pointed at a live block).
TEST_F(LinkTest, NextRejectsALinkToAnUnmarkedBlock) {
  void *a = Block(6), *b = Block(7);
  hak_mark_free(a);
  hak_mark_clear(b);
  hak_link_set(a, b);
  EXPECT_DEATH(hak_link_next(a), "heap corruption");
}

// Links must stay in SuperSlabs and be 16-byte aligned.
TEST_F(LinkTest, NextRejectsImplausibleLinks) {
  void *a = Block(8);
  hak_mark_free(a);
  alignas(16) static uintptr_t outside[2];
  outside[1] = hak_free_key; // marked, but not in a SuperSlab
  hak_link_set(a, outside);
  EXPECT_DEATH(hak_link_next(a), "heap corruption");
  unsigned char *misaligned = static_cast<unsigned char *>(Block(9)) + 8;
  hak_link_set(a, misaligned);
  EXPECT_DEATH(hak_link_next(a), "heap corruption");
}

// At HAKMEM_CHECK=off the slow paths follow links unvetted; the hardened
// variant vets them whatever the level.
TEST_F(LinkTest, CheckingOffFollowsUnmarkedLinks) {
  void *a = Block(10), *b = Block(11);
  hak_mark_free(a);
  hak_mark_clear(b);
  hak_link_set(a, b);
  hak_check_level = HAK_CHECK_OFF;
  if (HAKMEM_HARDENED)
    EXPECT_DEATH(hak_link_next(a), "heap corruption");
  else
    EXPECT_EQ(hak_link_next(a), b);
}

// In the hardened variant a link overwritten with a plain pointer decodes to
// garbage, which is caught before anyone follows it.
TEST_F(LinkTest, HardenedRejectsAForgedLink) {
  if (!HAKMEM_HARDENED)
    GTEST_SKIP() << "links are stored as is";
  void *a = Block(12), *b = Block(13);
  hak_mark_free(b);
  *static_cast<void **>(a) = b; // a heap overflow writes a raw pointer
  EXPECT_DEATH(hak_link_get(a), "heap corruption: the free-list link in block 0x[0-9a-f]+ was "
                                "overwritten");
}

} // namespace
