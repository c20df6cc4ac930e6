#pragma once
// The dashboard: one self-contained HTML page (inline CSS and JavaScript, no
// external resources, no build step) that polls /stats and /stats/history and
// draws the figures, a chart of the recent past, and what the cache holds.
// Every figure carries data-stat="<path in /stats>" and data-value="<raw
// number>", so a test can compare the page with /stats exactly.

#include <string_view>

namespace hubcache {

extern const std::string_view kDashboardHtml;

}  // namespace hubcache
