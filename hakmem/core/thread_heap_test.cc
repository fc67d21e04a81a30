// The heap stash: a thread that exits leaves its heap whole, and the next new
// thread takes it over, so that its first allocation finds blocks at once,
// takes no pool lock and makes no system call.
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
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem.h"

extern "C" {
void *th_heap(void);
void *th_slab_of(const void *p);
void *th_owner(const void *s);
unsigned th_state(const void *s);
unsigned th_state_abandoned(void);
unsigned th_state_free(void);
uint64_t th_superslabs_total(void);
}

namespace {

using hakmem_box_test::RunInThread;

constexpr size_t kSize = 200;

hak_stats Stats() {
  hak_stats s;
  hak_stats_get(&s);
  return s;
}

// Stash on and empty; a thread allocates one block and exits. Returns the
// block, whose slab the stashed heap keeps.
void *BlockLeftInStash() {
  box_set_heap_stash(4);
  hak_trim(0); // retires whatever earlier threads stashed
  void *left = nullptr;
  RunInThread([&] { left = hak_malloc(kSize); });
  EXPECT_NE(th_state(th_slab_of(left)), th_state_abandoned());
  return left;
}

TEST(HeapStash, NewThreadTakesOverTheExitedThreadsHeap) {
  box_set_heap_stash(4);
  hak_trim(0); // retires whatever earlier threads stashed
  std::vector<void *> kept;
  void *first_heap = nullptr;
  RunInThread([&] {
    first_heap = th_heap();
    for (int i = 0; i < 20; ++i)
      kept.push_back(hak_malloc(kSize));
  });
  void *slab = th_slab_of(kept[0]);
  ASSERT_NE(slab, nullptr);
  EXPECT_EQ(th_owner(slab), first_heap) << "the exited thread's slab stays with its heap";
  EXPECT_NE(th_state(slab), th_state_abandoned());
  const hak_stats before = Stats();

  RunInThread([&] {
    void *p = hak_malloc(kSize);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(th_heap(), first_heap) << "the new thread took the stashed heap";
    EXPECT_EQ(th_slab_of(p), slab) << "and allocates from its slab at once";
    hak_free(p);
  });
  const hak_stats after = Stats();
  EXPECT_EQ(after.heaps_reused - before.heaps_reused, 1u);
  EXPECT_EQ(after.superslabs_total, before.superslabs_total);
  EXPECT_EQ(after.abandoned_slabs, before.abandoned_slabs);
  EXPECT_EQ(after.adopted_slabs, before.adopted_slabs);
  for (void *p : kept)
    hak_free(p);
}

TEST(HeapStash, TrimRetiresStashedHeaps) {
  void *left = BlockLeftInStash();
  void *slab = th_slab_of(left);
  hak_trim(0);
  EXPECT_EQ(th_state(slab), th_state_abandoned()) << "trim gives the stashed heap's slabs up";
  EXPECT_EQ(th_owner(slab), nullptr);
  hak_free(left);
  hak_trim(0);
}

TEST(HeapStash, OffMeansAbandonAtExit) {
  const unsigned old = box_set_heap_stash(0);
  hak_trim(0);
  void *left = nullptr;
  RunInThread([&] { left = hak_malloc(kSize); });
  EXPECT_EQ(th_state(th_slab_of(left)), th_state_abandoned());
  hak_free(left);
  box_set_heap_stash(old);
  hak_trim(0);
}

TEST(HeapStash, StashedHeapRetiresWhenIdle) {
  void *left = BlockLeftInStash();
  void *slab = th_slab_of(left);
  // The purge thread (or the next slow path) retires it after the decay
  // time (500 ms by default); allow a noisy machine ten times that.
  bool retired = false;
  for (int i = 0; i < 500 && !retired; ++i) {
    usleep(10000);
    void *p = hak_malloc(100000); // a slow path, in case the purge thread is off
    hak_free(p);
    retired = th_state(slab) == th_state_abandoned();
  }
  EXPECT_TRUE(retired);
  hak_free(left);
  hak_trim(0);
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
        hak_free(hak_malloc(n));
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
  box_set_heap_stash(4);
  hak_trim(0);
  const int status = FirstCallsOfNewThread([]() -> void * { return hak_malloc(200); });
  if (status == 77)
    GTEST_SKIP() << "seccomp filters are not available here";
  EXPECT_EQ(status, 0)
      << "3: malloc failed; 10+n: the first allocation made system call n (mod 100)";
}

// The check above can fail: a call that needs the OS is caught.
TEST(HeapStash, SystemCallCheckCatchesAMapping) {
  const int status = FirstCallsOfNewThread([]() -> void * {
    void *p = hak_malloc(64u << 20); // a fresh large mapping: mmap
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
  std::set<void *> slabs;
  for (void *p : blocks) {
    void *s = th_slab_of(p);
    if (s != nullptr && th_state(s) != th_state_free()) // null: its SuperSlab went back
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
        void *p = hak_malloc(g.size);
        ASSERT_NE(p, nullptr);
        Fill(p, g.size, 0x5a);
        g.blocks.push_back(p);
      }
  });
  std::vector<size_t> before;
  for (Group &g : groups) {
    before.push_back(SlabsInUse(g.blocks));
    for (size_t i = 0; i < g.count; i += 2)
      hak_free(g.blocks[i]); // remote frees into the parked thread's slabs
  }
  w.Run([&] {
    for (Group &g : groups)
      for (size_t i = 1; i < g.count; i += 2)
        hak_free(g.blocks[i]);
  });
  const uint64_t trimmed = Stats().slabs_trimmed;
  hak_trim(0);
  EXPECT_GT(Stats().slabs_trimmed, trimmed);
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
        void *p = hak_malloc(g.size);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(seen.insert(p).second) << p << " handed out twice";
        Fill(p, g.size, 0x33);
        g.blocks[i] = p;
      }
    }
    for (Group &g : groups)
      for (void *p : g.blocks) {
        EXPECT_TRUE(Holds(p, g.size, 0x33)) << p;
        hak_free(p);
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
      void *p = hak_malloc(kBig);
      ASSERT_NE(p, nullptr);
      Fill(p, kBig, static_cast<unsigned char>(i));
      blocks.push_back(p);
    }
  });
  std::vector<void *> live, freed;
  for (size_t i = 0; i < kCount; i++)
    (i % 10 == 0 ? live : freed).push_back(blocks[i]);
  for (void *p : freed)
    hak_free(p); // remote frees: the parked thread's bins stay empty
  const size_t slabs = SlabsInUse(live);
  hak_trim(0);
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
      void *p = hak_malloc(kBig);
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
      hak_free(p);
    for (void *p : live)
      hak_free(p);
  });
}

// 400 blocks of 20 KiB (a medium class, about 16 slabs) allocated by w.
std::vector<void *> MediumBlocksOf(hakmem_box_test::Worker &w) {
  std::vector<void *> blocks;
  w.Run([&] {
    for (size_t i = 0; i < 400; i++)
      blocks.push_back(hak_malloc(20 << 10));
  });
  return blocks;
}

// Frees blocks from this thread, leaving none in its own bins.
void FreeHere(const std::vector<void *> &blocks) {
  for (void *p : blocks)
    hak_free(p);
  hak_thread_flush();
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
  const uint64_t trimmed = Stats().slabs_trimmed;
  hak_trim(0); // the owner's heap is trimmed with every block still out
  EXPECT_GE(SlabsInUse(blocks), 8u);
  FreeHere(blocks);
  EXPECT_EQ(SlabsInUseAfterWaiting(blocks), 0u);
  EXPECT_GT(Stats().slabs_trimmed, trimmed);
}

} // namespace
