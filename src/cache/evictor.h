#pragma once
// Keeps the cache under its byte cap and the disk above its free-space floor
// by removing least-recently-used blobs and manifests ("used" = last served),
// and, with an age limit (REGISTRY_PROXY_TTL), removes those unused for longer.
// Only the mirror's cache: hosted (pushed) content is never in its tables.
//
// Runs on its own thread, woken when the cache grows or a write fails, and
// once a second to look at free disk space. Each pass flushes pending last-use
// times, then removes at most kMaxRemovalsPerPass entries, never one that is
// pinned (being read). No lock is held across disk I/O: the index row goes
// first, then the file.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "cache/access_tracker.h"
#include "cache/pins.h"
#include "cache/stats.h"
#include "cache/usage.h"
#include "index/index_db.h"
#include "store/blob_store.h"

namespace hubcache {

class ManifestService;

struct EvictionOptions {
  uint64_t max_size_bytes = 0;  // 0 = no cap
  double low_watermark = 0.90;  // of max_size_bytes
  double min_free_fraction = 0.05;
  // Entries not used for this long are removed whatever the size; 0 = never.
  std::chrono::milliseconds max_unused{0};
};

struct EvictionResult {
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

class Evictor {
 public:
  Evictor(IndexDb& index, BlobStore& store, PinSet& pins, AccessTracker& tracker, CacheUsage& usage,
          ManifestService& manifests, CacheStats& stats, EvictionOptions options)
      : index_(index),
        store_(store),
        pins_(pins),
        tracker_(tracker),
        usage_(usage),
        manifests_(manifests),
        stats_(stats),
        options_(options) {}
  ~Evictor();
  Evictor(const Evictor&) = delete;
  Evictor& operator=(const Evictor&) = delete;

  void Start();
  void Stop();
  void Wake();

  // One bounded pass, if one is due. Public for tests and for `gc`.
  EvictionResult RunPass();
  // One bounded pass over entries unused for longer than max_unused.
  EvictionResult RunExpiry();

  static constexpr size_t kMaxRemovalsPerPass = 256;

 private:
  void Loop();
  // Bytes to free now (0 when within limits).
  uint64_t BytesToFree() const;
  // Removes one entry (index row, then file) unless it is pinned.
  bool Remove(const CacheEntry& entry);
  void Report(const EvictionResult& result, const char* reason);

  IndexDb& index_;
  BlobStore& store_;
  PinSet& pins_;
  AccessTracker& tracker_;
  CacheUsage& usage_;
  ManifestService& manifests_;
  CacheStats& stats_;
  const EvictionOptions options_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool woken_ = false;     // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace hubcache
