#include "store/blob_store.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/sha256.h"
#include "temp_dir.h"
#include "test_support.h"

namespace hubcache {
namespace {

using testing::CountFiles;
using testing::DigestOf;
using testing::ReadFile;
using testing::WriteFile;

namespace fs = std::filesystem;
using testing::TempDir;

std::unique_ptr<BlobStore> OpenStoreOrDie(const fs::path& root) {
  auto store = BlobStore::Open(root);
  if (!store) FAIL("cannot open store: " << store.error().message);
  return std::move(*store);
}

std::string ReadFd(int fd) {
  std::string out;
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    REQUIRE(n >= 0);
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

TEST_CASE("BlobStore::Open creates the layout") {
  TempDir dir;
  auto root = dir.path() / "nested" / "cache";
  auto store = OpenStoreOrDie(root);
  CHECK(store->root() == root);
  CHECK(fs::is_directory(root / "blobs" / "sha256"));
  CHECK(fs::is_directory(root / "manifests" / "sha256"));
  CHECK(fs::is_directory(root / "tmp"));
  CHECK(CountFiles(root / "tmp") == 0u);
}

TEST_CASE("BlobStore::Open fails cleanly when the root cannot be created") {
  TempDir dir;
  WriteFile(dir.path() / "file", "x");
  auto store = BlobStore::Open(dir.path() / "file" / "cache");
  REQUIRE_FALSE(store.has_value());
  CHECK(store.error().kind == ErrorKind::kIo);
}

TEST_CASE("BlobStore::PathOf follows the documented layout") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  const std::string hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  auto digest = Digest::FromHex(hex);
  CHECK(store->PathOf(ObjectKind::kBlob, digest) == dir.path() / "blobs" / "sha256" / "e3" / hex);
  CHECK(store->PathOf(ObjectKind::kManifest, digest) ==
        dir.path() / "manifests" / "sha256" / "e3" / hex);
}

TEST_CASE("BlobStore: write, commit, read") {
  const std::vector<std::string> payloads = {
      "",
      "hello",
      std::string("bin\0ary\xff", 8),
      std::string(1 << 20, 'z'),
      std::string((1 << 16) + 1, 'q'),  // just over one read buffer
  };
  for (auto kind : {ObjectKind::kBlob, ObjectKind::kManifest}) {
    for (const auto& payload : payloads) {
      CAPTURE(payload.size());
      CAPTURE(static_cast<int>(kind));
      TempDir dir;
      auto store = OpenStoreOrDie(dir.path());
      auto digest = DigestOf(payload);
      CHECK_FALSE(store->SizeOf(kind, digest).has_value());

      auto temp = store->CreateTemp();
      REQUIRE(temp.has_value());
      CHECK(temp->fd() >= 0);
      CHECK(temp->path().parent_path() == dir.path() / "tmp");
      CHECK(fs::exists(temp->path()));
      // Append in uneven pieces.
      size_t offset = 0;
      size_t piece = 1;
      while (offset < payload.size()) {
        size_t n = std::min(piece, payload.size() - offset);
        REQUIRE(temp->Append(payload.data() + offset, n));
        offset += n;
        piece = piece * 3 + 1;
      }
      const fs::path temp_path = temp->path();
      REQUIRE(store->Commit(*temp, kind, digest));
      CHECK_FALSE(fs::exists(temp_path));
      CHECK(CountFiles(dir.path() / "tmp") == 0u);

      auto final_path = store->PathOf(kind, digest);
      CHECK(fs::exists(final_path));
      CHECK(ReadFile(final_path) == payload);
      CHECK(store->SizeOf(kind, digest) == payload.size());

      auto fd = store->OpenForRead(kind, digest);
      REQUIRE(fd.has_value());
      REQUIRE(fd->valid());
      CHECK(ReadFd(fd->get()) == payload);

      auto whole = store->ReadObject(kind, digest, payload.size());
      REQUIRE(whole.has_value());
      CHECK(*whole == payload);

      // The other kind is a separate namespace.
      auto other = kind == ObjectKind::kBlob ? ObjectKind::kManifest : ObjectKind::kBlob;
      CHECK_FALSE(store->SizeOf(other, digest).has_value());
    }
  }
}

TEST_CASE("BlobStore: a committed TempFile survives its destruction") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  const std::string bytes = "layer bytes";
  auto digest = DigestOf(bytes);
  {
    auto temp = store->CreateTemp();
    REQUIRE(temp.has_value());
    REQUIRE(temp->Append(bytes.data(), bytes.size()));
    REQUIRE(store->Commit(*temp, ObjectKind::kBlob, digest));
  }
  CHECK(ReadFile(store->PathOf(ObjectKind::kBlob, digest)) == bytes);
}

TEST_CASE("BlobStore: committing the same digest twice keeps one whole file") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  const std::string bytes = "same content";
  auto digest = DigestOf(bytes);
  for (int i = 0; i < 2; ++i) {
    auto temp = store->CreateTemp();
    REQUIRE(temp.has_value());
    REQUIRE(temp->Append(bytes.data(), bytes.size()));
    REQUIRE(store->Commit(*temp, ObjectKind::kBlob, digest));
  }
  CHECK(ReadFile(store->PathOf(ObjectKind::kBlob, digest)) == bytes);
  CHECK(CountFiles(dir.path() / "tmp") == 0u);
}

