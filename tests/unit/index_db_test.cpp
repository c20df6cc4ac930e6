#include "index/index_db.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "joining_thread.h"
#include "registry/media_types.h"
#include "temp_dir.h"
#include "test_support.h"

namespace hubcache {
namespace {

using testing::TempDir;

const std::string kDigestA =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kDigestB = "sha256:" + std::string(64, 'b');
const std::string kSchema2 = "application/vnd.docker.distribution.manifest.v2+json";
const std::string kOciIndexType(kOciIndex);

std::unique_ptr<IndexDb> OpenIndexOrDie(const std::filesystem::path& path) {
  auto db = IndexDb::Open(path);
  if (!db) FAIL("cannot open index: " << db.error().message);
  return std::move(*db);
}

// PRAGMA user_version read through a separate connection.
int UserVersion(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  int version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return version;
}

void SetUserVersion(const std::filesystem::path& path, int version) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  std::string sql = "PRAGMA user_version=" + std::to_string(version);
  CHECK(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(raw);
}

TEST_CASE("IndexDb: a new database is migrated to the current schema") {
  TempDir dir;
  auto path = dir.path() / "index.db";
  auto db = OpenIndexOrDie(path);
  CHECK(db->schema_version() >= 1);
  CHECK(std::filesystem::exists(path));
  CHECK(UserVersion(path) == db->schema_version());
}

TEST_CASE("IndexDb: reopening does not re-run migrations and keeps data") {
  TempDir dir;
  auto path = dir.path() / "index.db";
  int version = 0;
  {
    auto db = OpenIndexOrDie(path);
    version = db->schema_version();
    REQUIRE(db->PutManifest(kDigestA, kSchema2, 528, "library/alpine", 1000));
    REQUIRE(db->PutTag("library/alpine", "latest", "dm", TagRow{kDigestA, kSchema2, 1234}));
    REQUIRE(db->PutTagList("library/alpine", R"({"tags":["latest"]})", 99));
    REQUIRE(db->PutBlob(kDigestB, 42, 1000));
  }
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    auto db = OpenIndexOrDie(path);
    CHECK(db->schema_version() == version);
    CHECK(UserVersion(path) == version);
    auto tag = db->GetTag("library/alpine", "latest", "dm");
    REQUIRE(tag.has_value());
    REQUIRE(tag->has_value());
    CHECK((*tag)->digest == kDigestA);
    CHECK((*tag)->media_type == kSchema2);
    CHECK((*tag)->checked_at_ms == 1234);
    auto media = db->ManifestMediaType(kDigestA);
    REQUIRE(media.has_value());
    CHECK(*media == kSchema2);
    auto list = db->GetTagList("library/alpine");
    REQUIRE(list.has_value());
    CHECK(*list == R"({"tags":["latest"]})");
    auto repos = db->Repositories();
    REQUIRE(repos.has_value());
    CHECK(*repos == std::vector<std::string>{"library/alpine"});
  }
}

// The first schema exactly as released; migrations are append-only, so a
// database at version 1 must open and move to the current version.
constexpr const char* kSchemaV1 = R"sql(
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
    INSERT INTO manifests VALUES('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'application/vnd.docker.distribution.manifest.v2+json', 528, 1, 1);
    INSERT INTO repo_manifests VALUES('library/alpine',
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    INSERT INTO tags VALUES('library/alpine', 'latest', 'dm',
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'application/vnd.docker.distribution.manifest.v2+json', 77);
    PRAGMA user_version=1;
)sql";

TEST_CASE("IndexDb: a version 1 database is migrated and keeps its data") {
  TempDir dir;
  auto path = dir.path() / "index.db";
  {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) == SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(raw, kSchemaV1, nullptr, nullptr, &err);
    std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(raw);
    REQUIRE_MESSAGE(rc == SQLITE_OK, message);
  }
  REQUIRE(UserVersion(path) == 1);
  auto db = OpenIndexOrDie(path);
  CHECK(db->schema_version() >= 1);
  CHECK(UserVersion(path) == db->schema_version());
  auto tag = db->GetTag("library/alpine", "latest", "dm");
  REQUIRE(tag.has_value());
  REQUIRE(tag->has_value());
  CHECK((*tag)->digest == kDigestA);
  CHECK((*tag)->checked_at_ms == 77);
  CHECK(db->Repositories().value() == std::vector<std::string>{"library/alpine"});
  CHECK(db->ManifestMediaType(kDigestA).value() == kSchema2);
  // New writes work on the migrated schema.
  REQUIRE(db->PutManifest(kDigestB, kOciIndexType, 1, "library/redis", 2));
  CHECK(db->Repositories().value() == std::vector<std::string>{"library/alpine", "library/redis"});
}

TEST_CASE("IndexDb: a schema newer than this build is refused") {
  TempDir dir;
  auto path = dir.path() / "index.db";
  { OpenIndexOrDie(path); }
  SetUserVersion(path, 999);
  auto db = IndexDb::Open(path);
  REQUIRE_FALSE(db.has_value());
  CHECK(db.error().kind == ErrorKind::kIo);
  CHECK(db.error().message.find("999") != std::string::npos);
}

TEST_CASE("IndexDb: Open fails cleanly where no database can be created") {
  TempDir dir;
  for (const auto& path : {dir.path() / "missing" / "dir" / "index.db", dir.path()}) {
    CAPTURE(path.string());
    auto db = IndexDb::Open(path);
    REQUIRE_FALSE(db.has_value());
    CHECK(db.error().kind == ErrorKind::kIo);
    CHECK_FALSE(db.error().message.empty());
  }
}

TEST_CASE("IndexDb: a file that is not a database is refused") {
  TempDir dir;
  auto path = dir.path() / "index.db";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::string junk(8192, 'x');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  auto db = IndexDb::Open(path);
  REQUIRE_FALSE(db.has_value());
  CHECK(db.error().kind == ErrorKind::kIo);
}

TEST_CASE("IndexDb: tags round-trip per repository, tag and Accept key") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  struct Row {
    std::string repo, tag, accept_key;
    TagRow row;
  };
  const std::vector<Row> rows = {
      {"library/alpine", "latest", "dl,dm,oi,om", {kDigestA, kOciIndexType, 1}},
      {"library/alpine", "latest", "dm", {kDigestB, kSchema2, 2}},
      {"library/alpine", "3.19", "dl,dm,oi,om", {kDigestB, kOciIndexType, 3}},
      {"library/redis", "latest", "dl,dm,oi,om", {kDigestB, kOciIndexType, 4}},
      {"bitnami/redis", "7.2", "dm", {kDigestA, kSchema2, -1}},
      {"a/b/c", "_x", "", {"", "", 0}},
      {"x'); DROP TABLE tags;--", "t", "k", {kDigestA, "m'\"", INT64_MAX}},
  };
  for (const auto& r : rows) REQUIRE(db->PutTag(r.repo, r.tag, r.accept_key, r.row));
  for (const auto& r : rows) {
    CAPTURE(r.repo);
    CAPTURE(r.tag);
    CAPTURE(r.accept_key);
    auto got = db->GetTag(r.repo, r.tag, r.accept_key);
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->digest == r.row.digest);
    CHECK((*got)->media_type == r.row.media_type);
    CHECK((*got)->checked_at_ms == r.row.checked_at_ms);
  }
  struct Missing {
    std::string repo, tag, accept_key;
  };
  for (const auto& m : std::vector<Missing>{{"library/alpine", "latest", "oi"},
                                            {"library/alpine", "edge", "dm"},
                                            {"library/nginx", "latest", "dm"},
                                            {"alpine", "latest", "dm"},
                                            {"", "", ""}}) {
    CAPTURE(m.repo);
    CAPTURE(m.tag);
    auto got = db->GetTag(m.repo, m.tag, m.accept_key);
    REQUIRE(got.has_value());
    CHECK_FALSE(got->has_value());
  }
}

