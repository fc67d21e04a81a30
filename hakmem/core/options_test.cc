// Unit test of the options box: HAKMEM_* entries of an environment parsed
// into a struct, with bounds, rejected values (default kept, counted and
// reported), unknown names (counted) and foreign entries (ignored).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/core/log.h"
#include "hakmem/core/options.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;

// An environment block built from string literals.
class Env {
public:
  Env(std::initializer_list<std::string> entries) : strings_(entries) {
    for (auto &s : strings_)
      ptrs_.push_back(&s[0]);
    ptrs_.push_back(nullptr);
  }
  char *const *envp() { return ptrs_.data(); }

private:
  std::vector<std::string> strings_;
  std::vector<char *> ptrs_;
};

// Runs fn with fd 2 sent to a memory file and returns what was written.
template <typename Fn> std::string CaptureStderr(Fn fn) {
  const int mem = memfd_create("stderr", 0);
  const int saved = dup(2);
  dup2(mem, 2);
  fn();
  dup2(saved, 2);
  close(saved);
  std::string out(static_cast<size_t>(lseek(mem, 0, SEEK_END)), '\0');
  if (!out.empty() && pread(mem, &out[0], out.size(), 0) < 0)
    out = "<read failed>";
  close(mem);
  return out;
}

struct Parsed {
  hak_options v;
  int rejected;
  std::string err;
};

Parsed Parse(std::initializer_list<std::string> entries) {
  Env env(entries);
  Parsed p{};
  hak_options_defaults(&p.v);
  p.err = CaptureStderr([&] { p.rejected = hak_options_parse(&p.v, env.envp()); });
  return p;
}

hak_options Defaults() {
  hak_options d{};
  hak_options_defaults(&d);
  return d;
}

bool Same(const hak_options &a, const hak_options &b) {
  return a.stats == b.stats && a.stats_fd == b.stats_fd && a.decay_ms == b.decay_ms &&
         a.arena_cache_bytes == b.arena_cache_bytes && a.tcache_max == b.tcache_max &&
         a.verbose == b.verbose && a.check_level == b.check_level &&
         a.crash_report == b.crash_report && a.purge_thread == b.purge_thread &&
         a.heap_stash == b.heap_stash && a.stats_signal == b.stats_signal &&
         a.heap_limit_bytes == b.heap_limit_bytes && a.heap_limit_mode == b.heap_limit_mode &&
         a.thp == b.thp;
}

TEST(Options, Defaults) {
  const hak_options d = Defaults();
  EXPECT_EQ(d.stats, HAK_STATS_OFF);
  EXPECT_EQ(d.stats_fd, 2);
  EXPECT_EQ(d.decay_ms, 500u);
  EXPECT_EQ(d.arena_cache_bytes, 256 * kMiB); // as the README's options table says
  EXPECT_EQ(d.tcache_max, 2048u);
  EXPECT_EQ(d.verbose, 0);
  EXPECT_EQ(d.check_level, HAKMEM_CHECK_DEFAULT);
  EXPECT_EQ(d.check_level, HAKMEM_BUILD_RELEASE ? HAK_CHECK_CHEAP : HAK_CHECK_FULL)
      << "full checks in debug and default builds, cheap ones in release";
  EXPECT_EQ(d.heap_stash, 0u);
  EXPECT_EQ(d.crash_report, 0);
  EXPECT_EQ(d.purge_thread, 1);
  EXPECT_EQ(d.stats_signal, 0);
  EXPECT_EQ(d.heap_limit_bytes, 0u);
  EXPECT_EQ(d.heap_limit_mode, HAK_LIMIT_SOFT);
  EXPECT_EQ(d.thp, HAKMEM_THP_DEFAULT);
}

