#pragma once
// Removing an image or a blob from the cache on an operator's request (the
// `rm` command and the admin API). An image is a tag or a manifest digest of a
// repository; removing it takes its manifest (and an index's child manifests)
// unless other tags still use them, and every blob that no remaining manifest
// references. Shared blobs stay. With the S3 bucket behind the cache (L2),
// what goes from this node's L1 goes from the bucket's cache/ first (and the
// tag's records there), so the next miss does not bring it back from there;
// other nodes' L1 copies stay until their own eviction or removal.
//
// Not thread-safe by itself (one removal at a time; the index serializes
// writes). Borrows everything; all of it outlives the remover.

#include <cstdint>
#include <string>

#include "common/result.h"
#include "index/index_db.h"
#include "registry/reference.h"
#include "store/blob_store.h"

namespace hubcache {

class ManifestService;
class CacheUsage;
class SecondTier;

struct RemovalReport {
  uint64_t manifests = 0;
  uint64_t blobs = 0;
  uint64_t bytes = 0;
};

class ImageRemover {
 public:
  // `manifests` and `usage` may be null (offline use): they are told about
  // removals so a running server forgets them too. `l2`: the bucket, or null.
  ImageRemover(IndexDb& index, BlobStore& store, ManifestService* manifests, CacheUsage* usage,
               SecondTier* l2 = nullptr)
      : index_(index), store_(store), manifests_(manifests), usage_(usage), l2_(l2) {}

  [[nodiscard]] Result<RemovalReport> RemoveImage(const RepoName& repo, const Reference& reference);
  [[nodiscard]] Result<RemovalReport> RemoveBlob(const Digest& digest);

 private:
  Status DeleteManifest(const std::string& digest, uint64_t size, RemovalReport& report);
  Status DeleteBlob(const std::string& digest, uint64_t size, RemovalReport& report);

  IndexDb& index_;
  BlobStore& store_;
  ManifestService* manifests_;
  CacheUsage* usage_;
  SecondTier* l2_;
};

// Parses "repo:tag" or "repo@sha256:..." (also "repo:tag@sha256:...", where the
// digest wins) as the operator writes it for `rm` and the admin API.
[[nodiscard]] Result<std::pair<RepoName, Reference>> ParseImageArgument(const std::string& text);

}  // namespace hubcache
