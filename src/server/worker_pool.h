#pragma once
// The HTTP server's worker threads, started on demand and bounded.
//
// A worker serves one connection while it has requests (ConnectionServer
// parks a quiet one without a thread). A fixed pool would force a choice
// between two harms: sized for the worst case, every thread costs memory from
// the start; sized small, new connections queue. Here a job gets an idle
// worker, or a new one while fewer than max_threads run; beyond that it waits
// in the queue. A worker idle for a moment gives back the stack its last job
// touched; one idle for idle_timeout exits (min_threads stay). Thread-safe.
// Owns its threads: shutdown() runs what is queued and joins them all.

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace hubcache {

struct WorkerPoolOptions {
  size_t max_threads = 256;                        // connections served at once
  size_t min_threads = 8;                          // kept even when idle
  std::chrono::milliseconds idle_timeout{30'000};  // an idle worker above min_threads exits
};

class WorkerPool : public httplib::TaskQueue {
 public:
  explicit WorkerPool(WorkerPoolOptions options) : options_(options) {}
  ~WorkerPool() override;  // shutdown() if it was not called
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  size_t threads();  // running workers
  size_t queued();   // jobs waiting for a worker

 private:
  void Work(uint64_t id);
  // Moves the exited workers' threads to `out`, for joining without the lock.
  void TakeExitedLocked(std::vector<std::thread>& out);

  const WorkerPoolOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;   // guarded by mutex_
  std::map<uint64_t, std::thread> threads_;  // running or exited, not yet joined; guarded
  std::vector<uint64_t> exited_;             // guarded by mutex_
  size_t idle_ = 0;                          // workers waiting for a job; guarded
  uint64_t next_id_ = 0;                     // guarded by mutex_
  bool shutdown_ = false;                    // guarded by mutex_
};

}  // namespace hubcache
