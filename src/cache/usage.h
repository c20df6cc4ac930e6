#pragma once
// The cache's current size in bytes, kept in memory (the index holds the
// truth; this mirrors it so the hot path never asks SQLite). Whoever stores or
// removes an object reports it here; the evictor listens for growth and for
// write failures. Thread-safe; the listener is set once before use.

#include <atomic>
#include <cstdint>
#include <functional>

namespace hubcache {

class CacheUsage {
 public:
  void Reset(uint64_t bytes) { bytes_ = bytes; }
  void Added(uint64_t bytes) {
    bytes_ += bytes;
    if (listener_) listener_();
  }
  void Removed(uint64_t bytes) {
    uint64_t current = bytes_.load();
    while (!bytes_.compare_exchange_weak(current, current >= bytes ? current - bytes : 0)) {
    }
  }
  // A write to the cache failed (disk full, I/O error): eviction should run.
  void WriteFailed() {
    if (listener_) listener_();
  }
  uint64_t bytes() const { return bytes_; }
  void SetListener(std::function<void()> listener) { listener_ = std::move(listener); }

 private:
  std::atomic<uint64_t> bytes_{0};
  std::function<void()> listener_;
};

}  // namespace hubcache