TEST(Options, Check) {
  EXPECT_EQ(Parse({"HAKMEM_CHECK=off"}).v.check_level, HAK_CHECK_OFF);
  EXPECT_EQ(Parse({"HAKMEM_CHECK=cheap"}).v.check_level, HAK_CHECK_CHEAP);
  EXPECT_EQ(Parse({"HAKMEM_CHECK=full"}).v.check_level, HAK_CHECK_FULL);
  // Any level may replace any other, in debug builds too (hak_integrity_init,
  // not the parser, keeps hardened builds at cheap or above).
  EXPECT_EQ(Parse({"HAKMEM_CHECK=full", "HAKMEM_CHECK=off"}).v.check_level, HAK_CHECK_OFF);
  EXPECT_EQ(Parse({"HAKMEM_CHECK=off", "HAKMEM_CHECK=cheap"}).v.check_level, HAK_CHECK_CHEAP);
  EXPECT_EQ(Parse({"HAKMEM_CHECK=cheap", "HAKMEM_CHECK=full"}).v.check_level, HAK_CHECK_FULL);
  // Only the three names: the numbers the old on/off option took are refused.
  for (const char *bad :
       {"HAKMEM_CHECK=", "HAKMEM_CHECK=0", "HAKMEM_CHECK=1", "HAKMEM_CHECK=2", "HAKMEM_CHECK=FULL",
        "HAKMEM_CHECK=Cheap", "HAKMEM_CHECK=on", "HAKMEM_CHECK=full ", "HAKMEM_CHECK=cheapest"}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.check_level, HAKMEM_CHECK_DEFAULT);
    EXPECT_EQ(p.err, std::string("hakmem: bad value in ") + bad + " (default kept)\n");
  }
}

TEST(Options, CrashReport) {
  EXPECT_EQ(Parse({"HAKMEM_CRASH_REPORT=1"}).v.crash_report, 1);
  EXPECT_EQ(Parse({"HAKMEM_CRASH_REPORT=0"}).v.crash_report, 0);
  for (const char *bad :
       {"HAKMEM_CRASH_REPORT=2", "HAKMEM_CRASH_REPORT=yes", "HAKMEM_CRASH_REPORT="}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.crash_report, 0);
  }
}

TEST(Options, PurgeThread) {
  EXPECT_EQ(Parse({"HAKMEM_PURGE_THREAD=0"}).v.purge_thread, 0);
  EXPECT_EQ(Parse({"HAKMEM_PURGE_THREAD=1"}).v.purge_thread, 1);
  for (const char *bad :
       {"HAKMEM_PURGE_THREAD=2", "HAKMEM_PURGE_THREAD=off", "HAKMEM_PURGE_THREAD="}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.purge_thread, 1);
  }
}

TEST(Options, HeapStash) {
  EXPECT_EQ(Parse({}).v.heap_stash, 0u);
  EXPECT_EQ(Parse({"HAKMEM_HEAP_STASH=0"}).v.heap_stash, 0u);
  EXPECT_EQ(Parse({"HAKMEM_HEAP_STASH=16"}).v.heap_stash, 16u);
  for (const char *bad : {"HAKMEM_HEAP_STASH=17", "HAKMEM_HEAP_STASH=-1", "HAKMEM_HEAP_STASH="}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.heap_stash, 0u);
  }
}

TEST(Options, HeapLimit) {
  EXPECT_EQ(Parse({"HAKMEM_HEAP_LIMIT_MB=0"}).v.heap_limit_bytes, 0u);
  EXPECT_EQ(Parse({"HAKMEM_HEAP_LIMIT_MB=64"}).v.heap_limit_bytes, 64 * kMiB);
  EXPECT_EQ(Parse({"HAKMEM_HEAP_LIMIT_MB=1073741824"}).v.heap_limit_bytes,
            (size_t{1} << 30) * kMiB);
  EXPECT_EQ(Parse({"HAKMEM_HEAP_LIMIT_MODE=hard"}).v.heap_limit_mode, HAK_LIMIT_HARD);
  EXPECT_EQ(Parse({"HAKMEM_HEAP_LIMIT_MODE=hard", "HAKMEM_HEAP_LIMIT_MODE=soft"}).v.heap_limit_mode,
            HAK_LIMIT_SOFT);
  for (const char *bad :
       {"HAKMEM_HEAP_LIMIT_MB=", "HAKMEM_HEAP_LIMIT_MB=-1", "HAKMEM_HEAP_LIMIT_MB=1073741825",
        "HAKMEM_HEAP_LIMIT_MB=1G", "HAKMEM_HEAP_LIMIT_MODE=Hard", "HAKMEM_HEAP_LIMIT_MODE=1",
        "HAKMEM_HEAP_LIMIT_MODE="}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_TRUE(Same(p.v, Defaults()));
  }
}

TEST(Options, Thp) {
  EXPECT_EQ(Parse({"HAKMEM_THP=1"}).v.thp, 1);
  EXPECT_EQ(Parse({"HAKMEM_THP=0"}).v.thp, 0);
  for (const char *bad : {"HAKMEM_THP=2", "HAKMEM_THP=on", "HAKMEM_THP="}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.thp, HAKMEM_THP_DEFAULT);
  }
}

