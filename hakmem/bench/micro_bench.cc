// micro_bench.cc - Google Benchmark micro-benchmarks of the malloc family.
//
// Written for this repository; see hakmem/bench/README.md ("micro").  Every
// benchmark calls the C allocation functions (malloc, free, calloc,
// aligned_alloc, realloc) and nothing else, so the same code measures
// whichever allocator the binary is linked with (//hakmem/bench:micro links
// hakmem in) or has injected with LD_PRELOAD (//hakmem/bench:micro_system).
//
// items_per_second counts allocator operations as described at each
// benchmark; "time" is per benchmark iteration.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "hakmem/bench/bench_util.h"

namespace {

constexpr int kBatch = 1000;

// ---------------------------------------------------------------------------
// malloc + free of one size.  1 item = 1 malloc + 1 free.

void BM_MallocFree(benchmark::State &state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void *p = std::malloc(size);
    // The asm barrier behind DoNotOptimize keeps the compiler from pairing
    // up and deleting the malloc/free.
    benchmark::DoNotOptimize(p);
    if (p == nullptr) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)
    ->Arg(16)
    ->Arg(32)
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(4096)
    ->Arg(16384)
    ->Arg(65536);

// ---------------------------------------------------------------------------
// n mallocs of one size, then n frees in reverse (LIFO) or allocation
// (FIFO) order; 1 item = 1 malloc + 1 free.
template <bool kLifo> void BM_BatchOrder(benchmark::State &state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  std::vector<void *> blocks(static_cast<size_t>(n));
  void **b = blocks.data();
  for (auto _ : state) {
    bool failed = false;
    for (int i = 0; i < n; i++) {
      b[i] = std::malloc(size);
      if (b[i] == nullptr)
        failed = true;
    }
    benchmark::DoNotOptimize(b);
    benchmark::ClobberMemory();
    for (int i = 0; i < n; i++)
      std::free(b[kLifo ? n - 1 - i : i]);
    benchmark::ClobberMemory();
    if (failed) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_BatchMallocThenFree(benchmark::State &state) { BM_BatchOrder<false>(state); }
BENCHMARK(BM_BatchMallocThenFree)
    ->ArgNames({"size", "n"})
    ->Args({16, kBatch})
    ->Args({64, kBatch})
    ->Args({256, kBatch});

// ---------------------------------------------------------------------------
// Cross-thread free.  A helper thread allocates a batch of kBatch blocks
// (untimed: the timer is paused while it works), then the benchmark thread
// frees all of them (timed).  Every free is of a block another thread
// allocated, i.e. the allocator's remote-free path.  1 item = 1 free.

class RemoteAllocator {
public:
  RemoteAllocator(size_t size, int n) : size_(size), blocks_(static_cast<size_t>(n)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~RemoteAllocator() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  RemoteAllocator(const RemoteAllocator &) = delete;
  RemoteAllocator &operator=(const RemoteAllocator &) = delete;

  // Has the helper thread fill blocks() and waits until it has; returns
  // false if malloc failed.
  bool Fill() {
    std::unique_lock<std::mutex> lock(mu_);
    ++requested_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return completed_ == requested_; });
    return ok_;
  }
  // Valid between Fill() and the next Fill(); owned by the caller, which
  // frees every block.
  std::vector<void *> &blocks() { return blocks_; }

private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return quit_ || requested_ != completed_; });
      if (quit_)
        return;
      bool ok = true;
      for (void *&p : blocks_) {
        p = std::malloc(size_);
        if (p == nullptr)
          ok = false;
      }
      ok_ = ok;
      completed_ = requested_;
      cv_.notify_all();
    }
  }

  const size_t size_;
  std::vector<void *> blocks_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t requested_ = 0; // guarded by mu_
  uint64_t completed_ = 0; // guarded by mu_
  bool ok_ = true;         // guarded by mu_
  bool quit_ = false;      // guarded by mu_
  std::thread thread_;
};

