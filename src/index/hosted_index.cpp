// IndexDb: the hosted repositories' tables and uploads (schema v3).

#include <sqlite3.h>

#include "index/index_db.h"
#include "index/statement.h"

namespace hubcache {
namespace {

Result<std::optional<uint64_t>> OptionalSize(sqlite3* db, Statement& s, const char* what) {
  if (!s.ok()) return tl::unexpected(DbError(db, what));
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<uint64_t>(static_cast<uint64_t>(s.Int(0)));
  if (rc == SQLITE_DONE) return std::optional<uint64_t>();
  return tl::unexpected(DbError(db, what));
}

Result<std::vector<std::string>> Column(sqlite3* db, Statement& s, const char* what) {
  if (!s.ok()) return tl::unexpected(DbError(db, what));
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(s.Text(0));
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db, what));
  return out;
}

constexpr const char* kManifestColumns =
    "repo, digest, media_type, size, artifact_type, subject, annotations, created_ms";

HostedManifestRow ReadManifestRow(const Statement& s) {
  return HostedManifestRow{s.Text(0), s.Text(1), s.Text(2), static_cast<uint64_t>(s.Int(3)),
                           s.Text(4), s.Text(5), s.Text(6), s.Int(7)};
}

Result<std::vector<HostedManifestRow>> ManifestRows(sqlite3* db, Statement& s, const char* what) {
  if (!s.ok()) return tl::unexpected(DbError(db, what));
  std::vector<HostedManifestRow> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadManifestRow(s));
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db, what));
  return out;
}

// A blob nobody references: no manifest row's refs name it.
constexpr const char* kUnreferencedBlob =
    "NOT EXISTS (SELECT 1 FROM hosted_manifest_refs r JOIN hosted_manifests m ON "
    "m.digest = r.digest WHERE r.child = b.digest)";

}  // namespace

Result<bool> IndexDb::CommitHostedBlob(const std::string& repo, const std::string& digest,
                                       uint64_t size, int64_t now_ms, const FileStep& place) {
  std::lock_guard lock(mutex_);
  WriteTransaction tx(db_);
  if (!tx.ok()) return tl::unexpected(DbError(db_, "begin"));
  Statement find(*statements_, "SELECT size FROM hosted_blobs WHERE digest = ?");
  find.Bind(1, digest);
  auto existing = OptionalSize(db_, find, "hosted blob lookup");
  if (!existing) return tl::unexpected(existing.error());
  bool added = false;
  if (!*existing) {
    if (auto s = place(); !s) return tl::unexpected(s.error());
    Statement put(*statements_,
                  "INSERT INTO hosted_blobs (digest, size, created_ms) VALUES (?, ?, ?)");
    put.Bind(1, digest).Bind(2, static_cast<int64_t>(size)).Bind(3, now_ms);
    if (auto s = RunWrite(db_, put, "hosted blob insert"); !s) return tl::unexpected(s.error());
    added = true;
  }
  Statement link(*statements_,
                 "INSERT OR IGNORE INTO hosted_repo_blobs (repo, digest) VALUES (?, ?)");
  link.Bind(1, repo).Bind(2, digest);
  if (auto s = RunWrite(db_, link, "hosted blob link"); !s) return tl::unexpected(s.error());
  if (auto s = tx.Commit(); !s) return tl::unexpected(s.error());
  return added;
}

Result<std::optional<uint64_t>> IndexDb::HostedBlobSize(const std::string& repo,
                                                        const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT b.size FROM hosted_blobs b JOIN hosted_repo_blobs l ON l.digest = b.digest "
              "WHERE l.repo = ? AND b.digest = ?");
  s.Bind(1, repo).Bind(2, digest);
  return OptionalSize(db_, s, "hosted blob size");
}

Result<std::optional<uint64_t>> IndexDb::AnyHostedBlobSize(const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT size FROM hosted_blobs WHERE digest = ?");
  s.Bind(1, digest);
  return OptionalSize(db_, s, "hosted blob size");
}

