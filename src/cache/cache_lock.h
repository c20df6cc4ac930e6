#pragma once
// An advisory lock on <root>/.lock held by a running server, so that a second
// server refuses the same cache and offline tools know a server is running.
// Owns the lock's descriptor (the lock lasts as long as the object); nothing in
// it changes after TryAcquire, and IsHeld is a free-standing check: both safe
// from any thread.

#include <filesystem>
#include <memory>

#include "common/result.h"
#include "common/unique_fd.h"

namespace hubcache {

class CacheLock {
 public:
  // Takes the lock without waiting. kUnavailable-style error (kIo) if held.
  [[nodiscard]] static Result<std::unique_ptr<CacheLock>> TryAcquire(
      const std::filesystem::path& root);
  // Whether a server holds the lock right now.
  static bool IsHeld(const std::filesystem::path& root);

 private:
  explicit CacheLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // the lock lives as long as the descriptor
};

}  // namespace hubcache
