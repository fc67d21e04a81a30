// Unit test of the crash box: with the handler installed, a fault or an
// abort writes one line naming the signal, the address and whether it lies
// in a hakmem region (from the segment map), then the program's previous
// handler or the default action runs, so the exit status does not change.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "gtest/gtest.h"
#include "hakmem/core/crash.h"
#include "hakmem/core/os.h"
#include "hakmem/core/segmap.h"

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer keeps SIGSEGV and SIGBUS for itself unless told to let the
// program install its own handler, which is what this test is about.
extern "C" const char *__asan_default_options() { return "allow_user_segv_handler=1"; }
#endif

namespace {

class Crash : public ::testing::Test {
protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// The default action of sig, as a death test's exit predicate. Under
// ThreadSanitizer its runtime catches the fault when it happens again after
// the report, and exits with its own status (66) instead.
std::function<bool(int)> KilledBy(int sig) {
  return [sig](int status) {
#if defined(__SANITIZE_THREAD__)
    if (WIFEXITED(status) && WEXITSTATUS(status) == 66)
      return true;
#endif
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer's handler takes the repeated fault and aborts.
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
      return true;
#endif
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
  };
}

// A fault at p: a write the compiler cannot drop.
void Touch(void *p) { *static_cast<volatile char *>(p) = 1; }

// A 2 MiB region that faults on every access, registered in the segment map
// as kind (NONE: left out of it).
void *FaultingRegion(uint8_t kind) {
  void *p = hak_os_map_aligned(HAK_SS_SIZE, HAK_SS_SIZE);
  if (p == nullptr || hak_os_protect(p, HAK_SS_SIZE, false) != 0)
    return nullptr;
  if (kind != HAK_REGION_NONE && hak_segmap_set(p, HAK_SS_SIZE, kind, kind) != 0)
    return nullptr;
  return p;
}

TEST_F(Crash, FaultOutsideHakmem) {
  EXPECT_EXIT(
      {
        hak_crash_install();
        void *p = FaultingRegion(HAK_REGION_NONE);
        if (p == nullptr)
          _exit(99);
        Touch(static_cast<char *>(p) + 0x40);
      },
      KilledBy(SIGSEGV),
      "hakmem: crash report: signal 11 \\(SIGSEGV\\) at address 0x[0-9a-f]+040; in a hakmem "
      "region: no\n");
}

// The region's kind, as the segment map says.
TEST_F(Crash, FaultInEachKindOfRegion) {
  const struct {
    uint8_t kind;
    const char *says;
  } cases[] = {
      {HAK_REGION_SS_SMALL, "yes \\(small SuperSlab\\)"},
      {HAK_REGION_SS_MEDIUM, "yes \\(medium SuperSlab\\)"},
      {HAK_REGION_LARGE, "yes \\(large block mapping\\)"},
      {HAK_REGION_LARGE_TAIL, "yes \\(large block mapping\\)"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.says);
    const uint8_t kind = c.kind;
    EXPECT_EXIT(
        {
          hak_crash_install();
          void *p = FaultingRegion(kind);
          if (p == nullptr)
            _exit(99);
          Touch(static_cast<char *>(p) + 12345);
        },
        KilledBy(SIGSEGV),
        std::string("signal 11 \\(SIGSEGV\\) at address 0x[0-9a-f]+; in a hakmem region: ") +
            c.says + "\n");
  }
}

// The reported address is the faulting one.
TEST_F(Crash, ReportsTheFaultingAddress) {
  // Low addresses are never mapped (mmap_min_addr): a fault at a known one.
  EXPECT_EXIT(
      {
        hak_crash_install();
        Touch(reinterpret_cast<void *>(0x1238));
      },
      KilledBy(SIGSEGV), "signal 11 \\(SIGSEGV\\) at address 0x1238; in a hakmem region: no\n");
}

TEST_F(Crash, AbortIsReportedWithoutAnAddress) {
  EXPECT_EXIT(
      {
        hak_crash_install();
        abort();
      },
      testing::KilledBySignal(SIGABRT),
      "hakmem: crash report: signal 6 \\(SIGABRT\\) at address 0x0; in a hakmem region: n/a\n");
}

TEST_F(Crash, RaisedBusErrorKeepsItsDefaultAction) {
  EXPECT_EXIT(
      {
        hak_crash_install();
        raise(SIGBUS);
      },
      KilledBy(SIGBUS), "hakmem: crash report: signal 7 \\(SIGBUS\\)");
}

// A handler the program installed before hakmem runs after the report.
void ProgramHandler(int) {
  static const char msg[] = "program handler\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(3);
}

void ProgramSigInfoHandler(int sig, siginfo_t *info, void *) {
  // The report hands on the signal's own information.
  const bool right =
      sig == SIGSEGV && info != nullptr && reinterpret_cast<uintptr_t>(info->si_addr) == 0x2220;
  static const char msg[] = "program siginfo handler\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(right ? 4 : 5);
}

TEST_F(Crash, ThePreviousHandlerRunsAfterTheReport) {
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_handler = ProgramHandler;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        hak_crash_install();
        Touch(reinterpret_cast<void *>(0x2220));
      },
      testing::ExitedWithCode(3), "crash report: signal 11 .*\nprogram handler\n");
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_sigaction = ProgramSigInfoHandler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        hak_crash_install();
        Touch(reinterpret_cast<void *>(0x2220));
      },
      testing::ExitedWithCode(4), "crash report: signal 11 .*\nprogram siginfo handler\n");
}

// A raised signal the program ignores is reported, and stays ignored.
TEST_F(Crash, IgnoredRaisedSignalIsReportedAndIgnored) {
  EXPECT_EXIT(
      {
        signal(SIGBUS, SIG_IGN);
        hak_crash_install();
        raise(SIGBUS);
        static const char msg[] = "still running\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(6);
      },
      testing::ExitedWithCode(6), "signal 7 \\(SIGBUS\\).*\nstill running\n");
}

} // namespace
