#pragma once
// Every figure the mirror reports, as plain numbers at one moment: what /stats
// renders as JSON (stats_json.h), /metrics as Prometheus text (prometheus.h)
// and the dashboard draws. Filled by the HTTP layer from the cache's counters;
// this module knows nothing of where they come from.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stats/histogram.h"
#include "stats/http_metrics.h"
#include "stats/repo_counters.h"

namespace hubcache {

// Requests of one kind, partitioned by outcome: requests = hits + misses +
// stale + errors.
struct KindCounts {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t stale = 0;
  uint64_t errors = 0;
  uint64_t requests() const { return hits + misses + stale + errors; }
};

struct UpstreamStatusCount {
  std::string registry;  // "docker.io", "ghcr.io", ...
  std::string method;    // "GET", "HEAD"
  int status = 0;        // HTTP status; 0 = no response (transport error)
  uint64_t count = 0;
};

struct CachedTag {
  std::string tag;  // empty: a manifest cached by digest only
  std::string digest;
  uint64_t size_bytes = 0;   // the manifest and every cached object it references
  int64_t last_used_ms = 0;  // unix ms, last served (or cached)
};

struct CachedRepository {
  std::string name;
  uint64_t size_bytes = 0;  // objects shared between tags counted once
  int64_t last_used_ms = 0;
  std::vector<CachedTag> tags;
};

struct HostedRepository {
  std::string name;
  uint64_t size_bytes = 0;  // blobs linked to it (shared blobs count in each repository)
  uint64_t manifests = 0;
  std::vector<std::string> tags;  // sorted
  int64_t last_push_ms = 0;       // unix ms, the latest manifest or tag pushed
};

// Hosted repositories (pushed content): apart from the cache's figures, never
// in its size, hit ratio or errors.
struct HostedFigures {
  std::vector<std::string> patterns;  // HUBCACHE_HOSTED, normalised

  // What the index holds; unknown when it cannot tell.
  std::optional<uint64_t> repositories;
  std::optional<uint64_t> manifests;
  std::optional<uint64_t> tags;
  std::optional<uint64_t> blobs;
  std::optional<uint64_t> bytes;  // blob bytes
  std::optional<uint64_t> uploads_in_progress;

  // Requests to hosted repositories' manifests and blobs (pulls, pushes of
  // manifests, deletes; any status), and the body bytes answered to them.
  uint64_t manifest_requests = 0;
  uint64_t blob_requests = 0;
  uint64_t served_bytes = 0;

  uint64_t uploads_started = 0;
  uint64_t uploads_purged = 0;  // abandoned uploads removed
  uint64_t push_blobs = 0;      // blobs committed by uploads
  uint64_t push_bytes = 0;      // upload body bytes received
  uint64_t push_manifests = 0;
  uint64_t push_digest_mismatches = 0;
  uint64_t push_refused = 0;  // pushes to mirrored names, or by users who may not push
  uint64_t deletes = 0;       // manifests and tags deleted

  std::vector<HostedRepository> repository_list;  // by name
  bool repository_list_known = false;             // false: not asked, or the index failed
};

// The S3 bucket behind the local cache (REGISTRY_STORAGE=s3), when configured.
struct BucketFigures {
  bool configured = false;
  std::string bucket;
  std::string endpoint;
  bool available = true;   // false: marked down after a failure, retried soon
  std::string last_error;  // "" when none
  int64_t failed_at_ms = 0;

  uint64_t requests = 0;  // HTTP requests to the bucket
  uint64_t errors = 0;    // failed ones (transport, unexpected status)
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  HistogramSnapshot latency;

  uint64_t blob_hits = 0;  // L1 misses the bucket answered
  uint64_t blob_misses = 0;
  uint64_t manifest_hits = 0;
  uint64_t tag_hits = 0;
  uint64_t copies = 0;  // blobs copied into the bucket
  uint64_t copy_bytes = 0;
  uint64_t copy_failures = 0;
  uint64_t copies_dropped = 0;
  uint64_t corrupt_objects = 0;
  uint64_t skipped_unavailable = 0;
  uint64_t redirects = 0;      // clients sent to a presigned URL
  uint64_t stale_aborted = 0;  // abandoned multipart copies aborted
  uint64_t writes = 0;         // manifests and tag records written behind the answers
  uint64_t writes_pending = 0;
  uint64_t writes_dropped = 0;
  // HUBCACHE_L2_MAX_SIZE (0: none) and what the last check found under cache/.
  uint64_t max_bytes = 0;
  uint64_t cache_bytes = 0;
  uint64_t cache_objects = 0;
  int64_t measured_at_ms = 0;  // 0: never measured
  uint64_t trimmed_objects = 0;
  uint64_t trimmed_bytes = 0;
};

// Prefetch on manifest (cache/prefetcher.h).
struct PrefetchFigures {
  bool enabled = false;
  uint64_t max_fills = 0;
  uint64_t max_bytes = 0;
  uint64_t active = 0;           // prefetch fills running now
  uint64_t bytes_in_flight = 0;  // their announced sizes
  uint64_t queued = 0;           // blobs waiting for a slot
  uint64_t peak_active = 0;      // the most ever at once
  uint64_t peak_bytes = 0;
  uint64_t manifests = 0;  // manifests whose blobs were queued
  uint64_t started = 0;    // fills the prefetcher started
  uint64_t skipped = 0;    // blobs cached or already being fetched
  uint64_t dropped = 0;    // not queued (queue full) or dropped (cache not writable)
  uint64_t failed = 0;     // fills it started that failed, or could not start
  uint64_t joined = 0;     // client GETs that joined a prefetch fill
};

struct StatsSnapshot {
  std::string version;
  int64_t now_ms = 0;
  int64_t started_ms = 0;
  double uptime_s = 0;

