#include "stats/snapshot.h"

namespace hubcache {

uint64_t StatsSnapshot::saved_bytes() const {
  return served_bytes() > fetched_bytes() ? served_bytes() - fetched_bytes() : 0;
}

std::optional<double> StatsSnapshot::hit_ratio_requests() const {
  const uint64_t from_cache = manifest.hits + manifest.stale + blob.hits + blob.stale;
  const uint64_t all = from_cache + manifest.misses + blob.misses;
  if (all == 0) return std::nullopt;
  return static_cast<double>(from_cache) / static_cast<double>(all);
}

std::optional<double> StatsSnapshot::hit_ratio_bytes() const {
  if (served_bytes() == 0) return std::nullopt;
  return static_cast<double>(served_from_cache_bytes) / static_cast<double>(served_bytes());
}

}  // namespace hubcache
