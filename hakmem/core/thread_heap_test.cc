// The registry of thread heaps: a heap per thread, created on first use and
// torn down at exit (counters merged, slabs handed back or abandoned); the
// heap stash, which keeps an exited thread's heap whole for the next new
// thread, so that its first allocation finds blocks at once, takes no pool
// lock and makes no system call; the trims of idle heaps; the counters.
//
// The test sets up what hak_maintenance_init would (options, checks, the class map, the
// thread-exit key) and registers a purge pass of the registry's own work;
// it allocates and frees through the fast cache's paths, as malloc does.
#include "hakmem/core/thread_heap.h"

#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/options.h"
#include "hakmem/core/os.h"
#include "hakmem/core/page_arena.h"
#include "hakmem/core/purge.h"
#include "hakmem/core/segmap.h"
#include "hakmem/core/shared_pool.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/stats.h"
#include "hakmem/core/superslab.h"
#include "hakmem/core/tcache.h"

namespace {

uint64_t Earliest(uint64_t a, uint64_t b) {
  if (a == 0)
    return b;
  return b == 0 || a < b ? a : b;
}

// The purge pass as far as the registry goes (maintenance's pass also decays
// the arena and the pool's free slots).
uint64_t RegistryPass() {
  return Earliest(hak_thread_heap_trim_idle(false), hak_thread_heap_stash_expire(false));
}

// What hak_maintenance_init does for the boxes up to the registry.
class RegistryEnvironment : public ::testing::Environment {
public:
  void SetUp() override {
    hak_options_load();
    hak_integrity_init();
    hak_segmap_class_init();
    ASSERT_EQ(hak_thread_heap_registry_init(), 0);
    hak_purge_set_pass(RegistryPass);
  }
};
::testing::Environment *const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new RegistryEnvironment);

hak_slab *SlabOf(const void *p) {
  const unsigned kind = hak_segmap_kind(p);
  if (kind != HAK_REGION_SS_SMALL && kind != HAK_REGION_SS_MEDIUM)
    return nullptr;
  return hak_superslab_slab_of(p, kind);
}
hak_heap *Owner(const hak_slab *s) { return s->owner.load(std::memory_order_relaxed); }
unsigned State(const hak_slab *s) { return HAK_SLAB_STATE(s); }

// malloc and free of a slab block as the API does them, by class: a bin's
// hit, else the fast cache's slow path (which, with no bins, goes to the
// slabs).
void *Alloc(size_t size) {
  const unsigned cls = hak_size_class_of(size);
  hak_heap *h = hak_thread_heap_get();
  void *b = nullptr;
#if HAKMEM_FASTCACHE
  b = hak_tcache_pop(HAK_BIN_SLOT(hak_tcache_bin_of_class(cls)));
#endif
  return b != nullptr ? b : hak_tcache_alloc_slow(h, cls, UINT32_MAX);
}

void Free(void *p) {
  hak_slab *s = SlabOf(p);
  const unsigned cls = s->class_idx;
#if HAKMEM_FASTCACHE
  if (hak_tcache_push(HAK_BIN_SLOT(hak_tcache_bin_of_class(cls)), p))
    return;
#endif
  hak_tcache_free_slow(hak_thread_heap_get(), p, s, cls);
}

// Empties this thread's bins into their slabs (hak_thread_flush).
void FlushMyBins() {
  if (hak_tls.heap != nullptr)
    hak_tcache_drain(hak_tls.heap, hak_tls.bins);
}

// malloc_trim's work (maintenance's trim): this thread's bins, every heap's
// trim, the stash, abandoned slabs, idle regions.
void TrimAll() {
  FlushMyBins();
  hak_purge_exclusive([] { hak_thread_heap_trim_idle(true); });
  hak_thread_heap_stash_expire(true);
  hak_shared_pool_sweep_abandoned(true);
  hak_page_arena_decay(true);
}

// Sets HAKMEM_HEAP_STASH at run time; returns the old value.
unsigned SetHeapStash(unsigned n) {
  const unsigned old = hak_options_current.heap_stash;
  hak_options_current.heap_stash = n;
  return old;
}

