#pragma once
// Which cached objects are being read right now. The evictor skips pinned
// digests, so a blob held open by a slow reader stays in the cache until the
// reader finishes. Thread-safe; pins are RAII handles.

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace hubcache {

class PinSet {
 public:
  class Pin {
   public:
    Pin(PinSet& set, std::string key) : set_(set), key_(std::move(key)) {}
    ~Pin() { set_.Release(key_); }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;

   private:
    PinSet& set_;
    std::string key_;
  };

  std::unique_ptr<Pin> Acquire(const std::string& key) {
    std::lock_guard lock(mutex_);
    ++counts_[key];
    return std::make_unique<Pin>(*this, key);
  }

  bool IsPinned(const std::string& key) const {
    std::lock_guard lock(mutex_);
    return counts_.count(key) > 0;
  }

 private:
  void Release(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(key);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

  mutable std::mutex mutex_;
  std::map<std::string, int> counts_;  // guarded by mutex_
};

}  // namespace hubcache
