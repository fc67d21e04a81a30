// Cross-thread behaviour of the hak_* API: blocks allocated by one thread and
// freed by another, threads that come and go while their blocks live on, and
// the statistics that must survive all of it.
//
// Every block carries a pattern derived from its address and size; whoever
// frees it checks the pattern first, so a block handed out twice, an overlap,
// or a stray write from the allocator shows up as a mismatch.
//
// The hand-offs use std::mutex and std::condition_variable, which ThreadSanitizer
// understands (Debian's abseil is not built for it), so that under
// --config=tsan every report is about hakmem.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/tests/test_util.h"

namespace hakmem_test {
namespace {

struct Block {
  void *p = nullptr;
  size_t size = 0;
  int owner = -1; // index of the allocating thread
};

// A failure seen on a worker thread, reported on the test thread, where
// gtest's fatal assertions make sense.
class Failures {
public:
  void Add(const std::string &msg) {
    std::lock_guard<std::mutex> l(mu_);
    if (msgs_.size() < 20)
      msgs_.push_back(msg);
    ++count_;
  }
  void ExpectNone() {
    std::lock_guard<std::mutex> l(mu_);
    for (const std::string &m : msgs_)
      ADD_FAILURE() << m;
    EXPECT_EQ(count_, 0u) << "failures on worker threads";
  }

private:
  std::mutex mu_;
  std::vector<std::string> msgs_; // guarded by mu_
  size_t count_ = 0;              // guarded by mu_
};

// Mostly small sizes, log-uniform over 8 B..64 KiB, and one in `large_one_in`
// above 1 MiB.
size_t RandomSize(absl::BitGen &gen, int large_one_in = 100) {
  if (large_one_in > 0 && absl::Uniform<int>(gen, 0, large_one_in) == 0) {
    return absl::Uniform<size_t>(absl::IntervalClosed, gen, kMiB + 1, 3 * kMiB);
  }
  int bits = absl::Uniform<int>(absl::IntervalClosed, gen, 3, 16);
  return absl::Uniform<size_t>(absl::IntervalClosed, gen, 8, size_t{1} << bits);
}

absl::BitGen SeededGen(uint64_t seed) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    uint32_t{0x6861}};
  return absl::BitGen(seq);
}

// Allocates and fills a block; a NULL result is recorded as a failure.
Block MakeBlock(size_t size, int owner, Failures *failures) {
  Block b;
  b.p = hak_malloc(size);
  b.size = size;
  b.owner = owner;
  if (b.p == nullptr) {
    failures->Add("hak_malloc(" + std::to_string(size) + ") returned NULL");
    return b;
  }
  FillPattern(b.p, size, SeedFor(b.p, size));
  return b;
}

// Checks the pattern of a block and frees it.
void CheckAndFree(const Block &b, int freer, Failures *failures) {
  if (b.p == nullptr)
    return;
  size_t bad = FindPatternMismatch(b.p, b.size, SeedFor(b.p, b.size));
  if (bad != kNotFound) {
    std::ostringstream os;
    os << "block " << b.p << " of " << b.size << " bytes allocated by thread " << b.owner
       << " corrupt at offset " << bad << " when thread " << freer << " came to free it";
    failures->Add(os.str());
  }
  if (hak_usable_size(b.p) < b.size) {
    std::ostringstream os;
    os << "block " << b.p << " of " << b.size << " bytes reports usable size "
       << hak_usable_size(b.p);
    failures->Add(os.str());
  }
  hak_free(b.p);
}

// Makes sure the calling thread has its heap before a baseline snapshot.
void WarmUp() { hak_free(hak_malloc(16)); }

// Compares the per-class and large counters between two snapshots: every
// block allocated between them was freed between them.
void ExpectBalanced(const hak_stats &before, const hak_stats &after) {
  ASSERT_EQ(before.num_classes, after.num_classes);
  for (uint32_t c = 0; c < after.num_classes && c < HAK_STATS_MAX_CLASSES; ++c) {
    uint64_t allocs = after.classes[c].allocs - before.classes[c].allocs;
    uint64_t frees = after.classes[c].frees - before.classes[c].frees;
    EXPECT_EQ(allocs, frees) << "class " << c << " (block size " << after.classes[c].block_size
                             << "): allocs and frees during the test differ";
  }
  EXPECT_EQ(after.large_allocs - before.large_allocs, after.large_frees - before.large_frees)
      << "large allocs and frees during the test differ";
  EXPECT_EQ(TotalAllocs(after) - TotalAllocs(before), TotalFrees(after) - TotalFrees(before));
}