Result<bool> IndexDb::LinkHostedBlob(const std::string& repo, const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "INSERT OR IGNORE INTO hosted_repo_blobs (repo, digest) "
              "SELECT ?, digest FROM hosted_blobs WHERE digest = ?");
  s.Bind(1, repo).Bind(2, digest);
  if (auto st = RunWrite(db_, s, "hosted blob link"); !st) return tl::unexpected(st.error());
  Statement check(*statements_, "SELECT 1 FROM hosted_repo_blobs WHERE repo = ? AND digest = ?");
  check.Bind(1, repo).Bind(2, digest);
  auto found = OptionalSize(db_, check, "hosted blob link");
  if (!found) return tl::unexpected(found.error());
  return found->has_value();
}

Result<bool> IndexDb::UnlinkHostedBlob(const std::string& repo, const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "DELETE FROM hosted_repo_blobs WHERE repo = ? AND digest = ?");
  s.Bind(1, repo).Bind(2, digest);
  if (auto st = RunWrite(db_, s, "hosted blob unlink"); !st) return tl::unexpected(st.error());
  return sqlite3_changes(db_) > 0;
}

Result<std::optional<std::string>> IndexDb::PutHostedManifest(
    const HostedManifestRow& row, const std::vector<std::string>& blobs,
    const std::vector<std::string>& manifests, const std::string& tag, const FileStep& place,
    const std::vector<uint64_t>& blob_sizes) {
  std::lock_guard lock(mutex_);
  WriteTransaction tx(db_);
  if (!tx.ok()) return tl::unexpected(DbError(db_, "begin"));
  for (size_t i = 0; i < blobs.size(); ++i) {
    const auto& digest = blobs[i];
    Statement s(*statements_,
                "SELECT b.size FROM hosted_repo_blobs l JOIN hosted_blobs b ON b.digest = "
                "l.digest WHERE l.repo = ? AND l.digest = ?");
    s.Bind(1, row.repo).Bind(2, digest);
    auto found = OptionalSize(db_, s, "manifest blob check");
    if (!found) return tl::unexpected(found.error());
    if (!*found) return std::optional<std::string>(digest);
    if (i < blob_sizes.size() && **found != blob_sizes[i]) {
      return Fail(ErrorKind::kManifestInvalid, "the manifest gives " + digest + " a size of " +
                                                   std::to_string(blob_sizes[i]) +
                                                   " bytes; it has " + std::to_string(**found));
    }
  }
  for (const auto& digest : manifests) {
    Statement s(*statements_, "SELECT 1 FROM hosted_manifests WHERE repo = ? AND digest = ?");
    s.Bind(1, row.repo).Bind(2, digest);
    auto found = OptionalSize(db_, s, "manifest child check");
    if (!found) return tl::unexpected(found.error());
    if (!*found) return std::optional<std::string>(digest);
  }
  if (auto s = place(); !s) return tl::unexpected(s.error());
  Statement put(*statements_,
                "INSERT INTO hosted_manifests (repo, digest, media_type, size, artifact_type, "
                "subject, annotations, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (repo, digest) DO UPDATE SET media_type = excluded.media_type");
  put.Bind(1, row.repo)
      .Bind(2, row.digest)
      .Bind(3, row.media_type)
      .Bind(4, static_cast<int64_t>(row.size))
      .Bind(5, row.artifact_type)
      .Bind(6, row.subject)
      .Bind(7, row.annotations)
      .Bind(8, row.created_ms);
  if (auto s = RunWrite(db_, put, "hosted manifest insert"); !s) return tl::unexpected(s.error());
  for (const auto* children : {&blobs, &manifests}) {
    for (const auto& child : *children) {
      Statement ref(*statements_,
                    "INSERT OR IGNORE INTO hosted_manifest_refs (digest, child) VALUES (?, ?)");
      ref.Bind(1, row.digest).Bind(2, child);
      if (auto s = RunWrite(db_, ref, "hosted manifest refs"); !s) {
        return tl::unexpected(s.error());
      }
    }
  }
  if (!tag.empty()) {
    Statement t(*statements_,
                "INSERT INTO hosted_tags (repo, tag, digest, updated_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, "
                "updated_ms = excluded.updated_ms");
    t.Bind(1, row.repo).Bind(2, tag).Bind(3, row.digest).Bind(4, row.created_ms);
    if (auto s = RunWrite(db_, t, "hosted tag"); !s) return tl::unexpected(s.error());
  }
  if (auto s = tx.Commit(); !s) return tl::unexpected(s.error());
  return std::optional<std::string>();
}

