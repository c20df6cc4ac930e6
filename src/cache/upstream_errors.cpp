#include "cache/upstream_errors.h"

namespace hubcache {

Error UpstreamStatusError(int status, ErrorKind unknown_kind, const std::string& what) {
  std::string suffix = what + ": upstream answered HTTP " + std::to_string(status);
  switch (status) {
    case 404:
      return Error{unknown_kind, what + ": not found upstream"};
    case 401:
      return Error{ErrorKind::kUnauthorized, suffix + " (authentication required)"};
    case 403:
      return Error{ErrorKind::kDenied, suffix + " (access denied)"};
    case 429:
      return Error{ErrorKind::kTooManyRequests, suffix + " (rate limited)"};
    default:
      break;
  }
  if (status >= 500) return Error{ErrorKind::kUpstreamUnavailable, suffix};
  return Error{ErrorKind::kUpstreamInvalid, suffix};
}

Result<UpstreamResponse> ExpectOk(Result<UpstreamResponse> response, ErrorKind unknown_kind,
                                  const std::string& what, CacheStats& stats) {
  if (!response) {
    ++stats.upstream_errors;
    return response;
  }
  if (response->status != 200) {
    if (response->status != 404) ++stats.upstream_errors;
    return tl::unexpected(UpstreamStatusError(response->status, unknown_kind, what));
  }
  return response;
}

bool AllowsStaleServe(const Error& error) {
  switch (error.kind) {
    case ErrorKind::kUpstreamUnavailable:
    case ErrorKind::kUpstreamInvalid:
    case ErrorKind::kUnauthorized:
    case ErrorKind::kDenied:
    case ErrorKind::kTooManyRequests:
      return true;
    default:
      return false;
  }
}

}  // namespace hubcache
