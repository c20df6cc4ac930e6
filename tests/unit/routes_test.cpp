#include "registry/routes.h"
#include "test_support.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

using testing::kEmptyDigest;

TEST_CASE("ParseRoute") {
  struct Case {
    std::string path;
    RouteKind kind;
    std::string name;
    std::string reference;
  };
  const std::vector<Case> cases = {
      // Ping and catalog.
      {"/v2/", RouteKind::kPing, "", ""},
      {"/v2", RouteKind::kPing, "", ""},
      {"/v2/_catalog", RouteKind::kCatalog, "", ""},
      // Manifests.
      {"/v2/alpine/manifests/latest", RouteKind::kManifest, "alpine", "latest"},
      {"/v2/library/alpine/manifests/3.19", RouteKind::kManifest, "library/alpine", "3.19"},
      {"/v2/a/b/c/manifests/v1", RouteKind::kManifest, "a/b/c", "v1"},
      {"/v2/library/alpine/manifests/" + kEmptyDigest, RouteKind::kManifest, "library/alpine",
       kEmptyDigest},
      // Blobs.
      {"/v2/library/alpine/blobs/" + kEmptyDigest, RouteKind::kBlob, "library/alpine",
       kEmptyDigest},
      {"/v2/a/b/c/blobs/" + kEmptyDigest, RouteKind::kBlob, "a/b/c", kEmptyDigest},
      // The route splits; it does not validate (reference.h does).
      {"/v2/UPPER/manifests/-bad", RouteKind::kManifest, "UPPER", "-bad"},
      {"/v2/x/blobs/not-a-digest", RouteKind::kBlob, "x", "not-a-digest"},
      {"/v2/../etc/blobs/x", RouteKind::kBlob, "../etc", "x"},
      // Uploads.
      {"/v2/library/alpine/blobs/uploads", RouteKind::kBlobUpload, "library/alpine", ""},
      {"/v2/library/alpine/blobs/uploads/", RouteKind::kBlobUpload, "library/alpine", ""},
      {"/v2/library/alpine/blobs/uploads/0b9f2c4e-5d3a-4f9b-9c1e-2a3b4c5d6e7f",
       RouteKind::kBlobUpload, "library/alpine", "0b9f2c4e-5d3a-4f9b-9c1e-2a3b4c5d6e7f"},
      {"/v2/team/app/referrers/" + kEmptyDigest, RouteKind::kReferrers, "team/app", kEmptyDigest},
      // Tags.
      {"/v2/library/alpine/tags/list", RouteKind::kTagsList, "library/alpine", ""},
      {"/v2/alpine/tags/list", RouteKind::kTagsList, "alpine", ""},
      {"/v2/a/b/c/tags/list", RouteKind::kTagsList, "a/b/c", ""},
      // Names with components that look like route markers.
      {"/v2/manifests/manifests/latest", RouteKind::kManifest, "manifests", "latest"},
      {"/v2/blobs/manifests/latest", RouteKind::kManifest, "blobs", "latest"},
      {"/v2/foo/manifests/bar/manifests/latest", RouteKind::kManifest, "foo/manifests/bar",
       "latest"},
      {"/v2/a/blobs/b/manifests/latest", RouteKind::kManifest, "a/blobs/b", "latest"},
      {"/v2/a/manifests/b/blobs/" + kEmptyDigest, RouteKind::kBlob, "a/manifests/b", kEmptyDigest},
      {"/v2/blobs/blobs/" + kEmptyDigest, RouteKind::kBlob, "blobs", kEmptyDigest},
      {"/v2/manifests/blobs/" + kEmptyDigest, RouteKind::kBlob, "manifests", kEmptyDigest},
      {"/v2/tags/manifests/list", RouteKind::kManifest, "tags", "list"},
      {"/v2/a/manifests/tags/list", RouteKind::kTagsList, "a/manifests", ""},
      {"/v2/a/tags/list/manifests/latest", RouteKind::kManifest, "a/tags/list", "latest"},
      {"/v2/blobs/uploads/manifests/latest", RouteKind::kManifest, "blobs/uploads", "latest"},
      {"/v2/a/blobs/uploadsx/manifests/latest", RouteKind::kManifest, "a/blobs/uploadsx", "latest"},
      // An upload id never contains '/': a repository with "blobs/uploads" components is
      // still a manifest or blob route (distribution's router agrees).
      {"/v2/a/blobs/uploads/manifests/latest", RouteKind::kManifest, "a/blobs/uploads", "latest"},
      {"/v2/a/blobs/uploads/b/blobs/" + kEmptyDigest, RouteKind::kBlob, "a/blobs/uploads/b",
       kEmptyDigest},
      {"/v2/_catalog/manifests/latest", RouteKind::kManifest, "_catalog", "latest"},
      // Unknown under /v2/.
      {"/v2/_catalog/", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/manifests", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/manifests/", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/manifests/a/b", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/blobs/", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/blobs", RouteKind::kUnknownV2, "", ""},
      {"/v2/manifests/latest", RouteKind::kUnknownV2, "", ""},
      {"/v2//manifests/latest", RouteKind::kUnknownV2, "", ""},
      {"/v2/blobs/" + kEmptyDigest, RouteKind::kUnknownV2, "", ""},
      {"/v2/blobs/uploads", RouteKind::kUnknownV2, "", ""},
      {"/v2/blobs/uploads/", RouteKind::kUnknownV2, "", ""},
      {"/v2/tags/list", RouteKind::kUnknownV2, "", ""},
      {"/v2//tags/list", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/tags/lists", RouteKind::kUnknownV2, "", ""},
      {"/v2/alpine/tags", RouteKind::kUnknownV2, "", ""},
      {"/v2/x", RouteKind::kUnknownV2, "", ""},
      {"/v2//", RouteKind::kUnknownV2, "", ""},
      // Not the registry API.
      {"", RouteKind::kOther, "", ""},
      {"/", RouteKind::kOther, "", ""},
      {"/v1/", RouteKind::kOther, "", ""},
      {"/v3/", RouteKind::kOther, "", ""},
      {"/v2x", RouteKind::kOther, "", ""},
      {"/v20/", RouteKind::kOther, "", ""},
      {"/V2/", RouteKind::kOther, "", ""},
      {"v2/", RouteKind::kOther, "", ""},
      {"//v2/", RouteKind::kOther, "", ""},
      {"/metrics", RouteKind::kOther, "", ""},
      {"/healthz", RouteKind::kOther, "", ""},
      {"/stats", RouteKind::kOther, "", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.path);
    auto route = ParseRoute(c.path);
    CHECK(static_cast<int>(route.kind) == static_cast<int>(c.kind));
    if (route.kind == c.kind) {
      CHECK(route.name == c.name);
      CHECK(route.reference == c.reference);
    }
  }
}

TEST_CASE("Path builders give what ParseRoute takes back") {
  const RepoName repo = *RepoName::Parse("ghcr.io/team/app");
  const Digest digest = *Digest::Parse("sha256:" + std::string(64, 'a'));
  CHECK(RepositoryPath("library/alpine") == "/v2/library/alpine/");
  struct Case {
    std::string path;
    RouteKind kind;
    std::string reference;
  };
  const Case cases[] = {
      {ManifestPath(repo, "1.0"), RouteKind::kManifest, "1.0"},
      {ManifestPath(repo, digest.str()), RouteKind::kManifest, digest.str()},
      {BlobPath(repo, digest), RouteKind::kBlob, digest.str()},
      {TagsListPath(repo), RouteKind::kTagsList, ""},
      {UploadPath(repo, "abc-123"), RouteKind::kBlobUpload, "abc-123"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.path);
    Route route = ParseRoute(c.path);
    CHECK(route.kind == c.kind);
    CHECK(route.name == repo.str());
    CHECK(route.reference == c.reference);
  }
}

}  // namespace
}  // namespace hubcache
