#include "index/index_db.h"

#include "index/statement.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace hubcache {
namespace {

// Each entry moves the schema from version i to i+1. Append only.
constexpr const char* kMigrations[] = {
    R"sql(
    CREATE TABLE blobs (
      digest TEXT PRIMARY KEY,
      size INTEGER NOT NULL,
      created_ms INTEGER NOT NULL,
      last_access_ms INTEGER NOT NULL
    );
    CREATE TABLE manifests (
      digest TEXT PRIMARY KEY,
      media_type TEXT NOT NULL,
      size INTEGER NOT NULL,
      created_ms INTEGER NOT NULL,
      last_access_ms INTEGER NOT NULL
    );
    CREATE TABLE repo_manifests (
      repo TEXT NOT NULL,
      digest TEXT NOT NULL,
      PRIMARY KEY (repo, digest)
    );
    CREATE TABLE tags (
      repo TEXT NOT NULL,
      tag TEXT NOT NULL,
      accept_key TEXT NOT NULL,
      digest TEXT NOT NULL,
      media_type TEXT NOT NULL,
      checked_ms INTEGER NOT NULL,
      PRIMARY KEY (repo, tag, accept_key)
    );
    CREATE TABLE tag_lists (
      repo TEXT PRIMARY KEY,
      json TEXT NOT NULL,
      fetched_ms INTEGER NOT NULL
    );
    )sql",
    // v2: what each manifest references (config, layers, index children), so
    // that removing an image can tell which blobs nothing else uses; and an
    // index for LRU ordering.
    R"sql(
    CREATE TABLE manifest_refs (
      manifest TEXT NOT NULL,
      child TEXT NOT NULL,
      PRIMARY KEY (manifest, child)
    );
    CREATE INDEX manifest_refs_child ON manifest_refs(child);
    CREATE INDEX blobs_lru ON blobs(last_access_ms);
    CREATE INDEX manifests_lru ON manifests(last_access_ms);
    CREATE INDEX tags_digest ON tags(digest);
    )sql",
    // v3: hosted (pushed) repositories, apart from the cache's tables so that
    // eviction and the cache cap never see them; and uploads in progress.
    R"sql(
    CREATE TABLE hosted_blobs (
      digest TEXT PRIMARY KEY,
      size INTEGER NOT NULL,
      created_ms INTEGER NOT NULL
    );
    CREATE TABLE hosted_repo_blobs (
      repo TEXT NOT NULL,
      digest TEXT NOT NULL,
      PRIMARY KEY (repo, digest)
    );
    CREATE INDEX hosted_repo_blobs_digest ON hosted_repo_blobs(digest);
    CREATE TABLE hosted_manifests (
      repo TEXT NOT NULL,
      digest TEXT NOT NULL,
      media_type TEXT NOT NULL,
      size INTEGER NOT NULL,
      artifact_type TEXT NOT NULL,
      subject TEXT NOT NULL,
      annotations TEXT NOT NULL,
      created_ms INTEGER NOT NULL,
      PRIMARY KEY (repo, digest)
    );
    CREATE INDEX hosted_manifests_digest ON hosted_manifests(digest);
    CREATE INDEX hosted_manifests_subject ON hosted_manifests(repo, subject);
    CREATE TABLE hosted_manifest_refs (
      digest TEXT NOT NULL,
      child TEXT NOT NULL,
      PRIMARY KEY (digest, child)
    );
    CREATE INDEX hosted_manifest_refs_child ON hosted_manifest_refs(child);
    CREATE TABLE hosted_tags (
      repo TEXT NOT NULL,
      tag TEXT NOT NULL,
      digest TEXT NOT NULL,
      updated_ms INTEGER NOT NULL,
      PRIMARY KEY (repo, tag)
    );
    CREATE INDEX hosted_tags_digest ON hosted_tags(repo, digest);
    CREATE TABLE uploads (
      id TEXT PRIMARY KEY,
      repo TEXT NOT NULL,
      offset INTEGER NOT NULL,
      started_ms INTEGER NOT NULL,
      updated_ms INTEGER NOT NULL
    );
    )sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

}  // namespace

