#include "store/sync_behind.h"

#include <fcntl.h>
#include <unistd.h>

namespace hubcache {

SyncBehind::SyncBehind(int fd, uint64_t start, uint64_t every)
    : fd_(fd), end_(start), written_back_(start), flush_requested_(start), every_(every) {}

SyncBehind::~SyncBehind() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void SyncBehind::Wrote(uint64_t bytes) {
  end_ += bytes;
  if (end_ - written_back_ >= kWriteBackEvery) {
    (void)::sync_file_range(fd_, static_cast<off_t>(written_back_),
                            static_cast<off_t>(end_ - written_back_), SYNC_FILE_RANGE_WRITE);
    written_back_ = end_;
  }
  if (end_ - flush_requested_ < every_) return;
  flush_requested_ = end_;
  if (!thread_.joinable()) {
    dup_ = UniqueFd(::fcntl(fd_, F_DUPFD_CLOEXEC, 0));
    if (!dup_.valid()) return;  // the final fsync does it all
    thread_ = std::thread([this] { Run(); });
  }
  {
    std::lock_guard lock(mu_);
    flush_due_ = true;  // a flush still running covers part; the next covers the rest
  }
  wake_.notify_one();
}

void SyncBehind::Run() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return flush_due_ || stop_; });
    if (stop_) return;
    flush_due_ = false;
    lock.unlock();
    (void)::fdatasync(dup_.get());
    flushes_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
  }
}

}  // namespace hubcache
