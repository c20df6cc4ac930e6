#pragma once
// Counters of what the cache did, bumped lock-free on the data path and read by
// the stats endpoints. Every degraded path (stale serve, failed fill, upstream
// error) has a counter here as well as a warn log line.

#include <atomic>
#include <cstdint>

namespace hubcache {

struct CacheStats {
  std::atomic<uint64_t> manifest_hits{0};
  // Hosted repositories: pushes and their pulls.
  std::atomic<uint64_t> uploads_started{0};
  std::atomic<uint64_t> uploads_purged{0};
  std::atomic<uint64_t> push_blobs{0};  // blobs committed by uploads
  std::atomic<uint64_t> push_bytes{0};  // upload body bytes received
  std::atomic<uint64_t> push_manifests{0};
  std::atomic<uint64_t> push_digest_mismatches{0};
  std::atomic<uint64_t> push_refused{0};  // pushes to mirrored names, or by non-push users
  std::atomic<uint64_t> hosted_blob_hits{0};
  std::atomic<uint64_t> hosted_manifest_hits{0};
  std::atomic<uint64_t> hosted_deletes{0};
  std::atomic<uint64_t> manifest_misses{0};
  std::atomic<uint64_t> tag_revalidations{0};
  std::atomic<uint64_t> stale_serves{0};
  std::atomic<uint64_t> blob_hits{0};
  std::atomic<uint64_t> blob_misses{0};
  std::atomic<uint64_t> fills_started{0};
  std::atomic<uint64_t> fills_joined{0};
  std::atomic<uint64_t> prefetch_joined{0};  // client GETs that joined a prefetch fill
  std::atomic<uint64_t> fills_failed{0};
  std::atomic<uint64_t> upstream_errors{0};
  std::atomic<uint64_t> cache_write_errors{0};
  std::atomic<uint64_t> bytes_from_upstream{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> evicted_bytes{0};
  std::atomic<uint64_t> pass_through_serves{0};
  std::atomic<uint64_t> admin_auth_failures{0};
  std::atomic<uint64_t> auth_failures{0};            // wrong pull credentials
  std::atomic<uint64_t> auth_rate_limited{0};        // refused after too many failures
  std::atomic<uint64_t> client_limit_rejections{0};  // over the per-client request limit
  // Manifest bytes downloaded (bytes_from_upstream counts blob bytes).
  std::atomic<uint64_t> manifest_bytes_from_upstream{0};
  // Outcomes of tag_revalidations: the upstream confirmed the cached digest,
  // the tag moved and was fetched, the cached tag was served stale, or it failed.
  std::atomic<uint64_t> tag_revalidations_unchanged{0};
  std::atomic<uint64_t> tag_revalidations_changed{0};
  std::atomic<uint64_t> tag_revalidations_stale{0};
  std::atomic<uint64_t> tag_revalidations_failed{0};
};

}  // namespace hubcache
