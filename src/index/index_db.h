#pragma once
// The SQLite index of the cache: what is stored (blobs, manifests with their
// media types), which repositories reference which manifests, and the tag
// cache (tag -> digest per Accept set, with the time it was last confirmed).
//
// WAL mode, a versioned schema migrated on open, prepared statements only (no
// SQL is ever built from request data). Thread-safe: one connection behind one
// mutex; callers must not hold locks of their own across these calls' disk I/O.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

struct sqlite3;

namespace hubcache {

class StatementCache;  // index/statement.h

struct TagRow {
  std::string digest;  // "sha256:..."
  std::string media_type;
  int64_t checked_at_ms;  // unix ms when the upstream last confirmed it
};

enum class EntryKind { kBlob, kManifest };

struct CacheEntry {
  EntryKind kind;
  std::string digest;
  uint64_t size;
  int64_t last_access_ms;
};

struct Touch {
  EntryKind kind;
  std::string digest;
  int64_t at_ms;
};

// One cached tag of one repository, for listings.
struct ImageRow {
  std::string repo;
  std::string tag;  // empty for a manifest cached by digest only
  std::string digest;
  std::string media_type;
  uint64_t manifest_size;
  int64_t last_access_ms;
};

// A manifest pushed to a hosted repository.
struct HostedManifestRow {
  std::string repo;
  std::string digest;
  std::string media_type;
  uint64_t size = 0;
  std::string artifact_type;  // OCI artifactType, else the config's media type; may be empty
  std::string subject;        // digest of the OCI subject; empty when none
  std::string annotations;    // the manifest's annotations as JSON; "" when none
  int64_t created_ms = 0;
};

struct HostedBlobRow {
  std::string digest;
  uint64_t size = 0;
  int64_t created_ms = 0;
};

// An upload in progress: its bytes are in the hosted store's uploads/<id>.
struct UploadRow {
  std::string id;
  std::string repo;
  uint64_t offset = 0;  // bytes received so far
  int64_t started_ms = 0;
  int64_t updated_ms = 0;
};

struct HostedTotals {
  uint64_t repositories = 0;
  uint64_t manifests = 0;
  uint64_t tags = 0;
  uint64_t blobs = 0;
  uint64_t bytes = 0;  // blob bytes (manifest bytes are in manifests' sizes)
  uint64_t uploads = 0;
};

// One hosted repository, for listings (dashboard, ls).
struct HostedRepoRow {
  std::string repo;
  uint64_t tags = 0;
  uint64_t manifests = 0;
  uint64_t size_bytes = 0;  // blobs linked to it
  int64_t last_push_ms = 0;
};

// Runs inside an index write transaction, to place or remove a file while the
// index's write lock excludes every other writer (also `hubcache gc` in another
// process): an error rolls the transaction back.
using FileStep = std::function<Status()>;

class IndexDb {
 public:
  [[nodiscard]] static Result<std::unique_ptr<IndexDb>> Open(const std::filesystem::path& path);
  ~IndexDb();
  IndexDb(const IndexDb&) = delete;
  IndexDb& operator=(const IndexDb&) = delete;

  [[nodiscard]] Status PutBlob(const std::string& digest, uint64_t size, int64_t now_ms);
  [[nodiscard]] Status PutManifest(const std::string& digest, const std::string& media_type,
                                   uint64_t size, const std::string& repo, int64_t now_ms);
  [[nodiscard]] Result<std::optional<std::string>> ManifestMediaType(const std::string& digest);

  [[nodiscard]] Status PutTag(const std::string& repo, const std::string& tag,
                              const std::string& accept_key, const TagRow& row);
  [[nodiscard]] Result<std::optional<TagRow>> GetTag(const std::string& repo,
                                                     const std::string& tag,
                                                     const std::string& accept_key);

  [[nodiscard]] Status PutTagList(const std::string& repo, const std::string& json, int64_t now_ms);
  [[nodiscard]] Result<std::optional<std::string>> GetTagList(const std::string& repo);

  // Repositories with at least one cached manifest, sorted.
  [[nodiscard]] Result<std::vector<std::string>> Repositories();