// ---- (a) blocks passed through queues to other threads -------------------

class Inbox {
public:
  void Push(const Block &b) {
    std::lock_guard<std::mutex> l(mu_);
    q_.push_back(b);
  }
  std::deque<Block> TakeAll() {
    std::deque<Block> out;
    std::lock_guard<std::mutex> l(mu_);
    out.swap(q_);
    return out;
  }

private:
  std::mutex mu_;
  std::deque<Block> q_; // guarded by mu_
};

TEST(MultiThread, BlocksFreedByOtherThreadsThroughQueues) {
  constexpr int kThreads = 4;
  constexpr int kBlocksPerThread = 8000;
  constexpr int64_t kMaxInFlight = 1500;
  WarmUp();
  const hak_stats before = StatsNow();

  std::vector<std::unique_ptr<Inbox>> inbox;
  for (int i = 0; i < kThreads; ++i)
    inbox.push_back(std::make_unique<Inbox>());
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> freed{0};
  std::atomic<int64_t> freed_by_owner{0};
  Failures failures;

  auto drain = [&](int self) {
    std::deque<Block> got = inbox[self]->TakeAll();
    for (const Block &b : got) {
      if (b.owner == self)
        freed_by_owner.fetch_add(1);
      CheckAndFree(b, self, &failures);
    }
    in_flight.fetch_sub(static_cast<int64_t>(got.size()));
    freed.fetch_add(static_cast<int64_t>(got.size()));
    return got.size();
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      absl::BitGen gen = SeededGen(1000 + t);
      for (int i = 0; i < kBlocksPerThread; ++i) {
        while (in_flight.load() > kMaxInFlight) {
          if (drain(t) == 0)
            std::this_thread::yield();
        }
        Block b = MakeBlock(RandomSize(gen), t, &failures);
        in_flight.fetch_add(1);
        int to = (t + absl::Uniform<int>(absl::IntervalClosed, gen, 1, kThreads - 1)) % kThreads;
        inbox[to]->Push(b);
        if (i % 16 == 0)
          drain(t);
      }
      while (freed.load() < int64_t{kThreads} * kBlocksPerThread) {
        if (drain(t) == 0)
          std::this_thread::yield();
      }
    });
  }
  for (std::thread &th : threads)
    th.join();
  failures.ExpectNone();
  EXPECT_EQ(freed.load(), int64_t{kThreads} * kBlocksPerThread);
  EXPECT_EQ(freed_by_owner.load(), 0) << "a block was routed back to its owner";

  const hak_stats after = StatsNow();
  ExpectBalanced(before, after);
  EXPECT_EQ(TotalAllocs(after) - TotalAllocs(before), uint64_t{kThreads} * kBlocksPerThread)
      << "the counters do not match the number of hak_malloc calls";
  EXPECT_GT(TotalRemoteFrees(after), TotalRemoteFrees(before))
      << "no remote frees counted although every block was freed by another "
         "thread";
}

// ---- (b) thousands of short-lived threads --------------------------------

class Collector {
public:
  void Push(std::vector<Block> blocks) {
    {
      std::lock_guard<std::mutex> l(mu_);
      handed_ += blocks.size();
      for (const Block &b : blocks)
        q_.push_back(b);
    }
    work_.notify_one();
  }
  void Finish() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    work_.notify_one();
  }
  // Blocks until everything handed over so far has been freed.
  void WaitIdle() {
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait(l, [this] { return freed_ == handed_; });
  }
  void Run(Failures *failures) {
    for (;;) {
      std::deque<Block> batch;
      {
        std::unique_lock<std::mutex> l(mu_);
        work_.wait(l, [this] { return done_ || !q_.empty(); });
        if (q_.empty() && done_)
          return;
        batch.swap(q_);
      }
      for (const Block &b : batch)
        CheckAndFree(b, -1, failures);
      {
        std::lock_guard<std::mutex> l(mu_);
        freed_ += batch.size();
      }
      idle_.notify_all();
    }
  }

private:
  std::mutex mu_;
  std::condition_variable work_; // q_ non-empty or done_
  std::condition_variable idle_; // freed_ == handed_
  // All guarded by mu_.
  std::deque<Block> q_;
  size_t handed_ = 0;
  size_t freed_ = 0;
  bool done_ = false;
};

