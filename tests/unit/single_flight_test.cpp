#include "common/single_flight.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "joining_thread.h"

namespace hubcache {
namespace {

using namespace std::chrono_literals;

// A gate the test opens; waiters give up at a deadline so a bug fails, not hangs.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait(std::chrono::milliseconds deadline = 10s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Counts arrivals; Wait returns once `n` have arrived or the deadline passes.
class Counter {
 public:
  void Arrive() {
    std::lock_guard lock(mutex_);
    ++count_;
    cv_.notify_all();
  }
  bool WaitFor(int n, std::chrono::milliseconds deadline = 10s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] { return count_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_ = 0;
};

TEST_CASE("SingleFlight: N concurrent callers of one key share one call") {
  for (int n : {2, 8, 32}) {
    CAPTURE(n);
    SingleFlight<int> flight;
    std::atomic<int> calls{0};
    Counter arrived;
    Gate release;
    std::function<int()> fn = [&] {
      ++calls;
      // Hold the call open until every caller is on its way in, then let the
      // followers reach the flight's lock before finishing.
      arrived.WaitFor(n);
      release.Wait();
      return 42;
    };
    std::vector<int> results(static_cast<size_t>(n), 0);
    std::vector<char> shared(static_cast<size_t>(n), 0);
    std::vector<JoiningThread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back(
          [&, i] {
            bool was_shared = false;
            arrived.Arrive();
            results[static_cast<size_t>(i)] = flight.Do("key", fn, &was_shared);
            shared[static_cast<size_t>(i)] = was_shared ? 1 : 0;
          },
          [&] { release.Open(); });
    }
    // Every thread has announced itself; give stragglers a bounded moment to
    // enter Do before the leader finishes.
    REQUIRE(arrived.WaitFor(n));
    for (int spin = 0; spin < 1000; ++spin) std::this_thread::yield();
    release.Open();
    for (auto& t : threads) t.join();

    CHECK(calls.load() == 1);
    int leaders = 0;
    for (int i = 0; i < n; ++i) {
      CHECK(results[static_cast<size_t>(i)] == 42);
      if (!shared[static_cast<size_t>(i)]) ++leaders;
    }
    // Exactly one caller ran fn; every other one reports a shared result.
    CHECK(leaders == calls.load());
  }
}

TEST_CASE("SingleFlight: a follower that arrives while the call runs shares it") {
  SingleFlight<std::string> flight;
  std::atomic<int> calls{0};
  Gate started;
  Gate release;
  auto leader = std::async(std::launch::async, [&] {
    bool was_shared = true;
    auto value = flight.Do(
        "k",
        [&] {
          ++calls;
          started.Open();
          release.Wait();
          return std::string("value");
        },
        &was_shared);
    CHECK_FALSE(was_shared);
    return value;
  });
  REQUIRE(started.Wait());  // the leader is inside fn: the key is in flight
  Counter follower_in;
  auto follower = std::async(std::launch::async, [&] {
    bool was_shared = false;
    follower_in.Arrive();
    auto value = flight.Do(
        "k",
        [&] {
          ++calls;
          return std::string("other");
        },
        &was_shared);
    return std::make_pair(value, was_shared);
  });
  REQUIRE(follower_in.WaitFor(1));
  for (int spin = 0; spin < 1000; ++spin) std::this_thread::yield();
  release.Open();
  CHECK(leader.get() == "value");
  auto [value, was_shared] = follower.get();
  CHECK(value == "value");
  CHECK(was_shared);
  CHECK(calls.load() == 1);
}

TEST_CASE("SingleFlight: nothing is cached once the call completes") {
  SingleFlight<int> flight;
  int calls = 0;
  for (int i = 1; i <= 3; ++i) {
    bool was_shared = true;
    CHECK(flight.Do(
              "key", [&] { return ++calls; }, &was_shared) == i);
    CHECK_FALSE(was_shared);
  }
  CHECK(calls == 3);
}

TEST_CASE("SingleFlight: different keys run concurrently") {
  SingleFlight<int> flight;
  Gate a_started;
  Gate b_started;
  // Each call waits for the other to start: if keys were serialised, both
  // would time out and return -1.
  auto a = std::async(std::launch::async, [&] {
    return flight.Do("a", [&] {
      a_started.Open();
      return b_started.Wait() ? 1 : -1;
    });
  });
  auto b = std::async(std::launch::async, [&] {
    return flight.Do("b", [&] {
      b_started.Open();
      return a_started.Wait() ? 2 : -1;
    });
  });
  CHECK(a.get() == 1);
  CHECK(b.get() == 2);
}

TEST_CASE("SingleFlight: the shared pointer may be null") {
  SingleFlight<int> flight;
  CHECK(flight.Do("k", [] { return 7; }) == 7);
  CHECK(flight.Do(
            "k", [] { return 8; }, nullptr) == 8);
}

TEST_CASE("SingleFlight: a throwing call does not poison its key") {
  SingleFlight<int> flight;
  CHECK_THROWS_AS(flight.Do("k", []() -> int { throw std::runtime_error("boom"); }),
                  std::runtime_error);
  // The next caller must run its own function, not inherit a broken promise.
  int calls = 0;
  int value = -1;
  bool threw = false;
  try {
    value = flight.Do("k", [&] {
      ++calls;
      return 5;
    });
  } catch (const std::exception& e) {
    threw = true;
    MESSAGE("second Do threw: " << std::string(e.what()));
  }
  CHECK_FALSE(threw);
  CHECK(calls == 1);
  CHECK(value == 5);
}

}  // namespace
}  // namespace hubcache
