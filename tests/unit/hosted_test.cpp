// Hosted repositories below HTTP: UploadService, HostedRegistry and the
// hosted garbage collection on a real store and index in a temp dir.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "cache/hosted_gc.h"
#include "cache/hosted_registry.h"
#include "cache/stats.h"
#include "cache/upload_service.h"
#include "common/clock.h"
#include "common/sha256.h"
#include "index/index_db.h"
#include "store/blob_store.h"
#include "temp_dir.h"
#include "test_support.h"

namespace hubcache {
namespace {

using testing::DigestOf;
using testing::Name;

// A body from a string, handed out in small pieces; optionally failing (the
// client went away) after `fail_after` bytes.
class StringSource final : public ByteSource {
 public:
  explicit StringSource(std::string data, size_t fail_after = std::string::npos)
      : data_(std::move(data)), fail_after_(fail_after) {}
  Result<size_t> Read(char* buffer, size_t size) override {
    if (pos_ >= fail_after_) return Fail(ErrorKind::kBlobUploadInvalid, "client went away");
    size_t n = std::min({size, data_.size() - pos_, size_t{3}, fail_after_ - pos_});
    std::copy_n(data_.data() + pos_, n, buffer);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t fail_after_;
  size_t pos_ = 0;
};

struct HostedFixture {
  testing::TempDir dir;
  std::unique_ptr<BlobStore> cache = *BlobStore::Open(dir.path());
  std::unique_ptr<BlobStore> hosted = *BlobStore::Open(dir.path() / "hosted");
  std::unique_ptr<IndexDb> index = *IndexDb::Open(dir.path() / "index.db");
  CacheStats stats;
  std::unique_ptr<UploadService> uploads = Restarted();
  HostedRegistry registry{*hosted, *index, stats, 4 * 1024 * 1024};

  // A new service on the same files: what a restart leaves (no running hash).
  std::unique_ptr<UploadService> Restarted() {
    auto service = std::make_unique<UploadService>(*hosted, *cache, *index, stats);
    REQUIRE(service->Recover());
    return service;
  }
  size_t HostedBlobFiles() {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(hosted->root() / "blobs")) {
      n += e.is_regular_file() ? 1 : 0;
    }
    return n;
  }
  StoredBlob Push(const RepoName& repo, const std::string& data) {
    StringSource body(data);
    auto stored = uploads->PutWhole(repo, DigestOf(data), body);
    REQUIRE(stored);
    return *stored;
  }
};

TEST_CASE("a chunked upload is verified, committed once and survives a restart midway") {
  HostedFixture f;
  const RepoName repo = Name("team/app");
  const std::string data = "hello, hosted world";
  auto started = f.uploads->Start(repo);
  REQUIRE(started);
  StringSource first(data.substr(0, 7));
  auto after = f.uploads->Append(repo, started->id, uint64_t{0}, first);
  REQUIRE(after);
  CHECK(after->offset == 7);

  SUBCASE("a chunk out of order is refused and changes nothing") {
    StringSource late(data.substr(9));
    auto refused = f.uploads->Append(repo, started->id, uint64_t{9}, late);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::kUploadOutOfOrder);
    CHECK(f.uploads->Query(repo, started->id)->offset == 7);
  }
  SUBCASE("another repository does not know the upload") {
    auto other = f.uploads->Query(Name("team/other"), started->id);
    REQUIRE_FALSE(other);
    CHECK(other.error().kind == ErrorKind::kBlobUploadUnknown);
  }
  // The server restarts: the running hash is gone, the upload is not.
  f.uploads = f.Restarted();
  StringSource rest(data.substr(7));
  auto stored = f.uploads->Finish(repo, started->id, DigestOf(data), rest);
  REQUIRE(stored);
  CHECK(stored->size == data.size());
  CHECK(f.hosted->SizeOf(ObjectKind::kBlob, DigestOf(data)) == data.size());
  CHECK(f.index->HostedBlobSize(repo.str(), DigestOf(data).str())->value() == data.size());
  CHECK(f.uploads->Query(repo, started->id).error().kind == ErrorKind::kBlobUploadUnknown);
  CHECK(std::filesystem::is_empty(f.hosted->root() / "uploads"));
}

TEST_CASE("a wrong digest leaves nothing; a body cut short can be resumed") {
  HostedFixture f;
  const RepoName repo = Name("team/app");
  const std::string data(1000, 'x');
  auto started = f.uploads->Start(repo);
  REQUIRE(started);
  StringSource cut(data, 600);
  auto broken = f.uploads->Append(repo, started->id, std::nullopt, cut);
  REQUIRE_FALSE(broken);
  // What arrived stays, and the client resumes from the offset it reads back.
  auto status = f.uploads->Query(repo, started->id);
  REQUIRE(status);
  CHECK(status->offset == 600);
  StringSource rest(data.substr(600));
  auto wrong = f.uploads->Finish(repo, started->id, DigestOf("something else"), rest);
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().kind == ErrorKind::kDigestInvalid);
  CHECK(f.uploads->Query(repo, started->id).error().kind == ErrorKind::kBlobUploadUnknown);
  CHECK(f.HostedBlobFiles() == 0);
  CHECK(std::filesystem::is_empty(f.hosted->root() / "uploads"));
}