TEST(Options, EmptyAndNullEnvironments) {
  hak_options v{};
  hak_options_defaults(&v);
  EXPECT_EQ(hak_options_parse(&v, nullptr), 0);
  EXPECT_TRUE(Same(v, Defaults()));
  Parsed p = Parse({});
  EXPECT_EQ(p.rejected, 0);
  EXPECT_TRUE(Same(p.v, Defaults()));
}

TEST(Options, Stats) {
  EXPECT_EQ(Parse({"HAKMEM_STATS=1"}).v.stats, HAK_STATS_TEXT);
  EXPECT_EQ(Parse({"HAKMEM_STATS=0"}).v.stats, HAK_STATS_OFF);
  EXPECT_EQ(Parse({"HAKMEM_STATS=json"}).v.stats, HAK_STATS_JSON);
  for (const char *bad : {"HAKMEM_STATS=2", "HAKMEM_STATS=", "HAKMEM_STATS=yes",
                          "HAKMEM_STATS=JSON", "HAKMEM_STATS=-1", "HAKMEM_STATS=1 "}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.stats, HAK_STATS_OFF);
  }
}

TEST(Options, StatsSignal) {
  // Names with or without SIG, in any case, and numbers.
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=USR1"}).v.stats_signal, SIGUSR1);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=SIGUSR2"}).v.stats_signal, SIGUSR2);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=usr2"}).v.stats_signal, SIGUSR2);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=SigHup"}).v.stats_signal, SIGHUP);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=WINCH"}).v.stats_signal, SIGWINCH);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=10"}).v.stats_signal, 10);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=40"}).v.stats_signal, 40); // a real-time signal
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=64"}).v.stats_signal, 64);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=USR1", "HAKMEM_STATS_SIGNAL=0"}).v.stats_signal, 0);
  EXPECT_EQ(Parse({"HAKMEM_STATS_SIGNAL=USR1", "HAKMEM_STATS_SIGNAL=off"}).v.stats_signal, 0);
  // Uncatchable, raised by faults, kept by glibc, or no signal at all.
  for (const char *bad :
       {"HAKMEM_STATS_SIGNAL=KILL", "HAKMEM_STATS_SIGNAL=9",    "HAKMEM_STATS_SIGNAL=SIGSTOP",
        "HAKMEM_STATS_SIGNAL=19",   "HAKMEM_STATS_SIGNAL=SEGV", "HAKMEM_STATS_SIGNAL=11",
        "HAKMEM_STATS_SIGNAL=BUS",  "HAKMEM_STATS_SIGNAL=ABRT", "HAKMEM_STATS_SIGNAL=6",
        "HAKMEM_STATS_SIGNAL=FPE",  "HAKMEM_STATS_SIGNAL=ILL",  "HAKMEM_STATS_SIGNAL=TRAP",
        "HAKMEM_STATS_SIGNAL=SYS",  "HAKMEM_STATS_SIGNAL=32",   "HAKMEM_STATS_SIGNAL=33",
        "HAKMEM_STATS_SIGNAL=65",   "HAKMEM_STATS_SIGNAL=-10",  "HAKMEM_STATS_SIGNAL=",
        "HAKMEM_STATS_SIGNAL=SIG",  "HAKMEM_STATS_SIGNAL=USR3", "HAKMEM_STATS_SIGNAL=USR1 ",
        "HAKMEM_STATS_SIGNAL=on"}) {
    SCOPED_TRACE(bad);
    Parsed p = Parse({bad});
    EXPECT_EQ(p.rejected, 1);
    EXPECT_EQ(p.v.stats_signal, 0);
    EXPECT_EQ(p.err, std::string("hakmem: bad value in ") + bad + " (default kept)\n");
  }
}

