// Unit test of the statistics report: hak_stats_get sums the process-wide
// counters and every heap's (per-thread counters survive their threads), and
// the text and JSON reports carry the figures. Links the api box (see BUILD):
// the figures come from real allocations on real threads.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "box_test_util.h"
#include "gtest/gtest.h"
#include "hakmem/core/integrity.h"
#include "hakmem/core/include/hakmem.h"
#include "hakmem/core/maintenance.h"
#include "hakmem/core/options.h"
#include "hakmem/core/shared_pool.h"
#include "hakmem/core/size_class.h"
#include "hakmem/core/stats.h"
#include "hakmem/core/stats_report.h"
#include "hakmem/core/thread_heap.h"
#include "hakmem/core/types.h"

// The class counters count slab blocks; a guarded block is counted by the
// pool's own counters (guarded_test checks them), and the hardened build
// guards one allocation in 200000 by default. The exact counts here are
// of slab blocks, so the pool is off (read at hak_maintenance_init, before any test).
[[maybe_unused]] static const bool kGuardedPoolOff = setenv("HAKMEM_GUARD_SAMPLE", "0", 1) == 0;

namespace {

// The heap stash is off: these tests follow exited threads' slabs back to
// the pool, which a stash would keep with their heap for a new thread. No
// purge thread and a long decay: trims of idle heaps (which collect remote
// frees and release slabs) and the purge of free slots stay away while the
// census tests look at a quiet heap. Set once, before any test starts a
// thread that reads them.
class NoHeapStash : public ::testing::Environment {
public:
  void SetUp() override {
    hak_maintenance_init();
    hak_options_current.heap_stash = 0;
    hak_options_current.purge_thread = 0;
    hak_options_current.decay_ms = 600000;
    hak_trim(0);
  }
};
::testing::Environment *const kNoHeapStash = ::testing::AddGlobalTestEnvironment(new NoHeapStash);

constexpr unsigned kClasses = HAK_NUM_CLASSES;

// The class of a request of size bytes, as hak_malloc picks it.
unsigned ClassOf(size_t size) { return hak_size_class_of(size + HAK_TRAILER); }

using hakmem_box_test::RunInThread;
using hakmem_box_test::Worker;

hak_stats Snapshot() {
  hak_stats s;
  hak_stats_get(&s);
  return s;
}

// Runs `print` against a memory file and returns what it wrote.
std::string Capture(void (*print)(int)) {
  const int fd = memfd_create("hakmem-stats", 0);
  if (fd < 0)
    return "<memfd_create failed>";
  print(fd);
  std::string out;
  const off_t len = lseek(fd, 0, SEEK_END);
  out.resize(static_cast<size_t>(len));
  if (pread(fd, &out[0], out.size(), 0) != len)
    out = "<short read>";
  close(fd);
  return out;
}

// Whether this build has the fast cache, seen from behaviour: a block freed
// and allocated again on one thread is a fast-cache hit only with it.
bool FastCacheOn() {
  const size_t size = 7000;
  const unsigned cls = ClassOf(size);
  const uint64_t before = Snapshot().classes[cls].fast_hits;
  RunInThread([&] {
    void *p = hak_malloc(size);
    hak_free(p);
    p = hak_malloc(size);
    hak_free(p);
  });
  return Snapshot().classes[cls].fast_hits > before;
}

// ---- a small JSON reader, enough to check the report's structure ------------

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<Json> items;                           // array
  std::vector<std::pair<std::string, Json>> members; // object, in order

  const Json *Get(const std::string &key) const {
    for (const auto &[k, v] : members) {
      if (k == key)
        return &v;
    }
    return nullptr;
  }
};

class JsonReader {
public:
  explicit JsonReader(const std::string &s) : s_(s) {}

  // Parses one value followed by optional whitespace; false on any error.
  bool ParseDocument(Json *out) {
    if (!Value(out))
      return false;
    Space();
    return pos_ == s_.size();
  }
  std::string Where() const { return "offset " + std::to_string(pos_); }

private:
  void Space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    Space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool Literal(const char *word) {
    const size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0)
      return false;
    pos_ += n;
    return true;
  }
  bool String(std::string *out) {
    if (!Eat('"'))
      return false;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' || static_cast<unsigned char>(s_[pos_]) < 0x20)
        return false;
      out->push_back(s_[pos_++]);
    }
    return Eat('"');
  }
  bool Number(double *out) {
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-')
      ++pos_;
    size_t digits = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
      ++pos_, ++digits;
    if (digits == 0)
      return false;
    if (digits > 1 && s_[start + (s_[start] == '-')] == '0')
      return false; // no leading 0
    *out = std::stod(s_.substr(start, pos_ - start));
    return true;
  }
  bool Value(Json *out) {
    Space();
    if (pos_ >= s_.size())
      return false;
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      out->kind = Json::kObject;
      if (Eat('}'))
        return true;
      do {
        std::string key;
        Json v;
        if (!String(&key) || !Eat(':') || !Value(&v))
          return false;
        out->members.emplace_back(std::move(key), std::move(v));
      } while (Eat(','));
      return Eat('}');
    }
    if (c == '[') {
      ++pos_;
      out->kind = Json::kArray;
      if (Eat(']'))
        return true;
      do {
        Json v;
        if (!Value(&v))
          return false;
        out->items.push_back(std::move(v));
      } while (Eat(','));
      return Eat(']');
    }
    if (c == '"') {
      out->kind = Json::kString;
      return String(&out->text);
    }
    if (c == 't' || c == 'f') {
      out->kind = Json::kBool;
      out->boolean = c == 't';
      return Literal(c == 't' ? "true" : "false");
    }
    if (c == 'n')
      return Literal("null");
    out->kind = Json::kNumber;
    return Number(&out->number);
  }

  const std::string &s_;
  size_t pos_ = 0;
};

TEST(JsonReaderSelfTest, AcceptsAndRejects) {
  Json j;
  EXPECT_TRUE(JsonReader(R"({"a":[1,2,{"b":true}],"c":"x"})").ParseDocument(&j));
  EXPECT_FALSE(JsonReader(R"({"a":1,})").ParseDocument(&j));
  EXPECT_FALSE(JsonReader(R"({"a":[1,2})").ParseDocument(&j));
  EXPECT_FALSE(JsonReader(R"({"a":01})").ParseDocument(&j));
  EXPECT_FALSE(JsonReader(R"({"a":1}})").ParseDocument(&j));
}

