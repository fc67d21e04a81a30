// Misuse of the allocator through the ordinary malloc/free names (hakmem's
// override is linked in, so they are hakmem's). A misuse must end the
// process with SIGABRT after one line naming the problem and the address:
// hakmem's report for its own memory, glibc's for pointers hakmem never
// handed out (they are passed to glibc's free).
//
// What is caught depends on the build and the options
// (docs/RELIABILITY.md has the table):
//   debug builds (the default `bazel test`, HAKMEM_DEBUG>=1): every check;
//   release: foreign pointers (glibc), frees into a slab that is not in use,
//     interior pointers of large blocks, an immediate double free (the
//     fast cache's check; see docs/RELIABILITY.md for nofastcache);
//   release + HAKMEM_CHECK=full: the debug checks except the overflow trailer.
//
// Every misuse test runs twice: with the options the build gives
// ("as_built") and with HAKMEM_CHECK=full in the environment ("check_full").
// Death tests use the "threadsafe" style: the child re-executes this binary,
// so hakmem initialises afresh there and reads HAKMEM_CHECK from its
// environment, as in a program started with the variable set. The
// ReleaseWithoutCheckFull control shows that the variable is what makes the
// difference in release builds.
//
// The child does every allocation itself, so the parent cannot know the
// address; the child announces it ("victim 0x...") and the regex requires the
// report to name the same address (\2).
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/core/segmap.h"
#include "hakmem/tests/reliability/reliability_util.h"

extern "C" size_t malloc_usable_size(void *p);