// Each numeric option: its lowest and highest values, one past the highest,
// and the value it stores.
TEST(Options, NumericBounds) {
  struct Case {
    const char *name;
    uint64_t max;
    uint64_t (*get)(const hak_options &);
    uint64_t scale;
  };
  const Case cases[] = {
      {"HAKMEM_STATS_FD", uint64_t{1} << 20,
       [](const hak_options &v) { return static_cast<uint64_t>(v.stats_fd); }, 1},
      {"HAKMEM_DECAY_MS", 3600u * 1000u,
       [](const hak_options &v) { return static_cast<uint64_t>(v.decay_ms); }, 1},
      {"HAKMEM_ARENA_CACHE_MB", uint64_t{1} << 20,
       [](const hak_options &v) { return static_cast<uint64_t>(v.arena_cache_bytes); }, kMiB},
      {"HAKMEM_TCACHE_MAX", 65535,
       [](const hak_options &v) { return static_cast<uint64_t>(v.tcache_max); }, 1},
      {"HAKMEM_VERBOSE", 9, [](const hak_options &v) { return static_cast<uint64_t>(v.verbose); },
       1},
  };
  const hak_options d = Defaults();
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    const std::string n = std::string(c.name) + "=";
    const uint64_t def = c.get(d);
    for (uint64_t ok : {uint64_t{0}, uint64_t{1}, c.max / 2, c.max}) {
      Parsed p = Parse({n + std::to_string(ok)});
      EXPECT_EQ(p.rejected, 0) << ok;
      EXPECT_EQ(c.get(p.v), ok * c.scale) << ok;
      EXPECT_EQ(p.err, "");
    }
    // Leading zeros are still decimal.
    EXPECT_EQ(c.get(Parse({n + "007"}).v), 7 * c.scale);
    for (const std::string &bad :
         {std::to_string(c.max + 1), std::string("-1"), std::string(""), std::string("12x"),
          std::string("x12"), std::string(" 5"), std::string("5 "), std::string("+5"),
          std::string("0x10"), std::string("1e3"), std::string("99999999999999999999999"),
          std::string("18446744073709551616"), std::string("5=6")}) {
      SCOPED_TRACE(bad);
      Parsed p = Parse({n + bad});
      EXPECT_EQ(p.rejected, 1);
      EXPECT_EQ(c.get(p.v), def) << "the default is kept";
      EXPECT_EQ(p.err, "hakmem: bad value in " + n + bad + " (default kept)\n");
    }
  }
}

// A rejected value keeps whatever the option held, including an earlier
// valid entry; a later valid entry wins.
TEST(Options, LaterEntriesWinAndBadOnesKeepThePrevious) {
  Parsed p = Parse({"HAKMEM_DECAY_MS=5", "HAKMEM_DECAY_MS=7"});
  EXPECT_EQ(p.rejected, 0);
  EXPECT_EQ(p.v.decay_ms, 7u);
  p = Parse({"HAKMEM_DECAY_MS=5", "HAKMEM_DECAY_MS=abc"});
  EXPECT_EQ(p.rejected, 1);
  EXPECT_EQ(p.v.decay_ms, 5u);
  hak_options v = Defaults();
  v.tcache_max = 12;
  Env env({"HAKMEM_TCACHE_MAX=70000"});
  EXPECT_EQ(hak_options_parse(&v, env.envp()), 1);
  EXPECT_EQ(v.tcache_max, 12u);
}

TEST(Options, SeveralOptionsTogether) {
  Parsed p =
      Parse({"HOME=/root", "HAKMEM_STATS=json", "HAKMEM_STATS_FD=9", "HAKMEM_DECAY_MS=0",
             "HAKMEM_ARENA_CACHE_MB=0", "HAKMEM_TCACHE_MAX=0", "HAKMEM_VERBOSE=0", "TERM=xterm"});
  EXPECT_EQ(p.rejected, 0);
  EXPECT_EQ(p.v.stats, HAK_STATS_JSON);
  EXPECT_EQ(p.v.stats_fd, 9);
  EXPECT_EQ(p.v.decay_ms, 0u);
  EXPECT_EQ(p.v.arena_cache_bytes, 0u);
  EXPECT_EQ(p.v.tcache_max, 0u);
  EXPECT_EQ(p.err, "");
}

// Unknown HAKMEM_ names are counted; they are reported only when verbose.
TEST(Options, UnknownNamesAreCounted) {
  Parsed p =
      Parse({"HAKMEM_FOO=1", "HAKMEM_STATSX=1", "HAKMEM_STAT=1", "HAKMEM_=1", "HAKMEM_decay_ms=5"});
  EXPECT_EQ(p.rejected, 5);
  EXPECT_TRUE(Same(p.v, Defaults()));
  EXPECT_EQ(p.err, "") << "quiet unless HAKMEM_VERBOSE is set";

  p = Parse({"HAKMEM_VERBOSE=1", "HAKMEM_FOO=1"});
  EXPECT_EQ(p.rejected, 1);
  EXPECT_EQ(p.v.verbose, 1);
  EXPECT_EQ(p.err, "hakmem: unknown option HAKMEM_FOO=1 (ignored)\n");
}