// ---- counters ---------------------------------------------------------------

// Counters of threads that exited are kept in the totals.
TEST(Stats, ExitedThreadsAreCounted) {
  hak_maintenance_init();
  constexpr size_t kSize = 5000;
  constexpr int kThreads = 4;
  constexpr uint64_t kBlocks = 1000;
  const unsigned cls = ClassOf(kSize);
  const hak_stats before = Snapshot();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      std::vector<void *> blocks;
      for (uint64_t i = 0; i < kBlocks; ++i)
        blocks.push_back(hak_malloc(kSize));
      for (void *p : blocks)
        hak_free(p);
    });
  }
  for (auto &th : threads)
    th.join();
  const hak_stats after = Snapshot();
  EXPECT_EQ(after.classes[cls].allocs - before.classes[cls].allocs, kThreads * kBlocks);
  EXPECT_EQ(after.classes[cls].frees - before.classes[cls].frees, kThreads * kBlocks);
  EXPECT_EQ(after.classes[cls].remote_frees, before.classes[cls].remote_frees);
  EXPECT_GT(after.classes[cls].refills, before.classes[cls].refills);
  EXPECT_EQ(after.threads_exited - before.threads_exited, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(after.threads_live, before.threads_live);
  EXPECT_EQ(after.classes[cls].slabs, before.classes[cls].slabs) << "empty slabs were returned";
  EXPECT_GE(after.superslabs_total, before.superslabs_total);
}

// A live thread's counters are visible while it runs, and stay when it exits.
TEST(Stats, LiveThreadsAreCounted) {
  constexpr size_t kSize = 9000;
  const unsigned cls = ClassOf(kSize);
  const hak_stats before = Snapshot();
  std::vector<void *> blocks;
  {
    Worker w;
    w.Run([&] {
      for (int i = 0; i < 100; ++i)
        blocks.push_back(hak_malloc(kSize));
    });
    hak_stats mid = Snapshot();
    EXPECT_EQ(mid.classes[cls].allocs - before.classes[cls].allocs, 100u);
    EXPECT_EQ(mid.threads_live - before.threads_live, 1u);
    EXPECT_GT(mid.classes[cls].slabs, before.classes[cls].slabs);
    w.Run([&] {
      for (void *p : blocks)
        hak_free(p);
    });
  }
  const hak_stats after = Snapshot();
  EXPECT_EQ(after.classes[cls].allocs - before.classes[cls].allocs, 100u);
  EXPECT_EQ(after.classes[cls].frees - before.classes[cls].frees, 100u);
  EXPECT_EQ(after.threads_live, before.threads_live);
}

// A bin does not count its frees: they are derived from its packed word and
// a bias that the slow paths move (see hak_tcache_bin). Counts stay exact
// across refills, flushes of full bins, frees of another thread's blocks and
// the drain at thread exit, in snapshots of the live thread and after it.
TEST(Stats, DerivedFreesStayExact) {
  constexpr size_t kSize = 700; // a bin of 42 blocks: many refills and flushes
  constexpr uint64_t kBlocks = 1000;
  const unsigned cls = ClassOf(kSize);
  const hak_stats before = Snapshot();
  auto allocs = [&](const hak_stats &s) {
    return s.classes[cls].allocs - before.classes[cls].allocs;
  };
  auto frees = [&](const hak_stats &s) { return s.classes[cls].frees - before.classes[cls].frees; };
  std::vector<void *> blocks;
  {
    Worker w;
    w.Run([&] {
      for (uint64_t i = 0; i < kBlocks; ++i)
        blocks.push_back(hak_malloc(kSize));
    });
    hak_stats s = Snapshot();
    EXPECT_EQ(allocs(s), kBlocks);
    EXPECT_EQ(frees(s), 0u);
    w.Run([&] {
      for (uint64_t i = 0; i < kBlocks / 2; ++i)
        hak_free(blocks[i]);
    });
    s = Snapshot();
    EXPECT_EQ(allocs(s), kBlocks);
    EXPECT_EQ(frees(s), kBlocks / 2);
    RunInThread([&] {
      for (uint64_t i = kBlocks / 2; i < kBlocks * 3 / 4; ++i)
        hak_free(blocks[i]);
    });
    s = Snapshot();
    EXPECT_EQ(frees(s), kBlocks * 3 / 4);
    w.Run([&] {
      for (uint64_t i = kBlocks * 3 / 4; i < kBlocks; ++i)
        hak_free(blocks[i]);
      for (uint64_t i = 0; i < kBlocks; ++i) // hits, refills and flushes mixed
        hak_free(hak_malloc(kSize));
    });
    s = Snapshot();
    EXPECT_EQ(allocs(s), 2 * kBlocks);
    EXPECT_EQ(frees(s), 2 * kBlocks);
  }
  const hak_stats after = Snapshot();
  EXPECT_EQ(allocs(after), 2 * kBlocks);
  EXPECT_EQ(frees(after), 2 * kBlocks);
}

// Frees by a thread other than the allocating one are counted once each as
// frees and as remote frees, whether or not the allocating thread lives on.
TEST(Stats, RemoteFreesAreCounted) {
  constexpr size_t kSize = 6500;
  const unsigned cls = ClassOf(kSize);
  const hak_stats before = Snapshot();
  std::vector<void *> blocks;
  RunInThread([&] {
    for (int i = 0; i < 300; ++i)
      blocks.push_back(hak_malloc(kSize));
  });
  RunInThread([&] {
    for (void *p : blocks)
      hak_free(p);
  });
  hak_trim(0);
  const hak_stats after = Snapshot();
  EXPECT_EQ(after.classes[cls].allocs - before.classes[cls].allocs, 300u);
  EXPECT_EQ(after.classes[cls].frees - before.classes[cls].frees, 300u);
  EXPECT_EQ(after.classes[cls].remote_frees - before.classes[cls].remote_frees, 300u);
  EXPECT_EQ(after.classes[cls].slabs, before.classes[cls].slabs);
  EXPECT_EQ(after.abandoned_slabs, before.abandoned_slabs);
}

