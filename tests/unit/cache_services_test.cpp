// The cache services (ManifestService, TagListService, BlobService with its
// FillManager, Evictor) as Mirror::Open wires them, against the in-process
// fake upstream (fake_upstream.h): what is asked upstream, what is kept, what a
// failure becomes.

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <vector>

#include "cache/mirror.h"
#include "fake_upstream.h"
#include "joining_thread.h"
#include "temp_dir.h"
#include "test_support.h"
#include "wait_for.h"

namespace hubcache {
namespace {

using testing::Name;

Digest D(const std::string& raw) { return *Digest::Parse(raw); }

// A fake upstream with one image (a config and `layers` layers of `size`
// bytes each) and a mirror of it in a fresh root.
struct CacheFixture {
  testing::FakeUpstream up;
  testing::TempDir dir;
  std::unique_ptr<Mirror> mirror;
  std::string manifest_digest;
  std::vector<std::string> blobs;  // config first

  void Start(std::chrono::milliseconds freshness = std::chrono::seconds(60), uint64_t cap = 0) {
    Config config;
    config.upstream_url = up.url();
    config.root_dir = dir.path().string();
    config.tag_freshness = freshness;
    config.cache_max_size_bytes = cap;
    config.min_free_fraction = 0;
    config.prefetch = "false";
    config.upload_purge_enabled = false;
    auto opened = Mirror::Open(config);
    REQUIRE_MESSAGE(opened.has_value(), (opened ? "" : opened.error().message));
    mirror = std::move(*opened);
  }
  void AddImage(const std::string& repo, const std::string& tag, int layers, size_t size) {
    std::string config_blob = R"({"architecture":"amd64","os":"linux"})";
    blobs.push_back(up.PutBlob(config_blob));
    std::string layer_list;
    for (int i = 0; i < layers; ++i) {
      std::string bytes(size, static_cast<char>('a' + i));
      bytes += repo + tag;  // distinct per image
      blobs.push_back(up.PutBlob(bytes));
      layer_list += std::string(i == 0 ? "" : ",") + R"({"mediaType":")" +
                    "application/vnd.oci.image.layer.v1.tar+gzip" + R"(","digest":")" +
                    blobs.back() + R"(","size":)" + std::to_string(bytes.size()) + "}";
    }
    std::string manifest =
        R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifest) +
        R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        blobs.front() + R"(","size":)" + std::to_string(config_blob.size()) + R"(},"layers":[)" +
        layer_list + "]}";
    manifest_digest = up.PutManifest(repo, tag, std::string(kOciManifest), manifest);
  }
  Result<ManifestResult> Get(const char* repo, const std::string& ref) {
    return mirror->manifests().Get(Name(repo), *ParseReference(ref), AcceptSet::All());
  }
  // A blob GET as the HTTP front serves it: the bytes, and the source.
  std::string ReadBlob(const char* repo, const std::string& digest, BlobSource* source,
                       bool* complete = nullptr) {
    auto read = mirror->blobs().Open(Name(repo), D(digest));
    REQUIRE_MESSAGE(read.has_value(), (read ? "" : read.error().message));
    *source = read->source;
    std::string out;
    if (read->file.valid()) {
      char buf[65536];
      ssize_t n;
      off_t at = 0;
      while ((n = ::pread(read->file.get(), buf, sizeof buf, at)) > 0) {
        out.append(buf, static_cast<size_t>(n));
        at += n;
      }
      if (complete) *complete = true;
      return out;
    }
    bool ok = mirror->blobs().Stream(*read, 0, read->size, [&](const char* data, size_t size) {
      out.append(data, size);
      return true;
    });
    if (complete) *complete = ok;
    return out;
  }
};

TEST_CASE_FIXTURE(CacheFixture, "ManifestService: a tag is asked upstream once, then cached") {
  AddImage("library/app", "1", 1, 1000);
  Start();
  auto first = Get("library/app", "1");
  REQUIRE(first.has_value());
  CHECK(first->source == ManifestSource::kUpstream);
  CHECK(first->manifest.digest.str() == manifest_digest);
  auto again = Get("library/app", "1");
  REQUIRE(again.has_value());
  CHECK(again->source == ManifestSource::kCache);
  auto by_digest = Get("library/app", manifest_digest);
  REQUIRE(by_digest.has_value());
  CHECK(by_digest->source == ManifestSource::kCache);
  CHECK(*by_digest->manifest.bytes == *first->manifest.bytes);
  CHECK(up.Count("GET", "/v2/library/app/manifests/1") == 1);
  CHECK(up.Count("GET", "/v2/library/app/manifests/" + manifest_digest) == 0);
}