Result<std::unique_ptr<IndexDb>> IndexDb::Open(const std::filesystem::path& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Fail(ErrorKind::kIo, "cannot open index " + path.string() + ": " + message);
  }
  std::unique_ptr<IndexDb> index(new IndexDb(db));
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (auto s = index->Exec(pragma); !s) return tl::unexpected(s.error());
  }
  if (auto s = index->Migrate(); !s) return tl::unexpected(s.error());
  return index;
}

IndexDb::IndexDb(sqlite3* db) : db_(db), statements_(std::make_unique<StatementCache>(db)) {}

IndexDb::~IndexDb() {
  statements_.reset();  // finalized before the connection closes
  sqlite3_close(db_);
}

Status IndexDb::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return Fail(ErrorKind::kIo, std::string("index: ") + message);
  }
  return {};
}

Status IndexDb::Migrate() {
  std::lock_guard lock(mutex_);
  Statement version(*statements_, "PRAGMA user_version");
  if (!version.ok() || version.Step() != SQLITE_ROW) return tl::unexpected(DbError(db_, "version"));
  int current = static_cast<int>(version.Int(0));
  if (current > kSchemaVersion) {
    return Fail(ErrorKind::kIo, "index schema version " + std::to_string(current) +
                                    " is newer than this hubcache understands (" +
                                    std::to_string(kSchemaVersion) + "); upgrade hubcache");
  }
  for (int v = current; v < kSchemaVersion; ++v) {
    std::string sql = std::string("BEGIN;") + kMigrations[v] +
                      "PRAGMA user_version=" + std::to_string(v + 1) + ";COMMIT;";
    if (auto s = Exec(sql.c_str()); !s) {
      (void)Exec("ROLLBACK");
      return s;
    }
  }
  schema_version_ = kSchemaVersion;
  return {};
}

Status IndexDb::PutBlob(const std::string& digest, uint64_t size, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "INSERT INTO blobs(digest, size, created_ms, last_access_ms) VALUES(?1, ?2, ?3, ?3) "
              "ON CONFLICT(digest) DO UPDATE SET size=excluded.size, "
              "last_access_ms=excluded.last_access_ms");
  s.Bind(1, digest).Bind(2, static_cast<int64_t>(size)).Bind(3, now_ms);
  return RunWrite(db_, s, "put blob");
}

Status IndexDb::PutManifest(const std::string& digest, const std::string& media_type, uint64_t size,
                            const std::string& repo, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (auto s = Exec("BEGIN"); !s) return s;
  Statement m(*statements_,
              "INSERT INTO manifests(digest, media_type, size, created_ms, last_access_ms) "
              "VALUES(?1, ?2, ?3, ?4, ?4) ON CONFLICT(digest) DO UPDATE SET "
              "last_access_ms=excluded.last_access_ms");
  m.Bind(1, digest).Bind(2, media_type).Bind(3, static_cast<int64_t>(size)).Bind(4, now_ms);
  auto status = RunWrite(db_, m, "put manifest");
  if (status && !repo.empty()) {
    Statement link(*statements_,
                   "INSERT OR IGNORE INTO repo_manifests(repo, digest) VALUES(?1, ?2)");
    link.Bind(1, repo).Bind(2, digest);
    status = RunWrite(db_, link, "link manifest");
  }
  if (!status) {
    (void)Exec("ROLLBACK");
    return status;
  }
  return Exec("COMMIT");
}

