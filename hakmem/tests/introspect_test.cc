// glibc's introspection calls as the override library exports them
// (mallinfo2, mallinfo, malloc_stats, malloc_info, mallopt): glibc's
// documented semantics, and figures that agree with hak_stats_get taken at
// the same moment. Then the statistics report on a signal
// (HAKMEM_STATS_SIGNAL=USR2, HAKMEM_STATS_FD=kReportFd: see BUILD).
//
// The purge thread is off and the decay time an hour (BUILD), so that no
// memory moves between two readings of the statistics; nothing in this test
// allocates between the readings it compares.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem.h"
#include "hakmem/core/introspect.h"
#include "hakmem/core/maintenance.h"
#include "hakmem/core/options.h"
#include "hakmem/core/stats_report.h"
#include "hakmem/core/thread_heap.h"
#include "hakmem/tests/test_util.h"

namespace {

// The options are loaded by hak_maintenance_init: read or switch them only afterwards.
int StatsSignal() {
  hak_maintenance_init();
  return hak_options_current.stats_signal;
}

int StatsFd() {
  hak_maintenance_init();
  return hak_options_current.stats_fd;
}

// Sets the report format (JSON or text); returns whether it was JSON.
bool SetStatsJson(bool json) {
  hak_maintenance_init();
  const bool old = hak_options_current.stats == HAK_STATS_JSON;
  hak_options_current.stats = json ? HAK_STATS_JSON : HAK_STATS_OFF;
  return old;
}

// The arena reads its bound from any thread: atomic accesses.
size_t ArenaCacheBytes() {
  hak_maintenance_init();
  return __atomic_load_n(&hak_options_current.arena_cache_bytes, __ATOMIC_RELAXED);
}

void SetArenaCacheBytes(size_t bytes) {
  __atomic_store_n(&hak_options_current.arena_cache_bytes, bytes, __ATOMIC_RELAXED);
}

} // namespace