// hak_stats_get may be called at any time: snapshots taken while threads
// allocate, free and exit never see a counter go backwards, and the final
// totals are exact.
TEST(Stats, SnapshotsWhileThreadsRun) {
  constexpr size_t kSize = 11000;
  const unsigned cls = ClassOf(kSize);
  constexpr int kThreads = 3;
  constexpr int kRounds = 4;
  constexpr uint64_t kPairs = 3000;
  const hak_stats before = Snapshot();
  std::atomic<int> running{kThreads};
  std::atomic<int> snapshots{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      // Several short-lived threads in turn, so exits happen mid-snapshot.
      for (int r = 0; r < kRounds; ++r) {
        RunInThread([] {
          for (uint64_t i = 0; i < kPairs; ++i)
            hak_free(hak_malloc(kSize));
        });
      }
      // The work can end before this thread's first snapshot is taken (a
      // descheduled main thread): wait for a couple.
      while (snapshots.load() < 2)
        std::this_thread::yield();
      running--;
    });
  }
  uint64_t last_allocs = before.classes[cls].allocs, last_frees = before.classes[cls].frees;
  uint64_t last_exited = before.threads_exited;
  while (running.load() > 0) {
    const hak_stats s = Snapshot();
    ++snapshots;
    EXPECT_GE(s.classes[cls].allocs, last_allocs);
    EXPECT_GE(s.classes[cls].frees, last_frees);
    EXPECT_GE(s.threads_exited, last_exited);
    last_allocs = s.classes[cls].allocs;
    last_frees = s.classes[cls].frees;
    last_exited = s.threads_exited;
  }
  for (auto &th : threads)
    th.join();
  const hak_stats after = Snapshot();
  const uint64_t total = kThreads * kRounds * kPairs;
  EXPECT_EQ(after.classes[cls].allocs - before.classes[cls].allocs, total);
  EXPECT_EQ(after.classes[cls].frees - before.classes[cls].frees, total);
  EXPECT_GE(snapshots.load(), 2);
}

TEST(Stats, FastHitsMatchTheVariant) {
  constexpr size_t kSize = 7200;
  const unsigned cls = ClassOf(kSize);
  const hak_stats before = Snapshot();
  RunInThread([&] {
    for (int i = 0; i < 100; ++i) {
      void *p = hak_malloc(kSize);
      hak_free(p);
    }
  });
  const hak_stats after = Snapshot();
  const uint64_t hits = after.classes[cls].fast_hits - before.classes[cls].fast_hits;
  EXPECT_EQ(after.classes[cls].allocs - before.classes[cls].allocs, 100u);
  EXPECT_LE(hits, 100u);
  if (FastCacheOn()) {
    EXPECT_GE(hits, 90u) << "a malloc/free loop is served by the fast cache";
  } else {
    EXPECT_EQ(hits, 0u);
  }
}

// The library says what it was built as: this test is compiled with its box's
// defines, so it can hold the answer against them.
TEST(BuildInfo, MatchesTheDefines) {
  hak_build_info b;
  std::memset(&b, 0xA5, sizeof b); // a field left unwritten reads neither 0 nor 1
  b.build = nullptr;
  hak_build_info_get(&b);
  EXPECT_EQ(b.release, HAKMEM_BUILD_RELEASE ? 1 : 0);
  EXPECT_EQ(b.debug_checks, HAKMEM_DEBUG ? 1 : 0);
  EXPECT_EQ(b.fast_cache, HAKMEM_FASTCACHE ? 1 : 0);
  EXPECT_EQ(b.hardened, HAKMEM_HARDENED ? 1 : 0);
  ASSERT_NE(b.build, nullptr);
  EXPECT_STREQ(b.build, HAKMEM_BUILD_RELEASE ? "release" : "debug");
  // and the allocator behaves as it says
  EXPECT_EQ(b.fast_cache, FastCacheOn() ? 1 : 0);
}

TEST(Stats, LargeCounters) {
  hak_trim(0); // no idle mapping to reuse: both are mapped afresh
  const hak_stats before = Snapshot();
  void *a = hak_malloc(3 << 20);
  void *b = hak_malloc(300 << 10);
  const hak_stats mid = Snapshot();
  EXPECT_EQ(mid.large_allocs - before.large_allocs, 2u);
  // Whole 2 MiB regions: no limit on address space here (see large.c).
  EXPECT_EQ(mid.large_live_bytes - before.large_live_bytes, uint64_t{4 + 2} << 20);
  EXPECT_GE(mid.mapped_bytes, mid.large_live_bytes);
  EXPECT_GE(mid.mapped_peak, mid.mapped_bytes);
  hak_free(a);
  hak_free(b);
  const hak_stats after = Snapshot();
  EXPECT_EQ(after.large_frees - before.large_frees, 2u);
  EXPECT_EQ(after.large_live_bytes, before.large_live_bytes);
}

TEST(Stats, ShapeOfSnapshot) {
  const hak_stats s = Snapshot();
  ASSERT_EQ(s.num_classes, kClasses);
  for (unsigned c = 0; c < s.num_classes; ++c) {
    EXPECT_EQ(s.classes[c].block_size, hak_size_class_bytes(c)) << c;
    EXPECT_LE(s.classes[c].fast_hits, s.classes[c].allocs) << c;
  }
  for (unsigned c = s.num_classes; c < HAK_STATS_MAX_CLASSES; ++c) {
    EXPECT_EQ(s.classes[c].block_size, 0u);
    EXPECT_EQ(s.classes[c].allocs, 0u);
  }
  EXPECT_GE(s.superslabs_peak, s.superslabs);
  EXPECT_GE(s.superslabs_total, s.superslabs);
  EXPECT_GE(s.mutex_acquires, s.mutex_contended);
  EXPECT_LE(s.mutex_acquires, hak_stats_global.mutex_acquires.load(std::memory_order_relaxed));
  static_assert(HAK_NUM_CLASSES <= HAK_STATS_MAX_CLASSES, "every class has its row");
}

// ---- reports ----------------------------------------------------------------

// Keeps one block of every class live on a worker thread, so that every
// class has a row in the text report (a report longer than one buffer).
class StatsReport : public ::testing::Test {
protected:
  void SetUp() override {
    worker_ = std::make_unique<Worker>();
    worker_->Run([this] {
      // The smallest request of each class, which stays in the class even
      // with the trailer that debug builds add.
      for (unsigned c = 0; c < kClasses; ++c) {
        blocks_.push_back(hak_malloc(c == 0 ? 1 : hak_size_class_bytes(c - 1) + 1));
      }
    });
  }
  void TearDown() override {
    worker_->Run([this] {
      for (void *p : blocks_)
        hak_free(p);
    });
    worker_.reset();
  }
  std::unique_ptr<Worker> worker_;
  std::vector<void *> blocks_;
};