Result<std::optional<std::string>> IndexDb::ManifestMediaType(const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT media_type FROM manifests WHERE digest=?1");
  if (!s.ok()) return tl::unexpected(DbError(db_, "get manifest"));
  s.Bind(1, digest);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.Text(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return tl::unexpected(DbError(db_, "get manifest"));
}

Status IndexDb::PutTag(const std::string& repo, const std::string& tag,
                       const std::string& accept_key, const TagRow& row) {
  std::lock_guard lock(mutex_);
  Statement s(
      db_,
      "INSERT INTO tags(repo, tag, accept_key, digest, media_type, checked_ms) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(repo, tag, accept_key) DO UPDATE SET "
      "digest=excluded.digest, media_type=excluded.media_type, checked_ms=excluded.checked_ms");
  s.Bind(1, repo)
      .Bind(2, tag)
      .Bind(3, accept_key)
      .Bind(4, row.digest)
      .Bind(5, row.media_type)
      .Bind(6, row.checked_at_ms);
  return RunWrite(db_, s, "put tag");
}

Result<std::optional<TagRow>> IndexDb::GetTag(const std::string& repo, const std::string& tag,
                                              const std::string& accept_key) {
  std::lock_guard lock(mutex_);
  Statement s(
      db_,
      "SELECT digest, media_type, checked_ms FROM tags WHERE repo=?1 AND tag=?2 AND accept_key=?3");
  if (!s.ok()) return tl::unexpected(DbError(db_, "get tag"));
  s.Bind(1, repo).Bind(2, tag).Bind(3, accept_key);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<TagRow>(TagRow{s.Text(0), s.Text(1), s.Int(2)});
  if (rc == SQLITE_DONE) return std::optional<TagRow>();
  return tl::unexpected(DbError(db_, "get tag"));
}

Status IndexDb::PutTagList(const std::string& repo, const std::string& json, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "INSERT INTO tag_lists(repo, json, fetched_ms) VALUES(?1, ?2, ?3) "
              "ON CONFLICT(repo) DO UPDATE SET json=excluded.json, fetched_ms=excluded.fetched_ms");
  s.Bind(1, repo).Bind(2, json).Bind(3, now_ms);
  return RunWrite(db_, s, "put tag list");
}

Result<std::optional<std::string>> IndexDb::GetTagList(const std::string& repo) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT json FROM tag_lists WHERE repo=?1");
  if (!s.ok()) return tl::unexpected(DbError(db_, "get tag list"));
  s.Bind(1, repo);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.Text(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return tl::unexpected(DbError(db_, "get tag list"));
}

Result<std::vector<std::string>> IndexDb::Repositories() {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT DISTINCT repo FROM repo_manifests ORDER BY repo");
  if (!s.ok()) return tl::unexpected(DbError(db_, "list repositories"));
  std::vector<std::string> repos;
  while (true) {
    int rc = s.Step();
    if (rc == SQLITE_ROW) {
      repos.push_back(s.Text(0));
    } else if (rc == SQLITE_DONE) {
      break;
    } else {
      return tl::unexpected(DbError(db_, "list repositories"));
    }
  }
  return repos;
}

namespace {

const char* TableOf(EntryKind kind) { return kind == EntryKind::kBlob ? "blobs" : "manifests"; }

// The rows of a bound (kind, digest, size, last_access_ms) query, stepped to the end.
Result<std::vector<CacheEntry>> ReadCacheEntries(Statement& s, sqlite3* db, const char* what) {
  if (!s.ok()) return tl::unexpected(DbError(db, what));
  std::vector<CacheEntry> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(CacheEntry{s.Int(0) == 0 ? EntryKind::kBlob : EntryKind::kManifest, s.Text(1),
                             static_cast<uint64_t>(s.Int(2)), s.Int(3)});
  }
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db, what));
  return out;
}

}  // namespace

Status IndexDb::PutManifestRefs(const std::string& manifest,
                                const std::vector<std::string>& children) {
  std::lock_guard lock(mutex_);
  if (auto s = Exec("BEGIN"); !s) return s;
  Status status;
  for (const auto& child : children) {
    Statement st(*statements_,
                 "INSERT OR IGNORE INTO manifest_refs(manifest, child) VALUES(?1, ?2)");
    st.Bind(1, manifest).Bind(2, child);
    status = RunWrite(db_, st, "put manifest refs");
    if (!status) break;
  }
  if (!status) {
    (void)Exec("ROLLBACK");
    return status;
  }
  return Exec("COMMIT");
}

