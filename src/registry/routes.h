#pragma once
// Splits a request path into the registry API endpoint it addresses. Only
// splits: the name and reference are validated by reference.h afterwards.

#include <string>
#include <string_view>

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

}  // namespace hubcache