std::vector<std::string> Lines(const std::string &text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

bool StartsWith(const std::string &s, const std::string &prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

TEST_F(StatsReport, TextReport) {
  const hak_stats s = Snapshot();
  const std::string text = Capture(hak_stats_print);
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  std::vector<std::string> lines = Lines(text);
  ASSERT_GE(lines.size(), 3u + kClasses + 7);
  // The options in effect, as the options table names and formats them (this
  // binary's environment sets a 600000 ms decay and no purge thread).
  EXPECT_TRUE(StartsWith(lines[1], "options HAKMEM_STATS=0 ")) << lines[1];
  for (const char *opt : {" HAKMEM_DECAY_MS=600000 ", " HAKMEM_PURGE_THREAD=0 ",
                          " HAKMEM_ARENA_CACHE_MB=256 ", " HAKMEM_PROF_FILE=hakmem.%p.heap "})
    EXPECT_NE(lines[1].find(opt), std::string::npos) << opt;
  EXPECT_NE(lines[1].find(HAKMEM_CHECK_DEFAULT == HAK_CHECK_FULL ? " HAKMEM_CHECK=full"
                                                                 : " HAKMEM_CHECK=cheap"),
            std::string::npos);
  lines.erase(lines.begin() + 1); // the rest is indexed as before the options line

  hak_build_info b;
  hak_build_info_get(&b);
  const std::string head =
      "hakmem stats (pid " + std::to_string(getpid()) + ", " + b.build + " build, ";
  EXPECT_TRUE(StartsWith(lines[0], head)) << lines[0];
  const bool fast = FastCacheOn();
  EXPECT_NE(lines[0].find(fast ? "fast cache on)" : "fast cache off)"), std::string::npos)
      << lines[0];
  std::istringstream header(lines[1]);
  std::vector<std::string> columns;
  for (std::string w; header >> w;)
    columns.push_back(w);
  EXPECT_EQ(columns, (std::vector<std::string>{"class", "size", "allocs", "frees", "fast_hits",
                                               "refills", "remote_frees", "slabs"}));

  // One row per class, in order, each with the class's block size and at
  // least the block this fixture keeps live.
  for (unsigned c = 0; c < kClasses; ++c) {
    SCOPED_TRACE(c);
    std::istringstream row(lines[2 + c]);
    uint64_t cls = 0, size = 0, allocs = 0, frees = 0, hits = 0, refills = 0, remote = 0, slabs = 0;
    ASSERT_TRUE(row >> cls >> size >> allocs >> frees >> hits >> refills >> remote >> slabs)
        << lines[2 + c];
    EXPECT_EQ(cls, c);
    EXPECT_EQ(size, hak_size_class_bytes(c));
    EXPECT_GE(allocs, 1u);
    EXPECT_GE(slabs, 1u);
  }
  const std::vector<std::string> tail_prefixes = {
      "total allocs ",    "large allocs ",      "superslabs now ", "mapped_bytes now ",
      "memory resident ", "released dontneed ", "heap_limit ",     "slabs abandoned ",
      "threads live ",    "mutexes acquired ",  "guarded allocs "};
  for (size_t i = 0; i < tail_prefixes.size(); ++i) {
    EXPECT_TRUE(StartsWith(lines[2 + kClasses + i], tail_prefixes[i])) << lines[2 + kClasses + i];
  }
  // Then the memory section: a heading, the column names, a row per class
  // with slabs or live blocks (every class here), three lines of totals.
  const size_t mem = 2 + kClasses + tail_prefixes.size();
  ASSERT_EQ(lines.size(), mem + 2 + kClasses + 3) << text;
  EXPECT_TRUE(StartsWith(lines[mem], "memory census (bytes")) << lines[mem];
  std::istringstream mem_header(lines[mem + 1]);
  std::vector<std::string> mem_columns;
  for (std::string w; mem_header >> w;)
    mem_columns.push_back(w);
  EXPECT_EQ(mem_columns, (std::vector<std::string>{"class", "size", "slabs", "slab_bytes",
                                                   "resident", "live", "bins", "remote", "free"}));
  for (unsigned c = 0; c < kClasses; ++c) {
    SCOPED_TRACE(c);
    std::istringstream row(lines[mem + 2 + c]);
    uint64_t cls = 0, size = 0, slabs = 0, slab_bytes = 0, resident = 0, live = 0;
    ASSERT_TRUE(row >> cls >> size >> slabs >> slab_bytes >> resident >> live)
        << lines[mem + 2 + c];
    EXPECT_EQ(cls, c);
    EXPECT_EQ(size, hak_size_class_bytes(c));
    EXPECT_GE(slabs, 1u);
    EXPECT_GE(slab_bytes, slabs * HAK_PAGE_SIZE);
    EXPECT_LE(resident, slab_bytes);
    EXPECT_GE(live, size) << "the fixture's block";
  }
  EXPECT_TRUE(StartsWith(lines[mem + 2 + kClasses], "census slabs ")) << text;
  EXPECT_TRUE(StartsWith(lines[mem + 3 + kClasses], "census superslabs ")) << text;
  EXPECT_TRUE(StartsWith(lines[mem + 4 + kClasses], "census large_live ")) << text;
  // Nothing allocated between the snapshot and the report: figures agree.
  const std::string threads_line = "threads live " + std::to_string(s.threads_live) + " exited " +
                                   std::to_string(s.threads_exited) + " heaps_reused " +
                                   std::to_string(s.heaps_reused) + " slabs_trimmed " +
                                   std::to_string(s.slabs_trimmed);
  EXPECT_EQ(lines[2 + kClasses + 8], threads_line);
  const std::string large_line = "large allocs " + std::to_string(s.large_allocs) + " frees " +
                                 std::to_string(s.large_frees) + " live_bytes " +
                                 std::to_string(s.large_live_bytes);
  EXPECT_EQ(lines[2 + kClasses + 1], large_line);
  uint64_t total_allocs = 0;
  for (unsigned c = 0; c < s.num_classes; ++c)
    total_allocs += s.classes[c].allocs;
  EXPECT_TRUE(StartsWith(lines[2 + kClasses], "total allocs " + std::to_string(total_allocs) + " "))
      << lines[2 + kClasses];
}

TEST(StatsReportQuiet, ClassesWithoutActivityAreLeftOut) {
  // A class nobody in this process used has no row.
  RunInThread([] {});
  const hak_stats s = Snapshot();
  hak_memory m;
  hak_memory_get(&m);
  const std::string text = Capture(hak_stats_print);
  const std::vector<std::string> lines = Lines(text);
  size_t rows = 0, memory_rows = 0;
  for (unsigned c = 0; c < s.num_classes; ++c) {
    if (s.classes[c].allocs || s.classes[c].frees || s.classes[c].slabs)
      ++rows;
    if (m.classes[c].slabs || m.classes[c].live_bytes)
      ++memory_rows;
  }
  EXPECT_LT(memory_rows, kClasses) << "some class is idle";
  // The heading, the options and the column names; the eleven lines of totals;
  // the memory section's heading, column names and
  // three lines of totals.
  EXPECT_EQ(lines.size(), 3 + rows + 11 + 2 + memory_rows + 3) << text;
}

TEST_F(StatsReport, JsonReport) {
  const std::string text = Capture(hak_stats_print_json);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.front(), '{');
  EXPECT_EQ(text.back(), '\n');
  int depth = 0;
  for (char ch : text) {
    if (ch == '{' || ch == '[')
      ++depth;
    if (ch == '}' || ch == ']')
      --depth;
    ASSERT_GE(depth, 0);
  }
  EXPECT_EQ(depth, 0) << "braces and brackets balance";
  EXPECT_NE(text.find("\"classes\""), std::string::npos);

  Json doc;
  JsonReader reader(text);
  ASSERT_TRUE(reader.ParseDocument(&doc)) << "invalid JSON at " << reader.Where() << ":\n" << text;
  ASSERT_EQ(doc.kind, Json::kObject);
  const Json *pid = doc.Get("pid");
  ASSERT_NE(pid, nullptr);
  EXPECT_EQ(pid->number, getpid());
  hak_build_info b;
  hak_build_info_get(&b);
  const Json *build = doc.Get("build");
  ASSERT_NE(build, nullptr);
  EXPECT_EQ(build->kind, Json::kString);
  EXPECT_EQ(build->text, b.build);
  const Json *fast = doc.Get("fast_cache");
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->kind, Json::kBool);
  EXPECT_EQ(fast->boolean, FastCacheOn());
  EXPECT_EQ(fast->boolean, b.fast_cache != 0);
  const Json *options = doc.Get("options");
  ASSERT_NE(options, nullptr);
  ASSERT_EQ(options->kind, Json::kObject);
  ASSERT_NE(options->Get("HAKMEM_DECAY_MS"), nullptr);
  EXPECT_EQ(options->Get("HAKMEM_DECAY_MS")->number, 600000);
  ASSERT_NE(options->Get("HAKMEM_HEAP_LIMIT_MODE"), nullptr);
  EXPECT_EQ(options->Get("HAKMEM_HEAP_LIMIT_MODE")->kind, Json::kString);
  ASSERT_NE(options->Get("HAKMEM_PROF_FILE"), nullptr);
  EXPECT_EQ(options->Get("HAKMEM_PROF_FILE")->kind, Json::kString);
  const Json *classes = doc.Get("classes");
  ASSERT_NE(classes, nullptr);
  ASSERT_EQ(classes->kind, Json::kArray);
  ASSERT_EQ(classes->items.size(), kClasses);
  for (unsigned c = 0; c < kClasses; ++c) {
    const Json &k = classes->items[c];
    ASSERT_EQ(k.kind, Json::kObject);
    for (const char *key :
         {"class", "size", "allocs", "frees", "fast_hits", "refills", "remote_frees", "slabs"}) {
      ASSERT_NE(k.Get(key), nullptr) << key;
      EXPECT_EQ(k.Get(key)->kind, Json::kNumber) << key;
    }
    EXPECT_EQ(k.Get("class")->number, c);
    EXPECT_EQ(k.Get("size")->number, static_cast<double>(hak_size_class_bytes(c)));
    EXPECT_GE(k.Get("allocs")->number, 1);
  }
  for (const char *key : {"large_allocs",
                          "large_frees",
                          "large_live_bytes",
                          "superslabs",
                          "superslabs_peak",
                          "superslabs_total",
                          "mapped_bytes",
                          "mapped_peak",
                          "cached_bytes",
                          "purged_bytes",
                          "abandoned_slabs",
                          "adopted_slabs",
                          "threads_live",
                          "threads_exited",
                          "mutex_acquires",
                          "mutex_contended",
                          "heaps_reused",
                          "slabs_trimmed",
                          "os_mapped_bytes",
                          "os_mapped_peak",
                          "reserved_bytes",
                          "resident_bytes",
                          "released_dontneed_bytes",
                          "released_munmap_bytes",
                          "thp_advised_bytes",
                          "heap_limit_bytes",
                          "limit_givebacks",
                          "limit_refusals",
                          "guarded_allocs",
                          "guarded_fallbacks",
                          "guarded_in_use",
                          "guarded_faults"}) {
    const Json *v = doc.Get(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->kind, Json::kNumber) << key;
  }
  const Json *mode = doc.Get("heap_limit_mode");
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ(mode->kind, Json::kString);
  EXPECT_GT(doc.Get("resident_bytes")->number, 0) << "the RSS from /proc/self/statm";
  EXPECT_GE(doc.Get("os_mapped_bytes")->number, doc.Get("mapped_bytes")->number);
  EXPECT_GE(doc.Get("threads_live")->number, 1);

  // The memory census: every class, and the totals.
  const Json *memory = doc.Get("memory");
  ASSERT_NE(memory, nullptr);
  ASSERT_EQ(memory->kind, Json::kObject);
  EXPECT_EQ(memory->Get("partial"), nullptr) << "only a partial census says so";
  const Json *mclasses = memory->Get("classes");
  ASSERT_NE(mclasses, nullptr);
  ASSERT_EQ(mclasses->items.size(), kClasses);
  for (unsigned c = 0; c < kClasses; ++c) {
    const Json &k = mclasses->items[c];
    for (const char *key : {"class", "size", "slabs", "slab_bytes", "resident_bytes", "live_bytes",
                            "bin_bytes", "remote_bytes", "free_bytes", "carved_bytes"}) {
      ASSERT_NE(k.Get(key), nullptr) << key;
      EXPECT_EQ(k.Get(key)->kind, Json::kNumber) << key;
    }
    EXPECT_EQ(k.Get("class")->number, c);
    EXPECT_GE(k.Get("slabs")->number, 1);
    EXPECT_GE(k.Get("live_bytes")->number, k.Get("size")->number);
    EXPECT_LE(k.Get("resident_bytes")->number, k.Get("slab_bytes")->number);
  }
  for (const char *key :
       {"superslabs", "slab_bytes", "slab_resident_bytes", "header_resident_bytes",
        "free_slots_dirty", "free_slot_resident_bytes", "large_live_bytes", "cached_bytes",
        "metadata_bytes", "os_mapped_bytes", "resident_bytes"}) {
    const Json *v = memory->Get(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->kind, Json::kNumber) << key;
  }
  EXPECT_GE(memory->Get("superslabs")->number, 1);
  EXPECT_EQ(memory->Get("os_mapped_bytes")->number, doc.Get("os_mapped_bytes")->number);
}