Result<std::optional<HostedManifestRow>> IndexDb::GetHostedManifest(const std::string& repo,
                                                                    const std::string& digest) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, (std::string("SELECT ") + kManifestColumns +
                             " FROM hosted_manifests WHERE repo = ? AND digest = ?")
                                .c_str());
  s.Bind(1, repo).Bind(2, digest);
  auto rows = ManifestRows(db_, s, "hosted manifest");
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return std::optional<HostedManifestRow>();
  return std::optional<HostedManifestRow>(std::move(rows->front()));
}

Result<std::optional<std::string>> IndexDb::HostedTag(const std::string& repo,
                                                      const std::string& tag) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT digest FROM hosted_tags WHERE repo = ? AND tag = ?");
  s.Bind(1, repo).Bind(2, tag);
  auto col = Column(db_, s, "hosted tag");
  if (!col) return tl::unexpected(col.error());
  if (col->empty()) return std::optional<std::string>();
  return std::optional<std::string>(col->front());
}

Result<std::vector<std::string>> IndexDb::HostedTags(const std::string& repo) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT tag FROM hosted_tags WHERE repo = ? ORDER BY tag");
  s.Bind(1, repo);
  return Column(db_, s, "hosted tags");
}

Result<std::vector<std::string>> IndexDb::HostedRepositories() {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "SELECT DISTINCT repo FROM hosted_manifests ORDER BY repo");
  return Column(db_, s, "hosted repositories");
}

Result<std::vector<HostedRepoRow>> IndexDb::HostedRepositoryRows() {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT m.repo, COUNT(*), MAX(m.created_ms), "
              "(SELECT COUNT(*) FROM hosted_tags t WHERE t.repo = m.repo), "
              "(SELECT MAX(updated_ms) FROM hosted_tags t WHERE t.repo = m.repo), "
              "(SELECT IFNULL(SUM(b.size), 0) FROM hosted_repo_blobs rb JOIN hosted_blobs b "
              "ON b.digest = rb.digest WHERE rb.repo = m.repo) "
              "FROM hosted_manifests m GROUP BY m.repo ORDER BY m.repo");
  if (!s.ok()) return tl::unexpected(DbError(db_, "hosted repositories"));
  std::vector<HostedRepoRow> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    HostedRepoRow row;
    row.repo = s.Text(0);
    row.manifests = static_cast<uint64_t>(s.Int(1));
    row.tags = static_cast<uint64_t>(s.Int(3));
    row.last_push_ms = std::max(s.Int(2), s.Int(4));
    row.size_bytes = static_cast<uint64_t>(s.Int(5));
    out.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "hosted repositories"));
  return out;
}

Result<bool> IndexDb::DeleteHostedManifest(const std::string& repo, const std::string& digest) {
  std::lock_guard lock(mutex_);
  WriteTransaction tx(db_);
  if (!tx.ok()) return tl::unexpected(DbError(db_, "begin"));
  Statement m(*statements_, "DELETE FROM hosted_manifests WHERE repo = ? AND digest = ?");
  m.Bind(1, repo).Bind(2, digest);
  if (auto s = RunWrite(db_, m, "hosted manifest delete"); !s) return tl::unexpected(s.error());
  bool existed = sqlite3_changes(db_) > 0;
  Statement t(*statements_, "DELETE FROM hosted_tags WHERE repo = ? AND digest = ?");
  t.Bind(1, repo).Bind(2, digest);
  if (auto s = RunWrite(db_, t, "hosted tag delete"); !s) return tl::unexpected(s.error());
  if (auto s = tx.Commit(); !s) return tl::unexpected(s.error());
  return existed;
}

Result<bool> IndexDb::DeleteHostedTag(const std::string& repo, const std::string& tag) {
  std::lock_guard lock(mutex_);
  Statement t(*statements_, "DELETE FROM hosted_tags WHERE repo = ? AND tag = ?");
  t.Bind(1, repo).Bind(2, tag);
  if (auto s = RunWrite(db_, t, "hosted tag delete"); !s) return tl::unexpected(s.error());
  return sqlite3_changes(db_) > 0;
}

Result<std::vector<HostedManifestRow>> IndexDb::HostedReferrers(const std::string& repo,
                                                                const std::string& subject) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              (std::string("SELECT ") + kManifestColumns +
               " FROM hosted_manifests WHERE repo = ? AND subject = ? ORDER BY created_ms, "
               "digest")
                  .c_str());
  s.Bind(1, repo).Bind(2, subject);
  return ManifestRows(db_, s, "hosted referrers");
}

