#pragma once
// Last-use times, batched in memory and written to the index periodically and
// at shutdown, so that a cache hit performs no SQLite write. Touch() is a map
// insert under a short lock; Flush() swaps the batch out and writes it without
// holding that lock. The flusher thread is owned here and joined on Stop().

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "index/index_db.h"

namespace hubcache {

class AccessTracker {
 public:
  AccessTracker(IndexDb& index, std::chrono::milliseconds flush_interval)
      : index_(index), flush_interval_(flush_interval) {}
  ~AccessTracker();  // stops the flusher and flushes what is pending
  AccessTracker(const AccessTracker&) = delete;
  AccessTracker& operator=(const AccessTracker&) = delete;

  void Start();
  void Stop();

  void Touch(EntryKind kind, const std::string& digest);
  // Writes everything pending now (the evictor calls this before choosing).
  void Flush();
  size_t pending() const;

 private:
  void Loop();

  IndexDb& index_;
  const std::chrono::milliseconds flush_interval_;
  std::mutex flush_mutex_;  // one flush at a time, so older batches never overwrite newer

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::pair<EntryKind, std::string>, int64_t> pending_;  // guarded by mutex_
  bool stopping_ = false;                                         // guarded by mutex_
  std::thread thread_;
};

}  // namespace hubcache
