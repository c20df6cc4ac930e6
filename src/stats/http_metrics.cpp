#include "stats/http_metrics.h"

namespace hubcache {

const char* RouteClassName(RouteClass route) {
  switch (route) {
    case RouteClass::kManifest:
      return "manifest";
    case RouteClass::kBlob:
      return "blob";
    case RouteClass::kTagsList:
      return "tags_list";
    case RouteClass::kCatalog:
      return "catalog";
    case RouteClass::kPing:
      return "ping";
    case RouteClass::kObservability:
      return "observability";
    case RouteClass::kAdmin:
      return "admin";
    case RouteClass::kOther:
      break;
  }
  return "other";
}

const char* CacheResultName(CacheResult result) {
  switch (result) {
    case CacheResult::kHit:
      return "hit";
    case CacheResult::kMiss:
      return "miss";
    case CacheResult::kStale:
      return "stale";
    case CacheResult::kPassThrough:
      return "pass-through";
    case CacheResult::kHosted:
      return "hosted";
    case CacheResult::kNone:
      break;
  }
  return "none";
}

CacheResult ParseCacheResult(std::string_view header) {
  if (header == "hit") return CacheResult::kHit;
  if (header == "miss") return CacheResult::kMiss;
  if (header == "stale") return CacheResult::kStale;
  if (header == "pass-through") return CacheResult::kPassThrough;
  if (header == "hosted") return CacheResult::kHosted;
  return CacheResult::kNone;
}

size_t StatusClassOf(int status) {
  if (status < 100 || status > 599) return 0;
  return static_cast<size_t>(status / 100);
}

uint64_t RouteSnapshot::Requests() const {
  uint64_t n = 0;
  for (const auto& by_status : requests)
    for (uint64_t v : by_status) n += v;
  return n;
}

uint64_t RouteSnapshot::Requests(CacheResult cache) const {
  uint64_t n = 0;
  for (uint64_t v : requests[static_cast<size_t>(cache)]) n += v;
  return n;
}

uint64_t RouteSnapshot::RequestsWithStatusClass(size_t status_class) const {
  uint64_t n = 0;
  for (const auto& by_status : requests) n += by_status[status_class];
  return n;
}

uint64_t RouteSnapshot::BodyBytes() const {
  uint64_t n = 0;
  for (uint64_t v : body_bytes) n += v;
  return n;
}

void HttpMetrics::Record(const RequestRecord& record) {
  Route& route = routes_[static_cast<size_t>(record.route)];
  const size_t cache = static_cast<size_t>(record.cache);
  if (record.body_bytes > 0)
    route.body_bytes[cache].fetch_add(record.body_bytes, std::memory_order_relaxed);
  route.latency.Observe(record.duration);
  // Last, releasing the adds above: a snapshot that sees this request sees its bytes.
  route.requests[cache][StatusClassOf(record.status)].fetch_add(1, std::memory_order_release);
}

RouteSnapshot HttpMetrics::Snapshot(RouteClass route_class) const {
  const Route& route = routes_[static_cast<size_t>(route_class)];
  RouteSnapshot snap;
  for (size_t c = 0; c < kCacheResults; ++c) {
    for (size_t s = 0; s < kStatusClasses; ++s)
      snap.requests[c][s] = route.requests[c][s].load(std::memory_order_acquire);
    snap.body_bytes[c] = route.body_bytes[c].load(std::memory_order_relaxed);
  }
  snap.latency = route.latency.Snapshot();
  return snap;
}

}  // namespace hubcache
