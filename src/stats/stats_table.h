#pragma once
// `hubcache stats` as a human reads it: the /stats document (stats_json.h) as a
// plain-text table. Works on the JSON, not on a snapshot, because the mirror it
// describes may be another process or another version; fields it lacks show
// as "-".

#include <string>

#include <nlohmann/json.hpp>

namespace hubcache {

// "1.5 GiB", "512 B": binary units, one decimal above bytes.
std::string FormatBytes(double bytes);

std::string StatsTable(const nlohmann::json& stats, const std::string& source_url);

}  // namespace hubcache
