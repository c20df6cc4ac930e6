#pragma once
// The /stats document: a StatsSnapshot as JSON, and the sampled history for the
// dashboard's chart. The field names are an interface (the dashboard, `hubcache
// stats` and operators' scripts read them): add fields, never rename them.

#include <vector>

#include <nlohmann/json.hpp>

#include "stats/history.h"
#include "stats/snapshot.h"

namespace hubcache {

// How many entries "top_repositories" lists.
inline constexpr size_t kTopRepositories = 10;

// Keys keep the order written here (most telling first), for people reading it.
nlohmann::ordered_json StatsJson(const StatsSnapshot& snapshot);

// {"interval_ms": N, "samples": [{"t_ms", "hits", "misses", "served_bytes",
// "served_from_cache_bytes", "fetched_bytes"}, ...]}, oldest first.
nlohmann::ordered_json HistoryJson(const std::vector<HistorySample>& samples, int64_t interval_ms);

}  // namespace hubcache