uint64_t Stat(const std::atomic<uint64_t> &c) { return c.load(); }

using hakmem_box_test::RunInThread;

constexpr size_t kSize = 200;

// Stash on and empty; a thread allocates one block and exits. Returns the
// block, whose slab the stashed heap keeps.
void *BlockLeftInStash() {
  SetHeapStash(4);
  TrimAll(); // retires whatever earlier threads stashed
  void *left = nullptr;
  RunInThread([&] { left = Alloc(kSize); });
  EXPECT_NE(State(SlabOf(left)), HAK_SLAB_ABANDONED);
  return left;
}

TEST(HeapStash, NewThreadTakesOverTheExitedThreadsHeap) {
  SetHeapStash(4);
  TrimAll(); // retires whatever earlier threads stashed
  std::vector<void *> kept;
  hak_heap *first_heap = nullptr;
  RunInThread([&] {
    first_heap = hak_thread_heap_get();
    for (int i = 0; i < 20; ++i)
      kept.push_back(Alloc(kSize));
  });
  hak_slab *slab = SlabOf(kept[0]);
  ASSERT_NE(slab, nullptr);
  EXPECT_EQ(Owner(slab), first_heap) << "the exited thread's slab stays with its heap";
  EXPECT_NE(State(slab), HAK_SLAB_ABANDONED);
  const uint64_t reused = Stat(hak_stats_global.heaps_reused);
  const uint64_t superslabs = Stat(hak_stats_global.superslabs_total);
  const uint64_t abandoned = Stat(hak_stats_global.abandoned);
  const uint64_t adopted = Stat(hak_stats_global.adopted);

  RunInThread([&] {
    void *p = Alloc(kSize);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(hak_thread_heap_get(), first_heap) << "the new thread took the stashed heap";
    EXPECT_EQ(SlabOf(p), slab) << "and allocates from its slab at once";
    Free(p);
  });
  EXPECT_EQ(Stat(hak_stats_global.heaps_reused) - reused, 1u);
  EXPECT_EQ(Stat(hak_stats_global.superslabs_total), superslabs);
  EXPECT_EQ(Stat(hak_stats_global.abandoned), abandoned);
  EXPECT_EQ(Stat(hak_stats_global.adopted), adopted);
  for (void *p : kept)
    Free(p);
}

TEST(HeapStash, TrimRetiresStashedHeaps) {
  void *left = BlockLeftInStash();
  hak_slab *slab = SlabOf(left);
  TrimAll();
  EXPECT_EQ(State(slab), HAK_SLAB_ABANDONED) << "trim gives the stashed heap's slabs up";
  EXPECT_EQ(Owner(slab), nullptr);
  Free(left);
  TrimAll();
}

TEST(HeapStash, OffMeansAbandonAtExit) {
  const unsigned old = SetHeapStash(0);
  TrimAll();
  void *left = nullptr;
  RunInThread([&] { left = Alloc(kSize); });
  EXPECT_EQ(State(SlabOf(left)), HAK_SLAB_ABANDONED);
  Free(left);
  SetHeapStash(old);
  TrimAll();
}

TEST(HeapStash, StashedHeapRetiresWhenIdle) {
  void *left = BlockLeftInStash();
  hak_slab *slab = SlabOf(left);
  // The purge thread (or the next slow path) retires it after the decay
  // time (500 ms by default); allow a noisy machine ten times that.
  bool retired = false;
  for (int i = 0; i < 500 && !retired; ++i) {
    usleep(10000);
    void *p = Alloc(100000); // a slow path, in case the purge thread is off
    Free(p);
    retired = State(slab) == HAK_SLAB_ABANDONED;
  }
  EXPECT_TRUE(retired);
  Free(left);
  TrimAll();
}

#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
// Syscalls the filtered thread made (numbers), filled by the SIGSYS handler.
std::atomic<int> g_trapped{0};
std::atomic<long> g_first_trapped{-1};