// Reports go through write(2) on the descriptor given, also a pipe.
TEST(StatsReportPipe, TextThroughPipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  hak_stats_print(fds[1]);
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  EXPECT_TRUE(StartsWith(out, "hakmem stats (pid ")) << out;
  EXPECT_NE(out.find("\nmutexes acquired "), std::string::npos) << out;
}

// ---- from any context: hak_stats_report_collect and hak_stats_report_write --------------

// Without contention, the signal-safe collection is the full one.
TEST(StatsCollect, FromSignalContextMatchesWhenTheRegistryIsFree) {
  std::vector<void *> blocks;
  Worker w; // a live thread with counters of its own
  w.Run([&] {
    for (int i = 0; i < 50; ++i)
      blocks.push_back(hak_malloc(3000));
  });
  hak_stats a, b;
  EXPECT_TRUE(hak_stats_report_collect(&a, false));
  EXPECT_TRUE(hak_stats_report_collect(&b, true));
  const unsigned cls = ClassOf(3000);
  EXPECT_EQ(a.classes[cls].allocs, b.classes[cls].allocs);
  EXPECT_EQ(a.threads_live, b.threads_live);
  EXPECT_EQ(Snapshot().classes[cls].allocs, a.classes[cls].allocs);
  w.Run([&] {
    for (void *p : blocks)
      hak_free(p);
  });
}

