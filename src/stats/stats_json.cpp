#include "stats/stats_json.h"

namespace hubcache {
namespace {

using Json = nlohmann::ordered_json;

Json Kind(const KindCounts& k) {
  return {{"requests", k.requests()},
          {"hits", k.hits},
          {"misses", k.misses},
          {"stale", k.stale},
          {"errors", k.errors}};
}

template <typename T>
Json OrNull(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json RouteJson(const RouteSnapshot& r) {
  Json status = Json::object();
  for (size_t c = 1; c < kStatusClasses; ++c) {
    if (uint64_t n = r.RequestsWithStatusClass(c); n > 0) status[std::to_string(c) + "xx"] = n;
  }
  Json cache = Json::object();
  for (size_t c = 1; c < kCacheResults; ++c) {
    if (uint64_t n = r.Requests(static_cast<CacheResult>(c)); n > 0)
      cache[CacheResultName(static_cast<CacheResult>(c))] = n;
  }
  return {{"requests", r.Requests()},
          {"status", status},
          {"cache", cache},
          {"bytes", r.BodyBytes()},
          {"latency_seconds",
           {{"count", r.latency.count},
            {"sum", r.latency.sum_s},
            {"p50", r.latency.Quantile(0.50)},
            {"p90", r.latency.Quantile(0.90)},
            {"p99", r.latency.Quantile(0.99)}}}};
}

Json Bucket(const BucketFigures& b) {
  if (!b.configured) return nullptr;
  return {{"bucket", b.bucket},
          {"endpoint", b.endpoint},
          {"available", b.available},
          {"last_error", b.last_error},
          {"failed_at_ms", b.failed_at_ms ? Json(b.failed_at_ms) : Json(nullptr)},
          {"requests", b.requests},
          {"errors", b.errors},
          {"bytes_sent", b.bytes_sent},
          {"bytes_received", b.bytes_received},
          {"latency_ms",
           {{"p50", b.latency.Quantile(0.5) * 1000}, {"p99", b.latency.Quantile(0.99) * 1000}}},
          {"blob_hits", b.blob_hits},
          {"blob_misses", b.blob_misses},
          {"manifest_hits", b.manifest_hits},
          {"tag_hits", b.tag_hits},
          {"copies", b.copies},
          {"copy_bytes", b.copy_bytes},
          {"copy_failures", b.copy_failures},
          {"copies_dropped", b.copies_dropped},
          {"corrupt_objects", b.corrupt_objects},
          {"skipped_unavailable", b.skipped_unavailable},
          {"redirects", b.redirects},
          {"stale_copies_aborted", b.stale_aborted},
          {"writes", b.writes},
          {"writes_pending", b.writes_pending},
          {"writes_dropped", b.writes_dropped},
          {"max_bytes", b.max_bytes},
          {"cache_bytes", b.measured_at_ms ? Json(b.cache_bytes) : Json(nullptr)},
          {"cache_objects", b.measured_at_ms ? Json(b.cache_objects) : Json(nullptr)},
          {"measured_at_ms", b.measured_at_ms ? Json(b.measured_at_ms) : Json(nullptr)},
          {"trimmed_objects", b.trimmed_objects},
          {"trimmed_bytes", b.trimmed_bytes}};
}

Json Prefetch(const PrefetchFigures& p) {
  return {{"enabled", p.enabled},
          {"max_fills", p.max_fills},
          {"max_bytes", p.max_bytes},
          {"active", p.active},
          {"bytes_in_flight", p.bytes_in_flight},
          {"queued", p.queued},
          {"peak_active", p.peak_active},
          {"peak_bytes", p.peak_bytes},
          {"manifests", p.manifests},
          {"started", p.started},
          {"skipped", p.skipped},
          {"dropped", p.dropped},
          {"failed", p.failed},
          {"joined", p.joined}};
}

Json Hosted(const HostedFigures& h) {
  Json list = nullptr;
  if (h.repository_list_known) {
    list = Json::array();
    for (const auto& repo : h.repository_list) {
      list.push_back({{"name", repo.name},
                      {"size_bytes", repo.size_bytes},
                      {"manifests", repo.manifests},
                      {"tags", repo.tags},
                      {"last_push_ms", repo.last_push_ms}});
    }
  }
  return {{"patterns", h.patterns},
          {"repositories", OrNull(h.repositories)},
          {"manifests", OrNull(h.manifests)},
          {"tags", OrNull(h.tags)},
          {"blobs", OrNull(h.blobs)},
          {"bytes", OrNull(h.bytes)},
          {"uploads_in_progress", OrNull(h.uploads_in_progress)},
          {"requests",
           {{"manifest", h.manifest_requests},
            {"blob", h.blob_requests},
            {"total", h.manifest_requests + h.blob_requests}}},
          {"bytes_served", h.served_bytes},
          {"uploads_started", h.uploads_started},
          {"uploads_purged", h.uploads_purged},
          {"push_blobs", h.push_blobs},
          {"push_bytes", h.push_bytes},
          {"push_manifests", h.push_manifests},
          {"push_digest_mismatches", h.push_digest_mismatches},
          {"push_refused", h.push_refused},
          {"deletes", h.deletes},
          {"repository_list", list}};
}

}  // namespace

nlohmann::ordered_json StatsJson(const StatsSnapshot& s) {
  Json routes = Json::object();
  uint64_t http_total = 0;
  for (size_t i = 0; i < s.routes.size() && i < kRouteClasses; ++i) {
    routes[RouteClassName(static_cast<RouteClass>(i))] = RouteJson(s.routes[i]);
    http_total += s.routes[i].Requests();
  }

  Json upstream_requests = Json::array();
  uint64_t upstream_total = 0;
  for (const auto& u : s.upstream_requests) {
    upstream_requests.push_back(
        {{"registry", u.registry}, {"method", u.method}, {"status", u.status}, {"count", u.count}});
    upstream_total += u.count;
  }
  Json registries = Json::array();
  for (const auto& u : s.upstreams) {
    uint64_t requests = 0;
    for (const auto& r : s.upstream_requests) requests += r.registry == u.registry ? r.count : 0;
    registries.push_back({{"registry", u.registry},
                          {"url", u.url},
                          {"requests_total", requests},
                          {"token_fetches", u.token_fetches},
                          {"transport_errors", u.transport_errors},
                          {"connections_refused", u.connections_refused},
                          {"bytes_received", u.bytes_received}});
  }

  Json rejected = Json::object();
  for (const auto& [reason, n] : s.rejected) rejected[reason] = n;

  Json top = Json::array();
  for (size_t i = 0; i < s.repositories_served.size() && i < kTopRepositories; ++i) {
    const auto& r = s.repositories_served[i];
    top.push_back(
        {{"repository", r.repository}, {"bytes_served", r.bytes}, {"requests", r.requests}});
  }

  Json cached = nullptr;
  if (s.cached_known) {
    cached = Json::array();
    for (const auto& repo : s.cached) {
      Json tags = Json::array();
      for (const auto& t : repo.tags) {
        tags.push_back({{"tag", t.tag},
                        {"digest", t.digest},
                        {"size_bytes", t.size_bytes},
                        {"last_used_ms", t.last_used_ms}});
      }
      cached.push_back({{"name", repo.name},
                        {"size_bytes", repo.size_bytes},
                        {"last_used_ms", repo.last_used_ms},
                        {"tags", tags}});
    }
  }

  std::optional<uint64_t> entries;
  if (s.cache_blobs && s.cache_manifests) entries = *s.cache_blobs + *s.cache_manifests;

  return {
      {"version", s.version},
      {"now_ms", s.now_ms},
      {"started_at_ms", s.started_ms},
      {"uptime_seconds", s.uptime_s},
      {"requests",
       {{"manifest", Kind(s.manifest)},
        {"blob", Kind(s.blob)},
        {"tag_revalidation", Kind(s.tag_revalidation)}}},
      {"http", {{"requests", http_total}, {"routes", routes}}},
      {"bytes",
       {{"served", s.served_bytes()},
        {"served_from_cache", s.served_from_cache_bytes},
        {"served_from_upstream", s.served_from_upstream_bytes},
        {"fetched_upstream", s.fetched_bytes()},
        {"fetched_upstream_blobs", s.fetched_blob_bytes},
        {"fetched_upstream_manifests", s.fetched_manifest_bytes},
        {"saved", s.saved_bytes()}}},
      {"hit_ratio",
       {{"requests", OrNull(s.hit_ratio_requests())}, {"bytes", OrNull(s.hit_ratio_bytes())}}},
      {"fills",
       {{"in_flight", s.fills_in_flight},
        {"started", s.fills_started},
        {"coalesced", s.fills_coalesced},
        {"failed", s.fills_failed}}},
      {"cache",
       {{"size_bytes", OrNull(s.cache_size_bytes)},
        {"max_size_bytes", s.cache_max_size_bytes},
        {"entries", OrNull(entries)},
        {"blobs", OrNull(s.cache_blobs)},
        {"manifests", OrNull(s.cache_manifests)},
        {"evictions", s.evictions},
        {"evicted_bytes", s.evicted_bytes},
        {"write_errors", s.cache_write_errors}}},
      {"upstream",
       {{"requests", upstream_requests},
        {"requests_total", upstream_total},
        {"registries", registries},
        {"token_fetches", s.upstream_token_fetches},
        {"transport_errors", s.upstream_transport_errors},
        {"connections_refused", s.upstream_connections_refused},
        {"errors", s.upstream_errors},
        {"bytes_received", s.upstream_bytes_received},
        {"ratelimit",
         {{"limit", OrNull(s.ratelimit_limit)},
          {"remaining", OrNull(s.ratelimit_remaining)},
          {"seen_at_ms", s.ratelimit_limit || s.ratelimit_remaining ? Json(s.ratelimit_seen_ms)
                                                                    : Json(nullptr)}}}}},
      {"top_repositories", top},
      {"repositories", cached},
      {"hosted", Hosted(s.hosted)},
      // The S3 bucket behind the local cache (L2); null without one.
      {"s3", Bucket(s.bucket)},
      {"prefetch", Prefetch(s.prefetch)},
      {"access_log",
       {{"enabled", s.access_log_enabled},
        {"format", s.access_log_format},
        {"written", s.access_log_written},
        {"dropped", s.access_log_dropped}}},
      {"admin", {{"enabled", s.admin_enabled}}},
      {"limits",
       {{"connections_open", s.connections_open},
        {"rejected", rejected},
        {"auth_failures", s.auth_failures},
        {"admin_auth_failures", s.admin_auth_failures}}},
  };
}

nlohmann::ordered_json HistoryJson(const std::vector<HistorySample>& samples, int64_t interval_ms) {
  Json out = Json::array();
  for (const auto& h : samples) {
    out.push_back({{"t_ms", h.t_ms},
                   {"hits", h.hits},
                   {"misses", h.misses},
                   {"served_bytes", h.served_bytes},
                   {"served_from_cache_bytes", h.served_from_cache_bytes},
                   {"fetched_bytes", h.fetched_bytes}});
  }
  return {{"interval_ms", interval_ms}, {"samples", out}};
}

}  // namespace hubcache
