#pragma once
// The registry as one object: the pull-through cache (store, index, upstream
// client and the services built on them) and the hosted repositories (their
// own store under <root>/hosted, uploads, manifests), in dependency order, and
// the cache lock that keeps a second server off the same root. The HTTP layer
// talks to this and nothing below it. Thread-safe; owns everything it hands out.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "cache/access_tracker.h"
#include "cache/blob_fill.h"
#include "cache/blob_service.h"
#include "cache/cache_lock.h"
#include "cache/evictor.h"
#include "cache/hosted_bucket.h"
#include "cache/hosted_registry.h"
#include "cache/image_listing.h"
#include "cache/image_remover.h"
#include "cache/manifest_service.h"
#include "cache/pins.h"
#include "cache/prefetcher.h"
#include "cache/second_tier.h"
#include "cache/stats.h"
#include "cache/tag_list_service.h"
#include "cache/upload_service.h"
#include "cache/usage.h"
#include "common/result.h"
#include "config/config.h"
#include "index/index_db.h"
#include "registry/repo_sources.h"
#include "store/blob_store.h"
#include "upstream/s3_client.h"
#include "upstream/upstream_set.h"

namespace hubcache {

class Mirror {
 public:
  // Locks the root, reconciles index and files (logging one summary line),
  // and starts the background threads (last-use flusher, evictor).
  [[nodiscard]] static Result<std::unique_ptr<Mirror>> Open(const Config& config);
  ~Mirror();

  BlobStore& store() { return *store_; }
  IndexDb& index() { return *index_; }
  // Every upstream; upstreams().docker_hub() is REGISTRY_PROXY_REMOTEURL's.
  UpstreamSet& upstreams() { return *upstreams_; }
  FillManager& fills() { return *fills_; }
  BlobService& blobs() { return *blobs_; }
  Prefetcher& prefetcher() { return *prefetcher_; }
  ManifestService& manifests() { return *manifests_; }
  TagListService& tag_lists() { return *tag_lists_; }
  AccessTracker& access() { return *access_; }
  PinSet& pins() { return pins_; }
  CacheUsage& usage() { return usage_; }
  Evictor& evictor() { return *evictor_; }
  CacheStats& stats() { return stats_; }
  const RepoSources& sources() const { return sources_; }
  HostedRegistry& hosted() { return *hosted_; }
  UploadService& uploads() { return *uploads_; }
  BlobStore& hosted_store() { return *hosted_store_; }
  // The S3 bucket behind the local cache (REGISTRY_STORAGE=s3), or null.
  SecondTier* l2() { return l2_.get(); }

  // Every repository: hosted ones and those the mirror has cached, sorted.
  [[nodiscard]] Result<std::vector<std::string>> Catalog();
  const Config& config() const { return config_; }

  // What the cache holds, image by image (`hubcache ls`, the admin API).
  [[nodiscard]] Result<std::vector<ImageInfo>> ListImages() {
    return hubcache::ListImages(*index_);
  }
  // Removes an image, or one blob, on an operator's request; the running
  // services forget them too (cache/image_remover.h).
  [[nodiscard]] Result<RemovalReport> RemoveImage(const RepoName& repo, const Reference& reference);
  [[nodiscard]] Result<RemovalReport> RemoveBlob(const Digest& digest);

  // Whether the cache can take a new file and its index answers (/readyz):
  // an empty detail when fine, else why not.
  struct StorageHealth {
    bool writable = false;
    std::string writable_detail;
    bool index_ok = false;
    std::string index_detail;
  };
  StorageHealth CheckStorage();

  // Stops the background threads and writes pending last-use times. Idempotent.
  void Shutdown();

 private:
  explicit Mirror(Config config)
      : config_(std::move(config)), sources_(config_.hosted, MirroredRegistries(config_)) {}
  static std::vector<MirroredRegistry> MirroredRegistries(const Config& config);
  void PurgeLoop();

  Config config_;
  const RepoSources sources_;
  CacheStats stats_;
  PinSet pins_;
  CacheUsage usage_;
  std::unique_ptr<CacheLock> lock_;
  std::unique_ptr<BlobStore> store_;
  std::unique_ptr<IndexDb> index_;
  std::unique_ptr<UpstreamSet> upstreams_;
  // The bucket (L2) and its client, when configured; the services below
  // borrow l2_, so it is declared (and outlives them) first.
  std::unique_ptr<S3Client> s3_;
  std::unique_ptr<SecondTier> l2_;
  std::unique_ptr<HostedBucket> hosted_bucket_;  // hosted content in the bucket
  std::unique_ptr<BlobStore> hosted_store_;
  std::unique_ptr<UploadService> uploads_;
  std::unique_ptr<HostedRegistry> hosted_;
  // Declared after what they use, so they are destroyed (and their threads
  // joined) first.
  std::unique_ptr<AccessTracker> access_;
  std::unique_ptr<ManifestService> manifests_;
  std::unique_ptr<TagListService> tag_lists_;
  std::unique_ptr<Evictor> evictor_;
  // Last: a fill thread still running wakes evictor_ through usage_'s listener.
  std::unique_ptr<FillManager> fills_;
  std::unique_ptr<BlobService> blobs_;      // borrows fills_, hosted_ and the rest
  std::unique_ptr<Prefetcher> prefetcher_;  // borrows fills_
  // The abandoned-upload purge (REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_*).
  std::mutex purge_mutex_;
  std::condition_variable purge_wake_;
  bool stopping_ = false;  // guarded by purge_mutex_
  std::thread purge_thread_;
};

}  // namespace hubcache