// A report from a signal handler on a thread that holds the registry lock
// leaves live threads out, never waits for the lock, and says so.
TEST(StatsCollect, HeldRegistryGivesAPartialReport) {
  std::vector<void *> blocks;
  Worker w;
  w.Run([&] {
    for (int i = 0; i < 40; ++i)
      blocks.push_back(hak_malloc(2500));
  });
  const unsigned cls = ClassOf(2500);
  const hak_stats full = Snapshot();
  hak_thread_heap_registry_hold(true);
  hak_stats part;
  const bool complete = hak_stats_report_collect(&part, true);
  const std::string text = Capture([](int fd) { hak_stats_report_write(fd, false, true); });
  const std::string json = Capture([](int fd) { hak_stats_report_write(fd, true, true); });
  hak_thread_heap_registry_hold(false);
  EXPECT_FALSE(complete);
  EXPECT_LE(part.classes[cls].allocs + 40, full.classes[cls].allocs)
      << "the live worker's allocations are left out";
  EXPECT_EQ(part.large_allocs, full.large_allocs) << "process-wide counters are still read";
  const std::vector<std::string> lines = Lines(text);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[1], "partial: live threads' counters left out (the registry was busy)");
  EXPECT_NE(json.find("\"partial\":true,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"memory\":{\"partial\":true,"), std::string::npos) << json;
  EXPECT_NE(text.find("memory census (bytes; resident pages from mincore) partial: "),
            std::string::npos)
      << text;
  Json doc;
  JsonReader reader(json);
  EXPECT_TRUE(reader.ParseDocument(&doc)) << reader.Where() << ":\n" << json;
  // And complete again once the lock is free.
  EXPECT_TRUE(hak_stats_report_collect(&part, true));
  const std::string again = Capture([](int fd) { hak_stats_report_write(fd, false, true); });
  EXPECT_EQ(again.find("partial"), std::string::npos) << again;
  {
    // With the lock free, a census from a signal handler has the bins.
    hak_memory m;
    EXPECT_TRUE(hak_stats_report_memory_collect(&m, &full, true, true));
    EXPECT_EQ(m.partial, 0u);
  }
  w.Run([&] {
    for (void *p : blocks)
      hak_free(p);
  });
}

// The figures after `marker` in report, as a number.
uint64_t NumberAfter(const std::string &report, const std::string &marker) {
  const size_t at = report.find(marker);
  return at == std::string::npos ? 0 : std::stoull(report.substr(at + marker.size()));
}

// report with the process's RSS, which the kernel may change between two
// reports (a page of a stack, of the capture), replaced by "R".
std::string WithoutResident(std::string report) {
  for (const std::string marker : {"memory resident ", "\"resident_bytes\":"}) {
    const size_t at = report.find(marker);
    if (at == std::string::npos)
      continue;
    const size_t from = at + marker.size();
    size_t to = from;
    while (to < report.size() && report[to] >= '0' && report[to] <= '9')
      to++;
    report.replace(from, to - from, "R");
  }
  return report;
}

// hak_stats_report_write is what hak_stats_print and hak_stats_print_json write.
// Nothing allocates between the two captures of each pair; only the mutex
// count moves, by the registry lock each collection takes (and any the purge
// thread takes meanwhile), and the process's RSS may.
TEST(StatsCollect, WriteMatchesThePrints) {
  for (const bool json : {false, true}) {
    SCOPED_TRACE(json ? "json" : "text");
    const std::string marker = json ? "\"mutex_acquires\":" : "\nmutexes acquired ";
    const std::string written =
        json ? Capture([](int fd) { hak_stats_report_write(fd, true, false); })
             : Capture([](int fd) { hak_stats_report_write(fd, false, false); });
    const std::string printed = Capture(json ? hak_stats_print_json : hak_stats_print);
    const size_t at = written.find(marker);
    ASSERT_NE(at, std::string::npos) << written;
    EXPECT_EQ(WithoutResident(written.substr(0, at)), WithoutResident(printed.substr(0, at)));
    EXPECT_GE(NumberAfter(printed, marker), NumberAfter(written, marker) + 1);
    EXPECT_EQ(written.find("partial"), std::string::npos);
  }
}

