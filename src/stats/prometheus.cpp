#include "stats/prometheus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace hubcache {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP hubcache_{} {}\n# TYPE hubcache_{} {}\n", name, help, name, type);
  }
  void Sample(const std::string& name, const Labels& labels, uint64_t value) {
    Line(name, labels, std::to_string(value));
  }
  void Sample(const std::string& name, const Labels& labels, int64_t value) {
    Line(name, labels, std::to_string(value));
  }
  void Sample(const std::string& name, const Labels& labels, double value) {
    Line(name, labels, FormatValue(value));
  }
  std::string Take() { return std::move(out_); }

 private:
  void Line(const std::string& name, const Labels& labels, const std::string& value) {
    out_ += "hubcache_";
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string out_;
};

// A counter family with one unlabelled sample.
void Counter(Writer& w, const char* name, const char* help, uint64_t value) {
  w.Family(name, "counter", help);
  w.Sample(name, {}, value);
}

void Gauge(Writer& w, const char* name, const char* help, uint64_t value) {
  w.Family(name, "gauge", help);
  w.Sample(name, {}, value);
}

void Histogram(Writer& w, const std::string& name, const Labels& labels,
               const HistogramSnapshot& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    Labels with_le = labels;
    with_le.emplace_back("le", i < h.bounds_s.size() ? FormatValue(h.bounds_s[i]) : "+Inf");
    w.Sample(name + "_bucket", with_le, cumulative);
  }
  w.Sample(name + "_sum", labels, h.sum_s);
  w.Sample(name + "_count", labels, h.count);
}

}  // namespace

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string PrometheusText(const StatsSnapshot& s) {
  Writer w;
  w.Family("build_info", "gauge", "Always 1; the version of the running hubcache.");
  w.Sample("build_info", {{"version", s.version}}, uint64_t{1});
  w.Family("start_time_seconds", "gauge", "When the process started, in unix seconds.");
  w.Sample("start_time_seconds", {}, static_cast<double>(s.started_ms) / 1000.0);
  w.Family("uptime_seconds", "gauge", "Seconds since the process started.");
  w.Sample("uptime_seconds", {}, s.uptime_s);

  w.Family("requests_total", "counter",
           "Registry requests by kind (manifest, blob, tag_revalidation) and result (hit, miss, "
           "stale, error).");
  for (const auto& [kind, counts] :
       {std::pair<const char*, const KindCounts*>{"manifest", &s.manifest},
        {"blob", &s.blob},
        {"tag_revalidation", &s.tag_revalidation}}) {
    for (const auto& [result, value] : {std::pair<const char*, uint64_t>{"hit", counts->hits},
                                        {"miss", counts->misses},
                                        {"stale", counts->stale},
                                        {"error", counts->errors}}) {
      w.Sample("requests_total", {{"kind", kind}, {"result", result}}, value);
    }
  }

  w.Family("http_requests_total", "counter",
           "HTTP requests by route, cache result and status class.");
  for (size_t r = 0; r < s.routes.size() && r < kRouteClasses; ++r) {
    for (size_t c = 0; c < kCacheResults; ++c) {
      for (size_t sc = 0; sc < kStatusClasses; ++sc) {
        uint64_t n = s.routes[r].requests[c][sc];
        if (n == 0) continue;
        w.Sample("http_requests_total",
                 {{"route", RouteClassName(static_cast<RouteClass>(r))},
                  {"cache", CacheResultName(static_cast<CacheResult>(c))},
                  {"code", sc == 0 ? std::string("none") : std::to_string(sc) + "xx"}},
                 n);
      }
    }
  }
  w.Family("http_response_body_bytes_total", "counter",
           "Response body bytes written to clients, by route and cache result.");
  for (size_t r = 0; r < s.routes.size() && r < kRouteClasses; ++r) {
    for (size_t c = 0; c < kCacheResults; ++c) {
      if (uint64_t n = s.routes[r].body_bytes[c]; n > 0) {
        w.Sample("http_response_body_bytes_total",
                 {{"route", RouteClassName(static_cast<RouteClass>(r))},
                  {"cache", CacheResultName(static_cast<CacheResult>(c))}},
                 n);
      }
    }
  }
  w.Family("http_request_duration_seconds", "histogram",
           "Time from the request's headers to the last byte of its response, by route.");
  for (size_t r = 0; r < s.routes.size() && r < kRouteClasses; ++r) {
    if (s.routes[r].latency.count == 0) continue;
    Histogram(w, "http_request_duration_seconds",
              {{"route", RouteClassName(static_cast<RouteClass>(r))}}, s.routes[r].latency);
  }

  w.Family("served_bytes_total", "counter",
           "Manifest and blob body bytes served to clients, by source (cache, upstream, or "
           "hosted: answers to requests for hosted repositories).");
  w.Sample("served_bytes_total", {{"source", "cache"}}, s.served_from_cache_bytes);
  w.Sample("served_bytes_total", {{"source", "upstream"}}, s.served_from_upstream_bytes);
  w.Sample("served_bytes_total", {{"source", "hosted"}}, s.hosted.served_bytes);
  w.Family("upstream_fetched_bytes_total", "counter",
           "Manifest and blob bytes downloaded from the upstream, by kind.");
  w.Sample("upstream_fetched_bytes_total", {{"kind", "blob"}}, s.fetched_blob_bytes);
  w.Sample("upstream_fetched_bytes_total", {{"kind", "manifest"}}, s.fetched_manifest_bytes);
  Gauge(w, "bandwidth_saved_bytes", "Bytes served beyond those fetched from the upstream.",
        s.saved_bytes());
  auto by_requests = s.hit_ratio_requests();
  auto by_bytes = s.hit_ratio_bytes();
  if (by_requests || by_bytes) {
    w.Family("hit_ratio", "gauge",
             "Share served from cache, by requests (hit or stale) and by body bytes.");
    if (by_requests) w.Sample("hit_ratio", {{"by", "requests"}}, *by_requests);
    if (by_bytes) w.Sample("hit_ratio", {{"by", "bytes"}}, *by_bytes);
  }

  Gauge(w, "fills_in_flight", "Blob downloads from the upstream in progress.", s.fills_in_flight);
  Counter(w, "fills_started_total", "Blob downloads started.", s.fills_started);
  Counter(w, "fills_coalesced_total",
          "Requests that joined a blob download already in flight instead of starting one.",
          s.fills_coalesced);
  Counter(w, "fills_failed_total", "Blob downloads that failed (nothing was kept).",
          s.fills_failed);

  if (s.cache_size_bytes) {
    Gauge(w, "cache_size_bytes", "Bytes of blobs and manifests in the cache.", *s.cache_size_bytes);
  }
  Gauge(w, "cache_max_size_bytes", "The cache's size cap; 0 = unlimited.", s.cache_max_size_bytes);
  if (s.cache_blobs && s.cache_manifests) {
    w.Family("cache_objects", "gauge", "Objects in the cache, by kind.");
    w.Sample("cache_objects", {{"kind", "blob"}}, *s.cache_blobs);
    w.Sample("cache_objects", {{"kind", "manifest"}}, *s.cache_manifests);
  }
  Counter(w, "evictions_total", "Objects evicted from the cache.", s.evictions);
  Counter(w, "evicted_bytes_total", "Bytes evicted from the cache.", s.evicted_bytes);
  Counter(w, "cache_write_errors_total", "Failed writes to the cache (disk full, I/O errors).",
          s.cache_write_errors);

  const HostedFigures& h = s.hosted;
  if (h.bytes) {
    Gauge(w, "hosted_bytes",
          "Bytes of blobs in hosted repositories (pushed here; not in the cache's size).",
          *h.bytes);
  }
  if (h.blobs) Gauge(w, "hosted_blobs", "Blobs in hosted repositories.", *h.blobs);
  if (h.manifests) Gauge(w, "hosted_manifests", "Manifests in hosted repositories.", *h.manifests);
  if (h.tags) Gauge(w, "hosted_tags", "Tags in hosted repositories.", *h.tags);
  if (h.repositories) {
    Gauge(w, "hosted_repositories", "Hosted repositories with at least one manifest.",
          *h.repositories);
  }
  if (h.uploads_in_progress) {
    Gauge(w, "hosted_uploads_in_progress", "Blob uploads started and not yet finished.",
          *h.uploads_in_progress);
  }
  Counter(w, "push_uploads_started_total", "Blob uploads started.", h.uploads_started);
  Counter(w, "push_uploads_purged_total", "Abandoned blob uploads purged.", h.uploads_purged);
  Counter(w, "push_blobs_total", "Blobs committed by uploads.", h.push_blobs);
  Counter(w, "push_bytes_total", "Blob upload body bytes received.", h.push_bytes);
  Counter(w, "push_manifests_total", "Manifests pushed.", h.push_manifests);
  Counter(w, "push_digest_mismatches_total",
          "Uploads refused because their content did not match the digest given.",
          h.push_digest_mismatches);
  Counter(w, "push_refused_total",
          "Pushes refused: to a mirrored (not hosted) name, or by a user who may not push.",
          h.push_refused);
  Counter(w, "hosted_deletes_total", "Hosted manifests and tags deleted.", h.deletes);

  {
    const PrefetchFigures& p = s.prefetch;
    Gauge(w, "prefetch_active", "Blobs being prefetched after a manifest GET.", p.active);
    Gauge(w, "prefetch_bytes_in_flight", "Announced bytes of the blobs being prefetched.",
          p.bytes_in_flight);
    Gauge(w, "prefetch_queued", "Blobs waiting for a prefetch slot.", p.queued);
    Counter(w, "prefetch_started_total", "Blob fills started by prefetch.", p.started);
    Counter(w, "prefetch_skipped_total", "Blobs not prefetched: cached or already being fetched.",
            p.skipped);
    Counter(w, "prefetch_dropped_total",
            "Blobs not prefetched: queue full, or the cache could not take a file.", p.dropped);
    Counter(w, "prefetch_failed_total", "Prefetch fills that failed or could not start.", p.failed);
    Counter(w, "prefetch_joined_total", "Client blob GETs that joined a prefetch fill.", p.joined);
  }

  if (const BucketFigures& b = s.bucket; b.configured) {
    Gauge(w, "s3_available", "1 while the S3 bucket (L2) is used; 0 while marked down.",
          b.available ? 1 : 0);
    Counter(w, "s3_requests_total", "HTTP requests to the S3 bucket.", b.requests);
    Counter(w, "s3_errors_total", "Failed requests to the S3 bucket (transport, status).",
            b.errors);
    Counter(w, "s3_sent_bytes_total", "Bytes sent to the S3 bucket.", b.bytes_sent);
    Counter(w, "s3_received_bytes_total", "Bytes received from the S3 bucket.", b.bytes_received);
    w.Family("s3_request_duration_seconds", "histogram",
             "Duration of requests to the S3 bucket (blob copies excluded).");
    Histogram(w, "s3_request_duration_seconds", {}, b.latency);
    w.Family("s3_lookups_total", "counter",
             "L1 misses looked up in the S3 bucket, by kind and result.");
    w.Sample("s3_lookups_total", {{"kind", "blob"}, {"result", "hit"}}, b.blob_hits);
    w.Sample("s3_lookups_total", {{"kind", "blob"}, {"result", "miss"}}, b.blob_misses);
    w.Sample("s3_lookups_total", {{"kind", "manifest"}, {"result", "hit"}}, b.manifest_hits);
    w.Sample("s3_lookups_total", {{"kind", "tag"}, {"result", "hit"}}, b.tag_hits);
    Counter(w, "s3_blob_copies_total", "Blobs copied into the S3 bucket.", b.copies);
    Counter(w, "s3_blob_copy_bytes_total", "Bytes of blobs copied into the S3 bucket.",
            b.copy_bytes);
    Counter(w, "s3_blob_copy_failures_total", "Blob copies into the S3 bucket that failed.",
            b.copy_failures);
    Counter(w, "s3_blob_copies_dropped_total",
            "Blob copies not made (queue full, bucket marked down, shutdown).", b.copies_dropped);
    Counter(w, "s3_corrupt_objects_total",
            "Objects in the S3 bucket that did not match their digest (removed).",
            b.corrupt_objects);
    Counter(w, "s3_record_writes_total",
            "Manifests and tag records written into the S3 bucket behind the answers.", b.writes);
    Gauge(w, "s3_record_writes_pending", "Manifests and tag records queued for the S3 bucket.",
          b.writes_pending);
    Counter(w, "s3_record_writes_dropped_total",
            "Manifests and tag records not written (queue full, bucket marked down, shutdown).",
            b.writes_dropped);
    Gauge(w, "s3_cache_max_bytes", "HUBCACHE_L2_MAX_SIZE (0: no cap, lifecycle rules).",
          b.max_bytes);
    if (b.measured_at_ms) {
      Gauge(w, "s3_cache_bytes", "Bytes of cached blobs and manifests in the bucket, last checked.",
            b.cache_bytes);
    }
    Counter(w, "s3_trimmed_objects_total", "Cached objects removed from the bucket by its cap.",
            b.trimmed_objects);
    Counter(w, "s3_trimmed_bytes_total", "Bytes removed from the bucket by its cap.",
            b.trimmed_bytes);
    Counter(w, "s3_redirects_total",
            "Blob GETs answered with a redirect to a presigned URL of the S3 bucket.", b.redirects);
  }

  w.Family("upstream_requests_total", "counter",
           "HTTP requests to each upstream registry by method and status (code none: no "
           "response).");
  for (const auto& u : s.upstream_requests) {
    w.Sample("upstream_requests_total",
             {{"registry", u.registry},
              {"method", u.method},
              {"code", u.status == 0 ? "none" : std::to_string(u.status)}},
             u.count);
  }
  auto per_upstream = [&](const char* name, const char* help,
                          uint64_t StatsSnapshot::Upstream::*field) {
    w.Family(name, "counter", help);
    for (const auto& u : s.upstreams) w.Sample(name, {{"registry", u.registry}}, u.*field);
  };
  per_upstream("upstream_token_fetches_total",
               "Bearer tokens requested from each upstream's realm.",
               &StatsSnapshot::Upstream::token_fetches);
  per_upstream("upstream_transport_errors_total",
               "Upstream requests that got no HTTP response (DNS, connect, TLS, timeout).",
               &StatsSnapshot::Upstream::transport_errors);
  per_upstream("upstream_connections_refused_total",
               "Connections not opened: a redirect or token realm pointed at an internal "
               "address or at hubcache itself.",
               &StatsSnapshot::Upstream::connections_refused);
  Counter(w, "upstream_errors_total",
          "Upstream failures the cache met: transport errors, 5xx, 429, bad bytes.",
          s.upstream_errors);
  per_upstream("upstream_received_bytes_total", "Body bytes received from each upstream.",
               &StatsSnapshot::Upstream::bytes_received);
  if (s.ratelimit_limit) {
    w.Family("upstream_ratelimit_limit", "gauge",
             "The last RateLimit-Limit the upstream sent (Docker Hub pulls per window).");
    w.Sample("upstream_ratelimit_limit", {}, *s.ratelimit_limit);
  }
  if (s.ratelimit_remaining) {
    w.Family("upstream_ratelimit_remaining", "gauge",
             "The last RateLimit-Remaining the upstream sent.");
    w.Sample("upstream_ratelimit_remaining", {}, *s.ratelimit_remaining);
  }

  if (!s.repositories_served.empty()) {
    w.Family("repository_served_bytes_total", "counter",
             "Manifest and blob body bytes served, by repository.");
    for (const auto& r : s.repositories_served)
      w.Sample("repository_served_bytes_total", {{"repository", r.repository}}, r.bytes);
    w.Family("repository_requests_total", "counter",
             "Successful manifest and blob requests, by repository.");
    for (const auto& r : s.repositories_served)
      w.Sample("repository_requests_total", {{"repository", r.repository}}, r.requests);
  }

  if (s.access_log_enabled) {
    w.Family("access_log_records_total", "counter",
             "Access log records by outcome (written, or dropped when the writer fell behind).");
    w.Sample("access_log_records_total", {{"outcome", "written"}}, s.access_log_written);
    w.Sample("access_log_records_total", {{"outcome", "dropped"}}, s.access_log_dropped);
  }

  Gauge(w, "http_connections_open", "Client connections open, idle keep-alive ones included.",
        static_cast<uint64_t>(std::max<int64_t>(0, s.connections_open)));
  w.Family("http_rejected_total", "counter",
           "Connections and requests refused by a limit, by reason (connections: 503, "
           "connections_per_client and requests_per_client and auth_rate_limited: 429, "
           "header_timeout: 408, request_line_too_long: 414, headers_too_large and "
           "too_many_headers: 431, malformed_request: 400, body_too_large: 413, unsupported: "
           "501, 505 or 417).");
  for (const auto& [reason, n] : s.rejected)
    w.Sample("http_rejected_total", {{"reason", reason}}, n);
  w.Family("auth_failures_total", "counter", "Requests with wrong credentials, by kind.");
  w.Sample("auth_failures_total", {{"kind", "pull"}}, s.auth_failures);
  w.Sample("auth_failures_total", {{"kind", "admin"}}, s.admin_auth_failures);
  return w.Take();
}

}  // namespace hubcache