void OnSigsys(int, siginfo_t *info, void *ctx) {
  if (g_trapped.fetch_add(1) == 0)
    g_first_trapped.store(info->si_syscall);
  // The call is skipped: it fails with ENOSYS.
  static_cast<ucontext_t *>(ctx)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

// Traps every system call of the calling thread except the few it needs to
// return from the handler and to wait forever.
int TrapSyscalls() {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_futex, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return -1;
  return static_cast<int>(syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog));
}

// Runs, in a child process, a thread that allocates a little and exits, then
// a new thread whose every system call traps and which calls fn. Returns the
// child's exit status: 0 no system call, 3 fn returned NULL, 10 + n the first
// system call was n (mod 100), 77 no seccomp here.
int FirstCallsOfNewThread(void *(*fn)()) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    std::thread([] {
      for (size_t n : {16, 100, 200, 1000, 5000})
        Free(Alloc(n));
    }).join();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnSigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, nullptr);
    static std::atomic<int> state{0}; // 1: no filter, 2: measured
    static std::atomic<void *> got{nullptr};
    static void *(*call)() = fn;
    std::thread t([] {
      if (TrapSyscalls() != 0) {
        state.store(1);
        return;
      }
      got.store(call());
      state.store(2);
      // Exiting would need system calls: wait forever instead.
      for (;;)
        syscall(__NR_futex, &state, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
    });
    t.detach();
    while (state.load() == 0)
      usleep(1000);
    if (state.load() == 1)
      _exit(77);
    if (got.load() == nullptr)
      _exit(3);
    _exit(g_trapped.load() == 0 ? 0 : 10 + static_cast<int>(g_first_trapped.load() % 100));
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

// Target 6: a new thread's first allocation costs no system call.
TEST(HeapStash, FirstAllocationOfANewThreadMakesNoSystemCall) {
  SetHeapStash(4);
  TrimAll();
  const int status = FirstCallsOfNewThread([]() -> void * { return Alloc(200); });
  if (status == 77)
    GTEST_SKIP() << "seccomp filters are not available here";
  EXPECT_EQ(status, 0)
      << "3: malloc failed; 10+n: the first allocation made system call n (mod 100)";
}

// The check above can fail: a call that needs the OS is caught.
TEST(HeapStash, SystemCallCheckCatchesAMapping) {
  const int status = FirstCallsOfNewThread([]() -> void * {
    void *p = hak_os_map(64u << 20); // a fresh mapping: mmap
    return p != nullptr ? p : reinterpret_cast<void *>(1);
  });
  if (status == 77)
    GTEST_SKIP() << "seccomp filters are not available here";
  EXPECT_EQ(status, 10 + __NR_mmap % 100);
}
#endif

} // namespace

namespace {

// ---- trimming idle heaps -----------------------------------------------------

// Whether the page holding p is resident.
bool Resident(const void *p) {
  const uintptr_t page = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095};
  unsigned char v = 0;
  if (mincore(reinterpret_cast<void *>(page), 4096, &v) != 0) {
    EXPECT_EQ(errno, ENOMEM);
    return false; // unmapped: its SuperSlab went back to the OS
  }
  return (v & 1) != 0;
}

// Slabs still in use among those of the given blocks.
size_t SlabsInUse(const std::vector<void *> &blocks) {
  std::set<hak_slab *> slabs;
  for (void *p : blocks) {
    hak_slab *s = SlabOf(p);
    if (s != nullptr && State(s) != HAK_SLAB_FREE) // null: its SuperSlab went back
      slabs.insert(s);
  }
  return slabs.size();
}

void Fill(void *p, size_t n, unsigned char v) { std::memset(p, v, n); }
bool Holds(const void *p, size_t n, unsigned char v) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < n; i++)
    if (b[i] != v)
      return false;
  return true;
}

// Builds without the fast cache allocate from their slabs with no lock, so no
// other thread may trim them.
#define SKIP_WITHOUT_FAST_CACHE()                                                                  \
  if (!HAKMEM_FASTCACHE)                                                                           \
  GTEST_SKIP() << "idle heaps are trimmed only with the fast cache"

