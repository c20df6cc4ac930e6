#pragma once
// A StatsSnapshot in the Prometheus text exposition format (version 0.0.4):
// every metric under the hubcache_ prefix, counters ending in _total, sizes as
// gauges in bytes, request durations as histograms in seconds. Series whose
// value is zero and that would only say "never happened" are left out, except
// for the per-kind request counters, which are always present.

#include <string>

#include "stats/snapshot.h"

namespace hubcache {

inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string PrometheusText(const StatsSnapshot& snapshot);

// A label value escaped for the text format (\\, \" and \n).
std::string EscapeLabelValue(const std::string& value);

}  // namespace hubcache
