// Unit test of the profiler's tables: stacks interned once each (by their
// frames and depth), the live table's find, insert and removal (which moves
// back the later entries of a run) and its growth, checked against a
// std::map through many random operations.
#include "hakmem/core/prof_table.h"

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(ProfTable, StacksAreInternedOnce) {
  hak_table t;
  ASSERT_TRUE(hak_prof_table_init(&t));
  uintptr_t a[3] = {0x1000, 0x2000, 0x3000}, b[3] = {0x1000, 0x2000, 0x3001};
  uint32_t sa = hak_prof_table_intern(&t, a, 3);
  uint32_t sb = hak_prof_table_intern(&t, b, 3);
  uint32_t sa2 = hak_prof_table_intern(&t, a, 2); // a prefix is another stack
  uint32_t empty = hak_prof_table_intern(&t, a, 0);
  EXPECT_EQ(sa, 0u);
  EXPECT_EQ(sb, 1u);
  EXPECT_EQ(sa2, 2u);
  EXPECT_EQ(empty, 3u);
  EXPECT_EQ(hak_prof_table_intern(&t, a, 3), sa);
  EXPECT_EQ(hak_prof_table_intern(&t, b, 3), sb);
  EXPECT_EQ(hak_prof_table_intern(&t, a, 0), empty);
  EXPECT_EQ(t.nstacks, 4u);
  EXPECT_EQ(t.stacks[sb].depth, 3u);
  EXPECT_EQ(t.stacks[sb].pc[2], 0x3001u);
}

TEST(ProfTable, TheStackTableFills) {
  hak_table t;
  ASSERT_TRUE(hak_prof_table_init(&t));
  for (uintptr_t i = 0; i < HAK_TABLE_STACKS; i++) {
    uintptr_t pc = i + 1;
    ASSERT_EQ(hak_prof_table_intern(&t, &pc, 1), i);
  }
  uintptr_t more = HAK_TABLE_STACKS + 1, known = 5;
  EXPECT_EQ(hak_prof_table_intern(&t, &more, 1), UINT32_MAX);
  EXPECT_EQ(hak_prof_table_intern(&t, &known, 1), 4u) << "a known stack is still found";
}

// Inserts or removes addresses at random (as the profiler does: grow at half
// full) and checks every address of the model is found with its size.
TEST(ProfTable, LiveSamplesMatchAModel) {
  hak_table t;
  ASSERT_TRUE(hak_prof_table_init(&t));
  std::map<uintptr_t, uint64_t> model;
  std::mt19937_64 rng(1);
  std::vector<uintptr_t> keys;
  for (int op = 0; op < 60000; op++) {
    // Nearby addresses (16-byte steps), so runs form and removals move entries.
    uintptr_t a = 0x10000 + 16 * (rng() % 20000);
    size_t k = hak_prof_table_find(&t, a);
    bool present = model.count(a) != 0;
    ASSERT_EQ(t.live[k].addr != 0, present);
    if (present && rng() % 3 != 0) {
      ASSERT_EQ(t.live[k].size, model[a]);
      hak_prof_table_remove(&t, k);
      model.erase(a);
    } else if (!present) {
      if (t.nlive >= t.live_cap / 2) {
        ASSERT_TRUE(hak_prof_table_grow(&t));
      }
      k = hak_prof_table_find(&t, a);
      t.live[k] = hak_table_live{a, a * 3, 1.0, 0, 0};
      t.nlive++;
      model[a] = a * 3;
    }
  }
  EXPECT_EQ(t.nlive, model.size());
  EXPECT_GT(t.live_cap, size_t{HAK_TABLE_LIVE_MIN}) << "the table grew";
  for (const auto &[a, size] : model) {
    size_t k = hak_prof_table_find(&t, a);
    ASSERT_EQ(t.live[k].addr, a);
    EXPECT_EQ(t.live[k].size, size);
  }
}

TEST(ProfTable, GrowthStopsAtTheMaximum) {
  hak_table t;
  ASSERT_TRUE(hak_prof_table_init(&t));
  while (t.live_cap < HAK_TABLE_LIVE_MAX)
    ASSERT_TRUE(hak_prof_table_grow(&t));
  EXPECT_FALSE(hak_prof_table_grow(&t));
  EXPECT_EQ(t.live_cap, size_t{HAK_TABLE_LIVE_MAX});
}

} // namespace
