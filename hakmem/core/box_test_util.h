// Helpers shared by the per-box unit tests in this directory.
//
// Synchronisation here uses the C++ standard library (pthread underneath)
// rather than abseil: Debian's abseil is not built with -fsanitize=thread, so
// under --config=tsan its mutexes would be invisible and every handoff they
// order would be reported as a race.
#ifndef HAKMEM_CORE_BOX_TEST_UTIL_H_
#define HAKMEM_CORE_BOX_TEST_UTIL_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "gtest/gtest.h"

namespace hakmem_box_test {

// A thread of its own (so a heap of its own) that runs closures one at a
// time, in order, each Run() returning when its closure has finished. The
// thread exits, tearing its heap down, when the Worker is destroyed.
class Worker {
public:
  Worker() : thread_([this] { Loop(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  void Run(std::function<void()> fn) {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = std::move(fn);
    const uint64_t ticket = ++submitted_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return finished_ >= ticket; });
  }

private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || finished_ < submitted_; });
      if (finished_ < submitted_) {
        std::function<void()> fn = std::move(job_);
        lock.unlock();
        fn();
        lock.lock();
        ++finished_;
        cv_.notify_all();
        continue;
      }
      return;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  uint64_t submitted_ = 0;
  uint64_t finished_ = 0;
  bool stop_ = false;
  std::thread thread_; // last: starts once everything above exists
};

// Runs fn on a new thread and waits for that thread to exit.
inline void RunInThread(std::function<void()> fn) {
  std::thread t(std::move(fn));
  t.join();
}

// Lets n threads start a phase together. Single use.
class StartLine {
public:
  explicit StartLine(int n) : waiting_(n) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (--waiting_ == 0) {
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return waiting_ == 0; });
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_;
};

// A seeded generator per thread: reproducible within a seed, varied across
// threads.
inline std::mt19937_64 Rng(uint64_t stream) {
  return std::mt19937_64(0x68616b6d656d0000ull ^ (stream * 0x9E3779B97F4A7C15ull));
}

} // namespace hakmem_box_test

#endif // HAKMEM_CORE_BOX_TEST_UTIL_H_
