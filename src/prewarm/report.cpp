#include "prewarm/report.h"

#include <algorithm>
#include <cstdio>

#include "common/clock.h"

namespace hubcache {
namespace {

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::string Cut(const std::string& s, size_t width) {
  if (width == 0 || s.size() <= width) return s;
  if (width <= 3) return s.substr(0, width);
  return s.substr(0, width - 3) + "...";
}

}  // namespace

std::string ResultText(const ImageProgress& image) {
  switch (image.state) {
    case ImageState::kDone:
      return "ok";
    case ImageState::kFailed:
      return std::string("failed: ") + FailureReasonName(image.reason) + ": " + image.error;
    default:
      return ImageStateName(image.state);
  }
}

std::string SummaryTable(const RunSnapshot& run) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"IMAGE", "PLATFORMS", "BLOBS", "FETCHED", "CACHED", "RESULT"});
  for (const auto& i : run.images) {
    bool resolved = i.blobs_total > 0 || i.platforms > 0;
    rows.push_back({i.image, resolved ? std::to_string(i.platforms) : "-",
                    resolved ? std::to_string(i.blobs_total) : "-", HumanBytes(i.bytes_fetched),
                    HumanBytes(i.bytes_cached), ResultText(i)});
  }
  std::vector<size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c + 1 < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += c + 1 < row.size() ? Pad(row[c], widths[c] + 2) : row[c];
    }
    out += line + "\n";
  }
  double elapsed_s = run.finished_ms > run.started_ms
                         ? static_cast<double>(run.finished_ms - run.started_ms) / 1000.0
                         : 0.0;
  out += std::to_string(run.images.size()) + (run.images.size() == 1 ? " image: " : " images: ") +
         std::to_string(run.images_ok()) + " ok, " + std::to_string(run.images_failed()) +
         " failed; fetched " + HumanBytes(run.bytes_fetched) + ", already cached " +
         HumanBytes(run.bytes_cached) + ", in " + HumanDuration(elapsed_s) + "\n";
  return out;
}

std::vector<std::string> ProgressLines(const RunSnapshot& run, double elapsed_s, size_t width) {
  std::vector<std::string> lines;
  size_t name_width = 0;
  for (const auto& i : run.images) {
    if (i.state == ImageState::kResolving || i.state == ImageState::kFetching) {
      name_width = std::max(name_width, std::min<size_t>(i.image.size(), 48));
    }
  }
  int finished = 0;
  for (const auto& i : run.images) {
    if (i.finished()) ++finished;
    if (i.state == ImageState::kResolving) {
      lines.push_back(Cut(Pad(Cut(i.image, 48), name_width) + "  resolving", width));
    } else if (i.state == ImageState::kFetching) {
      uint64_t done = i.bytes_fetched + i.bytes_cached;
      int pct = i.bytes_total ? static_cast<int>(done * 100 / i.bytes_total) : 100;
      lines.push_back(Cut(Pad(Cut(i.image, 48), name_width) + "  " + std::to_string(pct) + "%  " +
                              std::to_string(i.blobs_done) + "/" + std::to_string(i.blobs_total) +
                              " blobs  " + HumanBytes(done) + " / " + HumanBytes(i.bytes_total),
                          width));
    }
  }
  uint64_t done = run.bytes_fetched + run.bytes_cached;
  double rate = elapsed_s > 0.2 ? static_cast<double>(done) / elapsed_s : 0;
  std::string eta = "-";
  // The total grows as images resolve; an ETA only means something once all did.
  bool all_resolved = std::none_of(run.images.begin(), run.images.end(), [](const auto& i) {
    return i.state == ImageState::kQueued || i.state == ImageState::kResolving;
  });
  if (all_resolved && rate > 0 && run.bytes_total >= done) {
    eta = HumanDuration(static_cast<double>(run.bytes_total - done) / rate);
  }
  lines.push_back(Cut("total  " + std::to_string(finished) + "/" +
                          std::to_string(run.images.size()) + " images  " + HumanBytes(done) +
                          " / " + HumanBytes(run.bytes_total) + "  " +
                          HumanBytes(static_cast<uint64_t>(rate)) + "/s  ETA " + eta,
                      width));
  return lines;
}

std::string ImageLogLine(const ImageProgress& i) {
  // An image is logged when it is resolved (and its blobs start) and when it ends.
  std::string line = "image=" + i.image + " state=" +
                     (i.state == ImageState::kFetching ? "resolved" : ImageStateName(i.state));
  if (!i.digest.empty()) line += " digest=" + i.digest;
  if (i.state == ImageState::kFailed) {
    return line + " reason=\"" + FailureReasonName(i.reason) + "\" error=\"" + i.error + "\"";
  }
  line += " platforms=" + std::to_string(i.platforms) + " blobs=" + std::to_string(i.blobs_total) +
          " bytes=" + std::to_string(i.bytes_total);
  if (i.state == ImageState::kDone) {
    line +=
        " fetched=" + std::to_string(i.bytes_fetched) + " cached=" + std::to_string(i.bytes_cached);
  }
  return line;
}

std::string ListErrorLine(const ListError& error) {
  return error.where + ": '" + error.text + "': " + error.message;
}

nlohmann::json ImageProgressJson(const ImageProgress& i) {
  nlohmann::json j = {
      {"image", i.image},
      {"state", ImageStateName(i.state)},
      {"platforms", i.platforms},
      {"blobs_total", i.blobs_total},
      {"blobs_done", i.blobs_done},
      {"bytes_total", i.bytes_total},
      {"bytes_fetched", i.bytes_fetched},
      {"bytes_cached", i.bytes_cached},
  };
  if (!i.digest.empty()) j["digest"] = i.digest;
  if (i.state == ImageState::kFailed) {
    j["reason"] = FailureReasonName(i.reason);
    j["error"] = i.error;
  }
  return j;
}

nlohmann::json RunSnapshotJson(const RunSnapshot& run) {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& i : run.images) images.push_back(ImageProgressJson(i));
  int64_t end_ms = run.finished() ? run.finished_ms : UnixNowMs();
  nlohmann::json j = {
      {"state", !run.finished()           ? (run.started_ms ? "running" : "queued")
                : run.canceled            ? "canceled"
                : run.images_failed() > 0 ? "failed"
                                          : "done"},
      {"images_total", run.images.size()},
      {"images_ok", run.images_ok()},
      {"images_failed", run.images_failed()},
      {"bytes_total", run.bytes_total},
      {"bytes_fetched", run.bytes_fetched},
      {"bytes_cached", run.bytes_cached},
      {"started_ms", run.started_ms},
      {"elapsed_ms", run.started_ms ? end_ms - run.started_ms : 0},
      {"images", images},
  };
  if (run.finished()) j["finished_ms"] = run.finished_ms;
  return j;
}

}  // namespace hubcache