  // Records what a manifest references (blob and child-manifest digests).
  [[nodiscard]] Status PutManifestRefs(const std::string& manifest,
                                       const std::vector<std::string>& children);
  [[nodiscard]] Result<std::vector<std::string>> ManifestChildren(const std::string& manifest);
  // How many manifests reference `child`, not counting those in `excluding`.
  [[nodiscard]] Result<int64_t> CountReferrers(const std::string& child,
                                               const std::vector<std::string>& excluding);

  // Writes a batch of last-use times in one transaction.
  [[nodiscard]] Status ApplyTouches(const std::vector<Touch>& touches);
  // Eviction order, at most `limit`: blobs least recently used first, then
  // manifests. Manifests go last because they are tiny and fetching one again
  // costs a Docker Hub pull, while a blob's bytes are what the cap is about.
  [[nodiscard]] Result<std::vector<CacheEntry>> LeastRecentlyUsed(size_t limit);
  // Entries last used before `before_ms` (blobs and manifests alike), oldest
  // first, at most `limit`: what an age limit removes (REGISTRY_PROXY_TTL).
  [[nodiscard]] Result<std::vector<CacheEntry>> UnusedSince(int64_t before_ms, size_t limit);
  // Every indexed entry (for reconciliation with the files).
  [[nodiscard]] Result<std::vector<CacheEntry>> AllEntries();
  [[nodiscard]] Result<uint64_t> TotalBytes();
  [[nodiscard]] Result<std::optional<CacheEntry>> FindEntry(EntryKind kind,
                                                            const std::string& digest);

  // Removing entries. A manifest's refs, repository links and the tags that
  // point at it go with it.
  [[nodiscard]] Status DeleteBlob(const std::string& digest);
  [[nodiscard]] Status DeleteManifest(const std::string& digest);
  [[nodiscard]] Status DeleteTag(const std::string& repo, const std::string& tag);
  [[nodiscard]] Result<int64_t> CountTagsPointingAt(const std::string& digest);
  // Digests a tag points at (one per Accept set it was asked with).
  [[nodiscard]] Result<std::vector<std::string>> TagDigests(const std::string& repo,
                                                            const std::string& tag);

  // Cached images: every (repo, tag) and every manifest linked to a repo
  // without a tag, sorted by repo then tag.
  [[nodiscard]] Result<std::vector<ImageRow>> Images();

  // ---- Hosted repositories (cache/hosted_registry.h, cache/upload_service.h).
  // Records a verified blob and links it to `repo`. When the blob is new,
  // `place` (moving its file into place) runs inside the transaction first.
  // Returns false when the blob was there already (its file is left as is).
  [[nodiscard]] Result<bool> CommitHostedBlob(const std::string& repo, const std::string& digest,
                                              uint64_t size, int64_t now_ms, const FileStep& place);
  // The size of a blob linked to `repo`, or nullopt.
  [[nodiscard]] Result<std::optional<uint64_t>> HostedBlobSize(const std::string& repo,
                                                               const std::string& digest);
  // The size of a hosted blob in any repository, or nullopt.
  [[nodiscard]] Result<std::optional<uint64_t>> AnyHostedBlobSize(const std::string& digest);
  // Links an existing hosted blob into `repo`; false when it is not hosted.
  [[nodiscard]] Result<bool> LinkHostedBlob(const std::string& repo, const std::string& digest);
  // Unlinks a blob from `repo` (its file goes at the next gc); false if not linked.
  [[nodiscard]] Result<bool> UnlinkHostedBlob(const std::string& repo, const std::string& digest);

