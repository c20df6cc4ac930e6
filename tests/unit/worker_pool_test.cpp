#include "server/worker_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "wait_for.h"

namespace hubcache {
namespace {

using namespace std::chrono_literals;

// Jobs that block until released, counting how many run at once.
struct BlockingJobs {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> finished{0};

  std::function<void()> Job() {
    return [this] {
      int now = ++running;
      int seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      std::unique_lock lock(mutex);
      cv.wait(lock, [this] { return open; });
      --running;
      ++finished;
    };
  }
  void Open() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

TEST_CASE("WorkerPool starts workers on demand, up to max_threads") {
  WorkerPool pool(WorkerPoolOptions{4, 1, 30s});
  CHECK(pool.threads() == 0);
  BlockingJobs gate;
  for (int i = 0; i < 10; ++i) pool.enqueue(gate.Job());
  REQUIRE(WaitFor([&] { return gate.running.load() == 4; }));
  CHECK(pool.threads() == 4);
  CHECK(pool.queued() == 6);  // the rest waits for a worker
  gate.Open();
  REQUIRE(WaitFor([&] { return gate.finished.load() == 10; }));
  CHECK(gate.peak.load() == 4);
}

TEST_CASE("WorkerPool runs a job on an idle worker without starting another") {
  WorkerPool pool(WorkerPoolOptions{64, 1, 30s});
  std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i) {
    pool.enqueue([&] { ++done; });
    REQUIRE(WaitFor([&] { return done.load() == i + 1; }));
  }
  CHECK(pool.threads() == 1);
}

TEST_CASE("WorkerPool lets idle workers above min_threads exit") {
  WorkerPool pool(WorkerPoolOptions{8, 2, 50ms});
  BlockingJobs gate;
  for (int i = 0; i < 8; ++i) pool.enqueue(gate.Job());
  REQUIRE(WaitFor([&] { return pool.threads() == 8; }));
  gate.Open();
  REQUIRE(WaitFor([&] { return gate.finished.load() == 8; }));
  CHECK(WaitFor([&] { return pool.threads() == 2; }));
  // Exited workers are joined, and the pool still serves.
  std::atomic<bool> ran{false};
  pool.enqueue([&] { ran = true; });
  CHECK(WaitFor([&] { return ran.load(); }));
}

TEST_CASE("WorkerPool::shutdown runs what is queued and joins every worker") {
  std::atomic<int> done{0};
  {
    WorkerPool pool(WorkerPoolOptions{2, 0, 30s});
    for (int i = 0; i < 50; ++i) {
      pool.enqueue([&] {
        std::this_thread::sleep_for(100us);
        ++done;
      });
    }
    pool.shutdown();
    CHECK(done.load() == 50);
    CHECK(pool.threads() == 0);
  }  // the destructor's second shutdown() is harmless
  CHECK(done.load() == 50);
}

}  // namespace
}  // namespace hubcache
