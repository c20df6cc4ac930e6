#pragma once
// The pull-through cache as one object: it owns the store, the index, the
// upstream client and the services built on them, in dependency order. The
// HTTP layer talks to this and nothing below it.

#include <memory>

#include "cache/blob_fill.h"
#include "cache/manifest_service.h"
#include "cache/stats.h"
#include "cache/tag_list_service.h"
#include "common/result.h"
#include "config/config.h"
#include "index/index_db.h"
#include "store/blob_store.h"
#include "upstream/upstream_client.h"

namespace hubcache {

class Mirror {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Mirror>> Open(const Config& config);

  BlobStore& store() { return *store_; }
  IndexDb& index() { return *index_; }
  UpstreamClient& upstream() { return *upstream_; }
  FillManager& fills() { return *fills_; }
  ManifestService& manifests() { return *manifests_; }
  TagListService& tag_lists() { return *tag_lists_; }
  CacheStats& stats() { return stats_; }
  const Config& config() const { return config_; }

 private:
  explicit Mirror(Config config) : config_(std::move(config)) {}

  Config config_;
  CacheStats stats_;
  std::unique_ptr<BlobStore> store_;
  std::unique_ptr<IndexDb> index_;
  std::unique_ptr<UpstreamClient> upstream_;
  // Declared after what they use, so they are destroyed (and their threads
  // joined) first.
  std::unique_ptr<FillManager> fills_;
  std::unique_ptr<ManifestService> manifests_;
  std::unique_ptr<TagListService> tag_lists_;
};

}  // namespace hubcache
