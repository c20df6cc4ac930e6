#include "server/worker_pool.h"

#include <system_error>

#include "common/idle_memory.h"
#include "common/log.h"

namespace hubcache {

WorkerPool::~WorkerPool() { shutdown(); }

void WorkerPool::enqueue(std::function<void()> fn) {
  std::vector<std::thread> exited;
  {
    std::lock_guard lock(mutex_);
    TakeExitedLocked(exited);
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < options_.max_threads && !shutdown_) {
      uint64_t id = next_id_++;
      try {
        threads_.emplace(id, std::thread(&WorkerPool::Work, this, id));
      } catch (const std::system_error& e) {
        // Out of threads or memory: the job waits for a running worker.
        Logger("http")->warn("cannot start an HTTP worker threads={} error=\"{}\"", threads_.size(),
                             e.what());
      }
    }
  }
  wake_.notify_one();
  for (auto& t : exited) t.join();
}

void WorkerPool::shutdown() {
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
  }
  wake_.notify_all();
  // Workers run what is queued, then exit; none starts after shutdown_.
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& [id, t] : threads) t.join();
  std::lock_guard lock(mutex_);
  exited_.clear();  // ids the joined workers left behind
}

size_t WorkerPool::threads() {
  std::lock_guard lock(mutex_);
  return threads_.size() > exited_.size() ? threads_.size() - exited_.size() : 0;
}

size_t WorkerPool::queued() {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void WorkerPool::TakeExitedLocked(std::vector<std::thread>& out) {
  for (uint64_t id : exited_) {
    auto it = threads_.find(id);
    if (it == threads_.end()) continue;
    out.push_back(std::move(it->second));
    threads_.erase(it);
  }
  exited_.clear();
}

void WorkerPool::Work(uint64_t id) {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    auto has_work = [this] { return shutdown_ || !jobs_.empty(); };
    // Idle for more than a moment: the stack the last job touched (request
    // parsing, handlers) is given back, so that a burst of connections leaves
    // no lasting cost in the workers it started.
    bool woken = wake_.wait_for(lock, std::chrono::milliseconds(100), has_work);
    if (!woken) {
      // Without the lock: enqueue() (a waiting worker handing a connection on)
      // must not wait behind every idle worker's madvise.
      lock.unlock();
      ReleaseUnusedStack();
      lock.lock();
      woken = wake_.wait_for(lock, options_.idle_timeout, has_work);
    }
    --idle_;
    if (jobs_.empty()) {
      if (shutdown_ || (!woken && threads_.size() - exited_.size() > options_.min_threads)) {
        exited_.push_back(id);  // joined by the next enqueue() or by shutdown()
        return;
      }
      continue;
    }
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    job = nullptr;  // release what the job holds before waiting again
    lock.lock();
  }
}

}  // namespace hubcache
