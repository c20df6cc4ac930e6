#include "cache/cache_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>

namespace hubcache {

Result<std::unique_ptr<CacheLock>> CacheLock::TryAcquire(const std::filesystem::path& root) {
  auto path = root / ".lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    return Fail(ErrorKind::kIo, "cannot open " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Fail(ErrorKind::kIo,
                  "the cache " + root.string() + " is in use by another hubcache server");
    }
    return Fail(ErrorKind::kIo, "cannot lock " + path.string() + ": " + std::strerror(errno));
  }
  return std::unique_ptr<CacheLock>(new CacheLock(std::move(fd)));
}

bool CacheLock::IsHeld(const std::filesystem::path& root) {
  UniqueFd fd(::open((root / ".lock").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
  ::flock(fd.get(), LOCK_UN);
  return false;
}

}  // namespace hubcache
