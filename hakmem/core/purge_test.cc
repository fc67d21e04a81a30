// Unit test of the purge box: the earliest deadline wins, a registered pass
// runs when asked (never nested) and sets the next deadline, and the purge
// thread runs the pass once a deadline passes. The pass is a fake that counts
// its calls: what maintenance registers is not linked here.
#include "hakmem/core/purge.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"

namespace {

// The fake pass: counts its calls, notes what it saw and returns the next
// deadline it was told to, once.
std::atomic<int> g_calls{0};
std::atomic<uint64_t> g_called_at{0};     // hak_os_now_ms of the last call
std::atomic<uint64_t> g_due_inside{1};    // hak_purge_due during the last call
std::atomic<uint64_t> g_next{0};          // what the next call returns
std::atomic<uint64_t> g_wanted_inside{0}; // a deadline the next call asks for

uint64_t FakePass() {
  g_calls++;
  g_called_at = hak_os_now_ms();
  g_due_inside = hak_purge_due();
  if (uint64_t w = g_wanted_inside.exchange(0))
    hak_purge_wanted(w);
  return g_next.exchange(0);
}

std::atomic<int> g_exclusive_calls{0};
std::atomic<int> g_calls_seen_by_nested_try{-1};

// Runs as malloc_trim's work does, and tries a pass as the arena's tick may.
void ExclusiveWork() {
  g_exclusive_calls++;
  const int before = g_calls.load();
  hak_purge_try_run();
  g_calls_seen_by_nested_try = g_calls.load() - before;
}

// Waits up to two seconds for the fake pass to have run `calls` times.
bool WaitForCalls(int calls) {
  for (int i = 0; i < 2000 && g_calls.load() < calls; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return g_calls.load() >= calls;
}

class PurgeTest : public ::testing::Test {
protected:
  void SetUp() override {
    static std::once_flag once;
    std::call_once(once, [] {
      hak_options_load();
      hak_options_current.purge_thread = 0; // started only by the test that wants it
      hak_purge_set_pass(FakePass);
    });
    // No deadline left over: a pass clears it and (returning 0) sets none.
    hak_purge_try_run();
    ASSERT_EQ(hak_purge_due(), 0u);
    g_calls = 0;
    g_next = 0;
    g_wanted_inside = 0;
  }
};

// Runs first, before any test has started the purge thread: with the option
// off, a poll starts none, so a passed deadline stays pending.
TEST_F(PurgeTest, PollStartsNoThreadWhenTheOptionIsOff) {
  const uint64_t now = hak_os_now_ms();
  hak_purge_wanted(now + 5);
  hak_purge_poll();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(g_calls.load(), 0);
  EXPECT_EQ(hak_purge_due(), now + 5);
}

TEST_F(PurgeTest, WantedKeepsTheEarliestDeadline) {
  const uint64_t now = hak_os_now_ms();
  hak_purge_wanted(now + 5000);
  EXPECT_EQ(hak_purge_due(), now + 5000);
  hak_purge_wanted(now + 9000);
  EXPECT_EQ(hak_purge_due(), now + 5000) << "a later deadline changes nothing";
  hak_purge_wanted(now + 3000);
  EXPECT_EQ(hak_purge_due(), now + 3000);
  hak_purge_wanted(now + 3000);
  EXPECT_EQ(hak_purge_due(), now + 3000);
}

TEST_F(PurgeTest, TryRunRunsThePassWhoseReturnSetsTheNextDeadline) {
  const uint64_t now = hak_os_now_ms();
  hak_purge_wanted(now + 100000);
  g_next = now + 7000;
  hak_purge_try_run();
  EXPECT_EQ(g_calls.load(), 1);
  EXPECT_EQ(g_due_inside.load(), 0u) << "the deadline is cleared before the pass";
  EXPECT_EQ(hak_purge_due(), now + 7000);
  // Nothing left: no deadline.
  hak_purge_try_run();
  EXPECT_EQ(g_calls.load(), 2);
  EXPECT_EQ(hak_purge_due(), 0u);
}

// Memory that turns idle during a pass asks for its own deadline; the pass's
// return cannot push it later.
TEST_F(PurgeTest, DeadlineWantedDuringThePassIsKept) {
  const uint64_t now = hak_os_now_ms();
  hak_purge_wanted(now);
  g_wanted_inside = now + 2000;
  g_next = now + 8000;
  hak_purge_try_run();
  EXPECT_EQ(g_calls.load(), 1);
  EXPECT_EQ(hak_purge_due(), now + 2000);
  g_wanted_inside = now + 9000;
  g_next = now + 4000;
  hak_purge_try_run();
  EXPECT_EQ(hak_purge_due(), now + 4000);
}

// hak_purge_exclusive runs its function as a pass would: a tick inside it
// does not start a nested pass.
TEST_F(PurgeTest, ExclusiveRunsFnAndNoPassInsideIt) {
  hak_purge_wanted(hak_os_now_ms());
  g_exclusive_calls = 0;
  g_calls_seen_by_nested_try = -1;
  hak_purge_exclusive(ExclusiveWork);
  EXPECT_EQ(g_exclusive_calls.load(), 1);
  EXPECT_EQ(g_calls_seen_by_nested_try.load(), 0);
  EXPECT_EQ(g_calls.load(), 0);
  EXPECT_NE(hak_purge_due(), 0u) << "the deadline still waits";
  // Once it is over, a pass runs again.
  hak_purge_try_run();
  EXPECT_EQ(g_calls.load(), 1);
}

// A pass on another thread holds off hak_purge_try_run here, and
// hak_purge_exclusive waits for it.
TEST_F(PurgeTest, ExclusiveExcludesAPassOnAnotherThread) {
  std::atomic<bool> inside{false}, leave{false};
  static std::atomic<bool> *s_inside, *s_leave;
  s_inside = &inside;
  s_leave = &leave;
  std::thread holder([] {
    hak_purge_exclusive([] {
      s_inside->store(true);
      while (!s_leave->load())
        std::this_thread::yield();
    });
  });
  while (!inside.load())
    std::this_thread::yield();
  hak_purge_wanted(hak_os_now_ms());
  hak_purge_try_run();
  EXPECT_EQ(g_calls.load(), 0) << "a pass was running";
  leave = true;
  holder.join();
  hak_purge_try_run();
  EXPECT_EQ(g_calls.load(), 1);
}

// The purge thread, started by a poll, sleeps until the deadline, runs the
// pass then, and again at the deadline the pass returned.
TEST_F(PurgeTest, ThreadRunsThePassWhenTheDeadlinePasses) {
  hak_options_current.decay_ms = 20; // a failed thread start would retry after this
  hak_options_current.purge_thread = 1;
  const uint64_t first = hak_os_now_ms() + 40;
  g_next = first + 40;
  hak_purge_wanted(first);
  hak_purge_poll();
  ASSERT_TRUE(WaitForCalls(1)) << "the purge thread never ran the pass";
  EXPECT_GE(g_called_at.load(), first) << "ran before the deadline";
  ASSERT_TRUE(WaitForCalls(2)) << "the deadline the pass returned was not kept";
  EXPECT_GE(g_called_at.load(), first + 40);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(g_calls.load(), 2) << "nothing was due after the second pass";
  EXPECT_EQ(hak_purge_due(), 0u);
  // A new deadline wakes the running thread; no poll needed.
  hak_purge_wanted(hak_os_now_ms() + 10);
  EXPECT_TRUE(WaitForCalls(3));
  hak_options_current.purge_thread = 0;
}

} // namespace