namespace hakmem_reliability {
namespace {

const bool kThreadsafe = RegisterThreadsafeDeathTests();

#define EXPECT_ABORT(statement, regex)                                                             \
  EXPECT_EXIT(statement, testing::KilledBySignal(SIGABRT), regex)

// ---- the reports, as regexes whose \2 is the announced address -------------

const std::string kVictim = Announced("victim");

// A pointer that is not the start of a block (every build).
std::string NotABlockCheap(const char *what = "free()") {
  return "hakmem: " + Literal(what) + ": invalid pointer \\2 \\(not a block hakmem handed out\\)\n";
}

std::string DoubleFree() { return "hakmem: free\\(\\): double free of \\2\n"; }

std::string WrittenAfterFree() {
  return "hakmem: heap corruption: free block \\2 was written to after it was freed\n";
}

std::string LinkOverwritten() {
  return "hakmem: heap corruption: the free-list link in block \\2 was overwritten\n";
}

std::string PastTheEnd(const char *what, size_t requested, size_t changed) {
  return "hakmem: " + Literal(what) + ": write past the end of block \\2 \\(" +
         std::to_string(requested) + " bytes requested, byte " + std::to_string(changed) +
         " changed\\)\n";
}

// hakmem's verdict on a pointer in no hakmem region that glibc does not
// vouch for either (it is never handed to glibc's free).
const std::string kForeignInvalidPointer = ".*hakmem: free\\(\\): invalid pointer \\2 \\(not a "
                                           "live block of hakmem's, nor of glibc's\\)\n";

// ---- the misuses; each runs in a death-test child ---------------------------

// Ends a child whose misuse went unnoticed, saying so.
[[noreturn]] void Unnoticed(const char *what) {
  Say("misuse not detected: %s\n", what);
  _exit(0);
}

[[noreturn]] void PreconditionFailed(const char *what) {
  Say("test precondition failed: %s\n", what);
  _exit(77);
}

void DoubleFreeImmediately(size_t n) {
  void *p = Malloc(n);
  void *again = Launder(p);
  Announce("victim", p);
  free(p);
  free(again);
}

// a, b, a: the block freed twice is not the last one freed.
void DoubleFreeLater(size_t n) {
  void *a = Malloc(n);
  void *b = Malloc(n);
  void *again = Launder(a);
  Announce("victim", a);
  free(a);
  free(b);
  free(again);
}

// glibc reads the word before the pointer as its chunk size; these arrays make
// it 0, which glibc rejects as "free(): invalid pointer" (rather than reading
// whatever the stack held there).
alignas(16) uint64_t g_global_words[4];

void FreeStackAddress() {
  alignas(16) uint64_t words[4] = {0, 0, 0, 0};
  void *p = Launder(static_cast<void *>(&words[2]));
  Announce("victim", p);
  free(p);
}

void FreeGlobalAddress() {
  void *p = Launder(static_cast<void *>(&g_global_words[2]));
  Announce("victim", p);
  free(p);
}

// A page inside a mapping hakmem knows nothing about (the word before it is
// mapped and 0).
void FreeIntoForeignMapping() {
  void *m =
      mmap(nullptr, 2 * kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    PreconditionFailed("mmap");
  char *p = static_cast<char *>(m) + kPageSize;
  if (hak_segmap_kind(p) != HAK_REGION_NONE)
    PreconditionFailed("hakmem claims a mapping it did not make");
  Announce("victim", p);
  free(p);
}

void FreeInteriorPointer(size_t n, size_t offset) {
  char *p = static_cast<char *>(Malloc(n));
  Announce("victim", p + offset);
  free(Launder(p + offset));
  Unnoticed("free of an interior pointer");
}

// A block whose slab has gone back to the shared pool: a slab's worth of
// 6000-byte blocks and more are allocated and freed, the fast cache is
// flushed, and every slab of the class but the active one is released. The
// first block is then freed again.
void FreeIntoReleasedSlab() {
  constexpr size_t kSize = 6000; // the 6 KiB class: 10 blocks per 64 KiB slab
  constexpr int kBlocks = 40;
  void *blocks[kBlocks];
  for (int i = 0; i < kBlocks; i++)
    blocks[i] = Malloc(kSize);
  void *p = Launder(blocks[0]);
  for (int i = 0; i < kBlocks; i++)
    free(blocks[i]);
  hak_thread_flush();
  // The SuperSlab must still be mapped (other slabs keep it), or the pointer
  // is simply foreign.
  if (hak_segmap_kind(p) == HAK_REGION_NONE)
    PreconditionFailed("the SuperSlab of the first slab was unmapped");
  Announce("victim", p);
  free(Launder(p));
  Unnoticed("free into a released slab");
}

void FreeAfterReallocMoved(size_t from, size_t to) {
  void *p = Malloc(from);
  void *old = Launder(p);
  void *q = Realloc(p, to);
  if (q == nullptr || q == old)
    PreconditionFailed("realloc did not move the block");
  Announce("victim", old);
  free(old);
  Unnoticed("free of the old block after realloc moved it");
}

void ReallocOfFreedBlock() {
  void *p = Malloc(100);
  void *again = Launder(p);
  Announce("victim", p);
  free(p);
  void *q = Realloc(again, 1000);
  Say("realloc returned %p\n", q);
  Unnoticed("realloc of a freed block");
}

// Changes byte k (>= n) of an n-byte block, then frees it.
void WritePastEnd(size_t n, size_t k, bool by_realloc) {
  unsigned char *p = static_cast<unsigned char *>(Malloc(n));
  Announce("victim", p);
  Launder(p)[k] ^= 0xFF;
  if (by_realloc) {
    void *q = Realloc(p, 4000);
    Say("realloc returned %p\n", q);
  } else {
    free(p);
  }
  Unnoticed("write past the end");
}

// Overwrites 8 bytes at `offset` of a freed block, then asks for blocks of
// its size class until the freed one is handed out again.
void WriteAfterFree(size_t n, size_t offset) {
  unsigned char *p = static_cast<unsigned char *>(Malloc(n));
  unsigned char *alias = Launder(p);
  Announce("victim", p);
  free(p);
  memset(alias + offset, 0x5A, 8);
  void *a = Malloc(n); // the block freed last comes back first
  void *b = Malloc(n);
  Say("handed out %p and %p\n", a, b);
  Unnoticed("write after free");
}

// ---- tests -------------------------------------------------------------------

enum class Options { kAsBuilt, kCheckFull };

class MisuseTest : public testing::TestWithParam<Options> {
protected:
  void SetUp() override {
    if (GetParam() == Options::kCheckFull)
      env_.emplace("HAKMEM_CHECK", "full");
  }

  // Every free checked, every hand-out checked (debug builds, or HAKMEM_CHECK=full).
  bool FullChecks() const {
    return kDebugChecks || Hardened() || GetParam() == Options::kCheckFull;
  }

  std::optional<ScopedEnv> env_;
};

// Neither HAKMEM_CHECK=full nor a debug build: only the cheap checks run.
#define SKIP_WITHOUT_FULL_CHECKS(what)                                                             \
  if (!FullChecks()) {                                                                             \
    GTEST_SKIP() << what << " is caught only in debug builds or with HAKMEM_CHECK=full ("          \
                 << BuildName() << " build, options as built)";                                    \
  }

TEST_P(MisuseTest, ImmediateDoubleFreeOfSmallBlock) {
  EXPECT_ABORT(DoubleFreeImmediately(48), kVictim + ".*" + DoubleFree());
}

TEST_P(MisuseTest, ImmediateDoubleFreeOfMediumBlock) {
  EXPECT_ABORT(DoubleFreeImmediately(20000), kVictim + ".*" + DoubleFree());
}

TEST_P(MisuseTest, DoubleFreeOfEarlierBlock) {
  EXPECT_ABORT(DoubleFreeLater(48), kVictim + ".*" + DoubleFree());
  EXPECT_ABORT(DoubleFreeLater(3000), kVictim + ".*" + DoubleFree());
}

// Large blocks have no free mark: once freed, the mapping leaves hakmem's
// segment map and the pointer is foreign; glibc holds no block, so nothing
// vouches for it and the second free is reported.
TEST_P(MisuseTest, DoubleFreeOfLargeBlockIsReported) {
  EXPECT_ABORT(DoubleFreeImmediately(1 * kMiB), kVictim + kForeignInvalidPointer);
}

// With HAKMEM_DECAY_MS=0 the mapping is unmapped at the first free: the
// pointer is then not even mapped, and is reported all the same (nothing
// reads through it).
TEST_P(MisuseTest, DoubleFreeOfUnmappedLargeBlockIsReported) {
  ScopedEnv decay("HAKMEM_DECAY_MS", "0");
  EXPECT_ABORT(DoubleFreeImmediately(1 * kMiB), kVictim + kForeignInvalidPointer);
}

TEST_P(MisuseTest, FreeOfStackAddress) {
  EXPECT_ABORT(FreeStackAddress(), kVictim + kForeignInvalidPointer);
}

TEST_P(MisuseTest, FreeOfGlobal) {
  EXPECT_ABORT(FreeGlobalAddress(), kVictim + kForeignInvalidPointer);
}

TEST_P(MisuseTest, FreeIntoForeignMapping) {
  EXPECT_ABORT(FreeIntoForeignMapping(), kVictim + kForeignInvalidPointer);
}

TEST_P(MisuseTest, FreeOfInteriorPointerOfSlabBlock) {
  EXPECT_ABORT(FreeInteriorPointer(64, 16), kVictim + ".*" + NotABlockCheap());
  EXPECT_ABORT(FreeInteriorPointer(64, 1), kVictim + ".*" + NotABlockCheap());
  EXPECT_ABORT(FreeInteriorPointer(20000, 4096), kVictim + ".*" + NotABlockCheap());
}

// Every build: a large pointer must match its mapping's header exactly.
TEST_P(MisuseTest, FreeOfInteriorPointerOfLargeBlock) {
  EXPECT_ABORT(FreeInteriorPointer(1 * kMiB, 4096), kVictim + ".*" + NotABlockCheap());
  // In a later 2 MiB region of a 5 MiB mapping.
  EXPECT_ABORT(FreeInteriorPointer(5 * kMiB, 3 * kMiB), kVictim + ".*" + NotABlockCheap());
}

// Every build: the slab of the block is no longer in use.
TEST_P(MisuseTest, FreeIntoReleasedSlab) {
  EXPECT_ABORT(FreeIntoReleasedSlab(), kVictim + ".*" + NotABlockCheap());
}

// The old block was freed by realloc: freeing it again is an immediate
// double free.
TEST_P(MisuseTest, FreeAfterReallocMovedTheBlock) {
  EXPECT_ABORT(FreeAfterReallocMoved(32, 4096), kVictim + ".*" + DoubleFree());
  EXPECT_ABORT(FreeAfterReallocMoved(32, 1 * kMiB), kVictim + ".*" + DoubleFree());
}

// realloc of a freed block is caught before anything is copied or freed.
TEST_P(MisuseTest, ReallocOfFreedBlock) {
  EXPECT_ABORT(ReallocOfFreedBlock(),
               kVictim + ".*" + "hakmem: realloc\\(\\): block already freed: \\2\n");
}

TEST_P(MisuseTest, WritePastTheEnd) {
  if (!kDebugChecks && !Hardened()) {
    GTEST_SKIP() << "the overflow trailer exists only in debug and hardened builds (" << BuildName()
                 << " build)";
  }
  // 20 bytes in a 32-byte block (24 usable + the 8-byte size record).
  EXPECT_ABORT(WritePastEnd(20, 20, false), kVictim + ".*" + PastTheEnd("free()", 20, 20));
  EXPECT_ABORT(WritePastEnd(100, 103, false), kVictim + ".*" + PastTheEnd("free()", 100, 103));
  EXPECT_ABORT(WritePastEnd(20000, 20000, false),
               kVictim + ".*" + PastTheEnd("free()", 20000, 20000));
  EXPECT_ABORT(WritePastEnd(20, 21, true), kVictim + ".*" + PastTheEnd("realloc()", 20, 21));
  // 24 bytes fill the block up to the size record; its top byte is hit.
  EXPECT_ABORT(WritePastEnd(24, 31, false),
               kVictim + ".*" +
                   "hakmem: free\\(\\): write past the end of block \\(size record damaged\\): "
                   "\\2\n");
}

// Debug builds: malloc_usable_size is the size asked for, so that code
// trusting it stays inside the checked area; writing all of it is fine.
TEST_P(MisuseTest, UsableSizeStaysInsideTheCheckedArea) {
  for (size_t n : {size_t{1}, size_t{20}, size_t{24}, size_t{100}, size_t{5000}, size_t{20000}}) {
    unsigned char *p = static_cast<unsigned char *>(Malloc(n));
    ASSERT_NE(p, nullptr);
    size_t usable = malloc_usable_size(p);
    if (kDebugChecks || Hardened()) {
      EXPECT_EQ(usable, n);
    } else {
      EXPECT_GE(usable, n);
    }
    memset(p, 0x33, usable);
    free(p);
  }
}

// The second word of a freed block carries the free mark.
TEST_P(MisuseTest, WriteAfterFreeIntoSecondWord) {
  SKIP_WITHOUT_FULL_CHECKS("a write into a freed block");
  EXPECT_ABORT(WriteAfterFree(48, 8), kVictim + ".*" + WrittenAfterFree());
  EXPECT_ABORT(WriteAfterFree(3000, 8), kVictim + ".*" + WrittenAfterFree());
}

// The first word of a freed block is its free-list link. The hardened variant
// checks every link it follows; the checked builds must report the write
// when the block is handed out again, before the damaged link is followed.
TEST_P(MisuseTest, WriteAfterFreeIntoFirstWord) {
  if (Hardened()) {
    EXPECT_ABORT(WriteAfterFree(48, 0), kVictim + ".*" + LinkOverwritten());
    return;
  }
  SKIP_WITHOUT_FULL_CHECKS("a write into a freed block");
  EXPECT_ABORT(WriteAfterFree(48, 0), kVictim + ".*" + WrittenAfterFree());
}

std::string OptionsName(const testing::TestParamInfo<Options> &info) {
  return info.param == Options::kAsBuilt ? "as_built" : "check_full";
}

INSTANTIATE_TEST_SUITE_P(Options, MisuseTest,
                         testing::Values(Options::kAsBuilt, Options::kCheckFull), OptionsName);

// A release build without HAKMEM_CHECK=full catches the a, b, a double free
// too: the free mark makes it an O(1) check on the hit path.
TEST(ReleaseWithoutCheckFull, EarlierBlockDoubleFreeIsCaught) {
  if (!kReleaseBuild)
    GTEST_SKIP() << "debug builds check every free";
  ScopedEnv unset("HAKMEM_CHECK", std::nullopt);
  EXPECT_ABORT(DoubleFreeLater(48), kVictim + ".*" + DoubleFree());
  EXPECT_ABORT(DoubleFreeLater(3000), kVictim + ".*" + DoubleFree());
}

// The checking level (HAKMEM_CHECK) decides whether the overflow trailer is
// checked: at cheap and full it is; at off it is not, except in the hardened
// variant, which never goes below cheap.
TEST(CheckLevel, TrailerIsCheckedAtCheapAndFullNotAtOff) {
  if (!kDebugChecks && !Hardened()) {
    GTEST_SKIP() << "the overflow trailer exists only in debug and hardened builds (" << BuildName()
                 << " build)";
  }
  for (const char *level : {"cheap", "full"}) {
    ScopedEnv env("HAKMEM_CHECK", level);
    EXPECT_ABORT(WritePastEnd(100, 103, false), kVictim + ".*" + PastTheEnd("free()", 100, 103))
        << "HAKMEM_CHECK=" << level;
  }
  ScopedEnv off("HAKMEM_CHECK", "off");
  if (Hardened()) {
    EXPECT_ABORT(WritePastEnd(100, 103, false), kVictim + ".*" + PastTheEnd("free()", 100, 103));
  } else {
    EXPECT_EXIT(WritePastEnd(100, 103, false), testing::ExitedWithCode(0),
                "misuse not detected: write past the end");
  }
}

// Every level still catches what the fast paths check: a double free.
TEST(CheckLevel, EveryLevelCatchesADoubleFree) {
  for (const char *level : {"off", "cheap", "full"}) {
    ScopedEnv env("HAKMEM_CHECK", level);
    EXPECT_ABORT(DoubleFreeLater(48), kVictim + ".*" + DoubleFree()) << "HAKMEM_CHECK=" << level;
  }
}

// A value hakmem does not know is refused with a warning; the build's level
// stays (so a debug build still reports the overflow).
TEST(CheckLevel, UnknownValueKeepsTheDefault) {
  if (!kDebugChecks && !Hardened())
    GTEST_SKIP() << "needs the overflow trailer (" << BuildName() << " build)";
  ScopedEnv env("HAKMEM_CHECK", "paranoid");
  EXPECT_ABORT(WritePastEnd(100, 103, false),
               "bad value in HAKMEM_CHECK.*" + kVictim + ".*" + PastTheEnd("free()", 100, 103));
}

// The library's view of the build must be the test's: the build mode the
// source was compiled for, and the variant the BUILD file made this test for
// (VARIANT_UNDER_TEST), which every expectation above takes from the library.
TEST(BuildProbe, LibraryWasBuiltAsTheTestAssumes) {
  const hak_build_info b = LinkedBuild();
  EXPECT_EQ(b.release != 0, kReleaseBuild);
  EXPECT_EQ(b.debug_checks != 0, kDebugChecks);
  const char *variant = getenv("VARIANT_UNDER_TEST");
  ASSERT_NE(variant, nullptr);
  const std::string name = variant;
  EXPECT_EQ(FastCache(), name.find("nofastcache") == std::string::npos) << name;
  EXPECT_EQ(Hardened(), name.find("hardened") != std::string::npos) << name;
  // The report says the same.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  hak_stats_print_json(fds[1]);
  close(fds[1]);
  std::string json;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;)
    json.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  EXPECT_NE(json.find(kReleaseBuild ? "\"build\":\"release\"" : "\"build\":\"debug\""),
            std::string::npos)
      << json.substr(0, 120);
  EXPECT_NE(json.find(FastCache() ? "\"fast_cache\":true" : "\"fast_cache\":false"),
            std::string::npos)
      << json.substr(0, 120);
}

} // namespace
} // namespace hakmem_reliability
