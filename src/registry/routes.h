#pragma once
// Splits a request path into the registry API endpoint it addresses, and
// builds the paths of a repository's endpoints (the one place either is
// spelled). Only splits: the name and reference are validated by reference.h
// afterwards. Pure functions; thread-safe.

#include <string>
#include <string_view>

#include "registry/reference.h"

namespace hubcache {

enum class RouteKind {
  kPing,        // /v2/
  kCatalog,     // /v2/_catalog
  kManifest,    // /v2/<name>/manifests/<reference>
  kBlob,        // /v2/<name>/blobs/<digest>
  kBlobUpload,  // /v2/<name>/blobs/uploads/...
  kTagsList,    // /v2/<name>/tags/list
  kReferrers,   // /v2/<name>/referrers/<digest>
  kUnknownV2,   // anything else under /v2/
  kOther,       // not the registry API
};

struct Route {
  RouteKind kind = RouteKind::kOther;
  std::string name;       // raw repository name
  std::string reference;  // raw tag or digest (manifests, blobs, referrers); upload id
};

Route ParseRoute(std::string_view path);

// "/v2/<name>/": what every path of one repository starts with.
std::string RepositoryPath(std::string_view name);
// /v2/<name>/manifests/<reference>, /v2/<name>/blobs/<digest>,
// /v2/<name>/tags/list, /v2/<name>/blobs/uploads/<id>.
std::string ManifestPath(const RepoName& repo, std::string_view reference);
std::string BlobPath(const RepoName& repo, const Digest& digest);
std::string TagsListPath(const RepoName& repo);
std::string UploadPath(const RepoName& repo, std::string_view id);

}  // namespace hubcache