TEST_CASE_FIXTURE(CacheFixture, "ManifestService: what an upstream status becomes") {
  Start();
  struct Case {
    int status;
    ErrorKind kind;
    bool counted;  // an upstream error in the stats
  };
  const Case cases[] = {
      {404, ErrorKind::kManifestUnknown, false},
      {500, ErrorKind::kUpstreamUnavailable, true},
      {503, ErrorKind::kUpstreamUnavailable, true},
      {429, ErrorKind::kTooManyRequests, true},
      {403, ErrorKind::kDenied, true},
      {418, ErrorKind::kUpstreamInvalid, true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.status);
    const std::string repo = "library/s" + std::to_string(c.status);
    up.FailPath("/v2/" + repo + "/manifests/1", c.status);
    const uint64_t errors_before = mirror->stats().upstream_errors;
    auto got = Get(repo.c_str(), "1");
    REQUIRE_FALSE(got.has_value());
    CHECK(got.error().kind == c.kind);
    CHECK(mirror->stats().upstream_errors - errors_before == (c.counted ? 1u : 0u));
  }
}

TEST_CASE_FIXTURE(CacheFixture, "ManifestService: bytes that are not the digest asked for") {
  Start();
  const std::string real = std::string(R"({"schemaVersion":2,"mediaType":")") +
                           std::string(kOciManifest) +
                           R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json",)"
                           R"("digest":"sha256:)" +
                           std::string(64, '1') + R"(","size":2},"layers":[]})";
  std::string other = up.PutManifest("library/bad", "other", std::string(kOciManifest), real);
  // The upstream answers a different body under a digest: refused, not kept.
  std::string wanted = "sha256:" + std::string(64, 'e');
  up.PutManifest("library/bad", wanted, std::string(kOciManifest), real);
  auto got = Get("library/bad", wanted);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().kind == ErrorKind::kUpstreamInvalid);
  CHECK_FALSE(mirror->store().SizeOf(ObjectKind::kManifest, D(wanted)).has_value());
  // Asked again: asked upstream again (nothing was kept to answer from).
  CHECK_FALSE(Get("library/bad", wanted).has_value());
  CHECK(up.Count("GET", "/v2/library/bad/manifests/" + wanted) == 2);
  CHECK(Get("library/bad", other).has_value());
}

TEST_CASE_FIXTURE(CacheFixture, "ManifestService: a stale tag is served while the upstream fails") {
  AddImage("library/app", "1", 1, 1000);
  Start(std::chrono::milliseconds(0));  // every tag GET revalidates
  REQUIRE(Get("library/app", "1").has_value());
  up.FailPath("/v2/library/app/manifests/1", 503);
  auto stale = Get("library/app", "1");
  REQUIRE(stale.has_value());
  CHECK(stale->source == ManifestSource::kStale);
  CHECK(stale->manifest.digest.str() == manifest_digest);
  // A tag the upstream says is gone is not served stale.
  up.FailPath("/v2/library/app/manifests/1", 404);
  auto gone = Get("library/app", "1");
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error().kind == ErrorKind::kManifestUnknown);
}

TEST_CASE_FIXTURE(CacheFixture,
                  "TagListService: pages merged and sorted; the last copy on failure") {
  up.PutTagPages("library/app", {{"b", "a"}, {"c", "a"}, {"1.0"}});
  Start();
  auto tags = mirror->tag_lists().Tags(Name("library/app"));
  REQUIRE(tags.has_value());
  CHECK(*tags == std::vector<std::string>{"1.0", "a", "b", "c"});
  up.FailPath("/v2/library/app/tags/list", 502);
  auto cached = mirror->tag_lists().Tags(Name("library/app"));
  REQUIRE(cached.has_value());
  CHECK(*cached == *tags);
  auto unknown = mirror->tag_lists().Tags(Name("library/none"));
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().kind == ErrorKind::kNameUnknown);
}

