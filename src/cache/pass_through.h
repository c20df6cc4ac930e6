#pragma once
// Serving a blob straight from the upstream without caching it: the degraded
// path when the cache cannot be written (disk full, I/O error, read-only).
//
// The bytes are still verified: the hasher arrives holding the prefix the
// client already got (read back from the fill's temp file), the rest streams
// from the upstream with a Range request, and the client's final byte is held
// back until the whole blob hashed to its digest.

#include <chrono>
#include <cstdint>
#include <functional>

#include "common/result.h"
#include "common/sha256.h"
#include "registry/reference.h"
#include "upstream/upstream_set.h"

namespace hubcache {

struct PassThroughRequest {
  const RepoName* repo;
  const Digest* digest;
  uint64_t total;       // the blob's size
  uint64_t from;        // first byte to fetch; hasher holds [0, from)
  uint64_t send_first;  // the client's remaining window [send_first, send_last]
  uint64_t send_last;
  std::chrono::milliseconds timeout;
};

// Streams and verifies; `write` gets the window's bytes in order. Fails (and
// the caller cuts the response) on any upstream error or digest mismatch.
[[nodiscard]] Status StreamFromUpstream(UpstreamSet& upstream, const PassThroughRequest& request,
                                        Sha256& hasher,
                                        const std::function<bool(const char*, size_t)>& write);

}  // namespace hubcache