TEST(Options, ForeignEntriesAreIgnored) {
  Parsed p =
      Parse({"PATH=/bin", "XHAKMEM_STATS=1", "hakmem_stats=1", "HAKMEMSTATS=1", "HAKMEM_STATS",
             "HAKMEM_DECAY_MS", "HAKMEM", "", "=HAKMEM_STATS=1", " HAKMEM_STATS=1"});
  EXPECT_EQ(p.rejected, 0);
  EXPECT_TRUE(Same(p.v, Defaults()));
  EXPECT_EQ(p.err, "");
}

TEST(Options, CountsEveryRejection) {
  Parsed p =
      Parse({"HAKMEM_DECAY_MS=1", "HAKMEM_DECAY_MS=bad", "HAKMEM_NOPE=1", "HAKMEM_TCACHE_MAX=65536",
             "HAKMEM_VERBOSE=10", "OTHER=1", "HAKMEM_ARENA_CACHE_MB=8"});
  EXPECT_EQ(p.rejected, 4);
  EXPECT_EQ(p.v.decay_ms, 1u);
  EXPECT_EQ(p.v.arena_cache_bytes, 8 * kMiB);
  EXPECT_EQ(p.v.tcache_max, Defaults().tcache_max);
  EXPECT_EQ(p.v.verbose, 0);
}

// hak_options_load reads the process environment over the defaults.
TEST(Options, LoadReadsTheProcessEnvironment) {
  hak_options_load();
  const hak_options saved = hak_options_current;
  ASSERT_EQ(setenv("HAKMEM_DECAY_MS", "1234", 1), 0);
  ASSERT_EQ(setenv("HAKMEM_ARENA_CACHE_MB", "3", 1), 0);
  ASSERT_EQ(setenv("HAKMEM_TCACHE_MAX", "oops", 1), 0);
  std::string err = CaptureStderr([] { hak_options_load(); });
  hak_options now = hak_options_current;
  EXPECT_EQ(now.decay_ms, 1234u);
  EXPECT_EQ(now.arena_cache_bytes, 3 * kMiB);
  EXPECT_EQ(now.tcache_max, Defaults().tcache_max);
  EXPECT_NE(err.find("HAKMEM_TCACHE_MAX=oops"), std::string::npos) << err;
  unsetenv("HAKMEM_DECAY_MS");
  unsetenv("HAKMEM_ARENA_CACHE_MB");
  unsetenv("HAKMEM_TCACHE_MAX");
  hak_options_load();
  now = hak_options_current;
  EXPECT_TRUE(Same(now, Defaults()) || Same(now, saved));
}

