#pragma once
// Coalesces concurrent calls for the same key: the first caller runs the
// function, the others wait for and share its result. Nothing is cached after
// the call completes. Thread-safe.

#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>

namespace hubcache {

template <typename T>
class SingleFlight {
 public:
  // Returns fn()'s result; `*shared` tells whether it came from another caller.
  T Do(const std::string& key, const std::function<T()>& fn, bool* shared = nullptr) {
    std::shared_future<T> future;
    std::promise<T> promise;
    bool leader = false;
    {
      std::lock_guard lock(mutex_);
      auto it = calls_.find(key);
      if (it != calls_.end()) {
        future = it->second;
      } else {
        future = promise.get_future().share();
        calls_.emplace(key, future);
        leader = true;
      }
    }
    if (shared != nullptr) *shared = !leader;
    if (!leader) return future.get();
    // Whatever happens, the key is released and the waiters are answered.
    try {
      T value = fn();
      Release(key);
      promise.set_value(value);
      return value;
    } catch (...) {
      Release(key);
      promise.set_exception(std::current_exception());
      throw;
    }
  }

 private:
  void Release(const std::string& key) {
    std::lock_guard lock(mutex_);
    calls_.erase(key);
  }

  std::mutex mutex_;
  std::map<std::string, std::shared_future<T>> calls_;  // guarded by mutex_
};

}  // namespace hubcache
