#pragma once
// What the HTTP front served: every request counted by route, cache result and
// status class, the body bytes it sent, and its duration in a histogram per
// route. Fed once per request after the response was written; every update is
// a lock-free atomic add, so counting costs a cache hit no lock. A snapshot
// that counts a request also has its bytes (the count is released last).
// Thread-safe: Record and Snapshot from any number of threads at once. Owns its
// counters (fixed arrays, no allocation after construction).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "stats/histogram.h"

namespace hubcache {

// The kinds of request, by what the path asks for.
enum class RouteClass {
  kManifest,       // /v2/<name>/manifests/<ref>
  kBlob,           // /v2/<name>/blobs/<digest>
  kTagsList,       // /v2/<name>/tags/list
  kCatalog,        // /v2/_catalog
  kPing,           // /v2/
  kObservability,  // /, /stats, /metrics, /healthz, /readyz
  kAdmin,          // /admin/...
  kOther,          // anything else (unknown paths, malformed requests)
};
inline constexpr size_t kRouteClasses = 8;
const char* RouteClassName(RouteClass route);  // "manifest", "blob", ...

// Where a response's body came from (the X-Hubcache-Cache header). A
// pass-through went to the upstream without being cached (the disk refused it).
// Hosted: a request to a hosted repository (pushed content, never the cache's),
// whatever its outcome, so that it counts in none of the mirror's figures.
enum class CacheResult { kNone, kHit, kMiss, kStale, kPassThrough, kHosted };
inline constexpr size_t kCacheResults = 6;
// "none", "hit", "miss", "stale", "pass-through", "hosted" (as in the header)
const char* CacheResultName(CacheResult result);
CacheResult ParseCacheResult(std::string_view header);

// 0: not an HTTP status (no response written); 1..5: 1xx..5xx.
inline constexpr size_t kStatusClasses = 6;
size_t StatusClassOf(int status);

struct RequestRecord {
  RouteClass route = RouteClass::kOther;
  CacheResult cache = CacheResult::kNone;
  int status = 0;
  uint64_t body_bytes = 0;  // body bytes written to the client
  std::chrono::nanoseconds duration{0};
};

// A copy of the counters of one route.
struct RouteSnapshot {
  // requests[cache result][status class]
  std::array<std::array<uint64_t, kStatusClasses>, kCacheResults> requests{};
  std::array<uint64_t, kCacheResults> body_bytes{};  // by cache result
  HistogramSnapshot latency;

  uint64_t Requests() const;
  uint64_t Requests(CacheResult cache) const;  // any status
  uint64_t RequestsWithStatusClass(size_t status_class) const;
  uint64_t BodyBytes() const;
};

class HttpMetrics {
 public:
  void Record(const RequestRecord& record);
  RouteSnapshot Snapshot(RouteClass route) const;

 private:
  struct Route {
    std::array<std::array<std::atomic<uint64_t>, kStatusClasses>, kCacheResults> requests{};
    std::array<std::atomic<uint64_t>, kCacheResults> body_bytes{};
    LatencyHistogram latency;
  };
  std::array<Route, kRouteClasses> routes_;
};

}  // namespace hubcache
