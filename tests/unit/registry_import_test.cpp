#include "cache/registry_import.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "temp_dir.h"

namespace hubcache {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A registry:2 filesystem store written by hand, as distribution lays it out.
class FakeStore {
 public:
  explicit FakeStore(const fs::path& dir) : v2_(dir / "docker" / "registry" / "v2") {
    fs::create_directories(v2_ / "repositories");
  }

  // Stores `bytes` as a blob; returns its digest ("sha256:...").
  std::string Blob(const std::string& bytes) {
    std::string hex = Sha256::HexOf(bytes);
    Write(v2_ / "blobs" / "sha256" / hex.substr(0, 2) / hex / "data", bytes);
    return "sha256:" + hex;
  }
  void Layer(const std::string& repo, const std::string& digest) {
    Write(Repo(repo) / "_layers" / "sha256" / digest.substr(7) / "link", digest);
  }
  void Revision(const std::string& repo, const std::string& digest) {
    Write(Repo(repo) / "_manifests" / "revisions" / "sha256" / digest.substr(7) / "link", digest);
  }
  void TagAt(const std::string& repo, const std::string& tag, const std::string& digest) {
    Write(Repo(repo) / "_manifests" / "tags" / tag / "current" / "link", digest);
    Write(Repo(repo) / "_manifests" / "tags" / tag / "index" / "sha256" / digest.substr(7) / "link",
          digest);
  }
  fs::path DataPath(const std::string& digest) const {
    return v2_ / "blobs" / "sha256" / digest.substr(7, 2) / digest.substr(7) / "data";
  }
  fs::path Repo(const std::string& repo) const { return v2_ / "repositories" / repo; }

  static void Write(const fs::path& path, const std::string& bytes) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
  }

 private:
  fs::path v2_;
};

std::string Descriptor(const std::string& media_type, const std::string& digest, size_t size) {
  return R"({"mediaType":")" + media_type + R"(","digest":")" + digest + R"(","size":)" +
         std::to_string(size) + "}";
}

// An OCI image manifest of one config and the given layers.
struct Image {
  std::string config, manifest, manifest_digest;
  std::vector<std::string> layers, layer_digests;
};

Image PushImage(FakeStore& store, const std::string& repo, const std::string& seed) {
  Image img;
  img.config = R"({"architecture":"amd64","os":"linux","seed":")" + seed + R"("})";
  std::string config_digest = store.Blob(img.config);
  store.Layer(repo, config_digest);
  std::string layers;
  for (int i = 0; i < 2; ++i) {
    img.layers.push_back("layer " + std::to_string(i) + " of " + seed);
    img.layer_digests.push_back(store.Blob(img.layers.back()));
    store.Layer(repo, img.layer_digests.back());
    layers += (i ? "," : "") + Descriptor("application/vnd.oci.image.layer.v1.tar+gzip",
                                          img.layer_digests.back(), img.layers.back().size());
  }
  img.manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":)" +
      Descriptor("application/vnd.oci.image.config.v1+json", config_digest, img.config.size()) +
      R"(,"layers":[)" + layers + "]}";
  img.manifest_digest = store.Blob(img.manifest);
  store.Revision(repo, img.manifest_digest);
  return img;
}

std::string PushIndex(FakeStore& store, const std::string& repo,
                      const std::vector<const Image*>& images) {
  std::string children;
  for (const auto* img : images) {
    children +=
        (children.empty() ? "" : ",") + Descriptor("application/vnd.oci.image.manifest.v1+json",
                                                   img->manifest_digest, img->manifest.size());
  }
  std::string index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
                      R"("manifests":[)" +
                      children + "]}";
  std::string digest = store.Blob(index);
  store.Revision(repo, digest);
  return digest;
}

struct Cache {
  explicit Cache(const fs::path& root) {
    auto s = BlobStore::Open(root / "hosted");
    REQUIRE(s);
    hosted = std::move(*s);
    auto i = IndexDb::Open(root / "index.db");
    REQUIRE(i);
    index = std::move(*i);
  }
  ImportReport Import(const fs::path& dir, std::vector<std::string>* skips = nullptr) {
    auto source = ScanRegistryStore(dir);
    REQUIRE(source);
    auto report = ImportRegistryStore(*source, *hosted, *index, ImportOptions{},
                                      [&](const std::string& line) {
                                        if (skips) skips->push_back(line);
                                      });
    REQUIRE(report);
    return *report;
  }
  std::string HostedFile(ObjectKind kind, const std::string& digest) {
    auto d = Digest::Parse(digest);
    REQUIRE(d);
    auto bytes = hosted->ReadObject(kind, *d, 1 << 20);
    REQUIRE(bytes);
    return *bytes;
  }
  std::unique_ptr<BlobStore> hosted;
  std::unique_ptr<IndexDb> index;
};