  // Stores a manifest pushed to row.repo, and `tag` (if not empty) pointing at
  // it, in one transaction that first checks every digest in `blobs` is linked
  // to the repository and every one in `manifests` is a manifest of it; the
  // first one missing is returned (nothing is written then). `place` writes the
  // manifest's file inside the transaction.
  // When `blob_sizes` is given (one per blob), each blob's stored size must
  // equal it, else kManifestInvalid.
  [[nodiscard]] Result<std::optional<std::string>> PutHostedManifest(
      const HostedManifestRow& row, const std::vector<std::string>& blobs,
      const std::vector<std::string>& manifests, const std::string& tag, const FileStep& place,
      const std::vector<uint64_t>& blob_sizes = {});
  [[nodiscard]] Result<std::optional<HostedManifestRow>> GetHostedManifest(
      const std::string& repo, const std::string& digest);
  [[nodiscard]] Result<std::optional<std::string>> HostedTag(const std::string& repo,
                                                             const std::string& tag);
  [[nodiscard]] Result<std::vector<std::string>> HostedTags(const std::string& repo);
  // Repositories with at least one manifest, sorted.
  [[nodiscard]] Result<std::vector<std::string>> HostedRepositories();
  [[nodiscard]] Result<std::vector<HostedRepoRow>> HostedRepositoryRows();
  // Removes a manifest from a repository with the tags that point at it.
  // False when it was not there.
  [[nodiscard]] Result<bool> DeleteHostedManifest(const std::string& repo,
                                                  const std::string& digest);
  [[nodiscard]] Result<bool> DeleteHostedTag(const std::string& repo, const std::string& tag);
  // Manifests of `repo` whose subject is `subject`, oldest first.
  [[nodiscard]] Result<std::vector<HostedManifestRow>> HostedReferrers(const std::string& repo,
                                                                       const std::string& subject);
  [[nodiscard]] Result<HostedTotals> GetHostedTotals();

  // Uploads in progress.
  [[nodiscard]] Status PutUpload(const UploadRow& row);
  [[nodiscard]] Result<std::optional<UploadRow>> GetUpload(const std::string& id);
  [[nodiscard]] Status SetUploadOffset(const std::string& id, uint64_t offset, int64_t now_ms);
  [[nodiscard]] Status DeleteUpload(const std::string& id);
  // Uploads not touched since `before_ms`.
  [[nodiscard]] Result<std::vector<UploadRow>> StaleUploads(int64_t before_ms);

  // Garbage collection of hosted content (cli/gc_command.cpp).
  // Blobs created before `before_ms` that no hosted manifest references.
  [[nodiscard]] Result<std::vector<HostedBlobRow>> UnreferencedHostedBlobs(int64_t before_ms);
  // Removes a blob when it is still unreferenced and older than `before_ms`,
  // running `remove` (the file's removal) inside the transaction. False when
  // it became referenced (or was gone) meanwhile.
  [[nodiscard]] Result<bool> SweepHostedBlob(const std::string& digest, int64_t before_ms,
                                             const FileStep& remove);
  // Manifests created before `before_ms` that no tag of their repository
  // points at, no other manifest of it lists, and that are no referrer of a
  // manifest still there.
  [[nodiscard]] Result<std::vector<HostedManifestRow>> UntaggedHostedManifests(int64_t before_ms);
  // Digests of manifest files no hosted manifest row names any more.
  [[nodiscard]] Result<std::vector<std::string>> OrphanHostedManifestDigests();
  // Drops the refs of a manifest digest no repository holds; `remove` (the
  // file's removal) runs inside the transaction. False when it is held again.
  [[nodiscard]] Result<bool> SweepHostedManifestFile(const std::string& digest,
                                                     const FileStep& remove);

  // Removes a file of the hosted store that no row records (a crash between
  // its rename and the transaction's commit): `remove` runs inside a write
  // transaction after checking there is still no row, so a commit in flight
  // (which renames inside its own transaction) is never undone.
  [[nodiscard]] Result<bool> SweepUnrecordedHostedFile(bool manifest, const std::string& digest,
                                                       const FileStep& remove);

  int schema_version() const { return schema_version_; }

 private:
  explicit IndexDb(sqlite3* db);
  Status Migrate();
  Status Exec(const char* sql);

  std::mutex mutex_;
  sqlite3* db_;                                 // guarded by mutex_
  std::unique_ptr<StatementCache> statements_;  // of db_; guarded by mutex_
  int schema_version_ = 0;
};

}  // namespace hubcache