struct Group {
  size_t size;
  size_t count;
  std::vector<void *> blocks;
};

// A parked thread (a Worker between jobs) whose blocks were freed, half by
// itself and half by another thread: malloc_trim gives its empty slabs back,
// remote frees included, and a later allocation finds every block again.
TEST(IdleTrim, ParkedThreadsEmptySlabsGoBack) {
  SKIP_WITHOUT_FAST_CACHE();
  hakmem_box_test::Worker w;
  std::vector<Group> groups = {{64, 20000, {}}, {3000, 400, {}}, {20 << 10, 200, {}}};
  w.Run([&] {
    for (Group &g : groups)
      for (size_t i = 0; i < g.count; i++) {
        void *p = Alloc(g.size);
        ASSERT_NE(p, nullptr);
        Fill(p, g.size, 0x5a);
        g.blocks.push_back(p);
      }
  });
  std::vector<size_t> before;
  for (Group &g : groups) {
    before.push_back(SlabsInUse(g.blocks));
    for (size_t i = 0; i < g.count; i += 2)
      Free(g.blocks[i]); // remote frees into the parked thread's slabs
  }
  w.Run([&] {
    for (Group &g : groups)
      for (size_t i = 1; i < g.count; i += 2)
        Free(g.blocks[i]);
  });
  const uint64_t trimmed = Stat(hak_stats_global.slabs_trimmed);
  TrimAll();
  EXPECT_GT(Stat(hak_stats_global.slabs_trimmed), trimmed);
  for (size_t k = 0; k < groups.size(); k++) {
    SCOPED_TRACE(groups[k].size);
    EXPECT_GE(before[k], 8u);
    // What the thread's bin still holds (its first and its last frees, at
    // most 32 KiB) keeps a few slabs.
    EXPECT_LE(SlabsInUse(groups[k].blocks), 4u);
  }
  // A freed 20 KiB block's inner pages went back to the OS.
  size_t gone = 0;
  for (void *p : groups[2].blocks)
    gone += !Resident(static_cast<char *>(p) + (10 << 10));
  EXPECT_GE(gone, groups[2].count * 9 / 10);
  w.Run([&] {
    std::set<void *> seen;
    for (Group &g : groups) {
      for (size_t i = 0; i < g.count; i++) {
        void *p = Alloc(g.size);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(seen.insert(p).second) << p << " handed out twice";
        Fill(p, g.size, 0x33);
        g.blocks[i] = p;
      }
    }
    for (Group &g : groups)
      for (void *p : g.blocks) {
        EXPECT_TRUE(Holds(p, g.size, 0x33)) << p;
        Free(p);
      }
  });
}

// Slabs that still hold live blocks stay, but the pages of their free blocks
// go back; the live blocks keep their contents, and the freed ones come back
// (each once, none over a live block) when the thread allocates again.
TEST(IdleTrim, SlabsWithLiveBlocksGiveBackTheirFreePages) {
  SKIP_WITHOUT_FAST_CACHE();
  hakmem_box_test::Worker w;
  constexpr size_t kBig = 20 << 10, kCount = 200;
  std::vector<void *> blocks;
  w.Run([&] {
    for (size_t i = 0; i < kCount; i++) {
      void *p = Alloc(kBig);
      ASSERT_NE(p, nullptr);
      Fill(p, kBig, static_cast<unsigned char>(i));
      blocks.push_back(p);
    }
  });
  std::vector<void *> live, freed;
  for (size_t i = 0; i < kCount; i++)
    (i % 10 == 0 ? live : freed).push_back(blocks[i]);
  for (void *p : freed)
    Free(p); // remote frees: the parked thread's bins stay empty
  const size_t slabs = SlabsInUse(live);
  TrimAll();
  EXPECT_EQ(SlabsInUse(live), slabs); // slabs with live blocks stay
  size_t gone = 0;
  for (void *p : freed)
    gone += !Resident(static_cast<char *>(p) + (10 << 10));
  EXPECT_GE(gone, freed.size() * 9 / 10);
  for (size_t i = 0; i < kCount; i += 10)
    EXPECT_TRUE(Holds(blocks[i], kBig, static_cast<unsigned char>(i))) << i;
  w.Run([&] {
    std::set<void *> seen(live.begin(), live.end());
    std::vector<void *> again;
    for (size_t i = 0; i < freed.size(); i++) {
      void *p = Alloc(kBig);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(seen.insert(p).second) << p << " handed out twice";
      for (void *q : live)
        EXPECT_FALSE(p < static_cast<char *>(q) + kBig && q < static_cast<char *>(p) + kBig);
      Fill(p, kBig, 0xee);
      again.push_back(p);
    }
    for (size_t i = 0; i < kCount; i += 10)
      EXPECT_TRUE(Holds(blocks[i], kBig, static_cast<unsigned char>(i))) << i;
    for (void *p : again)
      Free(p);
    for (void *p : live)
      Free(p);
  });
}

