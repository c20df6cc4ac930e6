#pragma once
// How an upstream HTTP status becomes one of our errors. Pure functions but
// ExpectStatus, which counts into the CacheStats it is given (atomics).

#include <string>

#include "cache/stats.h"
#include "common/result.h"
#include "upstream/upstream_client.h"

namespace hubcache {

// `unknown_kind` is what a 404 means here (kManifestUnknown, kBlobUnknown...).
Error UpstreamStatusError(int status, ErrorKind unknown_kind, const std::string& what);

// An upstream answer the caller needs with status 200: the response, or the
// error it means (a transport failure as it came, a status as
// UpstreamStatusError says). Counts stats.upstream_errors for each failure but
// a 404, which is the upstream saying "not there", not failing.
[[nodiscard]] Result<UpstreamResponse> ExpectOk(Result<UpstreamResponse> response,
                                                ErrorKind unknown_kind, const std::string& what,
                                                CacheStats& stats);

// Whether a cached tag may be served stale after this upstream failure: the
// upstream is down, slow, broken, rate limiting or refusing us, as opposed to
// saying the tag does not exist.
bool AllowsStaleServe(const Error& error);

}  // namespace hubcache
