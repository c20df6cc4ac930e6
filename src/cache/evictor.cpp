#include "cache/evictor.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/manifest_service.h"
#include "common/log.h"

namespace hubcache {

Evictor::~Evictor() { Stop(); }

void Evictor::Start() { thread_ = std::thread(&Evictor::Loop, this); }

void Evictor::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Evictor::Wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

void Evictor::Loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_ || woken_; });
    if (stopping_) break;
    woken_ = false;
    lock.unlock();
    // Passes are bounded; keep going while they make progress and work remains.
    while (BytesToFree() > 0) {
      if (RunPass().entries == 0) break;
    }
    lock.lock();
  }
}

uint64_t Evictor::BytesToFree() const {
  uint64_t need = 0;
  uint64_t used = usage_.bytes();
  if (options_.max_size_bytes > 0 && used > options_.max_size_bytes) {
    need = used - static_cast<uint64_t>(static_cast<double>(options_.max_size_bytes) *
                                        options_.low_watermark);
  }
  struct statvfs fs;
  if (options_.min_free_fraction > 0 && ::statvfs(store_.root().c_str(), &fs) == 0 &&
      fs.f_blocks > 0) {
    double total = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
    double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    if (free_bytes < options_.min_free_fraction * total) {
      // Free up to the floor plus 1 % of the disk, so passes do not thrash.
      double want = (options_.min_free_fraction + 0.01) * total - free_bytes;
      need = std::max<uint64_t>(need, std::min<uint64_t>(used, static_cast<uint64_t>(want)));
    }
  }
  return need;
}

EvictionResult Evictor::RunPass() {
  EvictionResult result;
  uint64_t need = BytesToFree();
  if (need == 0) return result;
  tracker_.Flush();  // "least recently used" must see the latest hits
  // Pinned entries are skipped, so look a little past the removal budget.
  auto candidates = index_.LeastRecentlyUsed(kMaxRemovalsPerPass * 2);
  if (!candidates) {
    Logger("cache")->warn("eviction: cannot list entries error=\"{}\"", candidates.error().message);
    return result;
  }
  for (const auto& entry : *candidates) {
    if (result.bytes >= need || result.entries >= kMaxRemovalsPerPass) break;
    auto digest = Digest::Parse(entry.digest);
    if (!digest) continue;
    bool blob = entry.kind == EntryKind::kBlob;
    if (pins_.IsPinned((blob ? "b:" : "m:") + digest->hex())) continue;
    if (blob) {
      if (auto s = index_.DeleteBlob(entry.digest); !s) continue;
    } else {
      manifests_.Forget(*digest);
      if (auto s = index_.DeleteManifest(entry.digest); !s) continue;
    }
    ::unlink(store_.PathOf(blob ? ObjectKind::kBlob : ObjectKind::kManifest, *digest).c_str());
    usage_.Removed(entry.size);
    ++result.entries;
    result.bytes += entry.size;
  }
  if (result.entries > 0) {
    stats_.evictions += result.entries;
    stats_.evicted_bytes += result.bytes;
    Logger("cache")->info("evicted entries={} bytes={} cache_bytes={}", result.entries,
                          result.bytes, usage_.bytes());
  }
  return result;
}

}  // namespace hubcache
