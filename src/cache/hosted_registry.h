#pragma once
// Hosted repositories' manifests, tags and blobs, read and written: the
// counterpart of ManifestService and BlobService for names RepoSources marks
// hosted. Nothing here ever asks the upstream. Pushed content is the only
// copy: it lives in its own store (<root>/hosted) and its own index tables,
// which the cache cap, the evictor and `rm` never touch; only `hubcache gc`
// removes what no manifest references.
//
// Reads are served from memory once seen (tags, manifests, blob links), so a
// hit reads no SQLite; this process's writes update that memory, and what
// `hubcache gc` removes from another process is caught by the file being gone.
// (A link remembered here outlives a sweep only when the same bytes came back
// under their digest for another repository: content-addressed, so the bytes
// served are still the ones the digest names.)
// Thread-safe (the index serialises writers; a manifest is checked against
// its blobs and recorded in one transaction; the memory has its own mutex).
// Borrows the store and index.

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/hosted_bucket.h"
#include "cache/manifest_service.h"
#include "cache/stats.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "index/index_db.h"
#include "registry/pushed_manifest.h"
#include "registry/reference.h"
#include "store/blob_store.h"

namespace hubcache {

struct PushedManifestResult {
  Digest digest;
  std::string subject;  // for the OCI-Subject answer; "" when none
};

class HostedRegistry {
 public:
  // `bucket`, when not null (REGISTRY_STORAGE=s3), is where hosted content
  // lives for every node (cache/hosted_bucket.h): pushes are written there
  // before they are answered, and reads take tags, manifests and blob links
  // from there (remembered for kBucketRecheckMs), so a push through one node
  // is served by the next.
  HostedRegistry(BlobStore& store, IndexDb& index, CacheStats& stats, size_t max_manifest_bytes,
                 HostedBucket* bucket = nullptr)
      : store_(store),
        index_(index),
        stats_(stats),
        max_manifest_bytes_(max_manifest_bytes),
        bucket_(bucket) {}

  size_t max_manifest_bytes() const { return max_manifest_bytes_; }

  // PUT of a manifest by tag or digest: checked (content, digest, size,
  // every referenced blob and child manifest present in the repository).
  [[nodiscard]] Result<PushedManifestResult> PutManifest(const RepoName& repo,
                                                         const Reference& reference,
                                                         const std::string& content_type,
                                                         std::string bytes);
  [[nodiscard]] Result<Manifest> GetManifest(const RepoName& repo, const Reference& reference);
  // By digest: the manifest and its tags; by tag: the tag only.
  [[nodiscard]] Status DeleteManifest(const RepoName& repo, const Reference& reference);
  // NAME_UNKNOWN when the repository holds nothing.
  [[nodiscard]] Result<std::vector<std::string>> Tags(const RepoName& repo);
  // The referrers index (OCI image index JSON) of `subject` in `repo`, with
  // only `artifact_type`'s when not empty.
  [[nodiscard]] Result<std::string> Referrers(const RepoName& repo, const Digest& subject,
                                              const std::string& artifact_type);

  struct OpenBlob {
    uint64_t size = 0;
    UniqueFd file;           // not valid for a Stat, nor when in_bucket
    bool in_bucket = false;  // no local copy: the bytes are read from the bucket
  };
  [[nodiscard]] Result<OpenBlob> Blob(const RepoName& repo, const Digest& digest, bool open);
  [[nodiscard]] Status DeleteBlob(const RepoName& repo, const Digest& digest);

 private:
  static std::string Key(const RepoName& repo, const std::string& item) {
    return repo.str() + '\n' + item;  // '\n' is in no name, tag or digest
  }
  Result<std::string> ResolveTag(const RepoName& repo, const Tag& tag);
  // The same with the bucket as the truth (bucket_ set).
  Result<Manifest> BucketManifest(const RepoName& repo, const Reference& reference);
  Result<OpenBlob> BucketBlob(const RepoName& repo, const Digest& digest, bool open);
  void ForgetRepoTagsOf(const RepoName& repo, const std::string& digest);
  // With the bucket: drops from `described` the blobs and child manifests this
  // node's index lacks but the bucket links to `repo` (checking their sizes),
  // so the local record checks only what this node holds.
  Status KeepOnlyLocalReferences(const RepoName& repo, PushedManifest& described);
  void RememberManifest(const std::string& key, const Manifest& manifest);

  BlobStore& store_;
  IndexDb& index_;
  CacheStats& stats_;
  const size_t max_manifest_bytes_;
  HostedBucket* const bucket_;

  static constexpr size_t kMemoryBudget = 16 * 1024 * 1024;  // manifest bytes
  static constexpr size_t kMaxEntries = 64 * 1024;           // tags, blob links
  // A remembered manifest's file is checked again after this long (gc from
  // another process may have removed it).
  static constexpr int64_t kFileRecheckMs = 1'000;
  std::mutex mutex_;
  std::map<std::string, std::string> tags_;  // repo\ntag -> digest; guarded by mutex_
  struct RememberedManifest {
    Manifest manifest;
    int64_t file_seen_ms = 0;  // when its file was last seen on disk
  };
  // repo\ndigest; guarded by mutex_
  std::unordered_map<std::string, RememberedManifest> manifests_;
  std::list<std::string> manifest_order_;                 // oldest first; guarded by mutex_
  size_t manifest_bytes_ = 0;                             // guarded by mutex_
  std::unordered_map<std::string, uint64_t> blob_sizes_;  // repo\ndigest; guarded by mutex_
  // With the bucket: what it said, and when (unix ms). Another node may change
  // a tag or delete a manifest or link: asked again after kBucketRecheckMs.
  static constexpr int64_t kBucketRecheckMs = 1'000;
  template <typename T>
  struct Checked {
    T value;
    int64_t at_ms = 0;
  };
  std::unordered_map<std::string, Checked<Digest>> bucket_tags_;     // guarded by mutex_
  std::unordered_map<std::string, Checked<uint64_t>> bucket_blobs_;  // guarded by mutex_
};

}  // namespace hubcache