TEST_CASE("IndexDb: PutTag overwrites the same key") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  REQUIRE(db->PutTag("library/alpine", "latest", "dm", TagRow{kDigestA, kSchema2, 100}));
  REQUIRE(db->PutTag("library/alpine", "latest", "dm", TagRow{kDigestB, kOciIndexType, 200}));
  auto got = db->GetTag("library/alpine", "latest", "dm");
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->digest == kDigestB);
  CHECK((*got)->media_type == kOciIndexType);
  CHECK((*got)->checked_at_ms == 200);
}

TEST_CASE("IndexDb: manifests and their media types") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  auto none = db->ManifestMediaType(kDigestA);
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  REQUIRE(db->PutManifest(kDigestA, kOciIndexType, 1000, "library/alpine", 1));
  // The same digest seen through another repository: one manifest, two links.
  REQUIRE(db->PutManifest(kDigestA, kOciIndexType, 1000, "mirror/alpine", 2));
  auto got = db->ManifestMediaType(kDigestA);
  REQUIRE(got.has_value());
  CHECK(*got == kOciIndexType);
  auto repos = db->Repositories();
  REQUIRE(repos.has_value());
  CHECK(*repos == std::vector<std::string>{"library/alpine", "mirror/alpine"});
}

TEST_CASE("IndexDb: repositories are distinct and sorted like std::sort") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  CHECK(db->Repositories().value().empty());
  const std::vector<std::string> inserted = {"library/redis",   "bitnami/redis",
                                             "library/alpine",  "a-b/x",
                                             "a.b/x",           "a/x",
                                             "a_b/x",           "library/alpine",
                                             "library/a0",      "z",
                                             "0/zero",          "library/alpine-edge",
                                             "library/alpine.x"};
  int64_t now = 1;
  for (const auto& repo : inserted) {
    // Two manifests per repository, so DISTINCT matters.
    REQUIRE(db->PutManifest(kDigestA, kSchema2, 1, repo, now++));
    REQUIRE(db->PutManifest(kDigestB, kSchema2, 1, repo, now++));
  }
  std::vector<std::string> want = inserted;
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  auto repos = db->Repositories();
  REQUIRE(repos.has_value());
  CHECK(*repos == want);
}

