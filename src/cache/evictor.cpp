#include "cache/evictor.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/manifest_service.h"
#include "common/clock.h"
#include "common/log.h"

#include <algorithm>

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
  // The age limit is looked at a few times per limit, at most once a minute.
  const auto expiry_every = std::clamp<std::chrono::milliseconds>(
      options_.max_unused / 4, std::chrono::seconds(1), std::chrono::seconds(60));
  auto next_expiry = std::chrono::steady_clock::now();
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
    if (options_.max_unused.count() > 0 && std::chrono::steady_clock::now() >= next_expiry) {
      while (RunExpiry().entries == kMaxRemovalsPerPass) {
      }
      next_expiry = std::chrono::steady_clock::now() + expiry_every;
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

bool Evictor::Remove(const CacheEntry& entry) {
  auto digest = Digest::Parse(entry.digest);
  if (!digest) return false;
  bool blob = entry.kind == EntryKind::kBlob;
  if (pins_.IsPinned((blob ? "b:" : "m:") + digest->hex())) return false;
  if (blob) {
    if (auto s = index_.DeleteBlob(entry.digest); !s) return false;
  } else {
    manifests_.Forget(*digest);
    if (auto s = index_.DeleteManifest(entry.digest); !s) return false;
  }
  ::unlink(store_.PathOf(blob ? ObjectKind::kBlob : ObjectKind::kManifest, *digest).c_str());
  usage_.Removed(entry.size);
  return true;
}

void Evictor::Report(const EvictionResult& result, const char* reason) {
  if (result.entries == 0) return;
  stats_.evictions += result.entries;
  stats_.evicted_bytes += result.bytes;
  Logger("cache")->info("evicted entries={} bytes={} cache_bytes={} reason={}", result.entries,
                        result.bytes, usage_.bytes(), reason);
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
    if (!Remove(entry)) continue;
    ++result.entries;
    result.bytes += entry.size;
  }
  Report(result, "size");
  return result;
}

EvictionResult Evictor::RunExpiry() {
  EvictionResult result;
  if (options_.max_unused.count() <= 0) return result;
  tracker_.Flush();  // an entry served a moment ago is not unused
  const int64_t before = UnixNowMs() - options_.max_unused.count();
  auto candidates = index_.UnusedSince(before, kMaxRemovalsPerPass);
  if (!candidates) {
    Logger("cache")->warn("expiry: cannot list entries error=\"{}\"", candidates.error().message);
    return result;
  }
  for (const auto& entry : *candidates) {
    if (!Remove(entry)) continue;
    ++result.entries;
    result.bytes += entry.size;
  }
  Report(result, "ttl");
  // A full batch means there may be more: the caller runs again.
  if (candidates->size() == kMaxRemovalsPerPass && result.entries < kMaxRemovalsPerPass) {
    result.entries = 0;  // pinned ones filled the batch: stop until the next round
  }
  return result;
}

}  // namespace hubcache