bool AnyContains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const auto& l : lines) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("ParseLinkFile: a sha256 digest, trailing white space allowed") {
  const std::string hex(64, 'a');
  struct Case {
    std::string content;
    bool ok;
  };
  for (const auto& c : std::vector<Case>{{"sha256:" + hex, true},
                                         {"sha256:" + hex + "\n", true},
                                         {"sha256:" + hex + " \r\n", true},
                                         {" sha256:" + hex, false},
                                         {"sha256:" + hex.substr(1), false},
                                         {"sha512:" + hex + hex, false},
                                         {"sha256:" + std::string(64, 'A'), false},
                                         {"", false},
                                         {"../../etc/passwd", false}}) {
    CAPTURE(c.content);
    auto digest = ParseLinkFile(c.content);
    CHECK(digest.has_value() == c.ok);
    if (c.ok) CHECK(digest->hex() == hex);
  }
}

TEST_CASE("ScanRegistryStore: refuses what is no registry:2 store") {
  TempDir dir;
  auto scanned = ScanRegistryStore(dir.path());
  REQUIRE_FALSE(scanned);
  CHECK(scanned.error().kind == ErrorKind::kConfigInvalid);
  CHECK_FALSE(ScanRegistryStore(dir.path() / "absent"));
}

TEST_CASE("ScanRegistryStore: nested names, deleted links, bad links, uploads") {
  TempDir dir;
  FakeStore store(dir.path());
  std::string a = store.Blob("a"), b = store.Blob("b");
  store.Layer("team/app", a);
  store.Layer("team/app/sub", b);
  store.Revision("team/app/sub", a);  // _manifests makes it a repository
  store.TagAt("team/app", "v1", b);
  fs::create_directories(store.Repo("team/app") / "_manifests" / "revisions");
  fs::create_directories(store.Repo("team/app") / "_uploads" / "some-id");
  // A deleted layer: its directory stays, its link is gone.
  fs::create_directories(store.Repo("team/app") / "_layers" / "sha256" / std::string(64, 'c'));
  // A link that names another digest than its directory.
  FakeStore::Write(store.Repo("team/app") / "_layers" / "sha256" / std::string(64, 'd') / "link",
                   a);
  // No _manifests: no repository, only a parent directory.
  fs::create_directories(store.Repo("team") / "_layers");

  auto scanned = ScanRegistryStore(dir.path());
  REQUIRE(scanned);
  REQUIRE(scanned->repositories.size() == 2);
  const auto& app = scanned->repositories[0];
  CHECK(app.path == "team/app");
  REQUIRE(app.layers.size() == 1);
  CHECK(app.layers[0].str() == a);
  CHECK(app.revisions.empty());
  REQUIRE(app.tags.size() == 1);
  CHECK(app.tags[0].first == "v1");
  CHECK(app.tags[0].second.str() == b);
  const auto& sub = scanned->repositories[1];
  CHECK(sub.path == "team/app/sub");
  REQUIRE(sub.revisions.size() == 1);
  CHECK(sub.revisions[0].str() == a);
  REQUIRE(scanned->problems.size() == 1);
  CHECK(scanned->problems[0].find(std::string(64, 'd')) != std::string::npos);
}

TEST_CASE("ImportRegistryStore: images, an index and tags, verified, hard-linked; twice") {
  TempDir dir;
  FakeStore store(dir.path() / "src");
  Image amd = PushImage(store, "team/app", "amd64");
  Image arm = PushImage(store, "team/app", "arm64");
  std::string index = PushIndex(store, "team/app", {&amd, &arm});
  store.TagAt("team/app", "1", index);
  store.TagAt("team/app", "amd", amd.manifest_digest);
  Image solo = PushImage(store, "myapp", "solo");  // a one-component name
  store.TagAt("myapp", "latest", solo.manifest_digest);

  Cache cache(dir.path() / "root");
  std::vector<std::string> skips;
  auto report = cache.Import(dir.path() / "src", &skips);
  CHECK(skips.empty());
  CHECK(report.repositories == 2);
  CHECK(report.manifests == 4);
  CHECK(report.tags == 3);
  CHECK(report.blobs == 9);
  CHECK(report.skipped == 0);
  CHECK(report.present == std::vector<std::string>{"library/myapp", "team/app"});

  auto tag = cache.index->HostedTag("team/app", "1");
  REQUIRE(tag);
  CHECK(*tag == std::optional<std::string>(index));
  auto solo_tag = cache.index->HostedTag("library/myapp", "latest");
  REQUIRE(solo_tag);
  CHECK(*solo_tag == std::optional<std::string>(solo.manifest_digest));
  auto row = cache.index->GetHostedManifest("team/app", index);
  REQUIRE(row);
  REQUIRE(*row);
  CHECK((*row)->media_type == "application/vnd.oci.image.index.v1+json");
  CHECK(cache.HostedFile(ObjectKind::kManifest, amd.manifest_digest) == amd.manifest);
  CHECK(cache.HostedFile(ObjectKind::kBlob, amd.layer_digests[1]) == amd.layers[1]);
  auto size = cache.index->HostedBlobSize("team/app", arm.layer_digests[0]);
  REQUIRE(size);
  CHECK(*size == std::optional<uint64_t>(arm.layers[0].size()));
  // Same filesystem: a blob is the source's file, hard-linked.
  struct stat st;
  REQUIRE(::stat(store.DataPath(amd.layer_digests[0]).c_str(), &st) == 0);
  CHECK(st.st_nlink == 2);
  CHECK(fs::is_empty(dir.path() / "root" / "hosted" / "tmp"));

  auto again = cache.Import(dir.path() / "src", &skips);
  CHECK(skips.empty());
  CHECK(again.repositories == 0);
  CHECK(again.manifests == 0);
  CHECK(again.tags == 0);
  CHECK(again.blobs == 0);
  CHECK(again.bytes == 0);
  CHECK(again.present == report.present);
}