// With a report asked for, the loaded options hold a private copy of the
// report's descriptor (close-on-exec, out of the way of the program's low
// numbers), so a program closing stderr still gets its exit report.
TEST(Options, LoadKeepsAPrivateCopyOfTheStatsDescriptor) {
  const int target = memfd_create("stats", 0);
  ASSERT_GE(target, 0);
  ASSERT_EQ(setenv("HAKMEM_STATS", "1", 1), 0);
  ASSERT_EQ(setenv("HAKMEM_STATS_FD", std::to_string(target).c_str(), 1), 0);
  hak_options_load();
  const hak_options loaded = hak_options_current;
  unsetenv("HAKMEM_STATS");
  unsetenv("HAKMEM_STATS_FD");
  hak_options_load();
  EXPECT_EQ(loaded.stats, HAK_STATS_TEXT);
  ASSERT_GE(loaded.stats_fd, 64);
  EXPECT_NE(fcntl(loaded.stats_fd, F_GETFD) & FD_CLOEXEC, 0);
  struct stat a {
  }, b{};
  ASSERT_EQ(fstat(target, &a), 0);
  ASSERT_EQ(fstat(loaded.stats_fd, &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "the copy names the same file";
  close(loaded.stats_fd);
  close(target);
  EXPECT_EQ(hak_options_current.stats_fd, 2) << "no copy without a report";
}

#if !HAKMEM_BUILD_RELEASE
// HAKMEM_VERBOSE turns on the debug log (compiled out of release builds).
TEST(Options, LoadSetsTheLogLevel) {
  ASSERT_EQ(setenv("HAKMEM_VERBOSE", "3", 1), 0);
  std::string err = CaptureStderr([] { hak_options_load(); });
  EXPECT_EQ(hak_log_level, 3);
  unsetenv("HAKMEM_VERBOSE");
  hak_options_load();
  EXPECT_EQ(hak_log_level, 0);
}
#endif

// hak_options_parse_signal, which HAKMEM_STATS_SIGNAL uses, on its own.
TEST(Options, ParseSignal) {
  EXPECT_EQ(hak_options_parse_signal("0"), 0);
  EXPECT_EQ(hak_options_parse_signal("off"), 0);
  EXPECT_EQ(hak_options_parse_signal("OFF"), 0);
  EXPECT_EQ(hak_options_parse_signal("usr1"), SIGUSR1);
  EXPECT_EQ(hak_options_parse_signal("SIGPWR"), SIGPWR);
  EXPECT_EQ(hak_options_parse_signal("sigio"), SIGIO);
  EXPECT_EQ(hak_options_parse_signal("1"), 1);
  EXPECT_EQ(hak_options_parse_signal("34"), 34);
  for (const char *bad : {"", "SIG", "sigkill", "STOP", "00x", "65", "100", "-1", "USR1x", "32"})
    EXPECT_EQ(hak_options_parse_signal(bad), -1) << bad;
}

} // namespace

namespace {

std::string Format(const hak_option_def &d, const hak_options &o) {
  char buf[512];
  const size_t n = hak_options_format(&d, &o, buf, sizeof buf);
  EXPECT_EQ(n, std::strlen(buf));
  return buf;
}

// One table drives parsing: every option takes its bounds and choices, keeps
// its default on a value outside them, and formats back what it parsed.
TEST(OptionsTable, EveryOptionParsesItsRangeAndFormatsItBack) {
  ASSERT_GE(hak_options_count, 18u);
  for (size_t i = 0; i < hak_options_count; ++i) {
    const hak_option_def &d = hak_options_table[i];
    SCOPED_TRACE(d.name);
    ASSERT_EQ(std::string(d.name).rfind("HAKMEM_", 0), 0u);
    for (size_t j = 0; j < i; ++j)
      EXPECT_STRNE(d.name, hak_options_table[j].name);
    EXPECT_NE(d.doc, nullptr);
    std::vector<std::string> good, bad = {""};
    switch (d.type) {
    case HAK_OPT_UINT:
    case HAK_OPT_MIB:
      good = {std::to_string(d.lo), std::to_string(d.hi)};
      bad.push_back(std::to_string(d.hi + 1));
      if (d.lo > 0)
        bad.push_back(std::to_string(d.lo - 1));
      bad.push_back("1x");
      break;
    case HAK_OPT_CHOICE:
      for (std::string rest = d.choices; !rest.empty();) {
        const size_t bar = rest.find('|');
        good.push_back(rest.substr(0, bar));
        rest = bar == std::string::npos ? "" : rest.substr(bar + 1);
      }
      bad.push_back(good.back() + "x");
      break;
    case HAK_OPT_SIGNAL:
      good = {"0", "10"}; // off, SIGUSR1
      bad.push_back("SEGV");
      break;
    case HAK_OPT_STRING:
      good = {"x", std::string(d.width - 1, 'y')};
      bad.push_back(std::string(d.width, 'z'));
      break;
    }
    const hak_options defaults = Defaults();
    for (const std::string &value : good) {
      Parsed p = Parse({std::string(d.name) + "=" + value});
      EXPECT_EQ(p.rejected, 0) << value;
      EXPECT_EQ(Format(d, p.v), value);
    }
    for (const std::string &value : bad) {
      Parsed p = Parse({std::string(d.name) + "=" + value});
      EXPECT_EQ(p.rejected, 1) << value;
      EXPECT_EQ(Format(d, p.v), Format(d, defaults)) << value;
    }
  }
}

// The table's defaults are the struct's defaults, field by field.
TEST(OptionsTable, DefaultsComeFromTheTable) {
  const hak_options d = Defaults();
  EXPECT_EQ(d.decay_ms, 500u);
  EXPECT_EQ(d.arena_cache_bytes, size_t{256} << 20);
  EXPECT_EQ(d.check_level, HAKMEM_CHECK_DEFAULT);
  EXPECT_STREQ(d.prof_file, "hakmem.%p.heap");
  for (size_t i = 0; i < hak_options_count; ++i) {
    const hak_option_def &o = hak_options_table[i];
    const std::string v = Format(o, d);
    if (o.type == HAK_OPT_STRING) {
      EXPECT_EQ(v, o.def_str) << o.name;
    } else if (o.type != HAK_OPT_CHOICE) {
      EXPECT_EQ(v, std::to_string(o.def)) << o.name;
    }
  }
  char small[4];
  EXPECT_EQ(hak_options_format(&hak_options_table[0], &d, small, 0), 0u);
}

} // namespace