TEST_CASE("one blob pushed to two repositories is stored once; a mount links it") {
  HostedFixture f;
  const std::string data = "shared layer";
  f.Push(Name("a/one"), data);
  f.Push(Name("a/two"), data);
  CHECK(f.HostedBlobFiles() == 1);
  auto mounted = f.uploads->Mount(Name("a/three"), DigestOf(data), Name("a/one"), false);
  REQUIRE(mounted);
  CHECK(mounted->has_value());
  auto absent = f.uploads->Mount(Name("a/four"), DigestOf("nope"), Name("a/one"), false);
  REQUIRE(absent);
  CHECK_FALSE(absent->has_value());
  // From the mirror's cache: adopted into the hosted store.
  const std::string cached = "cached by the mirror";
  REQUIRE(f.cache->WriteObject(ObjectKind::kBlob, DigestOf(cached), cached));
  auto adopted = f.uploads->Mount(Name("a/one"), DigestOf(cached), Name("library/alpine"), true);
  REQUIRE(adopted);
  REQUIRE(adopted->has_value());
  CHECK(f.hosted->SizeOf(ObjectKind::kBlob, DigestOf(cached)) == cached.size());
  CHECK(f.HostedBlobFiles() == 2);
}

TEST_CASE("manifests need their blobs; gc sweeps only what nothing references") {
  HostedFixture f;
  const RepoName repo = Name("team/app");
  const std::string config = "{}";
  const std::string layer = "layer bytes";
  auto manifest = [&](const std::string& layer_digest) {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
           R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
           DigestOf(config).str() + R"(","size":2},"layers":[{"mediaType":"x","digest":")" +
           layer_digest + R"(","size":11}]})";
  };
  f.Push(repo, config);
  Tag tag = *Tag::Parse("v1");
  auto missing = f.registry.PutManifest(repo, tag, "", manifest(DigestOf(layer).str()));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == ErrorKind::kManifestBlobUnknown);
  CHECK(f.registry.Tags(repo).error().kind == ErrorKind::kNameUnknown);

  f.Push(repo, layer);
  // The descriptors' sizes must be the blobs' (the layer is 11 bytes).
  std::string wrong_size = manifest(DigestOf(layer).str());
  wrong_size.replace(wrong_size.find("\"size\":11"), 9, "\"size\":12");
  auto mismatch = f.registry.PutManifest(repo, tag, "", wrong_size);
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().kind == ErrorKind::kManifestInvalid);
  auto pushed = f.registry.PutManifest(repo, tag, "", manifest(DigestOf(layer).str()));
  REQUIRE(pushed);
  auto by_digest =
      f.registry.PutManifest(repo, DigestOf("other bytes"), "", manifest(DigestOf(layer).str()));
  REQUIRE_FALSE(by_digest);
  CHECK(by_digest.error().kind == ErrorKind::kDigestInvalid);
  CHECK(*f.registry.Tags(repo) == std::vector<std::string>{"v1"});
  CHECK(f.registry.GetManifest(repo, tag)->digest == pushed->digest);

  // An orphan blob, and the image's: only the orphan goes while the tag holds.
  f.Push(repo, "orphan");
  HostedGcOptions options;
  options.grace = std::chrono::milliseconds(-1000);  // everything is old enough
  std::vector<std::string> lines;
  auto report = CollectHostedGarbage(*f.hosted, *f.index, options,
                                     [&](const std::string& l) { lines.push_back(l); });
  REQUIRE(report);
  CHECK(report->blobs_removed == 1);
  CHECK(f.HostedBlobFiles() == 2);
  // The grace period keeps what is young.
  REQUIRE(f.registry.DeleteManifest(repo, pushed->digest));
  auto young =
      CollectHostedGarbage(*f.hosted, *f.index, HostedGcOptions{}, [](const std::string&) {});
  REQUIRE(young);
  CHECK(young->blobs_removed == 0);
  auto all = CollectHostedGarbage(*f.hosted, *f.index, options, [](const std::string&) {});
  REQUIRE(all);
  CHECK(all->blobs_removed == 2);
  CHECK(f.HostedBlobFiles() == 0);
  CHECK(f.registry.GetManifest(repo, pushed->digest).error().kind == ErrorKind::kManifestUnknown);
}

TEST_CASE("a manifest pushed while gc sweeps keeps its blob; abandoned uploads are purged") {
  HostedFixture f;
  const RepoName repo = Name("team/app");
  const std::string config = "{}";
  auto stored = f.Push(repo, config);
  // gc lists the blob as unreferenced...
  auto listed = f.index->UnreferencedHostedBlobs(UnixNowMs() + 1000);
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  // ...then a manifest that needs it lands before the sweep reaches it.
  auto pushed = f.registry.PutManifest(
      repo, *Tag::Parse("v1"), "",
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
          stored.digest.str() + R"(","size":2},"layers":[]})");
  REQUIRE(pushed);
  bool removed_file = false;
  auto swept = f.index->SweepHostedBlob(stored.digest.str(), UnixNowMs() + 1000, [&] {
    removed_file = true;
    return Status{};
  });
  REQUIRE(swept);
  CHECK_FALSE(*swept);
  CHECK_FALSE(removed_file);
  CHECK(f.hosted->SizeOf(ObjectKind::kBlob, stored.digest) == config.size());

  auto fresh = f.uploads->Start(repo);
  REQUIRE(fresh);
  CHECK(f.uploads->PurgeStale(std::chrono::hours(1), false) == 0);
  CHECK(f.uploads->PurgeStale(std::chrono::milliseconds(-1000), true) == 0);  // dry run
  CHECK(f.uploads->Query(repo, fresh->id));
  CHECK(f.uploads->PurgeStale(std::chrono::milliseconds(-1000), false) == 1);
  CHECK(f.uploads->Query(repo, fresh->id).error().kind == ErrorKind::kBlobUploadUnknown);
  CHECK(std::filesystem::is_empty(f.hosted->root() / "uploads"));
}

}  // namespace
}  // namespace hubcache
