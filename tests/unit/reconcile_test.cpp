// Reconciliation: the removal of interrupted fills that BlobStore::Open leaves
// in tmp/, and what the report counts with and without --dry-run.
#include "cache/reconcile.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "temp_dir.h"
#include "test_support.h"

namespace hubcache {
namespace {

using testing::CountFiles;
using testing::DigestOf;
using testing::WriteFile;

namespace fs = std::filesystem;
using testing::TempDir;

TEST_CASE("Reconcile: temp files of interrupted fills") {
  struct Case {
    const char* name;
    ReconcileOptions options;
    size_t left;       // files in tmp/ afterwards
    uint64_t removed;  // as reported
  };
  const std::vector<Case> cases = {
      {"clear_temp removes them", {true, false, false}, 0, 3},
      {"a running server's fills are kept", {false, false, false}, 3, 0},
      {"dry run reports without removing", {true, false, true}, 3, 3},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    TempDir dir;
    auto store = BlobStore::Open(dir.path());
    REQUIRE(store.has_value());
    auto index = IndexDb::Open(dir.path() / "index.db");
    REQUIRE(index.has_value());
    WriteFile(dir.path() / "tmp" / "fill-0123456789abcdef", "partial");
    WriteFile(dir.path() / "tmp" / "fill-fedcba9876543210", "");
    WriteFile(dir.path() / "tmp" / "unexpected-name", "junk");

    auto report = Reconcile(**store, **index, c.options);
    REQUIRE(report.has_value());
    CHECK(report->temp_removed == c.removed);
    CHECK(CountFiles(dir.path() / "tmp") == c.left);
    CHECK(fs::is_directory(dir.path() / "tmp"));
  }
}

// Writes `bytes` where the store keeps the blob `named` (its own digest, or
// another's for a corrupt file).
void PlaceBlob(const BlobStore& store, const Digest& named, const std::string& bytes) {
  fs::path path = store.PathOf(ObjectKind::kBlob, named);
  fs::create_directories(path.parent_path());
  WriteFile(path, bytes);
}

TEST_CASE("Reconcile: a dry run reports the cache size it would leave, as a real run does") {
  struct Case {
    const char* name;
    bool verify;
    uint64_t entries;  // afterwards
    uint64_t bytes;    // afterwards
  };
  // indexed (10 B) + adopted orphan (7 B); the indexed corrupt one (4 B) goes
  // only when verified; the unindexed wrong-bytes orphan (5 B) always goes.
  const std::vector<Case> cases = {
      {"gc", false, 3, 10 + 7 + 4},
      {"gc --verify", true, 2, 10 + 7},
  };
  for (const auto& c : cases) {
    for (bool dry_run : {true, false}) {
      CAPTURE(c.name);
      CAPTURE(dry_run);
      TempDir dir;
      auto store = BlobStore::Open(dir.path());
      REQUIRE(store.has_value());
      auto index = IndexDb::Open(dir.path() / "index.db");
      REQUIRE(index.has_value());
      const std::string indexed = "0123456789", orphan = "orphan!", corrupt = "abcd";
      PlaceBlob(**store, DigestOf(indexed), indexed);
      REQUIRE((*index)->PutBlob(DigestOf(indexed).str(), indexed.size(), 1).has_value());
      PlaceBlob(**store, DigestOf(orphan), orphan);
      PlaceBlob(**store, DigestOf("the real one"), corrupt);
      REQUIRE((*index)->PutBlob(DigestOf("the real one").str(), corrupt.size(), 1).has_value());
      PlaceBlob(**store, DigestOf("other bytes"), "wrong");

      ReconcileOptions options;
      options.verify = c.verify;
      options.dry_run = dry_run;
      auto report = Reconcile(**store, **index, options);
      REQUIRE(report.has_value());
      CHECK(report->entries == c.entries);
      CHECK(report->bytes == c.bytes);
      CHECK(report->orphans_adopted == 1);
      CHECK(report->orphans_removed == 1);
      CHECK(report->corrupt_removed == (c.verify ? 1 : 0));
      // A dry run changes nothing: every file is still there.
      CHECK(fs::exists((*store)->PathOf(ObjectKind::kBlob, DigestOf("other bytes"))) == dry_run);
    }
  }
}

}  // namespace
}  // namespace hubcache