TEST_CASE("IndexDb: repositories come only from manifests, not tags or blobs") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  REQUIRE(db->PutTag("library/alpine", "latest", "dm", TagRow{kDigestA, kSchema2, 1}));
  REQUIRE(db->PutTagList("library/redis", "{}", 1));
  REQUIRE(db->PutBlob(kDigestB, 10, 1));
  CHECK(db->Repositories().value().empty());
}

TEST_CASE("IndexDb: tag lists round-trip and overwrite") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  auto none = db->GetTagList("library/alpine");
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  const std::string v1 = R"({"name":"library/alpine","tags":["3.18","3.19","latest"]})";
  const std::string v2 = R"({"name":"library/alpine","tags":["3.20"]})";
  REQUIRE(db->PutTagList("library/alpine", v1, 10));
  CHECK(db->GetTagList("library/alpine").value() == v1);
  REQUIRE(db->PutTagList("library/alpine", v2, 20));
  CHECK(db->GetTagList("library/alpine").value() == v2);
  const std::string with_nul("a\0b", 3);
  REQUIRE(db->PutTagList("x/y", with_nul, 30));
  CHECK(db->GetTagList("x/y").value() == with_nul);
  REQUIRE(db->PutTagList("big/list", std::string(1 << 20, 'j'), 40));
  CHECK(db->GetTagList("big/list").value()->size() == size_t{1} << 20);
}

TEST_CASE("IndexDb: blobs") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  CHECK(db->PutBlob(kDigestA, 0, 1));
  CHECK(db->PutBlob(kDigestA, 123, 2));  // seen again
  CHECK(db->PutBlob(kDigestB, uint64_t{5} << 30, 3));
}

TEST_CASE("IndexDb: concurrent writers and readers") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<JoiningThread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string repo = "repo/t" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        const std::string tag = "v" + std::to_string(i);
        if (!db->PutTag(repo, tag, "dm", TagRow{kDigestA, kSchema2, i})) ++failures;
        if (!db->PutManifest(kDigestA, kSchema2, 1, repo, i)) ++failures;
        auto got = db->GetTag(repo, tag, "dm");
        if (!got || !*got || (*got)->checked_at_ms != i) ++failures;
        if (!db->Repositories()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures.load() == 0);
  auto repos = db->Repositories();
  REQUIRE(repos.has_value());
  CHECK(repos->size() == static_cast<size_t>(kThreads));
}

TEST_CASE("IndexDb: hosted repository rows carry the size of the blobs linked to each") {
  TempDir dir;
  auto db = OpenIndexOrDie(dir.path() / "index.db");
  const std::string kDigestC = "sha256:" + std::string(64, 'c');
  const FileStep nothing = [] { return Status{}; };
  // A is in both repositories, B only in team/a, C linked to a repository with no manifest.
  REQUIRE(db->CommitHostedBlob("team/a", kDigestA, 100, 1, nothing).has_value());
  REQUIRE(db->CommitHostedBlob("team/a", kDigestB, 20, 1, nothing).has_value());
  REQUIRE(db->CommitHostedBlob("team/b", kDigestA, 100, 2, nothing).has_value());
  REQUIRE(db->CommitHostedBlob("team/c", kDigestC, 7, 2, nothing).has_value());
  const std::string kOci = "application/vnd.oci.image.manifest.v1+json";
  const std::string kManifest = "sha256:" + std::string(64, 'd');
  for (const char* repo : {"team/a", "team/b"}) {
    HostedManifestRow row{repo, kManifest, kOci, 300, "", "", "", 10};
    auto missing = db->PutHostedManifest(row, {kDigestA}, {}, "1", nothing);
    REQUIRE(missing.has_value());
    CHECK_FALSE(missing->has_value());
  }
  auto rows = db->HostedRepositoryRows();
  REQUIRE(rows.has_value());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].repo == "team/a");
  CHECK((*rows)[0].size_bytes == 120);
  CHECK((*rows)[0].tags == 1);
  CHECK((*rows)[0].manifests == 1);
  CHECK((*rows)[1].repo == "team/b");
  CHECK((*rows)[1].size_bytes == 100);
  auto totals = db->GetHostedTotals();
  REQUIRE(totals.has_value());
  CHECK(totals->bytes == 127);  // each blob once
  CHECK(totals->blobs == 3);
  CHECK(totals->repositories == 2);
}

}  // namespace
}  // namespace hubcache
