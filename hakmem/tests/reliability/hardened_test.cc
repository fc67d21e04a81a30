// The hardened variant's defences, through malloc/free (override_hardened):
//  - free-list links are stored encoded with a per-process key and checked
//    whenever one is followed, so an overwritten link in a freed block stops
//    the process at the next allocation that reaches it;
//  - the last page of every SuperSlab is a guard page (PROT_NONE), so a
//    linear overflow cannot run into the next region;
//  - never-used blocks are carved in a random order, so the next block's
//    address is not predictable from the last one.
// Nothing is measured here; the cost of hardening is for the benchmarks.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/core/segmap.h"
#include "hakmem/tests/reliability/reliability_util.h"

static_assert(HAKMEM_HARDENED, "hardened_test is built against the hardened variant only");

namespace hakmem_reliability {
namespace {

const bool kThreadsafe = RegisterThreadsafeDeathTests();

const std::string kLinkOverwritten =
    Announced("victim") +
    ".*hakmem: heap corruption: the free-list link in block \\2 was overwritten\n";

// Frees a block and overwrites its first word (the encoded link), as a write
// after free or an overflow from the block below would, then allocates from
// its class until something follows the link.
void OverwriteLinkThenAllocate(size_t n, uint64_t garbage, bool flush_first) {
  void *keep = Malloc(n); // so the slab stays in use whatever happens to p
  void *p = Malloc(n);
  void *alias = Launder(p);
  Announce("victim", p);
  free(p);
  if (flush_first) {
    // The fast cache hands p back to its slab's free list, where the slab
    // layer follows the link when it next hands blocks out.
    hak_thread_flush();
  }
  memcpy(alias, &garbage, sizeof garbage);
  // The block is reached within one slab's worth of allocations at most;
  // 64 MiB is many slabs of any class.
  for (size_t i = 0; i < 64 * kMiB / n; i++) {
    if (Malloc(n) == nullptr)
      break;
  }
  Say("the overwritten link was never noticed (%p)\n", keep);
  _exit(0);
}

TEST(HardenedTest, OverwrittenLinkInFastCacheIsCaughtAtNextMalloc) {
  EXPECT_EXIT(OverwriteLinkThenAllocate(64, 0x4141414141414141ull, false),
              testing::KilledBySignal(SIGABRT), kLinkOverwritten);
}

TEST(HardenedTest, LinkOverwrittenWithZeroIsCaught) {
  // 0 is the end-of-list value before encoding; encoded, it is not.
  EXPECT_EXIT(OverwriteLinkThenAllocate(64, 0, false), testing::KilledBySignal(SIGABRT),
              kLinkOverwritten);
}

TEST(HardenedTest, OverwrittenLinkOnSlabFreeListIsCaught) {
  EXPECT_EXIT(OverwriteLinkThenAllocate(64, 0x4141414141414141ull, true),
              testing::KilledBySignal(SIGABRT), kLinkOverwritten);
  // A medium class too (512 KiB slabs).
  EXPECT_EXIT(OverwriteLinkThenAllocate(20000, 0x4141414141414141ull, true),
              testing::KilledBySignal(SIGABRT), kLinkOverwritten);
}

// A freed block overwritten with a pointer to another live block of the same
// slab (what an attacker who knows addresses but not the key would write)
// is still caught: the stored value is decoded with the key first.
TEST(HardenedTest, PlausiblePointerWrittenAsLinkIsCaught) {
  EXPECT_EXIT(
      {
        void *other = Malloc(64);
        void *p = Malloc(64);
        void *alias = Launder(p);
        Announce("victim", p);
        free(p);
        memcpy(alias, &other, sizeof other);
        for (int i = 0; i < 100000; i++) {
          if (Malloc(64) == nullptr)
            break;
        }
        _exit(0);
      },
      testing::KilledBySignal(SIGABRT), kLinkOverwritten);
}

// Touches `offset` bytes into the SuperSlab holding a fresh block of n bytes.
void TouchSuperSlab(size_t n, size_t offset) {
  char *p = static_cast<char *>(Malloc(n));
  p[0] = 0;
  char *base = reinterpret_cast<char *>(Addr(p) & ~(kSuperSlabSize - 1));
  if (!hak_owns(p) || hak_segmap_kind(base) == HAK_REGION_NONE) {
    Say("hakmem does not own %p\n", static_cast<void *>(p));
    _exit(77);
  }
  Announce("touching", base + offset);
  *Launder(base + offset) = 1;
  _exit(0);
}

TEST(HardenedTest, GuardPageEndsEverySuperSlab) {
  // Small SuperSlabs (64-byte class) and medium ones (20000 bytes).
  for (size_t n : {size_t{64}, size_t{20000}}) {
    SCOPED_TRACE(n);
    // The last byte of the region faults...
    EXPECT_EXIT(TouchSuperSlab(n, kSuperSlabSize - 1), testing::KilledBySignal(SIGSEGV),
                Announced("touching"));
    EXPECT_EXIT(TouchSuperSlab(n, kSuperSlabSize - kPageSize), testing::KilledBySignal(SIGSEGV),
                Announced("touching"));
    // ...the byte just below the guard page does not: the fault is the guard.
    EXPECT_EXIT(TouchSuperSlab(n, kSuperSlabSize - kPageSize - 1), testing::ExitedWithCode(0),
                Announced("touching"));
  }
}

// The guard page is never handed out: no block of any slab class reaches it.
TEST(HardenedTest, NoBlockOverlapsTheGuardPage) {
  for (size_t n :
       {size_t{16}, size_t{64}, size_t{1000}, size_t{8000}, size_t{20000}, size_t{100000}}) {
    SCOPED_TRACE(n);
    // Enough blocks to fill several SuperSlabs' worth of this class.
    size_t count = std::min<size_t>(3 * kSuperSlabSize / n + 16, 60000);
    std::vector<char *> blocks;
    blocks.reserve(count);
    for (size_t i = 0; i < count; i++) {
      char *p = static_cast<char *>(Malloc(n));
      ASSERT_NE(p, nullptr);
      uintptr_t offset_in_region = Addr(p) & (kSuperSlabSize - 1);
      ASSERT_LE(offset_in_region + n, kSuperSlabSize - kPageSize)
          << "block " << static_cast<void *>(p) << " of " << n << " bytes reaches the guard page";
      p[0] = 1;
      p[n - 1] = 1;
      blocks.push_back(p);
    }
    for (char *p : blocks)
      free(p);
  }
}

// The addresses a fresh thread gets for its first blocks of a class.
std::vector<uintptr_t> FirstBlocksOfFreshThread(size_t n, size_t count) {
  std::vector<uintptr_t> addrs;
  std::thread([&] {
    std::vector<void *> blocks;
    for (size_t i = 0; i < count; i++)
      blocks.push_back(Malloc(n));
    for (void *p : blocks)
      addrs.push_back(Addr(p));
    for (void *p : blocks)
      free(p);
  }).join();
  return addrs;
}

TEST(HardenedTest, CarvingOrderIsNotSequential) {
  for (size_t n : {size_t{48}, size_t{256}, size_t{2000}}) {
    SCOPED_TRACE(n);
    std::vector<uintptr_t> addrs = FirstBlocksOfFreshThread(n, 64);
    ASSERT_EQ(addrs.size(), 64u);
    EXPECT_EQ(std::set<uintptr_t>(addrs.begin(), addrs.end()).size(), addrs.size())
        << "a block was handed out twice";
    EXPECT_FALSE(std::is_sorted(addrs.begin(), addrs.end()))
        << "64 blocks of " << n << " bytes came out in increasing address order";
    EXPECT_FALSE(std::is_sorted(addrs.rbegin(), addrs.rend()))
        << "64 blocks of " << n << " bytes came out in decreasing address order";
  }
}

} // namespace
} // namespace hakmem_reliability