// 400 blocks of 20 KiB (a medium class, about 16 slabs) allocated by w.
std::vector<void *> MediumBlocksOf(hakmem_box_test::Worker &w) {
  std::vector<void *> blocks;
  w.Run([&] {
    for (size_t i = 0; i < 400; i++)
      blocks.push_back(Alloc(20 << 10));
  });
  return blocks;
}

// Frees blocks from this thread, leaving none in its own bins.
void FreeHere(const std::vector<void *> &blocks) {
  for (void *p : blocks)
    Free(p);
  FlushMyBins();
}

// Slabs of blocks still in use once the purge thread had up to 5 s.
size_t SlabsInUseAfterWaiting(const std::vector<void *> &blocks) {
  size_t now = SlabsInUse(blocks);
  for (int ms = 0; ms < 5000 && now > 0; ms += 50) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = SlabsInUse(blocks);
  }
  return now;
}

// Without malloc_trim: the purge thread trims a heap once it has been idle
// for half of HAKMEM_DECAY_MS (500 ms by default).
TEST(IdleTrim, PurgeThreadTrimsAParkedThreadsHeap) {
  SKIP_WITHOUT_FAST_CACHE();
  hakmem_box_test::Worker w;
  std::vector<void *> blocks = MediumBlocksOf(w);
  FreeHere(blocks);
  EXPECT_GE(SlabsInUse(blocks), 3u);
  EXPECT_EQ(SlabsInUseAfterWaiting(blocks), 0u);
}

// Blocks freed by another thread after the parked owner's heap was trimmed:
// the first such remote free asks for another trim, which collects them.
TEST(IdleTrim, RemoteFreesAfterATrimAreCollected) {
  SKIP_WITHOUT_FAST_CACHE();
  hakmem_box_test::Worker w;
  std::vector<void *> blocks = MediumBlocksOf(w);
  const uint64_t trimmed = Stat(hak_stats_global.slabs_trimmed);
  TrimAll(); // the owner's heap is trimmed with every block still out
  EXPECT_GE(SlabsInUse(blocks), 8u);
  FreeHere(blocks);
  EXPECT_EQ(SlabsInUseAfterWaiting(blocks), 0u);
  EXPECT_GT(Stat(hak_stats_global.slabs_trimmed), trimmed);
}

// ---- teardown and counters ---------------------------------------------------

// Allocations and frees of class cls so far, as hak_stats_get sums them:
// slow-path counts and bins' counts, live and exited heaps.
struct Totals {
  uint64_t allocs, frees, remote_frees;
};
Totals Collect(unsigned cls) {
  hak_class_counters merged[HAK_NUM_CLASSES];
  uint64_t fast_allocs[HAK_NUM_CLASSES], fast_frees[HAK_NUM_CLASSES];
  hak_thread_heap_collect_counters(merged, fast_allocs, fast_frees);
  return {merged[cls].allocs + fast_allocs[cls], merged[cls].frees + fast_frees[cls],
          merged[cls].remote_frees};
}

