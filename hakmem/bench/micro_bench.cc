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
// kBatch mallocs of one size, then kBatch frees in allocation order.
// 1 item = 1 malloc + 1 free; one iteration = kBatch items.

void BM_BatchMallocThenFree(benchmark::State &state) {
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
    // The block pointers escape into memory the compiler must assume is read.
    benchmark::DoNotOptimize(b);
    benchmark::ClobberMemory();
    for (int i = 0; i < n; i++)
      std::free(b[i]);
    benchmark::ClobberMemory();
    if (failed) {
      state.SkipWithError("malloc returned NULL");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}
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

void BM_AlignedAllocFree(benchmark::State &state) {
  const size_t align = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
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
    ->Args({4096, 256})
    ->Args({4096, 4096});

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

} // namespace