namespace hakmem_test {
namespace {

constexpr size_t kSuperSlab = 2 * kMiB;
constexpr size_t kFastMax = 128; // smblks: classes up to glibc's default M_MXFAST
constexpr int kReportFd = 97;    // HAKMEM_STATS_FD in BUILD

uint64_t Live(const hak_class_stats &k) { return k.allocs > k.frees ? k.allocs - k.frees : 0; }
uint64_t FreeBlocks(const hak_class_stats &k) {
  return k.capacity > Live(k) ? k.capacity - Live(k) : 0;
}

// What README.md says each mallinfo2 field is, computed from a snapshot.
struct mallinfo2 Expected(const hak_stats &s) {
  struct mallinfo2 m;
  memset(&m, 0, sizeof m);
  for (uint32_t c = 0; c < s.num_classes; c++) {
    const hak_class_stats &k = s.classes[c];
    m.uordblks += Live(k) * k.block_size;
    if (k.block_size <= kFastMax) {
      m.smblks += FreeBlocks(k);
      m.fsmblks += FreeBlocks(k) * k.block_size;
    } else {
      m.ordblks += FreeBlocks(k);
    }
  }
  m.arena = s.superslabs * kSuperSlab;
  m.fordblks = m.arena - m.uordblks;
  m.hblks = s.large_allocs - s.large_frees;
  m.hblkhd = s.large_live_bytes;
  m.keepcost = s.cached_bytes;
  return m;
}

void ExpectSame(const struct mallinfo2 &got, const struct mallinfo2 &want) {
  EXPECT_EQ(got.arena, want.arena);
  EXPECT_EQ(got.ordblks, want.ordblks);
  EXPECT_EQ(got.smblks, want.smblks);
  EXPECT_EQ(got.hblks, want.hblks);
  EXPECT_EQ(got.hblkhd, want.hblkhd);
  EXPECT_EQ(got.usmblks, 0u);
  EXPECT_EQ(got.fsmblks, want.fsmblks);
  EXPECT_EQ(got.uordblks, want.uordblks);
  EXPECT_EQ(got.fordblks, want.fordblks);
  EXPECT_EQ(got.keepcost, want.keepcost);
}

// mallinfo2 and hak_stats_get taken back to back (nothing allocates between).
struct mallinfo2 Snapshot(hak_stats *s) {
  hak_stats_get(s);
  return mallinfo2();
}

TEST(Mallinfo2, AgreesWithStatsAtTheSameMoment) {
  hak_stats s;
  struct mallinfo2 m = Snapshot(&s);
  ExpectSame(m, Expected(s));
  // Blocks handed out fit in the slabs; what is not handed out is free.
  for (uint32_t c = 0; c < s.num_classes; c++)
    EXPECT_LE(Live(s.classes[c]), s.classes[c].capacity) << "class " << c;
  EXPECT_EQ(m.arena, m.uordblks + m.fordblks);
  EXPECT_LE(m.fsmblks, m.fordblks);
}

TEST(Mallinfo2, UordblksFollowsSmallBlocksWithinTheirRounding) {
  constexpr size_t kCount = 1000, kSize = 100;
  std::vector<void *> blocks(kCount);
  hak_stats s0, s1, s2;
  struct mallinfo2 before = Snapshot(&s0);
  for (auto &p : blocks) {
    p = malloc(kSize);
    ASSERT_NE(p, nullptr);
  }
  struct mallinfo2 during = Snapshot(&s1);
  ExpectSame(during, Expected(s1));
  // Each block counts its class's size: at least what was asked for, at
  // most a quarter more (plus the debug builds' 8-byte trailer).
  const size_t grew = during.uordblks - before.uordblks;
  EXPECT_GE(grew, kCount * kSize);
  EXPECT_LE(grew, kCount * (kSize * 5 / 4 + 8));
  EXPECT_EQ(during.arena, during.uordblks + during.fordblks);
  for (void *p : blocks)
    free(p);
  struct mallinfo2 after = Snapshot(&s2);
  ExpectSame(after, Expected(s2));
  EXPECT_EQ(after.uordblks, before.uordblks);
}

TEST(Mallinfo2, SmallFreeBlocksCountAsFastBlocks) {
  hak_stats s0, s1;
  struct mallinfo2 before = Snapshot(&s0);
  constexpr size_t kCount = 500;
  void *blocks[kCount];
  for (auto &p : blocks) {
    p = malloc(24);
    ASSERT_NE(p, nullptr);
  }
  struct mallinfo2 during = Snapshot(&s1);
  ExpectSame(during, Expected(s1));
  EXPECT_GE(during.uordblks - before.uordblks, kCount * 24);
  EXPECT_LE(during.uordblks - before.uordblks, kCount * 32);
  // Blocks of classes up to 128 bytes are glibc's "fast" blocks: the free
  // ones of the class of 24-byte blocks (32, with or without the debug
  // trailer) count in smblks, not in ordblks.
  uint64_t free24 = 0;
  for (uint32_t c = 0; c < s1.num_classes; c++)
    if (s1.classes[c].block_size == 32)
      free24 += FreeBlocks(s1.classes[c]);
  EXPECT_GE(during.smblks, free24);
  EXPECT_GE(during.fsmblks, free24 * 32);
  for (void *p : blocks)
    free(p);
  hak_stats s2;
  struct mallinfo2 after = Snapshot(&s2);
  ExpectSame(after, Expected(s2));
  EXPECT_EQ(after.uordblks, before.uordblks);
}

TEST(Mallinfo2, LargeBlocksAreMmappedRegions) {
  hak_stats s0, s1, s2;
  struct mallinfo2 before = Snapshot(&s0);
  void *a = malloc(1 * kMiB), *b = malloc(3 * kMiB), *c = calloc(1, 600 * kKiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  struct mallinfo2 during = Snapshot(&s1);
  ExpectSame(during, Expected(s1));
  EXPECT_EQ(during.hblks, before.hblks + 3);
  // Whole 2 MiB regions (no limit on address space here; under one they end
  // at the block's last page, large_test).
  EXPECT_GE(during.hblkhd, before.hblkhd + 4 * kMiB + 600 * kKiB);
  EXPECT_EQ((during.hblkhd - before.hblkhd) % kSuperSlab, 0u);
  // Large blocks are not slab bytes in use (glibc keeps mmapped chunks out of
  // uordblks too).
  EXPECT_EQ(during.uordblks, before.uordblks);
  free(a);
  free(b);
  free(c);
  struct mallinfo2 after = Snapshot(&s2);
  ExpectSame(after, Expected(s2));
  EXPECT_EQ(after.hblks, before.hblks);
  EXPECT_EQ(after.hblkhd, before.hblkhd);
  // Their mappings wait in the arena cache (an hour's decay): releasable.
  EXPECT_GE(after.keepcost, 4 * kMiB);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST(Mallinfo, IsMallinfo2SaturatedToInt) {
  hak_stats s;
  hak_stats_get(&s);
  struct mallinfo m = mallinfo();
  struct mallinfo2 want = Expected(s);
  EXPECT_EQ(static_cast<size_t>(m.arena), want.arena < INT_MAX ? want.arena : INT_MAX);
  EXPECT_EQ(static_cast<size_t>(m.uordblks), want.uordblks < INT_MAX ? want.uordblks : INT_MAX);
  EXPECT_EQ(static_cast<size_t>(m.fordblks), want.fordblks < INT_MAX ? want.fordblks : INT_MAX);
  EXPECT_EQ(static_cast<size_t>(m.hblkhd), want.hblkhd < INT_MAX ? want.hblkhd : INT_MAX);
  EXPECT_EQ(static_cast<size_t>(m.hblks), want.hblks);
  EXPECT_EQ(m.usmblks, 0);
}
#pragma GCC diagnostic pop

TEST(Mallinfo, EveryFieldSaturatesAtIntMax) {
  struct mallinfo2 in;
  in.arena = size_t{3} << 30;        // 3 GiB: beyond INT_MAX
  in.ordblks = size_t{1} << 32;      // would wrap to 0
  in.smblks = (size_t{1} << 32) + 5; // would wrap to 5
  in.hblks = INT_MAX;
  in.hblkhd = size_t{INT_MAX} + 1;
  in.usmblks = 0;
  in.fsmblks = SIZE_MAX;
  in.uordblks = 12345;
  in.fordblks = size_t{INT_MAX} - 1;
  in.keepcost = size_t{8} << 30;
  struct mallinfo out;
  hak_introspect_mallinfo_clamp(&in, &out);
  EXPECT_EQ(out.arena, INT_MAX);
  EXPECT_EQ(out.ordblks, INT_MAX);
  EXPECT_EQ(out.smblks, INT_MAX);
  EXPECT_EQ(out.hblks, INT_MAX);
  EXPECT_EQ(out.hblkhd, INT_MAX);
  EXPECT_EQ(out.usmblks, 0);
  EXPECT_EQ(out.fsmblks, INT_MAX);
  EXPECT_EQ(out.uordblks, 12345);
  EXPECT_EQ(out.fordblks, INT_MAX - 1);
  EXPECT_EQ(out.keepcost, INT_MAX);
}

// ---- malloc_info -------------------------------------------------------------

// Checks that text is well-formed XML of the shape malloc_info writes
// (elements with quoted attributes, no text, properly nested); returns the
// first problem or "".
std::string CheckXml(const std::string &text, std::vector<std::string> *open_tags_seen) {
  std::vector<std::string> stack;
  size_t i = 0;
  while (i < text.size()) {
    char ch = text[i];
    if (ch == ' ' || ch == '\n') {
      i++;
      continue;
    }
    if (ch != '<')
      return "text outside a tag at " + std::to_string(i);
    size_t end = text.find('>', i);
    if (end == std::string::npos)
      return "unterminated tag at " + std::to_string(i);
    std::string tag = text.substr(i + 1, end - i - 1);
    i = end + 1;
    if (!tag.empty() && tag[0] == '/') {
      std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name)
        return "mismatched </" + name + ">";
      stack.pop_back();
      continue;
    }
    bool empty = !tag.empty() && tag.back() == '/';
    if (empty)
      tag.pop_back();
    size_t sp = tag.find(' ');
    std::string name = tag.substr(0, sp);
    if (name.empty())
      return "empty tag name";
    // Attributes: name="value", separated by single spaces.
    size_t j = sp == std::string::npos ? tag.size() : sp;
    while (j < tag.size()) {
      if (tag[j] != ' ')
        return "bad attribute in <" + tag + ">";
      size_t eq = tag.find("=\"", j);
      if (eq == std::string::npos)
        return "attribute without a value in <" + tag + ">";
      size_t close = tag.find('"', eq + 2);
      if (close == std::string::npos)
        return "unquoted attribute in <" + tag + ">";
      j = close + 1;
    }
    if (open_tags_seen != nullptr)
      open_tags_seen->push_back(tag);
    if (!empty)
      stack.push_back(name);
  }
  if (!stack.empty())
    return "unclosed <" + stack.back() + ">";
  return "";
}

// The value of attribute attr in the first tag that starts with prefix.
uint64_t Attr(const std::vector<std::string> &tags, const std::string &prefix,
              const std::string &attr) {
  for (const auto &t : tags) {
    if (t.compare(0, prefix.size(), prefix) != 0)
      continue;
    size_t at = t.find(" " + attr + "=\"");
    if (at == std::string::npos)
      continue;
    return strtoull(t.c_str() + at + attr.size() + 3, nullptr, 10);
  }
  ADD_FAILURE() << "no " << attr << " in a <" << prefix << ">";
  return 0;
}

std::string ReadAll(FILE *f) {
  std::string text;
  rewind(f);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    text.append(buf, n);
  return text;
}

TEST(MallocInfo, NonzeroOptionsAreEinval) {
  FILE *f = tmpfile();
  ASSERT_NE(f, nullptr);
  for (int options : {1, -1, 2, INT_MAX}) {
    errno = 0;
    EXPECT_EQ(malloc_info(options, f), -1) << options;
    EXPECT_EQ(errno, EINVAL) << options;
  }
  EXPECT_EQ(ftell(f), 0) << "nothing written";
  errno = 0;
  EXPECT_EQ(malloc_info(0, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  fclose(f);
}

TEST(MallocInfo, WellFormedXmlWithTheFiguresOfMallinfo2) {
  std::vector<void *> keep;
  for (size_t n : {16, 24, 100, 500, 3000, 20000, 100000})
    keep.push_back(malloc(n));
  keep.push_back(malloc(2 * kMiB));
  FILE *f = tmpfile();
  ASSERT_NE(f, nullptr);
  // Unbuffered: fwrite then allocates nothing, so the figures cannot move
  // between the readings.
  ASSERT_EQ(setvbuf(f, nullptr, _IONBF, 0), 0);
  hak_stats s;
  struct mallinfo2 m = Snapshot(&s);
  ASSERT_EQ(malloc_info(0, f), 0);
  hak_stats s_after;
  struct mallinfo2 m_after = Snapshot(&s_after);
  ExpectSame(m_after, m);
  std::string text = ReadAll(f);
  fclose(f);

  std::vector<std::string> tags;
  ASSERT_EQ(CheckXml(text, &tags), "") << text;
  ASSERT_EQ(text.compare(0, 20, "<malloc version=\"1\">"), 0) << text;
  EXPECT_NE(text.find("<heap nr=\"0\">"), std::string::npos);
  EXPECT_NE(text.find("<sizes>"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 10), "</malloc>\n");

  // Heap 0's totals, then the process totals (the same, plus mmap).
  EXPECT_EQ(Attr(tags, "total type=\"fast\"", "count"), m.smblks);
  EXPECT_EQ(Attr(tags, "total type=\"fast\"", "size"), m.fsmblks);
  EXPECT_EQ(Attr(tags, "total type=\"rest\"", "count"), m.ordblks);
  EXPECT_EQ(Attr(tags, "total type=\"mmap\"", "count"), m.hblks);
  EXPECT_EQ(Attr(tags, "total type=\"mmap\"", "size"), m.hblkhd);
  EXPECT_EQ(Attr(tags, "system type=\"current\"", "size"), m.arena);
  EXPECT_EQ(Attr(tags, "aspace type=\"total\"", "size"), m.arena);
  EXPECT_GE(Attr(tags, "system type=\"max\"", "size"), m.arena);

  // The <size> lines: one per class with free blocks, in order, covering
  // the fast and rest totals exactly.
  uint64_t fast_count = 0, fast_size = 0, rest_count = 0, rest_size = 0, last_to = 0;
  size_t lines = 0;
  for (const auto &t : tags) {
    if (t.compare(0, 5, "size ") != 0)
      continue;
    lines++;
    std::vector<std::string> one{t};
    uint64_t from = Attr(one, "size", "from"), to = Attr(one, "size", "to");
    uint64_t total = Attr(one, "size", "total"), count = Attr(one, "size", "count");
    EXPECT_GT(from, last_to);
    EXPECT_LE(from, to);
    EXPECT_GT(count, 0u);
    EXPECT_EQ(total, count * to) << t;
    last_to = to;
    if (to <= kFastMax) {
      fast_count += count;
      fast_size += total;
    } else {
      rest_count += count;
      rest_size += total;
    }
    bool found = false;
    for (uint32_t c = 0; c < s.num_classes; c++) {
      if (s.classes[c].block_size == to) {
        EXPECT_EQ(count, FreeBlocks(s.classes[c])) << t;
        found = true;
      }
    }
    EXPECT_TRUE(found) << t;
  }
  EXPECT_GT(lines, 0u);
  EXPECT_EQ(fast_count, m.smblks);
  EXPECT_EQ(fast_size, m.fsmblks);
  EXPECT_EQ(rest_count, m.ordblks);
  EXPECT_EQ(Attr(tags, "total type=\"rest\"", "size"), rest_size);
  for (void *p : keep)
    free(p);
}

TEST(MallocInfo, WritesThroughABufferedStream) {
  // A memory stream allocates as it grows: malloc from inside malloc_info's
  // fwrite is an ordinary call, made while hakmem holds no lock.
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(malloc_info(0, f), 0);
  ASSERT_EQ(fclose(f), 0);
  std::string text(buf, len);
  free(buf);
  EXPECT_EQ(CheckXml(text, nullptr), "") << text;
  EXPECT_EQ(text.compare(0, 20, "<malloc version=\"1\">"), 0);
}

// ---- malloc_stats ------------------------------------------------------------

// Runs fn with fd 2 sent to a memory file; returns what was written.
std::string CaptureStderr(void (*fn)(void)) {
  int mem = memfd_create("malloc-stats", 0);
  if (mem < 0)
    return "<memfd_create failed>";
  int saved = dup(2);
  dup2(mem, 2);
  fn();
  dup2(saved, 2);
  close(saved);
  std::string text;
  char buf[1024];
  ssize_t n;
  lseek(mem, 0, SEEK_SET);
  while ((n = read(mem, buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  close(mem);
  return text;
}

TEST(MallocStats, GlibcShapeWithHakmemsFigures) {
  void *big = malloc(3 * kMiB);
  ASSERT_NE(big, nullptr);
  hak_stats s;
  struct mallinfo2 m = Snapshot(&s);
  std::string text = CaptureStderr(malloc_stats);
  unsigned long long sys = 0, used = 0, total_sys = 0, total_used = 0, regions = 0, max_bytes = 0;
  ASSERT_EQ(sscanf(text.c_str(),
                   "Arena 0:\n"
                   "system bytes     = %llu\n"
                   "in use bytes     = %llu\n"
                   "Total (incl. mmap):\n"
                   "system bytes     = %llu\n"
                   "in use bytes     = %llu\n"
                   "max mmap regions = %llu\n"
                   "max mmap bytes   = %llu\n",
                   &sys, &used, &total_sys, &total_used, &regions, &max_bytes),
            6)
      << text;
  // glibc's column: values right-aligned in 10 characters.
  EXPECT_NE(text.find("system bytes     = "), std::string::npos);
  EXPECT_EQ(text.find('\n', text.find("system bytes     = ")) - text.find("system bytes     = "),
            19u + (std::to_string(sys).size() > 10 ? std::to_string(sys).size() : 10u));
  EXPECT_EQ(sys, m.arena);
  EXPECT_EQ(used, m.uordblks);
  EXPECT_EQ(total_sys, s.mapped_bytes);
  EXPECT_EQ(total_used, m.uordblks + m.hblkhd);
  EXPECT_EQ(max_bytes, s.mapped_peak);
  EXPECT_EQ(regions, s.mapped_peak / kSuperSlab);
  EXPECT_GE(total_sys, sys + m.hblkhd);
  free(big);
}

// ---- mallopt -----------------------------------------------------------------

TEST(Mallopt, ReturnValuesAreGlibcs) {
  // M_MXFAST: glibc accepts 0 .. 80 * sizeof(size_t) / 4 = 160 only.
  EXPECT_EQ(mallopt(M_MXFAST, -1), 0);
  EXPECT_EQ(mallopt(M_MXFAST, 0), 1);
  EXPECT_EQ(mallopt(M_MXFAST, 64), 1);
  EXPECT_EQ(mallopt(M_MXFAST, 160), 1);
  EXPECT_EQ(mallopt(M_MXFAST, 161), 0);
  EXPECT_EQ(mallopt(M_MXFAST, INT_MAX), 0);
  EXPECT_EQ(mallopt(M_MXFAST, 128), 1); // back to glibc's default
  // Everything else glibc (2.36) accepts whatever the value.
  for (int param : {M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_CHECK_ACTION, M_PERTURB,
                    M_ARENA_TEST, M_ARENA_MAX, M_NLBLKS, M_GRAIN, M_KEEP, 12345, -9}) {
    for (int value : {-1, 0, 1, 8, 64 << 20, INT_MAX})
      EXPECT_EQ(mallopt(param, value), 1) << "param " << param << " value " << value;
  }
  // ... and allocation still works as before.
  for (size_t n : {size_t{0}, size_t{1}, size_t{200}, size_t{70000}, 3 * kMiB}) {
    void *p = malloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(hak_owns(p));
    memset(p, 0x5a, n);
    free(p);
  }
}

TEST(Mallopt, TrimThresholdIsTheArenaCacheBound) {
  const size_t saved = ArenaCacheBytes();
  EXPECT_EQ(mallopt(M_TRIM_THRESHOLD, 64 << 20), 1);
  EXPECT_EQ(ArenaCacheBytes(), size_t{64} << 20);
  // -1 converts to SIZE_MAX, as in glibc: no bound.
  EXPECT_EQ(mallopt(M_TRIM_THRESHOLD, -1), 1);
  EXPECT_EQ(ArenaCacheBytes(), SIZE_MAX);
  // 0: idle mappings go back to the OS at once, so a freed large block adds
  // nothing to keepcost.
  EXPECT_EQ(mallopt(M_TRIM_THRESHOLD, 0), 1);
  EXPECT_EQ(ArenaCacheBytes(), 0u);
  size_t before = mallinfo2().keepcost;
  void *p = malloc(5 * kMiB);
  ASSERT_NE(p, nullptr);
  memset(p, 1, 5 * kMiB);
  free(p);
  EXPECT_LE(mallinfo2().keepcost, before);
  SetArenaCacheBytes(saved);
}

// ---- HAKMEM_STATS_SIGNAL -------------------------------------------------------

// Points kReportFd at a pipe, runs fn, and returns what arrived.
template <typename Fn> std::string ReportFrom(Fn fn) {
  int fds[2];
  if (pipe(fds) != 0)
    return "<pipe failed>";
  dup2(fds[1], kReportFd);
  close(fds[1]);
  fn();
  close(kReportFd);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  return text;
}

TEST(StatsSignal, OptionsFromTheEnvironment) {
  EXPECT_EQ(StatsSignal(), SIGUSR2);
  EXPECT_EQ(StatsFd(), kReportFd);
  struct sigaction now;
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_TRUE(now.sa_flags & SA_SIGINFO) << "hakmem's handler is installed at init";
}

TEST(StatsSignal, TextReportOnRaise) {
  void *p = malloc(100);
  std::string text = ReportFrom([] { raise(SIGUSR2); });
  free(p);
  EXPECT_EQ(text.compare(0, 18 + std::to_string(getpid()).size(),
                         "hakmem stats (pid " + std::to_string(getpid())),
            0)
      << text;
  EXPECT_NE(text.find("total allocs "), std::string::npos) << text;
  EXPECT_NE(text.find("mapped_bytes now "), std::string::npos) << text;
  EXPECT_EQ(text.find("partial"), std::string::npos) << text;
}

TEST(StatsSignal, JsonReportWithHakmemStatsJson) {
  const bool old = SetStatsJson(true);
  std::string text = ReportFrom([] { kill(getpid(), SIGUSR2); });
  SetStatsJson(old);
  ASSERT_GT(text.size(), 2u);
  EXPECT_EQ(text.compare(0, 7, "{\"pid\":"), 0) << text;
  EXPECT_EQ(text.substr(text.size() - 2), "}\n") << text;
  EXPECT_NE(text.find("\"classes\":["), std::string::npos) << text;
  EXPECT_EQ(text.find("partial"), std::string::npos) << text;
}

TEST(StatsSignal, HandlerOnItsOwnThreadWhileItHoldsTheRegistryDoesNotWait) {
  // The signal lands while this thread holds the registry lock (as inside
  // hak_thread_heap_get or a statistics read): the report leaves live threads out,
  // says so, and returns instead of waiting for itself.
  std::string text = ReportFrom([] {
    hak_thread_heap_registry_hold(true);
    raise(SIGUSR2);
    hak_thread_heap_registry_hold(false);
  });
  EXPECT_EQ(text.compare(0, 13, "hakmem stats "), 0) << text;
  EXPECT_NE(text.find("partial: live threads' counters left out"), std::string::npos) << text;
  EXPECT_NE(text.find("total allocs "), std::string::npos) << text;

  const bool old = SetStatsJson(true);
  text = ReportFrom([] {
    hak_thread_heap_registry_hold(true);
    raise(SIGUSR2);
    hak_thread_heap_registry_hold(false);
  });
  SetStatsJson(old);
  EXPECT_NE(text.find("\"partial\":true"), std::string::npos) << text;
}

void *HoldRegistry(void *arg) {
  hak_thread_heap_registry_hold(true);
  auto *go = static_cast<volatile int *>(arg);
  *go = 1;
  while (*go == 1)
    usleep(1000);
  hak_thread_heap_registry_hold(false);
  return nullptr;
}

TEST(StatsSignal, AnotherThreadHoldingTheRegistryBoundsTheWait) {
  volatile int go = 0;
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, HoldRegistry, const_cast<int *>(&go)), 0);
  while (go == 0)
    usleep(1000);
  std::string text = ReportFrom([] { raise(SIGUSR2); });
  go = 2;
  pthread_join(t, nullptr);
  EXPECT_NE(text.find("partial: live threads' counters left out"), std::string::npos) << text;
}

int g_program_handler_calls;
void ProgramHandler(int) { g_program_handler_calls++; }

TEST(StatsSignal, AHandlerTheProgramSetBeforeIsKeptAndCalled) {
  struct sigaction program, saved;
  memset(&program, 0, sizeof program);
  program.sa_handler = ProgramHandler;
  sigemptyset(&program.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &program, &saved), 0);
  ASSERT_EQ(hak_stats_report_signal_install(SIGUSR1), 0);
  ASSERT_EQ(hak_stats_report_signal_install(SIGUSR1), 0); // a second install changes nothing
  g_program_handler_calls = 0;
  std::string text = ReportFrom([] { raise(SIGUSR1); });
  EXPECT_EQ(g_program_handler_calls, 1);
  EXPECT_EQ(text.compare(0, 13, "hakmem stats "), 0) << text;
  EXPECT_EQ(text.find("hakmem stats ", 1), std::string::npos) << "one report";
  ASSERT_EQ(sigaction(SIGUSR1, &saved, nullptr), 0);
}

TEST(StatsSignal, AHandlerTheProgramSetsLaterReplacesHakmems) {
  struct sigaction program, hakmem;
  memset(&program, 0, sizeof program);
  program.sa_handler = ProgramHandler;
  sigemptyset(&program.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &program, &hakmem), 0);
  g_program_handler_calls = 0;
  std::string text = ReportFrom([] { raise(SIGUSR2); });
  EXPECT_EQ(g_program_handler_calls, 1);
  EXPECT_EQ(text, "");
  ASSERT_EQ(sigaction(SIGUSR2, &hakmem, nullptr), 0);
}

TEST(StatsSignal, ReportsFromAThreadThatIsAllocating) {
  // Reports while another thread allocates and frees: each is whole, and
  // the allocating thread is never stopped for long.
  volatile int stop = 0;
  pthread_t t;
  auto churn = [](void *arg) -> void * {
    auto *stop_flag = static_cast<volatile int *>(arg);
    std::vector<void *> blocks;
    while (!*stop_flag) {
      for (int i = 0; i < 64; i++)
        blocks.push_back(malloc(16 + 64 * static_cast<size_t>(i)));
      for (void *p : blocks)
        free(p);
      blocks.clear();
    }
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&t, nullptr, churn, const_cast<int *>(&stop)), 0);
  for (int i = 0; i < 20; i++) {
    std::string text = ReportFrom([] { raise(SIGUSR2); });
    EXPECT_EQ(text.compare(0, 13, "hakmem stats "), 0) << text;
    EXPECT_NE(text.find("mutexes acquired "), std::string::npos) << text;
  }
  stop = 1;
  pthread_join(t, nullptr);
}

std::atomic<int> g_chained{0};
void CountingHandler(int) { g_chained.fetch_add(1); }

// Reads the statistics (holding the registry lock meanwhile) and allocates,
// over and over.
void *ReadStatsInALoop(void *arg) {
  auto *stop = static_cast<std::atomic<int> *>(arg);
  hak_stats s;
  while (stop->load() == 0) {
    hak_stats_get(&s);
    void *p = malloc(64);
    free(p);
  }
  return nullptr;
}

TEST(StatsSignal, SignalsIntoAThreadReadingTheStatisticsNeverDeadlock) {
  // Each signal lands on a thread that is, as often as not, inside
  // hak_stats_get with the registry lock held: the report must come back
  // (partial then) instead of waiting for its own thread. The program's
  // handler, chained after the report, counts reports done.
  struct sigaction program, saved;
  memset(&program, 0, sizeof program);
  program.sa_handler = CountingHandler;
  sigemptyset(&program.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &program, &saved), 0);
  ASSERT_EQ(hak_stats_report_signal_install(SIGUSR1), 0);
  const int mem = memfd_create("stats-signal", 0); // never blocks a writer
  ASSERT_GE(mem, 0);
  ASSERT_EQ(dup2(mem, kReportFd), kReportFd);
  std::atomic<int> stop{0};
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, ReadStatsInALoop, &stop), 0);
  constexpr int kSignals = 100;
  for (int i = 0; i < kSignals; i++) {
    const int before = g_chained.load();
    ASSERT_EQ(pthread_kill(t, SIGUSR1), 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (g_chained.load() == before) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "report " << i << " never ended";
      usleep(100);
    }
  }
  stop = 1;
  pthread_join(t, nullptr);
  close(kReportFd);
  ASSERT_EQ(sigaction(SIGUSR1, &saved, nullptr), 0);
  std::string text;
  char buf[4096];
  ssize_t n;
  lseek(mem, 0, SEEK_SET);
  while ((n = read(mem, buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  close(mem);
  int reports = 0, partial = 0;
  for (size_t at = text.find("hakmem stats (pid "); at != std::string::npos;
       at = text.find("hakmem stats (pid ", at + 1))
    reports++;
  for (size_t at = text.find("\npartial: "); at != std::string::npos;
       at = text.find("\npartial: ", at + 1))
    partial++;
  EXPECT_EQ(reports, kSignals);
  // Every report is whole: its last line is there.
  int ends = 0;
  for (size_t at = text.find("\nmutexes acquired "); at != std::string::npos;
       at = text.find("\nmutexes acquired ", at + 1))
    ends++;
  EXPECT_EQ(ends, kSignals);
  RecordProperty("partial_reports", partial);
}

} // namespace
} // namespace hakmem_test
