// Unit test of the log box: hak_log_format's subset of printf (checked against
// snprintf where they agree), truncation, writes of every byte through a
// pipe, and hak_log_fatal's report and abort.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "hakmem/core/log.h"

namespace {

// hak_log_format into a string; `cap` is the buffer's size.
std::string Fmt(size_t cap, const char *fmt, ...) {
  std::string buf(cap + 1, '#');
  va_list ap;
  va_start(ap, fmt);
  const size_t n = hak_log_vformat(&buf[0], cap, fmt, ap);
  va_end(ap);
  EXPECT_EQ(buf[cap], '#') << "wrote past the buffer";
  if (cap > 0) {
    EXPECT_EQ(buf.find('\0'), n) << "the length returned is where the NUL is";
  }
  return buf.substr(0, n);
}

// Both hak_log_format and snprintf of one format and its arguments.
#define EXPECT_LIKE_PRINTF(fmt, ...)                                                               \
  do {                                                                                             \
    char want[256];                                                                                \
    std::snprintf(want, sizeof want, fmt, __VA_ARGS__);                                            \
    char got[256];                                                                                 \
    const size_t n = hak_log_format(got, sizeof got, fmt, __VA_ARGS__);                            \
    EXPECT_STREQ(got, want) << fmt;                                                                \
    EXPECT_EQ(n, std::string(want).size()) << fmt;                                                 \
  } while (0)

TEST(Format, AgreesWithPrintf) {
  EXPECT_LIKE_PRINTF("plain text %s", "");
  EXPECT_LIKE_PRINTF("%s|%s|%c", "abc", "", 'x');
  EXPECT_LIKE_PRINTF("%d %d %d %i", 0, -1, 123456, INT_MIN);
  EXPECT_LIKE_PRINTF("%d %d", INT_MAX, -42);
  EXPECT_LIKE_PRINTF("%u %u %x %x", 0u, UINT_MAX, 0xdeadbeefu, 0u);
  EXPECT_LIKE_PRINTF("%ld %lu %lx", LONG_MIN, ULONG_MAX, 0x123456789abcdeful);
  EXPECT_LIKE_PRINTF("%lld %llu %llx", LLONG_MIN, ULLONG_MAX, 0xfedcba9876543210ull);
  EXPECT_LIKE_PRINTF("%zu %zx %zd", SIZE_MAX, size_t{4096}, ssize_t{-5});
  EXPECT_LIKE_PRINTF("[%5d] [%05d] [%5u] [%08x] [%3s] [%10s]", 42, 42, 7u, 0xbeefu, "abcdef", "hi");
  EXPECT_LIKE_PRINTF("[%2d] [%02u] [%1s]", 12345, 678u, "wide");
  EXPECT_LIKE_PRINTF("100%% %s", "sure");
  EXPECT_LIKE_PRINTF("%10llu|%012llx", 123ull, 0xabcull);
  // Negative numbers with a width: the sign counts, and goes before zeros.
  EXPECT_LIKE_PRINTF("[%5d] [%05d] [%3d] [%2d] [%010lld]", -42, -42, -42, -123, -77ll);
}

TEST(Format, WhatPrintfWritesOtherwise) {
  // %p is always 0x and hex digits, NULL included (glibc writes "(nil)").
  EXPECT_EQ(Fmt(64, "%p", static_cast<void *>(nullptr)), "0x0");
  EXPECT_EQ(Fmt(64, "%p", reinterpret_cast<void *>(0x7f00dead0010)), "0x7f00dead0010");
  EXPECT_EQ(Fmt(64, "[%s]", static_cast<const char *>(nullptr)), "[(null)]");
  // Conversions it does not know are written as they stand.
  EXPECT_EQ(Fmt(64, "a%qb%fc", 1), "a%qb%fc");
  // A lone % at the end is dropped.
  EXPECT_EQ(Fmt(64, "end%"), "end");
  EXPECT_EQ(Fmt(64, ""), "");
}

// Output is cut to the buffer, NUL-terminated, and the length says what was
// kept; a zero-sized buffer is not touched.
TEST(Format, TruncatesToTheBuffer) {
  EXPECT_EQ(Fmt(6, "%s", "abcdefghij"), "abcde");
  EXPECT_EQ(Fmt(6, "%d", 123456789), "12345");
  EXPECT_EQ(Fmt(6, "ab%dcd", 12), "ab12c");
  EXPECT_EQ(Fmt(6, "abcde"), "abcde");
  EXPECT_EQ(Fmt(1, "anything %d", 5), "");
  char untouched = '#';
  EXPECT_EQ(hak_log_format(&untouched, 0, "%s", "text"), 0u);
  EXPECT_EQ(untouched, '#');
}

// Reads everything from fd until end of file.
std::string Drain(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  return out;
}

// A write larger than a pipe holds goes out whole, in as many writes as the
// reader makes room for, and leaves errno as it was.
TEST(Write, AllOfItThroughAPipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>('a' + i * 7 % 26);
  std::string got;
  std::thread reader([&] { got = Drain(fds[0]); });
  errno = 1234;
  hak_log_write_all(fds[1], data.data(), data.size());
  EXPECT_EQ(errno, 1234);
  close(fds[1]);
  reader.join();
  close(fds[0]);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

// A descriptor that cannot be written to ends the write, quietly.
TEST(Write, BadDescriptorKeepsErrno) {
  errno = 77;
  hak_log_write_all(-1, "x", 1);
  EXPECT_EQ(errno, 77);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]); // no reader: EPIPE, and SIGPIPE ignored for the test
  struct sigaction ign {
  }, old{};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ign, &old), 0);
  errno = 78;
  hak_log_write_all(fds[1], "abc", 3);
  EXPECT_EQ(errno, 78);
  sigaction(SIGPIPE, &old, nullptr);
  close(fds[1]);
}

