#include "registry/pushed_manifest.h"

#include <doctest/doctest.h>

#include <string>

namespace hubcache {
namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kC = "sha256:" + std::string(64, 'c');

TEST_CASE("DescribePushedManifest: an OCI artifact with a subject") {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "artifactType":"application/vnd.example.sbom",
    "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":")" +
                     kA + R"(","size":2},
    "layers":[{"mediaType":"application/octet-stream","digest":")" +
                     kB +
                     R"(","size":5},
              {"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
               "digest":")" +
                     kC + R"(","size":9,"urls":["https://example.com/l"]}],
    "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                     kC + R"(","size":7},
    "annotations":{"org.example":"1"}})";
  auto m = DescribePushedManifest(body, "application/vnd.oci.image.manifest.v1+json");
  REQUIRE(m);
  CHECK(m->media_type == "application/vnd.oci.image.manifest.v1+json");
  CHECK(m->blobs == std::vector<std::string>{kA, kB});  // the foreign layer is not here
  CHECK(m->blob_sizes == std::vector<uint64_t>{2, 5});
  CHECK(m->manifests.empty());
  CHECK(m->subject == kC);
  CHECK(m->artifact_type == "application/vnd.example.sbom");
  CHECK(m->annotations == R"({"org.example":"1"})");
}

TEST_CASE("DescribePushedManifest: an index lists its children; config type as artifact type") {
  std::string index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
    "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                      kA + R"(","size":3},{"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "digest":")" + kB +
                      R"(","size":4}]})";
  auto m = DescribePushedManifest(index, "");
  REQUIRE(m);
  CHECK(m->blobs.empty());
  CHECK(m->manifests == std::vector<std::string>{kA, kB});
  CHECK(m->artifact_type.empty());

  std::string image =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
      kA + R"(","size":3},"layers":[]})";
  auto d = DescribePushedManifest(image, "application/vnd.docker.distribution.manifest.v2+json");
  REQUIRE(d);
  CHECK(d->artifact_type == "application/vnd.docker.container.image.v1+json");
}

TEST_CASE("DescribePushedManifest refuses malformed descriptors") {
  auto with_layer = [](const std::string& layer) {
    return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "config":{"mediaType":"x","digest":"sha256:)" +
           std::string(64, 'a') + R"(","size":2},"layers":[)" + layer + "]}";
  };
  struct Case {
    std::string body;
    ErrorKind kind;
  };
  const Case cases[] = {
      {with_layer(R"({"size":1})"), ErrorKind::kManifestInvalid},
      {with_layer(R"({"digest":")" + kB + R"("})"), ErrorKind::kManifestInvalid},
      {with_layer(R"({"digest":")" + kB + R"(","size":-1})"), ErrorKind::kManifestInvalid},
      {with_layer(R"({"digest":"sha512:abc","size":1})"), ErrorKind::kDigestInvalid},
      {with_layer(R"("not an object")"), ErrorKind::kManifestInvalid},
      {"<html>", ErrorKind::kManifestInvalid},
      {R"({"schemaVersion":2,"manifests":[],"annotations":[1]})", ErrorKind::kManifestInvalid},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto m = DescribePushedManifest(c.body, "");
    REQUIRE_FALSE(m);
    CHECK(m.error().kind == c.kind);
  }
}

}  // namespace
}  // namespace hubcache
