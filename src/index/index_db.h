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