TEST_CASE("TempFile is removed when not committed") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  fs::path path;
  {
    auto temp = store->CreateTemp();
    REQUIRE(temp.has_value());
    path = temp->path();
    const std::string partial = "half a layer";
    REQUIRE(temp->Append(partial.data(), partial.size()));
    CHECK(fs::exists(path));
  }
  CHECK_FALSE(fs::exists(path));
  CHECK(CountFiles(dir.path() / "tmp") == 0u);
}

TEST_CASE("TempFile: moving transfers the duty to remove the file") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  auto temp = store->CreateTemp();
  REQUIRE(temp.has_value());
  const fs::path path = temp->path();
  {
    TempFile moved(std::move(*temp));
    CHECK(moved.path() == path);
    CHECK(moved.fd() >= 0);
    { TempFile discarded = std::move(*temp); }  // the moved-from shell owns nothing
    CHECK(fs::exists(path));
  }
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("TempFile: move-assigning over a live TempFile removes the file it held") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  auto first = store->CreateTemp();
  auto second = store->CreateTemp();
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  const fs::path first_path = first->path();
  const fs::path second_path = second->path();
  REQUIRE(first_path != second_path);
  *first = std::move(*second);
  CHECK(first->path() == second_path);
  CHECK(fs::exists(second_path));
  // The file the assignment replaced is uncommitted and no longer owned by anyone.
  CHECK_FALSE(fs::exists(first_path));
  first = Fail(ErrorKind::kInternal, "drop");
  second = Fail(ErrorKind::kInternal, "drop");
  CHECK_FALSE(fs::exists(second_path));
}

TEST_CASE("BlobStore: temp files are unique") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  std::vector<TempFile> temps;
  std::set<fs::path> paths;
  for (int i = 0; i < 64; ++i) {
    auto temp = store->CreateTemp();
    REQUIRE(temp.has_value());
    paths.insert(temp->path());
    temps.push_back(std::move(*temp));
  }
  CHECK(paths.size() == 64u);
  CHECK(CountFiles(dir.path() / "tmp") == 64u);
  temps.clear();
  CHECK(CountFiles(dir.path() / "tmp") == 0u);
}

TEST_CASE("BlobStore::Open keeps committed objects and leaves tmp/ to reconciliation") {
  TempDir dir;
  const std::string bytes = "a committed blob";
  auto digest = DigestOf(bytes);
  {
    auto store = OpenStoreOrDie(dir.path());
    REQUIRE(store->WriteObject(ObjectKind::kBlob, digest, bytes));
    REQUIRE(store->WriteObject(ObjectKind::kManifest, digest, bytes));
  }
  // What a crash mid-fill leaves behind, or a fill another process is running:
  // Open must not delete it (cache/reconcile.h decides).
  WriteFile(dir.path() / "tmp" / "fill-0123456789abcdef", "partial");
  WriteFile(dir.path() / "tmp" / "unexpected-name", "junk");

  auto store = OpenStoreOrDie(dir.path());
  CHECK(CountFiles(dir.path() / "tmp") == 2u);
  CHECK(store->ReadObject(ObjectKind::kBlob, digest, 1024).value() == bytes);
  CHECK(store->ReadObject(ObjectKind::kManifest, digest, 1024).value() == bytes);
  CHECK(store->SizeOf(ObjectKind::kBlob, digest) == bytes.size());
}

TEST_CASE("BlobStore: absent objects") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  auto digest = DigestOf("never stored");
  CHECK_FALSE(store->SizeOf(ObjectKind::kBlob, digest).has_value());
  CHECK_FALSE(store->SizeOf(ObjectKind::kManifest, digest).has_value());
  auto blob = store->OpenForRead(ObjectKind::kBlob, digest);
  REQUIRE_FALSE(blob.has_value());
  CHECK(blob.error().kind == ErrorKind::kBlobUnknown);
  auto manifest = store->OpenForRead(ObjectKind::kManifest, digest);
  REQUIRE_FALSE(manifest.has_value());
  CHECK(manifest.error().kind == ErrorKind::kManifestUnknown);
  auto read = store->ReadObject(ObjectKind::kManifest, digest, 1024);
  REQUIRE_FALSE(read.has_value());
  CHECK(read.error().kind == ErrorKind::kManifestUnknown);
}

TEST_CASE("BlobStore::WriteObject and ReadObject with a size bound") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})";
  auto digest = DigestOf(manifest);
  REQUIRE(store->WriteObject(ObjectKind::kManifest, digest, manifest));
  CHECK(CountFiles(dir.path() / "tmp") == 0u);
  struct Case {
    size_t max_bytes;
    bool ok;
  };
  for (const auto& c : std::vector<Case>{{manifest.size(), true},
                                         {manifest.size() + 1, true},
                                         {4 << 20, true},
                                         {manifest.size() - 1, false},
                                         {0, false}}) {
    CAPTURE(c.max_bytes);
    auto got = store->ReadObject(ObjectKind::kManifest, digest, c.max_bytes);
    REQUIRE(got.has_value() == c.ok);
    if (c.ok) CHECK(*got == manifest);
  }
}

TEST_CASE("BlobStore::ReadObject: an empty object with max_bytes 0") {
  TempDir dir;
  auto store = OpenStoreOrDie(dir.path());
  auto digest = DigestOf("");
  REQUIRE(store->WriteObject(ObjectKind::kBlob, digest, ""));
  auto got = store->ReadObject(ObjectKind::kBlob, digest, 0);
  REQUIRE(got.has_value());
  CHECK(got->empty());
  CHECK(store->SizeOf(ObjectKind::kBlob, digest) == uint64_t{0});
}

}  // namespace
}  // namespace hubcache
