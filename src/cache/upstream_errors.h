#pragma once
// How an upstream HTTP status becomes one of our errors.

#include <string>

#include "common/result.h"

namespace hubcache {

// `unknown_kind` is what a 404 means here (kManifestUnknown, kBlobUnknown...).
Error UpstreamStatusError(int status, ErrorKind unknown_kind, const std::string& what);

// Whether a cached tag may be served stale after this upstream failure: the
// upstream is down, slow, broken, rate limiting or refusing us, as opposed to
// saying the tag does not exist.
bool AllowsStaleServe(const Error& error);

}  // namespace hubcache
