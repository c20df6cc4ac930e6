#pragma once
// Keeps a file that is being written flowing to stable storage while it is
// written, so that the fsync which finishes it has little left to wait for.
//
// Every `every` bytes reported through Wrote(), the kernel is asked to start
// writing back the new range (sync_file_range), and a thread of this object
// runs fdatasync on its own duplicate of the descriptor. On a virtual disk the
// device flush is where the time goes (the host writes its cache out): flushing
// behind the writer overlaps that with receiving instead of paying it all at
// the end. Failures are ignored here; the caller's final fsync reports them.
//
// Not thread-safe: one writer calls Wrote(). Owns a duplicate of the
// descriptor and, once the first flush is due, one thread; the destructor
// waits for a flush in progress and joins it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "common/unique_fd.h"

namespace hubcache {

class SyncBehind {
 public:
  static constexpr uint64_t kDefaultEvery = 64ull << 20;
  static constexpr uint64_t kWriteBackEvery = 8ull << 20;

  // `fd` stays the caller's; `start` is the file offset writing begins at.
  SyncBehind(int fd, uint64_t start, uint64_t every = kDefaultEvery);
  ~SyncBehind();
  SyncBehind(const SyncBehind&) = delete;
  SyncBehind& operator=(const SyncBehind&) = delete;

  // `bytes` more were written after the last reported end.
  void Wrote(uint64_t bytes);
  // fdatasync calls finished so far (for tests and figures).
  uint64_t flushes() const { return flushes_.load(std::memory_order_relaxed); }

 private:
  void Run();

  int fd_;
  uint64_t end_;
  uint64_t written_back_;
  uint64_t flush_requested_;
  const uint64_t every_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool flush_due_ = false;  // guarded by mu_
  bool stop_ = false;       // guarded by mu_
  std::atomic<uint64_t> flushes_{0};
  UniqueFd dup_;
  std::thread thread_;
};

}  // namespace hubcache
