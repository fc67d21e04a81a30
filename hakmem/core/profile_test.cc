// Unit test of the heap profiler box: the options, the weights of samples,
// the live table and its slab callback, stacks through frames
// without frame pointers, and the gzip/pprof file it writes.
#include "hakmem/core/profile.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/core/include/hakmem.h"
#include "hakmem/core/options.h"

namespace {

void EnableProfiler(uint64_t rate) {
  static bool done = false;
  if (done)
    return;
  done = true;
  hak_options_defaults(&hak_options_current);
  char prof[] = "HAKMEM_PROF=1";
  std::string sample = "HAKMEM_PROF_SAMPLE=" + std::to_string(rate);
  char *env[] = {prof, sample.data(), nullptr};
  ASSERT_EQ(hak_options_parse(&hak_options_current, env), 0);
  hak_profile_init();
  ASSERT_TRUE(hak_profile_enabled);
}

constexpr uint64_t kRate = 4096;

TEST(ProfileOptions, ParsesAndRefuses) {
  hak_options o;
  hak_options_defaults(&o);
  EXPECT_EQ(o.prof, 0);
  EXPECT_EQ(o.prof_sample, 512u * 1024u);
  EXPECT_STREQ(o.prof_file, "hakmem.%p.heap");
  char a[] = "HAKMEM_PROF=1", b[] = "HAKMEM_PROF_SAMPLE=1000", c[] = "HAKMEM_PROF_FILE=/tmp/x.%p",
       d[] = "HAKMEM_PROF_SIGNAL=USR2";
  char *good[] = {a, b, c, d, nullptr};
  EXPECT_EQ(hak_options_parse(&o, good), 0);
  EXPECT_EQ(o.prof, 1);
  EXPECT_EQ(o.prof_sample, 1000u);
  EXPECT_STREQ(o.prof_file, "/tmp/x.%p");
  EXPECT_GT(o.prof_signal, 0);
  char e[] = "HAKMEM_PROF=2", f[] = "HAKMEM_PROF_SAMPLE=0",
       g[] = "HAKMEM_PROF_FILE=", h[] = "HAKMEM_PROF_SIGNAL=SEGV", i[] = "HAKMEM_PROF_SAMPLE=12k";
  char *bad[] = {e, f, g, h, i, nullptr};
  EXPECT_EQ(hak_options_parse(&o, bad), 5);
  EXPECT_EQ(o.prof, 1); // defaults kept
  EXPECT_EQ(o.prof_sample, 1000u);
}

TEST(Profile, WeightIsTheInverseOfTheChanceOfASample) {
  EnableProfiler(kRate);
  EXPECT_NEAR(hak_profile_weight(1 << 30), 1.0, 1e-9);
  EXPECT_NEAR(hak_profile_weight(1), (double)kRate, 1.0);
}

int g_changes[3];
void SlabChanged(void *arg, const void *p, int event) {
  EXPECT_EQ(arg, &g_changes);
  EXPECT_EQ(p == nullptr, event == HAK_PROF_SLAB_CLEAR);
  g_changes[event]++;
}

TEST(Profile, LiveTableMatchesFreesAndTellsTheSlab) {
  EnableProfiler(kRate);
  size_t before = hak_profile_live_count();
  static char blocks[4][64];
  uint16_t live = 0;
  char live_mark = 0;
  g_changes[0] = g_changes[1] = g_changes[2] = 0;
  hak_profile_record(blocks[0], 64, &live_mark, &live, SlabChanged, &g_changes);
  hak_profile_record(blocks[1], 64, &live_mark, &live, SlabChanged, &g_changes);
  EXPECT_EQ(live, 2);
  EXPECT_EQ(g_changes[HAK_PROF_SLAB_FIRST], 1);
  EXPECT_EQ(g_changes[HAK_PROF_SLAB_ADD], 1);
  EXPECT_EQ(hak_profile_live_count(), before + 2);
  hak_profile_free(blocks[2], &live, SlabChanged, &g_changes); // never sampled
  EXPECT_EQ(live, 2);
  hak_profile_free(blocks[0], &live, SlabChanged, &g_changes);
  EXPECT_EQ(g_changes[0], 0);
  hak_profile_free(blocks[1], &live, SlabChanged, &g_changes);
  EXPECT_EQ(live, 0);
  EXPECT_EQ(g_changes[0], 1);
  EXPECT_EQ(hak_profile_live_count(), before);
  // Many addresses colliding in the table, removed in another order.
  std::vector<char> big(1 << 16);
  for (size_t k = 0; k < big.size(); k += 16)
    hak_profile_record(&big[k], 16, &live_mark, nullptr, nullptr, nullptr);
  EXPECT_EQ(hak_profile_live_count(), before + big.size() / 16);
  for (size_t k = big.size(); k > 0; k -= 32)
    hak_profile_free(&big[k - 16], nullptr, nullptr, nullptr);
  for (size_t k = 0; k < big.size(); k += 32)
    hak_profile_free(&big[k], nullptr, nullptr, nullptr);
  EXPECT_EQ(hak_profile_live_count(), before);
}

// A call chain compiled without frame pointers: the unwinder must walk
// through it from the leaf to this test.
extern "C" __attribute__((noinline, optimize("omit-frame-pointer"))) void *NoFpLeaf(int depth) {
  static char block[64 * 64];
  void *p = &block[64 * (depth % 64)];
  char mark = 0;
  hak_profile_record(p, 64, &mark, nullptr, nullptr, nullptr);
  __asm__ volatile("" ::: "memory");
  return p;
}
extern "C" __attribute__((noinline, optimize("omit-frame-pointer"))) void *NoFpChain(int depth) {
  void *p = depth == 0 ? NoFpLeaf(depth) : NoFpChain(depth - 1);
  __asm__ volatile("" ::: "memory"); // no tail call
  return p;
}

TEST(Profile, StacksWalkThroughFramesWithoutFramePointers) {
  EnableProfiler(kRate);
  size_t stacks = hak_profile_stack_count();
  NoFpChain(40); // 41 frames of NoFpChain above NoFpLeaf, deeper than the 32 asked for
  ASSERT_EQ(hak_profile_stack_count(), stacks + 1);
  // NoFpLeaf (which holds the mark) is left out; the stack starts in NoFpChain
  // and goes through all of its frames.
  unsigned depth = hak_profile_stack_depth(stacks);
  EXPECT_GE(depth, 42u);
  uintptr_t chain = reinterpret_cast<uintptr_t>(&NoFpChain);
  for (unsigned j = 0; j < 41; j++) {
    uintptr_t pc = hak_profile_stack_frame(stacks, j);
    EXPECT_GT(pc, chain) << j;
    EXPECT_LT(pc, chain + 256) << j; // a return address inside NoFpChain
  }
  // Dump and check the file names this test's binary (the stack reached it).
  std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/profile_test.heap";
  ASSERT_EQ(hak_prof_dump(path.c_str()), 0) << strerror(errno);
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<unsigned char> file(1 << 24);
  ssize_t n = read(fd, file.data(), file.size());
  close(fd);
  ASSERT_GT(n, 18);
  EXPECT_EQ(file[0], 0x1f);
  EXPECT_EQ(file[1], 0x8b);
  // Stored blocks: the payload is readable in place; walk them.
  std::string payload;
  size_t at = 10;
  for (;;) {
    ASSERT_LE(at + 5, (size_t)n);
    bool final = file[at] & 1;
    size_t len = file[at + 1] | file[at + 2] << 8;
    ASSERT_EQ(len ^ 0xffff, (size_t)(file[at + 3] | file[at + 4] << 8));
    payload.append((const char *)&file[at + 5], len);
    at += 5 + len;
    if (final)
      break;
  }
  EXPECT_EQ(at + 8, (size_t)n);
  uint32_t isize =
      file[at + 4] | file[at + 5] << 8 | file[at + 6] << 16 | (uint32_t)file[at + 7] << 24;
  EXPECT_EQ(isize, payload.size());
  EXPECT_NE(payload.find("alloc_space"), std::string::npos);
  EXPECT_NE(payload.find("inuse_space"), std::string::npos);
  EXPECT_NE(payload.find("profile_test"), std::string::npos); // the binary's mapping
}

TEST(Profile, DumpReportsErrors) {
  EnableProfiler(kRate);
  errno = 0;
  EXPECT_EQ(hak_prof_dump("/nonexistent-dir/x.heap"), -1);
  EXPECT_EQ(errno, ENOENT);
}

} // namespace