void BM_CrossThreadFree(benchmark::State &state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  RemoteAllocator remote(size, n);
  for (auto _ : state) {
    state.PauseTiming();
    bool ok = remote.Fill();
    state.ResumeTiming();
    std::vector<void *> &blocks = remote.blocks();
    void **b = blocks.data();
    benchmark::DoNotOptimize(b);
    for (int i = 0; i < n; i++)
      std::free(b[i]);
    benchmark::ClobberMemory();
    if (!ok) {
      state.SkipWithError("malloc returned NULL in the helper thread");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_CrossThreadFree)
    ->ArgNames({"size", "n"})
    ->Args({16, kBatch})
    ->Args({64, kBatch})
    ->Args({256, kBatch})
    ->Args({4096, kBatch});

// ---------------------------------------------------------------------------
// calloc(1, size) + free.  1 item = 1 calloc + 1 free.

void BM_CallocFree(benchmark::State &state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void *p = std::calloc(1, size);
    benchmark::DoNotOptimize(p);
    if (p == nullptr) {
      state.SkipWithError("calloc returned NULL");
      break;
    }
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CallocFree)->Arg(64)->Arg(4096)->Arg(65536);

// ---------------------------------------------------------------------------
// aligned_alloc(align, size) + free.  1 item = 1 aligned_alloc + 1 free.
// C11 defines aligned_alloc only for a size that is a multiple of the
// alignment (scudo returns NULL otherwise), so only such pairs are asked;
// a small block with a large alignment goes through posix_memalign below.

void BM_AlignedAllocFree(benchmark::State &state) {
  const size_t align = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
  if (size % align != 0) {
    state.SkipWithError("size is not a multiple of align: C11 leaves that to the implementation");
    return;
  }
  for (auto _ : state) {
    void *p = std::aligned_alloc(align, size);
    benchmark::DoNotOptimize(p);
    if (p == nullptr || (reinterpret_cast<uintptr_t>(p) & (align - 1)) != 0) {
      state.SkipWithError("aligned_alloc returned NULL or a misaligned block");
      break;
    }
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AlignedAllocFree)
    ->ArgNames({"align", "size"})
    ->Args({64, 256})
    ->Args({64, 4096})
    ->Args({4096, 4096});

// ---------------------------------------------------------------------------
// posix_memalign(&p, align, size) + free, for any size (POSIX only needs the
// alignment to be a power of two and a multiple of sizeof(void *)).
// 1 item = 1 posix_memalign + 1 free.

void BM_PosixMemalignFree(benchmark::State &state) {
  const size_t align = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
  for (auto _ : state) {
    void *p = nullptr;
    const int rc = posix_memalign(&p, align, size);
    benchmark::DoNotOptimize(p);
    if (rc != 0 || p == nullptr || (reinterpret_cast<uintptr_t>(p) & (align - 1)) != 0) {
      state.SkipWithError("posix_memalign failed or returned a misaligned block");
      break;
    }
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PosixMemalignFree)->ArgNames({"align", "size"})->Args({4096, 256});

// ---------------------------------------------------------------------------
// realloc growth: malloc(16), then realloc to 32, 64, ..., 65536 bytes (12
// doublings), then free.  The first and the newest last byte are written so
// every resize has live contents to keep; the first byte is checked at the
// end.  1 item = 1 realloc.

constexpr size_t kReallocStart = 16;
constexpr size_t kReallocEnd = 65536;

void BM_ReallocGrowth(benchmark::State &state) {
  int64_t reallocs_per_iteration = 0;
  for (size_t s = kReallocStart; s < kReallocEnd; s *= 2)
    reallocs_per_iteration++;
  for (auto _ : state) {
    char *p = static_cast<char *>(std::malloc(kReallocStart));
    if (p == nullptr) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
    p[0] = 0x5a;
    bool ok = true;
    for (size_t s = kReallocStart * 2; s <= kReallocEnd; s *= 2) {
      char *q = static_cast<char *>(std::realloc(p, s));
      if (q == nullptr) {
        ok = false;
        break;
      }
      p = q;
      p[s - 1] = 1;
      benchmark::DoNotOptimize(p);
    }
    bool intact = p[0] == 0x5a;
    std::free(p);
    if (!ok || !intact) {
      state.SkipWithError(ok ? "realloc lost the block's contents" : "realloc returned NULL");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * reallocs_per_iteration);
}
BENCHMARK(BM_ReallocGrowth);

// ---------------------------------------------------------------------------
// Batches in the shape of glibc's own malloc benchmark: n mallocs of one
// size, then the n frees newest first (LIFO) or oldest first (FIFO).
// 1 item = 1 malloc + 1 free; one iteration = n items.

constexpr size_t kBatchBlockSize = 64;

void BM_BatchLIFO(benchmark::State &state) { BM_BatchOrder<true>(state); }
void BM_BatchFIFO(benchmark::State &state) { BM_BatchOrder<false>(state); }

void BatchArgs(benchmark::internal::Benchmark *b) {
  b->ArgNames({"size", "n"});
  for (int n : {25, 100, 400, 1600})
    b->Args({static_cast<int64_t>(kBatchBlockSize), n});
}
BENCHMARK(BM_BatchLIFO)->Apply(BatchArgs);
BENCHMARK(BM_BatchFIFO)->Apply(BatchArgs);

// ---------------------------------------------------------------------------
// Random replacement in a large working set: 32768 live blocks; each
// iteration frees a random one and mallocs a new block in its slot.  Sizes
// are 7 in 8 log-uniform 16..128 B, else 129 B..4 KiB.  Slots and sizes come
// from a table drawn before the timed loop, so the loop costs only the
// allocator.  1 item = 1 free + 1 malloc.

constexpr size_t kWorkingSet = 32768;
constexpr size_t kReplaceTable = 1 << 16;

void BM_WorkingSetReplace(benchmark::State &state) {
  bench_rng rng;
  bench_rng_init(&rng, 4141);
  bench_size_dist small, tail;
  bench_size_dist_init(&small, 16, 128);
  bench_size_dist_init(&tail, 129, 4096);
  std::vector<uint32_t> slot(kReplaceTable);
  std::vector<uint32_t> size(kReplaceTable);
  for (size_t i = 0; i < kReplaceTable; i++) {
    slot[i] = static_cast<uint32_t>(bench_rng_below(&rng, kWorkingSet));
    const bench_size_dist *d = bench_rng_below(&rng, 8) == 0 ? &tail : &small;
    size[i] = static_cast<uint32_t>(bench_size_draw(d, &rng));
  }
  std::vector<void *> live(kWorkingSet);
  bool failed = false;
  for (size_t i = 0; i < kWorkingSet; i++) {
    live[i] = std::malloc(size[i]);
    failed |= live[i] == nullptr;
  }
  size_t k = 0;
  for (auto _ : state) {
    if (failed) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
    const size_t i = k++ & (kReplaceTable - 1);
    void *&p = live[slot[i]];
    std::free(p);
    p = std::malloc(size[i]);
    benchmark::DoNotOptimize(p);
    failed = p == nullptr;
  }
  for (void *p : live)
    std::free(p);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WorkingSetReplace);

// ---------------------------------------------------------------------------
// One-way 64 B blocks between two threads: thread 0 mallocs and pushes them
// through a bounded single-producer/single-consumer ring, thread 1 pops and
// frees them.  Both run the same number of iterations, so the ring is empty
// again when a run ends.  1 item = 1 block (malloc'd by one thread, freed by
// the other); the CPU time is both threads', spinning on the ring included.

constexpr size_t kOneWayRing = 1024;
constexpr size_t kOneWaySize = 64;

struct OneWayRing {
  alignas(64) std::atomic<size_t> head{0};
  alignas(64) std::atomic<size_t> tail{0};
  alignas(64) void *slots[kOneWayRing];
};
OneWayRing g_oneway;

// Waiting on the ring: spin a little before giving the CPU away, since a
// sched_yield per empty or full check would cost more than the allocator.
inline void OneWayBackoff(unsigned &spins) {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
    spins = 0;
  }
}

// A NULL pushed by the producer tells the consumer that malloc failed.
void OneWayProduce(benchmark::State &state) {
  OneWayRing &r = g_oneway;
  size_t tail = r.tail.load(std::memory_order_relaxed);
  for (auto _ : state) {
    void *p = std::malloc(kOneWaySize);
    if (p != nullptr)
      static_cast<unsigned char *>(p)[0] = 0xa5;
    unsigned spins = 0;
    while (tail - r.head.load(std::memory_order_acquire) == kOneWayRing)
      OneWayBackoff(spins);
    r.slots[tail % kOneWayRing] = p;
    r.tail.store(++tail, std::memory_order_release);
    if (p == nullptr) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
  }
}

void OneWayConsume(benchmark::State &state) {
  OneWayRing &r = g_oneway;
  size_t head = r.head.load(std::memory_order_relaxed);
  for (auto _ : state) {
    unsigned spins = 0;
    while (r.tail.load(std::memory_order_acquire) == head)
      OneWayBackoff(spins);
    void *p = r.slots[head % kOneWayRing];
    r.head.store(++head, std::memory_order_release);
    if (p == nullptr) {
      state.SkipWithError("malloc returned NULL in the producer");
      break;
    }
    if (static_cast<unsigned char *>(p)[0] != 0xa5) {
      state.SkipWithError("a block lost its contents on the way");
      break;
    }
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_OneWay64(benchmark::State &state) {
  if (state.thread_index() == 0)
    OneWayProduce(state);
  else
    OneWayConsume(state);
}
BENCHMARK(BM_OneWay64)->Threads(2);

} // namespace