TEST_CASE_FIXTURE(CacheFixture, "BlobService: a miss is fetched once for concurrent readers") {
  AddImage("library/app", "1", 1, 512 * 1024);
  Start();
  const std::string layer = blobs.back();
  constexpr int kReaders = 6;
  std::vector<std::string> got(kReaders);
  std::atomic<int> incomplete{0};
  {
    std::vector<JoiningThread> threads;
    for (int i = 0; i < kReaders; ++i) {
      threads.emplace_back([&, i] {
        auto read = mirror->blobs().Open(Name("library/app"), D(layer));
        if (!read) {
          ++incomplete;
          return;
        }
        if (read->file.valid()) {  // committed before this reader came
          got[i] = "file";
          return;
        }
        if (!mirror->blobs().Stream(*read, 0, read->size, [&](const char* d, size_t n) {
              got[i].append(d, n);
              return true;
            })) {
          ++incomplete;
        }
      });
    }
  }
  CHECK(incomplete.load() == 0);
  for (const auto& g : got) {
    if (g != "file") CHECK(("sha256:" + Sha256::HexOf(g)) == layer);
  }
  CHECK(up.Count("GET", "/v2/library/app/blobs/" + layer) == 1);
  REQUIRE(WaitFor([&] { return mirror->store().SizeOf(ObjectKind::kBlob, D(layer)).has_value(); }));
  BlobSource source;
  std::string bytes = ReadBlob("library/app", layer, &source);
  CHECK(source == BlobSource::kHit);
  CHECK("sha256:" + Sha256::HexOf(bytes) == layer);
}

TEST_CASE_FIXTURE(CacheFixture, "BlobService: wrong bytes are never kept") {
  AddImage("library/app", "1", 1, 256 * 1024);
  Start();
  const std::string layer = blobs.back();
  up.CorruptBlob(layer, std::string(256 * 1024 + 16, 'z'));
  BlobSource source;
  bool complete = true;
  ReadBlob("library/app", layer, &source, &complete);
  CHECK(source == BlobSource::kMiss);
  CHECK_FALSE(complete);  // the stream ends short: the client sees the failure
  REQUIRE(WaitFor([&] { return mirror->fills().active() == 0; }));
  CHECK_FALSE(mirror->store().SizeOf(ObjectKind::kBlob, D(layer)).has_value());
  CHECK(up.Count("GET", "/v2/library/app/blobs/" + layer) == 1);
}

TEST_CASE_FIXTURE(CacheFixture, "BlobService: a request after a failed fill is not joined to it") {
  AddImage("library/app", "1", 1, 256 * 1024);
  Start();
  const std::string layer = blobs.back();
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    up.CorruptBlob(layer, std::string(256 * 1024, 'z'));
    // This reader sees the fill fail: at once, or when its stream ends short.
    if (auto first = mirror->blobs().Open(Name("library/app"), D(layer))) {
      REQUIRE(first->fill);
      CHECK_FALSE(
          mirror->blobs().Stream(*first, 0, first->size, [](const char*, size_t) { return true; }));
    }
    up.Heal();
    BlobSource source;
    bool complete = false;
    // At once, with no wait for the failed fill to be reaped: a fill of its own.
    std::string bytes = ReadBlob("library/app", layer, &source, &complete);
    CHECK(complete);
    CHECK("sha256:" + Sha256::HexOf(bytes) == layer);
    REQUIRE(WaitFor([&] { return mirror->fills().active() == 0; }));
    if (mirror->store().SizeOf(ObjectKind::kBlob, D(layer))) {
      (void)mirror->store().Remove(ObjectKind::kBlob, D(layer));
    }
  }
}

TEST_CASE_FIXTURE(CacheFixture, "Evictor: over the cap, the least recently used blobs go") {
  for (int i = 0; i < 4; ++i) {
    AddImage("library/img" + std::to_string(i), "1", 1, 200 * 1024);
  }
  Start(std::chrono::seconds(60), 500 * 1024);  // room for two layers and change
  std::vector<std::string> layers;
  for (size_t i = 1; i < blobs.size(); i += 2) layers.push_back(blobs[i]);  // skip configs
  REQUIRE(layers.size() == 4);
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string repo = "library/img" + std::to_string(i);
    BlobSource source;
    bool complete = false;
    ReadBlob(repo.c_str(), layers[i], &source, &complete);
    CHECK(complete);
    REQUIRE(WaitFor(
        [&] { return mirror->store().SizeOf(ObjectKind::kBlob, D(layers[i])).has_value(); }));
  }
  REQUIRE(WaitFor([&] { return mirror->usage().bytes() <= 500 * 1024; }, std::chrono::seconds(10)));
  CHECK_FALSE(mirror->store().SizeOf(ObjectKind::kBlob, D(layers[0])).has_value());  // oldest
  CHECK(mirror->store().SizeOf(ObjectKind::kBlob, D(layers[3])).has_value());        // newest
  CHECK(mirror->stats().evictions > 0);
}

}  // namespace
}  // namespace hubcache
