#include "stats/stats_table.h"

#include <fmt/format.h>

namespace hubcache {
namespace {

using nlohmann::json;

// The value at a dotted path, or null.
const json& At(const json& doc, const std::string& path) {
  static const json kNull;
  const json* node = &doc;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return kNull;
    node = &(*node)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *node;
}

std::string Int(const json& v) {
  if (!v.is_number()) return "-";
  return fmt::format("{}", v.get<int64_t>());
}

std::string Bytes(const json& v) { return v.is_number() ? FormatBytes(v.get<double>()) : "-"; }

std::string Percent(const json& v) {
  return v.is_number() ? fmt::format("{:.1f}%", v.get<double>() * 100) : "-";
}

std::string Duration(double seconds) {
  auto s = static_cast<int64_t>(seconds);
  if (s >= 86400) return fmt::format("{}d {}h", s / 86400, s % 86400 / 3600);
  if (s >= 3600) return fmt::format("{}h {}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m {}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

}  // namespace

std::string FormatBytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string StatsTable(const json& s, const std::string& source_url) {
  std::string out;
  auto line = [&out](const std::string& text) { out += text + "\n"; };
  const json& uptime = At(s, "uptime_seconds");
  line(fmt::format("hubcache {} at {}, up {}",
                   At(s, "version").is_string() ? At(s, "version").get<std::string>() : "?",
                   source_url, uptime.is_number() ? Duration(uptime.get<double>()) : "-"));
  line("");

  line(fmt::format("{:<20}{:>10}{:>10}{:>10}{:>10}{:>10}", "Requests", "total", "hits", "misses",
                   "stale", "errors"));
  for (const auto& [key, label] : {std::pair<const char*, const char*>{"manifest", "manifests"},
                                   {"blob", "blobs"},
                                   {"tag_revalidation", "tag revalidations"}}) {
    const std::string p = std::string("requests.") + key + ".";
    line(fmt::format("  {:<18}{:>10}{:>10}{:>10}{:>10}{:>10}", label, Int(At(s, p + "requests")),
                     Int(At(s, p + "hits")), Int(At(s, p + "misses")), Int(At(s, p + "stale")),
                     Int(At(s, p + "errors"))));
  }
  line(fmt::format("{:<20}{} of requests, {} of bytes", "Hit ratio",
                   Percent(At(s, "hit_ratio.requests")), Percent(At(s, "hit_ratio.bytes"))));
  line("");

  line("Bytes");
  line(fmt::format("  {:<18}{:>12}   (from cache {}, from upstream {})", "served",
                   Bytes(At(s, "bytes.served")), Bytes(At(s, "bytes.served_from_cache")),
                   Bytes(At(s, "bytes.served_from_upstream"))));
  line(fmt::format("  {:<18}{:>12}", "fetched upstream", Bytes(At(s, "bytes.fetched_upstream"))));
  line(fmt::format("  {:<18}{:>12}", "saved", Bytes(At(s, "bytes.saved"))));
  line("");

  line(fmt::format("{:<20}{} in flight, {} started, {} joined a download in flight, {} failed",
                   "Downloads", Int(At(s, "fills.in_flight")), Int(At(s, "fills.started")),
                   Int(At(s, "fills.coalesced")), Int(At(s, "fills.failed"))));
  const json& cap = At(s, "cache.max_size_bytes");
  std::string cap_text = cap.is_number() && cap.get<uint64_t>() > 0
                             ? "of " + FormatBytes(cap.get<double>()) + " cap"
                             : "no cap";
  line(fmt::format("{:<20}{} {}, {} objects, {} evicted ({}), {} write errors", "Cache",
                   Bytes(At(s, "cache.size_bytes")), cap_text, Int(At(s, "cache.entries")),
                   Int(At(s, "cache.evictions")), Bytes(At(s, "cache.evicted_bytes")),
                   Int(At(s, "cache.write_errors"))));

  const json& patterns = At(s, "hosted.patterns");
  const json& hosted_repos = At(s, "hosted.repositories");
  if ((patterns.is_array() && !patterns.empty()) ||
      (hosted_repos.is_number() && hosted_repos.get<uint64_t>() > 0)) {
    line(
        fmt::format("{:<20}{} in {} blobs, {} repositories, {} manifests pushed, {} uploads in "
                    "progress, {} served",
                    "Hosted", Bytes(At(s, "hosted.bytes")), Int(At(s, "hosted.blobs")),
                    Int(hosted_repos), Int(At(s, "hosted.push_manifests")),
                    Int(At(s, "hosted.uploads_in_progress")), Bytes(At(s, "hosted.bytes_served"))));
  }

  std::string by_status;
  if (const json& reqs = At(s, "upstream.requests"); reqs.is_array()) {
    for (const auto& r : reqs) {
      if (!by_status.empty()) by_status += ", ";
      int status = r.value("status", 0);
      by_status += fmt::format("{} {}: {}", r.value("method", "?"),
                               status == 0 ? std::string("no response") : std::to_string(status),
                               r.value("count", uint64_t{0}));
    }
  }
  line(fmt::format("{:<20}{} requests{}, {} token fetches, {} errors, {} without response",
                   "Upstream", Int(At(s, "upstream.requests_total")),
                   by_status.empty() ? "" : " (" + by_status + ")",
                   Int(At(s, "upstream.token_fetches")), Int(At(s, "upstream.errors")),
                   Int(At(s, "upstream.transport_errors"))));
  const json& limit = At(s, "upstream.ratelimit.limit");
  const json& remaining = At(s, "upstream.ratelimit.remaining");
  line(fmt::format("{:<20}{}", "Docker Hub limit",
                   limit.is_number() ? fmt::format("{} of {} pulls left in the window",
                                                   Int(remaining), Int(limit))
                                     : std::string("not reported by the upstream")));
  line("");

  const json& top = At(s, "top_repositories");
  if (top.is_array() && !top.empty()) {
    line(fmt::format("{:<40}{:>14}{:>10}", "Top repositories", "bytes served", "requests"));
    for (const auto& r : top) {
      line(fmt::format("  {:<38}{:>14}{:>10}", r.value("repository", "?"),
                       Bytes(r.value("bytes_served", json())), Int(r.value("requests", json()))));
    }
  } else {
    line("Top repositories    none served yet");
  }
  return out;
}

}  // namespace hubcache
