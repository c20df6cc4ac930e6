#include "registry/image_ref.h"
#include "test_support.h"

#include <doctest/doctest.h>

#include <string>
#include <variant>
#include <vector>

namespace hubcache {
namespace {

using testing::kEmptyDigest;

const std::string kHex = kEmptyDigest.substr(7);

TEST_CASE("ParseImageRef accepts every form users write and canonicalises it") {
  struct Case {
    std::string input;
    std::string canonical;  // ImageRef::str()
    std::string repo;
    std::string reference;  // what is asked of the registry
  };
  const std::vector<Case> cases = {
      {"alpine", "library/alpine:latest", "library/alpine", "latest"},
      {"alpine:3.19", "library/alpine:3.19", "library/alpine", "3.19"},
      {"library/alpine:3.19", "library/alpine:3.19", "library/alpine", "3.19"},
      {"docker.io/library/alpine:3.19", "library/alpine:3.19", "library/alpine", "3.19"},
      {"docker.io/alpine:3.19", "library/alpine:3.19", "library/alpine", "3.19"},
      {"docker.io/alpine", "library/alpine:latest", "library/alpine", "latest"},
      {"index.docker.io/library/alpine:3.19", "library/alpine:3.19", "library/alpine", "3.19"},
      {"registry-1.docker.io/library/alpine", "library/alpine:latest", "library/alpine", "latest"},
      {"registry.hub.docker.com/bitnami/redis:7.2", "bitnami/redis:7.2", "bitnami/redis", "7.2"},
      {"Docker.IO/library/alpine", "library/alpine:latest", "library/alpine", "latest"},
      {"bitnami/redis:7.2", "bitnami/redis:7.2", "bitnami/redis", "7.2"},
      {"bitnami/redis", "bitnami/redis:latest", "bitnami/redis", "latest"},
      {"a/b/c:v1", "a/b/c:v1", "a/b/c", "v1"},
      {"nginx@" + kEmptyDigest, "library/nginx@" + kEmptyDigest, "library/nginx", kEmptyDigest},
      {"nginx:1.25@" + kEmptyDigest, "library/nginx:1.25@" + kEmptyDigest, "library/nginx",
       kEmptyDigest},
      {"docker.io/library/nginx:1.25@" + kEmptyDigest, "library/nginx:1.25@" + kEmptyDigest,
       "library/nginx", kEmptyDigest},
      {"  alpine:3.19\t", "library/alpine:3.19", "library/alpine", "3.19"},
      {"alpine:Latest_1.2-rc", "library/alpine:Latest_1.2-rc", "library/alpine", "Latest_1.2-rc"},
      {"my-org/my.app_v2:_x", "my-org/my.app_v2:_x", "my-org/my.app_v2", "_x"},
      // Without a slash a colon is a tag separator, as in Docker: "docker.io" is a name.
      {"docker.io", "library/docker.io:latest", "library/docker.io", "latest"},
      {"localhost:5000", "library/localhost:5000", "library/localhost", "5000"},
      // Another registry's image: named as the mirror routes it.
      {"quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd", "v3.5"},
      {"ghcr.io/owner/app", "ghcr.io/owner/app:latest", "ghcr.io/owner/app", "latest"},
      {"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause", "3.9"},
      {"localhost/app:1", "localhost/app:1", "localhost/app", "1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto ref = ParseImageRef(c.input);
    REQUIRE_MESSAGE(ref.has_value(), (ref ? "" : ref.error().message));
    CHECK(ref->str() == c.canonical);
    CHECK(ref->repo.str() == c.repo);
    CHECK(ReferenceString(ref->reference()) == c.reference);
  }
}

TEST_CASE("ParseImageRef keeps the tag of a pinned reference but resolves the digest") {
  auto ref = ParseImageRef("nginx:1.25@" + kEmptyDigest);
  REQUIRE(ref.has_value());
  REQUIRE(ref->tag.has_value());
  CHECK(ref->tag->str() == "1.25");
  REQUIRE(ref->digest.has_value());
  CHECK(std::holds_alternative<Digest>(ref->reference()));

  auto pinned_only = ParseImageRef("nginx@" + kEmptyDigest);
  REQUIRE(pinned_only.has_value());
  CHECK_FALSE(pinned_only->tag.has_value());
}

TEST_CASE("ParseImageRef rejects malformed references and other registries with a reason") {
  struct Case {
    std::string input;
    ErrorKind kind;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"", ErrorKind::kNameInvalid, "empty"},
      {"   ", ErrorKind::kNameInvalid, "empty"},
      {"alpine 3.19", ErrorKind::kNameInvalid, "spaces"},
      {"localhost:5000/app:1", ErrorKind::kNameInvalid,
       "'localhost:5000' cannot be named in a mirror path"},
      {"docker.io:443/library/alpine", ErrorKind::kNameInvalid, "cannot be named"},
      {"Alpine", ErrorKind::kNameInvalid, "lower-case"},
      {"Bitnami/redis", ErrorKind::kNameInvalid, "lower-case"},
      {"bitnami/Redis:7", ErrorKind::kNameInvalid, "lower-case"},
      {"alpine:", ErrorKind::kTagInvalid, "invalid tag"},
      {"alpine:.hidden", ErrorKind::kTagInvalid, "invalid tag"},
      {"alpine:-x", ErrorKind::kTagInvalid, "invalid tag"},
      {"alpine:a/b", ErrorKind::kNameInvalid, "cannot be named"},
      {"alpine:" + std::string(129, 'a'), ErrorKind::kTagInvalid, "invalid tag"},
      {"alpine@sha256:abc", ErrorKind::kDigestInvalid, "invalid digest"},
      {"alpine@sha512:" + kHex, ErrorKind::kDigestInvalid, "invalid digest"},
      {"alpine@" + kHex, ErrorKind::kDigestInvalid, "invalid digest"},
      {"alpine@", ErrorKind::kDigestInvalid, "invalid digest"},
      {":3.19", ErrorKind::kNameInvalid, "no repository name"},
      {"@" + kEmptyDigest, ErrorKind::kNameInvalid, "no repository name"},
      {"docker.io/", ErrorKind::kNameInvalid, "no repository name"},
      {"-alpine", ErrorKind::kNameInvalid, "invalid repository name"},
      {"alpine-", ErrorKind::kNameInvalid, "invalid repository name"},
      {"a//b", ErrorKind::kNameInvalid, "invalid repository name"},
      {"a/b/", ErrorKind::kNameInvalid, "invalid repository name"},
      {"al#pine", ErrorKind::kNameInvalid, "invalid repository name"},
      {"alpine:1:2", ErrorKind::kNameInvalid, "invalid repository name"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto ref = ParseImageRef(c.input);
    REQUIRE_FALSE(ref.has_value());
    CHECK(ref.error().kind == c.kind);
    CAPTURE(ref.error().message);
    CHECK(ref.error().message.find(c.message_part) != std::string::npos);
  }
}

TEST_CASE("IsDockerHubHost knows Docker Hub's names in any case and nothing else") {
  CHECK(IsDockerHubHost("docker.io"));
  CHECK(IsDockerHubHost("INDEX.docker.io"));
  CHECK(IsDockerHubHost("registry-1.docker.io"));
  CHECK_FALSE(IsDockerHubHost("docker.io:443"));
  CHECK_FALSE(IsDockerHubHost("evil-docker.io"));
  CHECK_FALSE(IsDockerHubHost("quay.io"));
  CHECK_FALSE(IsDockerHubHost(""));
}

}  // namespace
}  // namespace hubcache