Result<std::vector<std::string>> IndexDb::ManifestChildren(const std::string& manifest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT child FROM manifest_refs WHERE manifest=?1 ORDER BY child");
  if (!s.ok()) return tl::unexpected(DbError(db_, "manifest children"));
  s.Bind(1, manifest);
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(s.Text(0));
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "manifest children"));
  return out;
}

Result<int64_t> IndexDb::CountReferrers(const std::string& child,
                                        const std::vector<std::string>& excluding) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT manifest FROM manifest_refs WHERE child=?1");
  if (!s.ok()) return tl::unexpected(DbError(db_, "count referrers"));
  s.Bind(1, child);
  int64_t count = 0;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    std::string m = s.Text(0);
    if (std::find(excluding.begin(), excluding.end(), m) == excluding.end()) ++count;
  }
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "count referrers"));
  return count;
}

Status IndexDb::ApplyTouches(const std::vector<Touch>& touches) {
  if (touches.empty()) return {};
  std::lock_guard lock(mutex_);
  if (auto s = Exec("BEGIN"); !s) return s;
  Statement blob(*statements_,
                 "UPDATE blobs SET last_access_ms=max(last_access_ms, ?2) WHERE digest=?1");
  Statement manifest(*statements_,
                     "UPDATE manifests SET last_access_ms=max(last_access_ms, ?2) WHERE digest=?1");
  if (!blob.ok() || !manifest.ok()) {
    (void)Exec("ROLLBACK");
    return tl::unexpected(DbError(db_, "touch"));
  }
  for (const auto& t : touches) {
    Statement& st = t.kind == EntryKind::kBlob ? blob : manifest;
    st.Bind(1, t.digest).Bind(2, t.at_ms);
    int rc = st.Step();
    st.Reset();
    if (rc != SQLITE_DONE) {
      (void)Exec("ROLLBACK");
      return tl::unexpected(DbError(db_, "touch"));
    }
  }
  return Exec("COMMIT");
}

Result<std::vector<CacheEntry>> IndexDb::LeastRecentlyUsed(size_t limit) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT 0, digest, size, last_access_ms FROM blobs UNION ALL "
              "SELECT 1, digest, size, last_access_ms FROM manifests "
              "ORDER BY 1 ASC, 4 ASC LIMIT ?1");
  if (s.ok()) s.Bind(1, static_cast<int64_t>(limit));
  return ReadCacheEntries(s, db_, "lru");
}

Result<std::vector<CacheEntry>> IndexDb::UnusedSince(int64_t before_ms, size_t limit) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT 0, digest, size, last_access_ms FROM blobs WHERE last_access_ms < ?1 "
              "UNION ALL "
              "SELECT 1, digest, size, last_access_ms FROM manifests WHERE last_access_ms < ?1 "
              "ORDER BY 4 ASC LIMIT ?2");
  if (s.ok()) {
    s.Bind(1, before_ms);
    s.Bind(2, static_cast<int64_t>(limit));
  }
  return ReadCacheEntries(s, db_, "unused since");
}

Result<std::vector<CacheEntry>> IndexDb::AllEntries() {
  return LeastRecentlyUsed(static_cast<size_t>(INT64_MAX));
}

Result<uint64_t> IndexDb::TotalBytes() {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT (SELECT coalesce(sum(size), 0) FROM blobs) + "
              "(SELECT coalesce(sum(size), 0) FROM manifests)");
  if (!s.ok() || s.Step() != SQLITE_ROW) return tl::unexpected(DbError(db_, "total size"));
  return static_cast<uint64_t>(s.Int(0));
}

