#include "registry/routes.h"

namespace hubcache {

Route ParseRoute(std::string_view path) {
  Route route;
  if (path == "/v2" || path == "/v2/") {
    route.kind = RouteKind::kPing;
    return route;
  }
  constexpr std::string_view kPrefix = "/v2/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return route;
  std::string_view rest = path.substr(kPrefix.size());
  route.kind = RouteKind::kUnknownV2;
  if (rest == "_catalog") {
    route.kind = RouteKind::kCatalog;
    return route;
  }
  constexpr std::string_view kTags = "/tags/list";
  if (rest.size() > kTags.size() && rest.substr(rest.size() - kTags.size()) == kTags) {
    route.kind = RouteKind::kTagsList;
    route.name = std::string(rest.substr(0, rest.size() - kTags.size()));
    return route;
  }
  // The reference never contains '/', so the last marker splits name from it.
  for (auto [marker, kind] : {std::pair{std::string_view("/manifests/"), RouteKind::kManifest},
                              std::pair{std::string_view("/blobs/"), RouteKind::kBlob},
                              std::pair{std::string_view("/referrers/"), RouteKind::kReferrers}}) {
    size_t at = rest.rfind(marker);
    if (at == std::string_view::npos || at == 0) continue;
    std::string_view reference = rest.substr(at + marker.size());
    if (reference.empty() || reference.find('/') != std::string_view::npos) continue;
    if (kind == RouteKind::kBlob && reference == "uploads") break;  // an upload start
    route.kind = kind;
    route.name = std::string(rest.substr(0, at));
    route.reference = std::string(reference);
    return route;
  }
  // Uploads last: a repository may itself be named ".../blobs/uploads".
  constexpr std::string_view kUploads = "/blobs/uploads";
  if (size_t at = rest.find(kUploads); at != std::string_view::npos && at > 0) {
    std::string_view after = rest.substr(at + kUploads.size());
    if (after.empty() || after.front() == '/') {
      route.kind = RouteKind::kBlobUpload;
      route.name = std::string(rest.substr(0, at));
      // "/blobs/uploads/" starts one; "/blobs/uploads/<id>" continues it.
      if (after.size() > 1) route.reference = std::string(after.substr(1));
      return route;
    }
  }
  return route;
}

std::string RepositoryPath(std::string_view name) {
  std::string out = "/v2/";
  out += name;
  out += '/';
  return out;
}

std::string ManifestPath(const RepoName& repo, std::string_view reference) {
  return RepositoryPath(repo.str()) + "manifests/" + std::string(reference);
}

std::string BlobPath(const RepoName& repo, const Digest& digest) {
  return RepositoryPath(repo.str()) + "blobs/" + digest.str();
}

std::string TagsListPath(const RepoName& repo) { return RepositoryPath(repo.str()) + "tags/list"; }

std::string UploadPath(const RepoName& repo, std::string_view id) {
  return RepositoryPath(repo.str()) + "blobs/uploads/" + std::string(id);
}

}  // namespace hubcache