TEST_CASE("ImportRegistryStore: a corrupt blob is skipped, and what needs it") {
  TempDir dir;
  FakeStore store(dir.path() / "src");
  Image good = PushImage(store, "team/good", "good");
  store.TagAt("team/good", "1", good.manifest_digest);
  Image bad = PushImage(store, "team/bad", "bad");
  std::string index = PushIndex(store, "team/bad", {&bad});
  store.TagAt("team/bad", "1", index);
  store.TagAt("team/bad", "img", bad.manifest_digest);
  // Flip a byte of one layer's content.
  std::string flipped = bad.layers[1];
  flipped[0] ^= 1;
  FakeStore::Write(store.DataPath(bad.layer_digests[1]), flipped);

  Cache cache(dir.path() / "root");
  std::vector<std::string> skips;
  auto report = cache.Import(dir.path() / "src", &skips);
  CAPTURE(skips.size());
  CHECK(AnyContains(skips, "blob " + bad.layer_digests[1] + " of team/bad: its bytes hash to"));
  CHECK(AnyContains(skips, "manifest " + bad.manifest_digest + " of team/bad: it references " +
                               bad.layer_digests[1]));
  CHECK(AnyContains(skips,
                    "manifest " + index + " of team/bad: it references " + bad.manifest_digest));
  CHECK(AnyContains(skips, "tag team/bad:1: its manifest " + index + " was not imported"));
  CHECK(report.skipped == 5);  // blob, image, index, two tags
  CHECK(report.manifests == 1);
  CHECK(report.tags == 1);
  CHECK(report.present == std::vector<std::string>{"team/good"});
  auto size = cache.index->AnyHostedBlobSize(bad.layer_digests[1]);
  REQUIRE(size);
  CHECK_FALSE(*size);
  CHECK_FALSE(
      fs::exists(cache.hosted->PathOf(ObjectKind::kBlob, *Digest::Parse(bad.layer_digests[1]))));
  CHECK(fs::is_empty(dir.path() / "root" / "hosted" / "tmp"));

  // Repaired at the source: the next run imports the rest.
  FakeStore::Write(store.DataPath(bad.layer_digests[1]), bad.layers[1]);
  skips.clear();
  auto again = cache.Import(dir.path() / "src", &skips);
  CHECK(skips.empty());
  CHECK(again.manifests == 2);
  CHECK(again.tags == 2);
  CHECK(again.blobs == 1);
}

TEST_CASE("ImportRegistryStore: a tag moved here since is kept") {
  TempDir dir;
  FakeStore store(dir.path() / "src");
  Image one = PushImage(store, "team/app", "one");
  Image two = PushImage(store, "team/app", "two");
  store.TagAt("team/app", "1", one.manifest_digest);
  Cache cache(dir.path() / "root");
  cache.Import(dir.path() / "src");
  // A push here moves the tag; the store still has the old one.
  auto row = cache.index->GetHostedManifest("team/app", two.manifest_digest);
  REQUIRE(row);
  REQUIRE(*row);
  auto moved = cache.index->PutHostedManifest(**row, {}, {}, "1", [] { return Status{}; });
  REQUIRE(moved);
  std::vector<std::string> skips;
  auto report = cache.Import(dir.path() / "src", &skips);
  CHECK(report.tags == 0);
  CHECK(report.skipped == 1);
  CHECK(AnyContains(skips, "tag team/app:1: it points at " + two.manifest_digest));
  auto tag = cache.index->HostedTag("team/app", "1");
  REQUIRE(tag);
  CHECK(*tag == std::optional<std::string>(two.manifest_digest));
}

TEST_CASE("ImportRegistryStore: a schema 1 manifest and a bad repository name are skipped") {
  TempDir dir;
  FakeStore store(dir.path() / "src");
  std::string v1 = store.Blob(R"({"schemaVersion":1,"name":"old","tag":"1","fsLayers":[]})");
  store.Revision("team/old", v1);
  Image img = PushImage(store, "Team/Upper", "upper");
  Cache cache(dir.path() / "root");
  std::vector<std::string> skips;
  auto report = cache.Import(dir.path() / "src", &skips);
  CHECK(report.skipped == 2);
  CHECK(AnyContains(skips, "manifest " + v1 + " of team/old: not a manifest hubcache hosts"));
  CHECK(AnyContains(skips, "repository Team/Upper:"));
  CHECK(report.present.empty());
}

}  // namespace
}  // namespace hubcache