  // Registry requests by kind. manifest and blob: by the response's
  // X-Hubcache-Cache (misses include pass-through; errors: no cache result,
  // status >= 400; hosted repositories' requests are in `hosted` only). tag_revalidation:
  // hits = the upstream confirmed the cached digest, misses = the tag moved and
  // was fetched, stale = the upstream failed and the cached tag was served,
  // errors = it failed with nothing to serve.
  KindCounts manifest;
  KindCounts blob;
  KindCounts tag_revalidation;

  // Every HTTP request by route (index: RouteClass).
  std::vector<RouteSnapshot> routes;

  // Body bytes sent to clients for manifests and blobs, by where they came
  // from (cache: hit or stale; upstream: miss or pass-through, streamed from a
  // fill or the upstream, or fetched).
  uint64_t served_from_cache_bytes = 0;
  uint64_t served_from_upstream_bytes = 0;
  // Manifest and blob bytes downloaded from the upstream into the cache.
  uint64_t fetched_blob_bytes = 0;
  uint64_t fetched_manifest_bytes = 0;

  uint64_t fills_in_flight = 0;
  uint64_t fills_started = 0;
  uint64_t fills_coalesced = 0;  // clients that joined a fill already in flight
  uint64_t fills_failed = 0;

  std::optional<uint64_t> cache_size_bytes;  // unknown when the index cannot tell
  uint64_t cache_max_size_bytes = 0;         // 0 = unlimited
  std::optional<uint64_t> cache_blobs;
  std::optional<uint64_t> cache_manifests;
  uint64_t evictions = 0;
  uint64_t evicted_bytes = 0;
  uint64_t cache_write_errors = 0;

  std::vector<UpstreamStatusCount> upstream_requests;
  // Each upstream's own counters; the upstream_* totals below are their sums.
  struct Upstream {
    std::string registry;  // "docker.io", "ghcr.io", ...
    std::string url;
    uint64_t token_fetches = 0;
    uint64_t transport_errors = 0;
    uint64_t connections_refused = 0;
    uint64_t bytes_received = 0;
  };
  std::vector<Upstream> upstreams;
  uint64_t upstream_token_fetches = 0;
  uint64_t upstream_transport_errors = 0;
  uint64_t upstream_connections_refused = 0;  // redirects/realms to refused addresses
  uint64_t upstream_errors = 0;  // failures the cache met (transport, 5xx, 429, bad bytes)
  uint64_t upstream_bytes_received = 0;
  std::optional<int64_t> ratelimit_limit;  // last Docker Hub RateLimit-Limit seen
  std::optional<int64_t> ratelimit_remaining;
  int64_t ratelimit_seen_ms = 0;

  std::vector<RepoUsage> repositories_served;  // most bytes first
  std::vector<CachedRepository> cached;        // what the cache holds, by name
  bool cached_known = false;                   // false: the index could not list it

  bool access_log_enabled = false;
  std::string access_log_format;
  uint64_t access_log_written = 0;
  uint64_t access_log_dropped = 0;

  HostedFigures hosted;
  BucketFigures bucket;
  PrefetchFigures prefetch;

  bool admin_enabled = false;

  // The HTTP layer's limits: connections open now, refusals by reason
  // ("connections", "header_timeout", ...), failed credentials by kind.
  int64_t connections_open = 0;
  std::vector<std::pair<std::string, uint64_t>> rejected;
  uint64_t auth_failures = 0;
  uint64_t admin_auth_failures = 0;

  // Derived figures.
  uint64_t served_bytes() const { return served_from_cache_bytes + served_from_upstream_bytes; }
  uint64_t fetched_bytes() const { return fetched_blob_bytes + fetched_manifest_bytes; }
  // Bandwidth saved: bytes served beyond those fetched from the upstream (cache
  // hits and clients that joined a fill); 0 when more was fetched than served.
  uint64_t saved_bytes() const;
  // (hits + stale) / (hits + misses + stale) over manifests and blobs; none
  // before the first such request.
  std::optional<double> hit_ratio_requests() const;
  // served from cache / served; none before the first byte.
  std::optional<double> hit_ratio_bytes() const;
};

}  // namespace hubcache