// ---- the report on a signal ---------------------------------------------------

std::atomic<int> g_previous_calls{0};
void PreviousHandler(int) { g_previous_calls++; }

// The signal writes the report to HAKMEM_STATS_FD, then calls the handler the
// program had; installing twice is harmless; bad signals are refused.
TEST(StatsSignal, ReportThenThePreviousHandler) {
  hak_maintenance_init();
  struct sigaction sa {};
  sa.sa_handler = PreviousHandler;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
  ASSERT_EQ(hak_stats_report_signal_install(SIGUSR2), 0);
  EXPECT_EQ(hak_stats_report_signal_install(SIGUSR2), 0) << "already installed";
  EXPECT_EQ(hak_stats_report_signal_install(0), -1);
  EXPECT_EQ(hak_stats_report_signal_install(_NSIG), -1);
  EXPECT_EQ(hak_stats_report_signal_install(SIGKILL), -1) << "sigaction refuses it";

  const int saved_fd = hak_options_current.stats_fd;
  const int saved_mode = hak_options_current.stats;
  const std::string text = Capture([](int fd) {
    hak_options_current.stats_fd = fd;
    hak_options_current.stats = HAK_STATS_TEXT;
    raise(SIGUSR2);
  });
  const std::string json = Capture([](int fd) {
    hak_options_current.stats_fd = fd;
    hak_options_current.stats = HAK_STATS_JSON;
    raise(SIGUSR2);
  });
  hak_options_current.stats_fd = saved_fd;
  hak_options_current.stats = saved_mode;
  EXPECT_TRUE(StartsWith(text, "hakmem stats (pid " + std::to_string(getpid()) + ", ")) << text;
  EXPECT_NE(text.find("\nmutexes acquired "), std::string::npos) << text;
  Json doc;
  JsonReader reader(json);
  EXPECT_TRUE(reader.ParseDocument(&doc)) << reader.Where() << ":\n" << json;
  EXPECT_EQ(g_previous_calls.load(), 2) << "the program's handler runs after each report";
  sigaction(SIGUSR2, &old, nullptr);
}

// ---- the memory census ---------------------------------------------------------

hak_memory Census() {
  hak_memory m;
  hak_memory_get(&m);
  return m;
}

// Pages (4 KiB) that the blocks cover, each counted once.
uint64_t PagesOf(const std::vector<void *> &blocks, size_t size) {
  std::vector<uintptr_t> pages;
  for (void *p : blocks) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (uintptr_t pg = a / HAK_PAGE_SIZE; pg <= (a + size - 1) / HAK_PAGE_SIZE; ++pg)
      pages.push_back(pg);
  }
  std::sort(pages.begin(), pages.end());
  return static_cast<uint64_t>(std::unique(pages.begin(), pages.end()) - pages.begin());
}

// The environment above keeps trims and purges away (see NoHeapStash).
class CensusTest : public ::testing::Test {
protected:
  void SetUp() override { hak_maintenance_init(); }
};