// A live thread's counts are summed while it runs, and kept once it exits;
// frees by another thread count as that thread's remote frees.
TEST(HeapCounters, LiveAndExitedThreadsAreSummed) {
  constexpr size_t kClassSize = 448; // a class no other test here uses
  constexpr int kBlocks = 300;
  const unsigned cls = hak_size_class_of(kClassSize);
  const Totals before = Collect(cls);
  std::vector<void *> blocks;
  {
    hakmem_box_test::Worker w;
    w.Run([&] {
      for (int i = 0; i < kBlocks; ++i)
        blocks.push_back(Alloc(kClassSize));
      for (int i = 0; i < kBlocks / 2; ++i)
        Free(blocks[i]);
    });
    Totals live = Collect(cls);
    EXPECT_EQ(live.allocs - before.allocs, static_cast<uint64_t>(kBlocks));
    EXPECT_EQ(live.frees - before.frees, static_cast<uint64_t>(kBlocks / 2));
    EXPECT_EQ(live.remote_frees, before.remote_frees);
    RunInThread([&] {
      for (int i = kBlocks / 2; i < kBlocks; ++i)
        Free(blocks[i]);
    }); // its exit drains its bins into the worker's slabs
  }
  const Totals after = Collect(cls);
  EXPECT_EQ(after.allocs - before.allocs, static_cast<uint64_t>(kBlocks));
  EXPECT_EQ(after.frees - before.frees, static_cast<uint64_t>(kBlocks));
  EXPECT_EQ(after.remote_frees - before.remote_frees, static_cast<uint64_t>(kBlocks / 2));
}

// hak_thread_heap_exit tears the heap down at once; the thread gets a new
// one on its next use.
TEST(HeapTeardown, ExitNowAndAgain) {
  const unsigned old = SetHeapStash(0);
  TrimAll();
  RunInThread([&] {
    const uint64_t live = Stat(hak_stats_global.threads_live);
    const uint64_t exited = Stat(hak_stats_global.threads_exited);
    hak_heap *h = hak_thread_heap_get();
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(hak_tls.heap, h);
    EXPECT_EQ(h->tcache, hak_tls.bins);
    EXPECT_TRUE(h->live);
    EXPECT_EQ(Stat(hak_stats_global.threads_live), live + 1);
    void *p = Alloc(kSize);
    hak_slab *s = SlabOf(p);
    EXPECT_EQ(Owner(s), h);
    hak_thread_heap_exit();
    EXPECT_EQ(hak_tls.heap, nullptr);
    EXPECT_FALSE(h->live);
    EXPECT_EQ(Stat(hak_stats_global.threads_live), live);
    EXPECT_EQ(Stat(hak_stats_global.threads_exited), exited + 1);
    // With the stash off the slab, which holds p, was abandoned.
    EXPECT_EQ(State(s), HAK_SLAB_ABANDONED);
    EXPECT_EQ(Owner(s), nullptr);
    EXPECT_EQ(hak_tls.bins->cap[hak_tcache_bin_of_class(hak_size_class_of(kSize))], 0u)
        << "the bins are closed: later frees go slow";
    Free(p); // gets the thread a heap again
    EXPECT_NE(hak_tls.heap, nullptr);
    EXPECT_EQ(Stat(hak_stats_global.threads_live), live + 1);
  });
  SetHeapStash(old);
  TrimAll();
}

// A reader that must not wait (a signal handler) gives up on the registry
// lock when its own thread holds it, and still sums the exited threads.
TEST(HeapCounters, TryLeavesLiveThreadsOutWhenItsThreadHoldsTheLock) {
  hak_class_counters merged[HAK_NUM_CLASSES];
  uint64_t fast_allocs[HAK_NUM_CLASSES], fast_frees[HAK_NUM_CLASSES];
  hak_thread_heap_registry_hold(true);
  const bool got = hak_thread_heap_collect_counters_try(merged, fast_allocs, fast_frees, 10);
  hak_thread_heap_registry_hold(false);
  EXPECT_FALSE(got);
  EXPECT_TRUE(hak_thread_heap_collect_counters_try(merged, fast_allocs, fast_frees, 10));
}

} // namespace