Result<HostedTotals> IndexDb::GetHostedTotals() {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT (SELECT COUNT(DISTINCT repo) FROM hosted_manifests), "
              "(SELECT COUNT(*) FROM hosted_manifests), (SELECT COUNT(*) FROM hosted_tags), "
              "(SELECT COUNT(*) FROM hosted_blobs), (SELECT IFNULL(SUM(size), 0) FROM "
              "hosted_blobs), (SELECT COUNT(*) FROM uploads)");
  if (!s.ok() || s.Step() != SQLITE_ROW) return tl::unexpected(DbError(db_, "hosted totals"));
  HostedTotals t;
  t.repositories = static_cast<uint64_t>(s.Int(0));
  t.manifests = static_cast<uint64_t>(s.Int(1));
  t.tags = static_cast<uint64_t>(s.Int(2));
  t.blobs = static_cast<uint64_t>(s.Int(3));
  t.bytes = static_cast<uint64_t>(s.Int(4));
  t.uploads = static_cast<uint64_t>(s.Int(5));
  return t;
}

Status IndexDb::PutUpload(const UploadRow& row) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "INSERT INTO uploads (id, repo, offset, started_ms, updated_ms) "
              "VALUES (?, ?, ?, ?, ?)");
  s.Bind(1, row.id)
      .Bind(2, row.repo)
      .Bind(3, static_cast<int64_t>(row.offset))
      .Bind(4, row.started_ms)
      .Bind(5, row.updated_ms);
  return RunWrite(db_, s, "upload insert");
}

Result<std::optional<UploadRow>> IndexDb::GetUpload(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT id, repo, offset, started_ms, updated_ms FROM uploads WHERE id = ?");
  s.Bind(1, id);
  if (!s.ok()) return tl::unexpected(DbError(db_, "upload"));
  int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<UploadRow>();
  if (rc != SQLITE_ROW) return tl::unexpected(DbError(db_, "upload"));
  return std::optional<UploadRow>(
      UploadRow{s.Text(0), s.Text(1), static_cast<uint64_t>(s.Int(2)), s.Int(3), s.Int(4)});
}

Status IndexDb::SetUploadOffset(const std::string& id, uint64_t offset, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "UPDATE uploads SET offset = ?, updated_ms = ? WHERE id = ?");
  s.Bind(1, static_cast<int64_t>(offset)).Bind(2, now_ms).Bind(3, id);
  return RunWrite(db_, s, "upload update");
}

Status IndexDb::DeleteUpload(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_, "DELETE FROM uploads WHERE id = ?");
  s.Bind(1, id);
  return RunWrite(db_, s, "upload delete");
}

Result<std::vector<UploadRow>> IndexDb::StaleUploads(int64_t before_ms) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT id, repo, offset, started_ms, updated_ms FROM uploads WHERE updated_ms < ? "
              "ORDER BY updated_ms");
  s.Bind(1, before_ms);
  if (!s.ok()) return tl::unexpected(DbError(db_, "stale uploads"));
  std::vector<UploadRow> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(
        UploadRow{s.Text(0), s.Text(1), static_cast<uint64_t>(s.Int(2)), s.Int(3), s.Int(4)});
  }
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "stale uploads"));
  return out;
}

Result<std::vector<HostedBlobRow>> IndexDb::UnreferencedHostedBlobs(int64_t before_ms) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              (std::string("SELECT b.digest, b.size, b.created_ms FROM hosted_blobs b "
                           "WHERE b.created_ms < ? AND ") +
               kUnreferencedBlob + " ORDER BY b.digest")
                  .c_str());
  s.Bind(1, before_ms);
  if (!s.ok()) return tl::unexpected(DbError(db_, "unreferenced blobs"));
  std::vector<HostedBlobRow> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(HostedBlobRow{s.Text(0), static_cast<uint64_t>(s.Int(1)), s.Int(2)});
  }
  if (rc != SQLITE_DONE) return tl::unexpected(DbError(db_, "unreferenced blobs"));
  return out;
}

