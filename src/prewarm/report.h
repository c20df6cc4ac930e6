#pragma once
// How a pre-warm run is shown: human sizes, rates and durations, the summary
// table the command ends with, the lines of the live display, and the JSON the
// admin API and /stats serve. Pure functions.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/units.h"
#include "prewarm/image_list.h"
#include "prewarm/prewarm_run.h"

namespace hubcache {

// The result column of an image: "ok", or "failed: <reason>: <error>".
std::string ResultText(const ImageProgress& image);

// The closing table: image, platforms, blobs, bytes fetched, bytes already
// cached, result; then one line of totals.
std::string SummaryTable(const RunSnapshot& run);

// The live display: one line per image in flight, then a totals line with the
// rate and ETA, each cut to `width` columns. `elapsed_s` is the run's age.
std::vector<std::string> ProgressLines(const RunSnapshot& run, double elapsed_s, size_t width);

// One log line for an image that was resolved or finished.
std::string ImageLogLine(const ImageProgress& image);

// The line a malformed list entry is reported with: "line 3: 'x': why".
std::string ListErrorLine(const ListError& error);

nlohmann::json ImageProgressJson(const ImageProgress& image);
nlohmann::json RunSnapshotJson(const RunSnapshot& run);

}  // namespace hubcache