TEST(MultiThread, ThreadChurnWithLongLivedCollector) {
  constexpr int kShortLived = 4000;
  constexpr int kMaxAlive = 16;
  constexpr int kBlocksPerThread = 24;
  WarmUp();
  const hak_stats before = StatsNow();

  Failures failures;
  Collector collector;
  std::thread collector_thread([&] { collector.Run(&failures); });

  // A watcher that reads the statistics while threads exit and merge their
  // counters: process-wide totals may never go backwards.
  std::atomic<bool> stop_watching{false};
  std::thread watcher([&] {
    hak_stats prev = StatsNow();
    while (!stop_watching.load()) {
      hak_stats now = StatsNow();
      if (TotalAllocs(now) < TotalAllocs(prev) || TotalFrees(now) < TotalFrees(prev) ||
          now.threads_exited < prev.threads_exited) {
        std::ostringstream os;
        os << "statistics went backwards while threads exited: allocs " << TotalAllocs(prev)
           << " -> " << TotalAllocs(now) << ", frees " << TotalFrees(prev) << " -> "
           << TotalFrees(now) << ", threads_exited " << prev.threads_exited << " -> "
           << now.threads_exited;
        failures.Add(os.str());
      }
      prev = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  auto worker = [&](int id) {
    absl::BitGen gen = SeededGen(50000 + id);
    std::vector<Block> mine;
    for (int i = 0; i < kBlocksPerThread; ++i) {
      // Mostly small blocks; every 50th thread also makes one large block.
      size_t size = (i == 0 && id % 50 == 0) ? absl::Uniform<size_t>(gen, kMiB + 1, 2 * kMiB)
                                             : absl::Uniform<size_t>(absl::IntervalClosed, gen, 8,
                                                                     i % 6 == 0 ? 65536 : 1024);
      mine.push_back(MakeBlock(size, id, &failures));
    }
    // Free about half of them here, hand the rest to the collector.
    std::vector<Block> handed;
    for (const Block &b : mine) {
      if (absl::Bernoulli(gen, 0.5)) {
        CheckAndFree(b, id, &failures);
      } else {
        handed.push_back(b);
      }
    }
    collector.Push(std::move(handed));
  };

  auto run_threads = [&](int first, int last) {
    std::array<std::thread, kMaxAlive> slots;
    for (int id = first; id < last; ++id) {
      std::thread &slot = slots[static_cast<size_t>(id % kMaxAlive)];
      if (slot.joinable())
        slot.join();
      slot = std::thread(worker, id);
    }
    for (std::thread &slot : slots) {
      if (slot.joinable())
        slot.join();
    }
    collector.WaitIdle();
  };

  run_threads(0, kShortLived / 2);
  const hak_stats half = StatsNow();
  run_threads(kShortLived / 2, kShortLived);
  const hak_stats end_of_churn = StatsNow();

  collector.Finish();
  collector_thread.join();
  stop_watching.store(true);
  watcher.join();
  failures.ExpectNone();

  const hak_stats after = StatsNow();
  ExpectBalanced(before, after);
  EXPECT_EQ(TotalAllocs(after) - TotalAllocs(before), uint64_t{kShortLived} * kBlocksPerThread);
  // The short-lived threads have exited, and perhaps the collector and the
  // watcher, if hakmem gave them a heap (they never allocate).
  const uint64_t exited = after.threads_exited - before.threads_exited;
  EXPECT_GE(exited, uint64_t{kShortLived});
  EXPECT_LE(exited, uint64_t{kShortLived} + 2);
  EXPECT_EQ(after.threads_live, before.threads_live)
      << "threads_live does not return to its value before the test";
  // Steady state after the first 2000 threads: the next 2000 may not keep
  // adding memory (slabs of exited threads must be reused or released). The
  // page arena's cache of idle mappings is bounded by design and moves by
  // tens of MiB between samples, so it is left out of the comparison.
  const uint64_t in_use_half = half.mapped_bytes - half.cached_bytes;
  const uint64_t in_use_end = end_of_churn.mapped_bytes - end_of_churn.cached_bytes;
  EXPECT_LE(in_use_end, in_use_half + 32 * kMiB)
      << "memory mapped and not cached kept growing with thread churn: "
      << "after 2000 threads " << in_use_half << " bytes (" << half.superslabs << " superslabs, "
      << half.abandoned_slabs << " abandoned slabs), after "
      << "4000 threads " << in_use_end << " bytes (" << end_of_churn.superslabs << " superslabs, "
      << end_of_churn.abandoned_slabs << " abandoned slabs)";
}

// ---- (c) a ring of producers and consumers -------------------------------

// Single-producer single-consumer ring of blocks.
class SpscRing {
public:
  bool TryPush(const Block &b) {
    size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == kCapacity)
      return false;
    slots_[tail % kCapacity] = b;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  bool TryPop(Block *b) {
    size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire))
      return false;
    *b = slots_[head % kCapacity];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

private:
  static constexpr size_t kCapacity = 256;
  std::array<Block, kCapacity> slots_;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

TEST(MultiThread, ProducerConsumerRingFreesEveryBlockRemotely) {
  constexpr int kThreads = 4;
  constexpr int kBlocksPerThread = 16000;
  WarmUp();
  const hak_stats before = StatsNow();

  // Thread t produces into ring[t]; thread (t + 1) % kThreads consumes it.
  std::vector<std::unique_ptr<SpscRing>> ring;
  for (int i = 0; i < kThreads; ++i)
    ring.push_back(std::make_unique<SpscRing>());
  Failures failures;
  std::atomic<int64_t> wrong_owner{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      absl::BitGen gen = SeededGen(7000 + t);
      const int from = (t + kThreads - 1) % kThreads;
      SpscRing &out = *ring[t];
      SpscRing &in = *ring[from];
      int produced = 0;
      int consumed = 0;
      Block pending = MakeBlock(RandomSize(gen, 200), t, &failures);
      while (produced < kBlocksPerThread || consumed < kBlocksPerThread) {
        bool progress = false;
        if (produced < kBlocksPerThread && out.TryPush(pending)) {
          ++produced;
          progress = true;
          if (produced < kBlocksPerThread) {
            pending = MakeBlock(RandomSize(gen, 200), t, &failures);
          }
        }
        Block b;
        for (int k = 0; k < 8 && consumed < kBlocksPerThread && in.TryPop(&b); ++k) {
          if (b.owner != from)
            wrong_owner.fetch_add(1);
          CheckAndFree(b, t, &failures);
          ++consumed;
          progress = true;
        }
        if (!progress)
          std::this_thread::yield();
      }
    });
  }
  for (std::thread &th : threads)
    th.join();
  failures.ExpectNone();
  EXPECT_EQ(wrong_owner.load(), 0);

  const hak_stats after = StatsNow();
  ExpectBalanced(before, after);
  EXPECT_EQ(TotalAllocs(after) - TotalAllocs(before), uint64_t{kThreads} * kBlocksPerThread);
  EXPECT_GT(TotalRemoteFrees(after), TotalRemoteFrees(before))
      << "no remote frees counted although every block was freed by another "
         "thread";
}

// ---- (d) every thread churns its own blocks ------------------------------

TEST(MultiThread, PerThreadChurnKeepsContentsAndBalancesStats) {
  constexpr int kThreads = 6;
  constexpr int kSlots = 512;
  constexpr int kOps = 25000;
  WarmUp();
  const hak_stats before = StatsNow();

  Failures failures;
  std::atomic<uint64_t> allocations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      absl::BitGen gen = SeededGen(90000 + t);
      std::vector<Block> slots(kSlots);
      uint64_t mine = 0;
      for (int op = 0; op < kOps; ++op) {
        Block &s = slots[absl::Uniform<size_t>(gen, 0, kSlots)];
        CheckAndFree(s, t, &failures);
        s = MakeBlock(RandomSize(gen, 400), t, &failures);
        ++mine;
        // Now and then hand the cached blocks back, as an idle thread would.
        if (op % 5000 == 4999)
          hak_thread_flush();
      }
      for (const Block &s : slots)
        CheckAndFree(s, t, &failures);
      allocations.fetch_add(mine);
    });
  }
  for (std::thread &th : threads)
    th.join();
  failures.ExpectNone();

  const hak_stats after = StatsNow();
  ExpectBalanced(before, after);
  EXPECT_EQ(TotalAllocs(after) - TotalAllocs(before), allocations.load());
  EXPECT_EQ(LiveBlocks(after) - LiveBlocks(before), 0);
}

} // namespace
} // namespace hakmem_test
