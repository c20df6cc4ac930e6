#pragma once
// Manifests and tags, pull-through.
//
// By digest a manifest is immutable: served from memory or disk once cached and
// never asked upstream again. By tag it is served from the tag cache while the
// tag is younger than the freshness; after that the upstream is asked with a
// HEAD (which Docker Hub does not count as a pull) and the manifest is fetched
// only when the digest moved. If the upstream is down, slow, refusing or rate
// limiting, a cached tag is served stale. Tags are keyed by the client's
// AcceptSet: a schema2-only client never gets a cached OCI index.
//
// Thread-safe: requests call Get concurrently; concurrent misses of one
// manifest or tag share one upstream request (SingleFlight). Borrows
// everything it is given; all of it outlives the service.

#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cache/access_tracker.h"
#include "cache/second_tier.h"
#include "cache/stats.h"
#include "cache/usage.h"
#include "common/result.h"
#include "common/single_flight.h"
#include "index/index_db.h"
#include "registry/media_types.h"
#include "registry/reference.h"
#include "store/blob_store.h"
#include "upstream/upstream_set.h"

namespace hubcache {

struct Manifest {
  Digest digest;
  std::string media_type;
  std::shared_ptr<const std::string> bytes;  // the exact upstream bytes
};

// kBucket: not in the local cache, read from the S3 bucket behind it (a hit
// of the second tier).
enum class ManifestSource { kCache, kUpstream, kStale, kHosted, kBucket };

struct ManifestResult {
  Manifest manifest;
  ManifestSource source = ManifestSource::kCache;
};

// How long a tag is served without asking comes from its upstream
// (UpstreamSet::TagFreshness).
struct ManifestOptions {
  size_t memory_budget_bytes = 32 * 1024 * 1024;  // manifests kept in memory
  size_t max_manifest_bytes = 4 * 1024 * 1024;    // larger upstream manifests are refused
  size_t max_tags_in_memory = 16 * 1024;          // tag -> digest entries kept in memory
};

class ManifestService {
 public:
  // `l2`, when not null, is the bucket behind the cache (cache/second_tier.h):
  // manifests and tag records missing locally are looked up there before the
  // upstream, and what the upstream sends is written there too. Borrowed.
  ManifestService(UpstreamSet& upstream, BlobStore& store, IndexDb& index, CacheStats& stats,
                  CacheUsage& usage, AccessTracker& tracker, ManifestOptions options,
                  SecondTier* l2 = nullptr)
      : upstream_(upstream),
        store_(store),
        index_(index),
        stats_(stats),
        usage_(usage),
        tracker_(tracker),
        options_(options),
        l2_(l2) {}

  [[nodiscard]] Result<ManifestResult> Get(const RepoName& repo, const Reference& reference,
                                           const AcceptSet& accept);

  // Drops a manifest from memory (it is being evicted or removed).
  void Forget(const Digest& digest);
  // Drops every memory entry of a tag, whatever the Accept (the tag is being
  // removed from the index).
  void ForgetTag(const RepoName& repo, const Tag& tag);

 private:
  Result<ManifestResult> GetByDigest(const RepoName& repo, const Digest& digest);
  Result<ManifestResult> GetByTag(const RepoName& repo, const Tag& tag, const AcceptSet& accept);
  Result<ManifestResult> ResolveTag(const RepoName& repo, const Tag& tag, const AcceptSet& accept);
  Result<ManifestResult> FetchTag(const RepoName& repo, const Tag& tag, const AcceptSet& accept);
  std::optional<Manifest> LoadLocal(const Digest& digest);
  // From L1, else from the bucket (then kept in L1; `from_bucket` says so).
  std::optional<Manifest> LoadCached(const RepoName& repo, const Digest& digest,
                                     bool* from_bucket = nullptr);
  // The tag's row: from memory, else from the index (then remembered).
  // `ask_l2`: when memory and the index miss, the bucket too.
  std::optional<TagRow> LookupTag(const RepoName& repo, const Tag& tag, const AcceptSet& accept,
                                  bool ask_l2 = true);
  // Writes the row to the index and to memory.
  void StoreTag(const RepoName& repo, const Tag& tag, const AcceptSet& accept, const TagRow& row);
  void RememberTag(std::string key, const TagRow& row);
  // Keeps a verified manifest in L1 and, when `to_l2`, in the bucket.
  Status Store(const RepoName& repo, const Manifest& manifest, bool to_l2 = true);
  void Remember(const Manifest& manifest);

  UpstreamSet& upstream_;
  BlobStore& store_;
  IndexDb& index_;
  CacheStats& stats_;
  CacheUsage& usage_;
  AccessTracker& tracker_;
  const ManifestOptions options_;
  SecondTier* const l2_;
  SingleFlight<Result<ManifestResult>> flights_;

  // An LRU of manifests in memory, bounded by memory_budget_bytes.
  std::mutex memory_mutex_;
  std::list<Manifest> lru_;  // most recent first; guarded by memory_mutex_
  std::unordered_map<std::string, std::list<Manifest>::iterator> by_digest_;  // guarded
  size_t memory_bytes_ = 0;                                                   // guarded

  // The index's tag rows, in memory: a tag hit within the freshness reads no
  // SQLite (whose connection may be busy behind a write). Keyed by
  // "repo:tag|accept key"; bounded by max_tags_in_memory.
  std::mutex tags_mutex_;
  std::unordered_map<std::string, TagRow> tags_;  // guarded by tags_mutex_
};

}  // namespace hubcache
