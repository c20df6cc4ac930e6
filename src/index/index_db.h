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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

struct sqlite3;

namespace hubcache {

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

  int schema_version() const { return schema_version_; }

 private:
  explicit IndexDb(sqlite3* db) : db_(db) {}
  Status Migrate();
  Status Exec(const char* sql);

  std::mutex mutex_;
  sqlite3* db_;  // guarded by mutex_
  int schema_version_ = 0;
};

}  // namespace hubcache
