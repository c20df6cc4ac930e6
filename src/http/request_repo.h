#pragma once
// The repository a registry API request names, as the cache keys it: the name
// in the path, qualified by containerd's ?ns= (docker.io, ghcr.io, ...). The
// one home of that rule for the handlers that answer the request and for the
// stats and access log that record it. Free function; no state.

#include <httplib.h>

#include <string>

#include "common/result.h"
#include "registry/repo_sources.h"
#include "registry/routes.h"

namespace hubcache {

// `route.name` unchanged without ?ns=; "<registry>/<name>" for a mirrored
// registry. NAME_UNKNOWN when ns= is repeated with two registries, or names
// one not mirrored here.
[[nodiscard]] Result<std::string> RequestRepoName(const httplib::Request& req, const Route& route,
                                                  const RepoSources& sources);

}  // namespace hubcache