// Blocks of a small and a medium class on thread A; thread B frees some of
// them (into its bins, then, flushed, onto A's slabs' remote lists), A frees
// others (into its own bins). The census accounts for each block exactly.
TEST_F(CensusTest, TwoThreadsBlocksAccountedPerClass) {
  struct Case {
    size_t request;
    size_t allocs, freed_by_b, freed_by_a;
  };
  // 1500 B: class 1536 (42 blocks per 64 KiB slab, a bin of 21); 20000 B:
  // class 20480 (medium, 25 per 512 KiB slab, a bin of 1). Sizes no other
  // test here uses, so their classes start empty.
  const Case cases[] = {{1500, 100, 10, 5}, {20000, 30, 1, 1}};
  const bool fast = FastCacheOn();
  const hak_memory before = Census();
  for (const Case &k : cases) {
    const unsigned c = ClassOf(k.request);
    ASSERT_EQ(before.classes[c].slabs, 0u) << c;
    ASSERT_EQ(before.classes[c].live_bytes, 0u) << c;
  }
  Worker a, b;
  b.Run([] { hak_free(hak_malloc(64)); }); // B has a heap, so bins
  std::vector<std::vector<void *>> blocks(2);
  a.Run([&] {
    for (size_t i = 0; i < 2; ++i) {
      for (size_t n = 0; n < cases[i].allocs; ++n) {
        void *p = hak_malloc(cases[i].request);
        std::memset(p, 0x5a, cases[i].request); // resident
        blocks[i].push_back(p);
      }
    }
    hak_thread_flush(); // A's bins empty: the refills' extra blocks go back
  });
  b.Run([&] {
    hak_thread_flush();
    for (size_t i = 0; i < 2; ++i) {
      for (size_t n = 0; n < cases[i].freed_by_b; ++n)
        hak_free(blocks[i][n]);
    }
  });
  a.Run([&] {
    for (size_t i = 0; i < 2; ++i) {
      for (size_t n = 0; n < cases[i].freed_by_a; ++n)
        hak_free(blocks[i][cases[i].freed_by_b + n]);
    }
  });

  auto check = [&](const char *phase, bool b_flushed) {
    SCOPED_TRACE(phase);
    const hak_stats s = Snapshot();
    const hak_memory m = Census();
    EXPECT_EQ(m.partial, 0u);
    for (size_t i = 0; i < 2; ++i) {
      const Case &k = cases[i];
      const unsigned c = ClassOf(k.request);
      const uint64_t size = hak_size_class_bytes(c);
      const hak_class_memory &cm = m.classes[c];
      SCOPED_TRACE(size);
      const size_t live = k.allocs - k.freed_by_b - k.freed_by_a;
      std::vector<void *> held(
          blocks[i].begin() + static_cast<ptrdiff_t>(k.freed_by_b + k.freed_by_a), blocks[i].end());
      EXPECT_EQ(cm.block_size, size);
      EXPECT_EQ(cm.live_bytes, live * size);
      // The slabs the shared pool counts, found by walking the SuperSlabs.
      EXPECT_EQ(cm.slabs, s.classes[c].slabs);
      const uint64_t slab = size <= HAK_SMALL_MAX ? 64 << 10 : 512 << 10;
      EXPECT_LE(cm.slab_bytes, cm.slabs * slab);
      EXPECT_GE(cm.slab_bytes, cm.slabs * (slab - HAK_SS_HEADER_SIZE - HAK_PAGE_SIZE));
      if (size <= HAK_SMALL_MAX && !HAKMEM_HARDENED) {
        EXPECT_EQ(cm.slab_bytes, cm.slabs * slab) << "whole 64 KiB granules";
      }
      // The pages the test wrote are resident, and no more than the slabs.
      EXPECT_GE(cm.resident_bytes, PagesOf(held, k.request) * HAK_PAGE_SIZE);
      EXPECT_LE(cm.resident_bytes, cm.slab_bytes);
      // In bins: what A freed (its bins were empty), and what B freed until
      // B flushed; without the fast cache there are no bins, and B's frees
      // go to the remote lists at once.
      const uint64_t in_b = fast && !b_flushed ? k.freed_by_b : 0;
      const uint64_t in_a = fast ? k.freed_by_a : 0;
      EXPECT_EQ(cm.bin_bytes, (in_a + in_b) * size);
      const uint64_t remote = fast && !b_flushed ? 0 : k.freed_by_b;
      EXPECT_EQ(cm.remote_bytes, remote * size);
      // Every carved block is live, in a bin, remote or free, once.
      EXPECT_EQ(cm.live_bytes + cm.bin_bytes + cm.remote_bytes + cm.free_bytes, cm.carved_bytes);
      EXPECT_GE(cm.carved_bytes, k.allocs * size);
      EXPECT_LE(cm.carved_bytes, cm.slab_bytes);
    }
    // Totals: the census against the counters kept apart from it.
    EXPECT_EQ(m.superslabs, s.superslabs);
    EXPECT_EQ(m.superslabs * HAK_SS_SIZE + s.large_live_bytes + s.cached_bytes, s.mapped_bytes);
    EXPECT_EQ(m.metadata_bytes, s.os_mapped_bytes - s.mapped_bytes);
    uint64_t slab_bytes = 0, resident = 0;
    for (unsigned c = 0; c < m.num_classes; ++c) {
      EXPECT_EQ(m.classes[c].slabs, s.classes[c].slabs) << c;
      EXPECT_EQ(m.classes[c].live_bytes,
                (s.classes[c].allocs - s.classes[c].frees) * s.classes[c].block_size)
          << c;
      slab_bytes += m.classes[c].slab_bytes;
      resident += m.classes[c].resident_bytes;
    }
    EXPECT_EQ(m.slab_bytes, slab_bytes);
    EXPECT_EQ(m.slab_resident_bytes, resident);
    EXPECT_GE(m.header_resident_bytes, m.superslabs * HAK_PAGE_SIZE) << "every header is written";
    EXPECT_LE(m.header_resident_bytes, m.superslabs * HAK_SS_HEADER_SIZE);
    EXPECT_LE(m.slab_resident_bytes + m.header_resident_bytes + m.free_slot_resident_bytes,
              m.os_mapped_bytes);
    EXPECT_LE(m.slab_bytes + m.superslabs * HAK_SS_HEADER_SIZE, m.superslabs * HAK_SS_SIZE);
    EXPECT_LE(m.slab_resident_bytes + m.header_resident_bytes + m.free_slot_resident_bytes,
              m.resident_bytes);
  };
  check("B's frees in its bins", false);
  b.Run([] { hak_thread_flush(); });
  check("B flushed", true);

  // Every block back: the classes' slabs go (A's active slabs stay, empty),
  // once a trim has collected B's frees.
  a.Run([&] {
    for (size_t i = 0; i < 2; ++i) {
      for (size_t n = cases[i].freed_by_b + cases[i].freed_by_a; n < cases[i].allocs; ++n)
        hak_free(blocks[i][n]);
    }
    hak_thread_flush();
    hak_trim(0); // collects the remote frees, releases empty slabs
  });
  const hak_memory after = Census();
  for (const Case &k : cases) {
    const unsigned c = ClassOf(k.request);
    EXPECT_EQ(after.classes[c].live_bytes, 0u);
    EXPECT_EQ(after.classes[c].bin_bytes, 0u);
    // Without the fast cache there are no trims: B's frees wait for A's
    // next refill of the class.
    EXPECT_EQ(after.classes[c].remote_bytes, fast ? 0u : k.freed_by_b * hak_size_class_bytes(c));
    EXPECT_EQ(after.classes[c].slabs, Snapshot().classes[c].slabs);
  }
}

// A free slot whose pages are still resident (released, not yet purged) is
// counted apart from the classes, and the purge takes it out.
TEST_F(CensusTest, DirtyFreeSlotsUntilThePurge) {
  constexpr size_t kSize = 6000; // class 6144: 10 blocks per small slab
  const unsigned c = ClassOf(kSize);
  std::vector<void *> keep, drop;
  Worker w;
  w.Run([&] {
    // Two slabs' worth and more, in SuperSlabs that other blocks keep alive.
    for (int i = 0; i < 40; ++i) {
      void *p = hak_malloc(kSize);
      std::memset(p, 1, kSize);
      drop.push_back(p);
    }
    keep.push_back(hak_malloc(kSize));
    hak_thread_flush();
  });
  const hak_memory full = Census();
  ASSERT_GE(full.classes[c].slabs, 4u);
  w.Run([&] {
    for (void *p : drop)
      hak_free(p);
    hak_thread_flush(); // the emptied slabs go back to the pool: dirty slots
  });
  const hak_memory dirty = Census();
  EXPECT_LT(dirty.classes[c].slabs, full.classes[c].slabs);
  EXPECT_GE(dirty.free_slots_dirty, full.free_slots_dirty + 1);
  EXPECT_GE(dirty.free_slot_resident_bytes, full.free_slot_resident_bytes + HAK_PAGE_SIZE);
  hak_shared_pool_purge_slots(true); // what the decay does when no slot was released for a while
  const hak_memory purged = Census();
  EXPECT_EQ(purged.free_slots_dirty, 0u);
  EXPECT_EQ(purged.free_slot_resident_bytes, 0u);
  w.Run([&] {
    for (void *p : keep)
      hak_free(p);
  });
}

} // namespace