TEST(Write, FormattedMessages) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  hak_log_write_fmt(fds[1], "block %p of %zu bytes in class %u\n", reinterpret_cast<void *>(0x1000),
                    size_t{48}, 2u);
  // Long messages are cut at 1 KiB (the buffer, its NUL included).
  const std::string longer(3000, 'z');
  hak_log_write_fmt(fds[1], "%s", longer.c_str());
  close(fds[1]);
  const std::string out = Drain(fds[0]);
  close(fds[0]);
  const std::string first = "block 0x1000 of 48 bytes in class 2\n";
  ASSERT_GE(out.size(), first.size());
  EXPECT_EQ(out.substr(0, first.size()), first);
  EXPECT_EQ(out.substr(first.size()), std::string(1023, 'z'));
}

// hak_log_fatal writes "hakmem: <message>\n" to stderr and aborts.
TEST(Fatal, ReportsAndAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      hak_log_fatal("free(): invalid pointer %p (%s)", reinterpret_cast<void *>(0x10), "why"),
      testing::KilledBySignal(SIGABRT), "^hakmem: free\\(\\): invalid pointer 0x10 \\(why\\)\n$");
  // A long message is cut and still ends the line.
  const std::string longer(3000, 'q');
  EXPECT_EXIT(hak_log_fatal("%s", longer.c_str()), testing::KilledBySignal(SIGABRT),
              "^hakmem: q{1014}\n$");
}

#if HAKMEM_DEBUG
TEST(Fatal, AssertionsReportTheirCondition) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int two = 2;
  HAK_ASSERT(two == 2);
  EXPECT_DEATH(HAK_ASSERT(two == 3),
               "^hakmem: assertion failed: two == 3 \\(.*log_test\\.cc:[0-9]+\\)\n$");
}
#else
TEST(Fatal, AssertionsAreCompiledOut) {
  int evaluated = 0;
  HAK_ASSERT(++evaluated == 5);
  EXPECT_EQ(evaluated, 0);
}
#endif

#if !HAKMEM_BUILD_RELEASE
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

// The debug log writes only when HAKMEM_VERBOSE set a level.
TEST(Log, OnlyWhenVerbose) {
  const int saved = hak_log_level;
  hak_log_level = 0;
  EXPECT_EQ(CaptureStderr([] { HAK_LOG("quiet %d\n", 1); }), "");
  hak_log_level = 1;
  EXPECT_EQ(CaptureStderr([] { HAK_LOG("loud %d\n", 2); }), "hakmem: loud 2\n");
  hak_log_level = saved;
}
#endif

} // namespace
