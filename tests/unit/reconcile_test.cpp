// Only the temp-file part of reconciliation: the removal of interrupted fills
// that BlobStore::Open leaves in tmp/.
#include "cache/reconcile.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace hubcache {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

size_t CountFiles(const fs::path& dir) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    (void)entry;
    ++n;
  }
  return n;
}

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

}  // namespace
}  // namespace hubcache