Result<bool> IndexDb::SweepHostedBlob(const std::string& digest, int64_t before_ms,
                                      const FileStep& remove) {
  std::lock_guard lock(mutex_);
  WriteTransaction tx(db_);
  if (!tx.ok()) return tl::unexpected(DbError(db_, "begin"));
  Statement check(*statements_, (std::string("SELECT 1 FROM hosted_blobs b WHERE b.digest = ? AND "
                                             "b.created_ms < ? AND ") +
                                 kUnreferencedBlob)
                                    .c_str());
  check.Bind(1, digest).Bind(2, before_ms);
  auto still = OptionalSize(db_, check, "sweep check");
  if (!still) return tl::unexpected(still.error());
  if (!*still) return false;
  for (const char* sql : {"DELETE FROM hosted_blobs WHERE digest = ?",
                          "DELETE FROM hosted_repo_blobs WHERE digest = ?",
                          "DELETE FROM hosted_manifest_refs WHERE digest = ? AND digest NOT IN "
                          "(SELECT digest FROM hosted_manifests)"}) {
    Statement d(*statements_, sql);
    d.Bind(1, digest);
    if (auto s = RunWrite(db_, d, "sweep"); !s) return tl::unexpected(s.error());
  }
  if (auto s = remove(); !s) return tl::unexpected(s.error());
  if (auto s = tx.Commit(); !s) return tl::unexpected(s.error());
  return true;
}

Result<std::vector<HostedManifestRow>> IndexDb::UntaggedHostedManifests(int64_t before_ms) {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              (std::string("SELECT ") + kManifestColumns +
               " FROM hosted_manifests m WHERE m.created_ms < ? "
               "AND NOT EXISTS (SELECT 1 FROM hosted_tags t WHERE t.repo = m.repo AND "
               "t.digest = m.digest) "
               "AND NOT EXISTS (SELECT 1 FROM hosted_manifests p JOIN hosted_manifest_refs r "
               "ON r.digest = p.digest WHERE p.repo = m.repo AND r.child = m.digest) "
               "AND NOT (m.subject != '' AND EXISTS (SELECT 1 FROM hosted_manifests s WHERE "
               "s.repo = m.repo AND s.digest = m.subject)) ORDER BY m.repo, m.digest")
                  .c_str());
  s.Bind(1, before_ms);
  return ManifestRows(db_, s, "untagged manifests");
}

Result<std::vector<std::string>> IndexDb::OrphanHostedManifestDigests() {
  std::lock_guard lock(mutex_);
  Statement s(*statements_,
              "SELECT DISTINCT digest FROM hosted_manifest_refs WHERE digest NOT IN "
              "(SELECT digest FROM hosted_manifests) ORDER BY digest");
  return Column(db_, s, "orphan manifests");
}

Result<bool> IndexDb::SweepHostedManifestFile(const std::string& digest, const FileStep& remove) {
  std::lock_guard lock(mutex_);
  WriteTransaction tx(db_);
  if (!tx.ok()) return tl::unexpected(DbError(db_, "begin"));
  Statement check(*statements_, "SELECT 1 FROM hosted_manifests WHERE digest = ?");
  check.Bind(1, digest);
  auto held = OptionalSize(db_, check, "manifest sweep check");
  if (!held) return tl::unexpected(held.error());
  if (*held) return false;
  Statement d(*statements_, "DELETE FROM hosted_manifest_refs WHERE digest = ?");
  d.Bind(1, digest);
  if (auto s = RunWrite(db_, d, "manifest sweep"); !s) return tl::unexpected(s.error());
  if (auto s = remove(); !s) return tl::unexpected(s.error());
  if (auto s = tx.Commit(); !s) return tl::unexpected(s.error());
  return true;
}

Result<bool> IndexDb::SweepUnrecordedHostedFile(bool manifest, const std::string& digest,
                                                const FileStep& remove) {
  std::lock_guard lock(mutex_);
  WriteTransaction tx(db_);
  if (!tx.ok()) return tl::unexpected(DbError(db_, "begin"));
  Statement check(*statements_, manifest ? "SELECT 1 FROM hosted_manifests WHERE digest = ?"
                                         : "SELECT 1 FROM hosted_blobs WHERE digest = ?");
  check.Bind(1, digest);
  auto recorded = OptionalSize(db_, check, "unrecorded file check");
  if (!recorded) return tl::unexpected(recorded.error());
  if (*recorded) return false;
  if (auto s = remove(); !s) return tl::unexpected(s.error());
  if (auto s = tx.Commit(); !s) return tl::unexpected(s.error());
  return true;
}

}  // namespace hubcache