Result<std::optional<CacheEntry>> IndexDb::FindEntry(EntryKind kind, const std::string& digest) {
  std::lock_guard lock(mutex_);
  std::string sql =
      std::string("SELECT size, last_access_ms FROM ") + TableOf(kind) + " WHERE digest=?1";
  Statement s(*statements_, sql.c_str());
  if (!s.ok()) return tl::unexpected(DbError(db_, "find entry"));
  s.Bind(1, digest);
  int rc = s.Step();
  if (rc == SQLITE_ROW) {
    return std::optional<CacheEntry>(
        CacheEntry{kind, digest, static_cast<uint64_t>(s.Int(0)), s.Int(1)});
  }
  if (rc == SQLITE_DONE) return std::optional<CacheEntry>();
  return tl::unexpected(DbError(db_, "find entry"));
}

Status IndexDb::DeleteBlob(const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "DELETE FROM blobs WHERE digest=?1");
  s.Bind(1, digest);
  return RunWrite(db_, s, "delete blob");
}

Status IndexDb::DeleteManifest(const std::string& digest) {
  std::lock_guard lock(mutex_);
  if (auto s = Exec("BEGIN"); !s) return s;
  Status status;
  for (const char* sql :
       {"DELETE FROM manifests WHERE digest=?1", "DELETE FROM manifest_refs WHERE manifest=?1",
        "DELETE FROM repo_manifests WHERE digest=?1", "DELETE FROM tags WHERE digest=?1"}) {
    Statement st(*statements_, sql);
    st.Bind(1, digest);
    status = RunWrite(db_, st, "delete manifest");
    if (!status) break;
  }
  if (!status) {
    (void)Exec("ROLLBACK");
    return status;
  }
  return Exec("COMMIT");
}

Status IndexDb::DeleteTag(const std::string& repo, const std::string& tag) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "DELETE FROM tags WHERE repo=?1 AND tag=?2");
  s.Bind(1, repo).Bind(2, tag);
  return RunWrite(db_, s, "delete tag");
}

Result<std::vector<std::string>> IndexDb::TagDigests(const std::string& repo,
                                                     const std::string& tag) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT DISTINCT digest FROM tags WHERE repo=?1 AND tag=?2 ORDER BY digest");
  if (!s.ok()) return tl::unexpected(DbError(db_, "tag digests"));
  s.Bind(1, repo).Bind(2, tag);
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(s.Text(0));
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "tag digests"));
  return out;
}

Result<std::vector<ImageRow>> IndexDb::Images() {
  std::lock_guard lock(mutex_);
  // Tagged manifests, then manifests a repo holds that no tag of it names
  // (pulled by digest, or children of an index).
  Statement s(
      db_,
      "SELECT t.repo, t.tag, t.digest, m.media_type, m.size, m.last_access_ms "
      "FROM tags t JOIN manifests m ON m.digest = t.digest "
      "GROUP BY t.repo, t.tag, t.digest "
      "UNION ALL "
      "SELECT r.repo, '', r.digest, m.media_type, m.size, m.last_access_ms "
      "FROM repo_manifests r JOIN manifests m ON m.digest = r.digest "
      "WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = r.repo AND t.digest = r.digest) "
      "AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.child = r.digest) "
      "ORDER BY 1, 2, 3");
  if (!s.ok()) return tl::unexpected(DbError(db_, "images"));
  std::vector<ImageRow> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(ImageRow{s.Text(0), s.Text(1), s.Text(2), s.Text(3),
                           static_cast<uint64_t>(s.Int(4)), s.Int(5)});
  }
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "images"));
  return out;
}

Result<int64_t> IndexDb::CountTagsPointingAt(const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT count(*) FROM tags WHERE digest=?1");
  if (!s.ok()) return tl::unexpected(DbError(db_, "count tags"));
  s.Bind(1, digest);
  if (s.Step() != SQLITE_ROW) return tl::unexpected(DbError(db_, "count tags"));
  return s.Int(0);
}

}  // namespace hubcache
