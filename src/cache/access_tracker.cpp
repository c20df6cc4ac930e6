#include "cache/access_tracker.h"

#include <vector>

#include "common/clock.h"
#include "common/log.h"

namespace hubcache {

AccessTracker::~AccessTracker() { Stop(); }

void AccessTracker::Start() { thread_ = std::thread(&AccessTracker::Loop, this); }

void AccessTracker::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  Flush();
}

void AccessTracker::Touch(EntryKind kind, const std::string& digest) {
  int64_t now = UnixNowMs();
  std::lock_guard lock(mutex_);
  pending_[{kind, digest}] = now;
}

size_t AccessTracker::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void AccessTracker::Flush() {
  std::lock_guard flush_lock(flush_mutex_);
  std::map<std::pair<EntryKind, std::string>, int64_t> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(pending_);
  }
  if (batch.empty()) return;
  std::vector<hubcache::Touch> touches;
  touches.reserve(batch.size());
  for (auto& [key, at] : batch) touches.push_back(hubcache::Touch{key.first, key.second, at});
  if (auto s = index_.ApplyTouches(touches); !s) {
    Logger("cache")->warn("last-use times not written count={} error=\"{}\"", touches.size(),
                          s.error().message);
  }
}

void AccessTracker::Loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, flush_interval_, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Flush();
    lock.lock();
  }
}

}  // namespace hubcache
